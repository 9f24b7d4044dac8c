"""SCAN and HSCAN cursors over Python dicts, with Redis's guarantee.

Redis's guarantee: an element present for the whole of a full iteration is returned at
least once, whatever is added or removed meanwhile. Redis gets it by walking its hash
table's buckets in reverse-binary order. A Python dict's positions shift when keys are
removed, so a cursor that were a position could skip keys. Here elements are visited in
the order of their hash (fixed for the life of the process, whatever else changes): the
cursor is the last hash returned, and the next call returns the ``count`` smallest hashes
above it (plus any element sharing the last one's hash, so a tie is never cut in two).

The cost is a pass over the whole dict per call (``heapq.nsmallest`` keeps it at
O(n log count)); Redis's is proportional to ``count``. Fine for the keyspaces an
in-memory Python server holds; docs/resp.md lists it among the differences.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable

from netcore_resp.framing import string2ll
from netcore_resp.glob import compile_glob
from netcore_resp.replies import NOT_INTEGER, SYNTAX, Reply, bulk, error_reply

INVALID_CURSOR = error_reply("invalid cursor")
_MASK = 2**62 - 1


def position(item: bytes) -> int:
    """The element's place in every iteration: 1 .. 2**62 (0 is the start and the end)."""
    return (hash(item) & _MASK) + 1


def parse(argv: list, first_option: int, allow_type: bool) -> tuple[int, int, Callable | None, bytes | None]:
    """(cursor, count, match predicate or None, type name or None) from SCAN's arguments."""
    cursor = string2ll(argv[first_option - 1])
    if cursor is None or cursor < 0:
        # Redis reads cursors as unsigned: a number beyond 64 bits or with junk is invalid.
        raise Reply(INVALID_CURSOR)
    count, match, kind = 10, None, None
    j, n = first_option, len(argv)
    while j < n:
        opt = argv[j].lower()
        if j + 1 >= n:
            raise Reply(SYNTAX)
        if opt == b"count":
            count = string2ll(argv[j + 1])
            if count is None:
                raise Reply(NOT_INTEGER)
            if count < 1:
                raise Reply(SYNTAX)
        elif opt == b"match":
            pattern = argv[j + 1]
            match = None if pattern == b"*" else compile_glob(pattern)
        elif opt == b"type" and allow_type:
            kind = argv[j + 1].lower()
        else:
            raise Reply(SYNTAX)
        j += 2
    return cursor, count, match, kind


def step(items: Iterable[bytes], cursor: int, count: int) -> tuple[int, list[bytes]]:
    """The next batch after ``cursor``: (next cursor, 0 at the end; the elements)."""
    after = [item for item in items if position(item) > cursor] if cursor else list(items)
    if len(after) <= count:
        return 0, after
    batch = heapq.nsmallest(count, after, key=position)
    last = position(batch[-1])
    chosen = set(batch)
    batch.extend(item for item in after if position(item) == last and item not in chosen)
    return last, batch


def reply(cursor: int, elements: list[bytes]) -> bytes:
    return b"*2\r\n" + bulk(b"%d" % cursor) + b"*%d\r\n" % len(elements) + b"".join(map(bulk, elements))


def scan_keys(data: dict, alive: Callable[[bytes], Any], type_name: Callable[[Any], bytes], argv: list) -> bytes:
    cursor, count, match, kind = parse(argv, 2, True)
    nxt, keys = step(data, cursor, count)
    keys = [key for key in keys if alive(key) is not None]  # lazily expires what is due
    if match is not None:
        keys = list(filter(match, keys))
    if kind is not None:
        keys = [key for key in keys if type_name(data[key]) == kind]
    return reply(nxt, keys)


def scan_fields(fields: dict | None, argv: list) -> bytes:
    """HSCAN: field, value pairs."""
    cursor, count, match, _ = parse(argv, 3, False)
    if not fields:
        return reply(0, [])
    nxt, names = step(fields, cursor, count)
    if match is not None:
        names = list(filter(match, names))
    return reply(nxt, [x for name in names for x in (name, fields[name])])


def scan_members(members: Any, argv: list) -> bytes:
    """SSCAN (a set) and ZSCAN's member side: elements without values."""
    cursor, count, match, _ = parse(argv, 3, False)
    if not members:
        return reply(0, [])
    nxt, names = step(members, cursor, count)
    if match is not None:
        names = list(filter(match, names))
    return reply(nxt, names)
