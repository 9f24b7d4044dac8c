"""SORT and SORT_RO (Redis 7.0's ``sort.c``): lists, sets and sorted sets, by their values
or by other keys (``BY weight_*``, ``BY h_*->field``), with GET, LIMIT, ALPHA and STORE.

Order is Redis's, made total as Redis makes it: numeric weights, ties broken by comparing
the elements' bytes; ``ALPHA`` compares bytes (Redis's ``strcoll`` in the C locale).
``BY`` a pattern without ``*`` (``BY nosort``) keeps the key's own order (a sorted set's
by score). The result of STORE is a list, as in Redis.
"""

from __future__ import annotations

import collections
import functools

from netcore_resp.context import Context
from netcore_resp.floats import sort_double
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import NOT_INTEGER, SYNTAX, WRONGTYPE, Reply, integer
from netcore_resp.zsets import ZSet

NOT_DOUBLE = error_reply("One or more scores can't be converted into double")


def install(ctx: Context) -> None:
    ks, data, alive = ctx.ks, ctx.data, ctx.alive

    def lookup(pattern: bytes, element: bytes) -> bytes | None:
        """``lookupKeyByPattern``: ``#`` is the element; ``k_*`` a string; ``h_*->f`` a field."""
        if pattern == b"#":
            return element
        star = pattern.find(b"*")
        if star < 0:
            return None
        arrow = pattern.find(b"->", star + 1)
        field = None
        if arrow >= 0 and arrow + 2 < len(pattern):
            field = pattern[arrow + 2:]
            pattern = pattern[:arrow]
        value = alive(pattern[:star] + element + pattern[star + 1:])
        if field is not None:
            return value.get(field) if value.__class__ is dict else None
        if value.__class__ is bytearray:
            return bytes(value)  # a string grown in place: STORE must not share it
        return value if value.__class__ is bytes else None

    def sort(argv, client, read_only: bool):
        key = argv[1]
        by = None
        gets: list[bytes] = []
        desc = alpha = False
        limit = None
        store = None
        j = 2
        while j < len(argv):
            opt = argv[j].lower()
            more = len(argv) - j - 1
            if opt == b"asc":
                desc = False
            elif opt == b"desc":
                desc = True
            elif opt == b"alpha":
                alpha = True
            elif opt == b"limit" and more >= 2:
                start, count = string2ll(argv[j + 1]), string2ll(argv[j + 2])
                if start is None or count is None:
                    raise Reply(NOT_INTEGER)
                limit = (start, count)
                j += 2
            elif opt == b"store" and more >= 1 and not read_only:
                store = argv[j + 1]
                j += 1
            elif opt == b"by" and more >= 1:
                by = argv[j + 1]
                j += 1
            elif opt == b"get" and more >= 1:
                gets.append(argv[j + 1])
                j += 1
            else:
                raise Reply(SYNTAX)
            j += 1
        value = alive(key)
        if value is None:
            elements: list[bytes] = []
        elif value.__class__ is collections.deque:
            elements = list(value)
        elif value.__class__ is set:
            elements = list(value)
        elif value.__class__ is ZSet:
            elements = [member for _, member in value.order]
        else:
            raise Reply(WRONGTYPE)
        dont_sort = by is not None and b"*" not in by
        if dont_sort:
            if desc and value.__class__ is ZSet:
                elements.reverse()
        else:
            elements = ordered(elements, by, alpha, desc)
        if limit is not None:
            start, count = limit
            start = max(start, 0)
            elements = elements[start:] if count < 0 else elements[start:start + count]
        if gets:
            result = [lookup(pattern, element) for element in elements for pattern in gets]
        else:
            result = list(elements)
        if store is not None:
            ks.delete(store)
            if result:
                data[store] = collections.deque(b"" if item is None else item for item in result)
            return integer(len(result))
        return ctx.array(result)

    def ordered(elements: list[bytes], by: bytes | None, alpha: bool, desc: bool) -> list[bytes]:
        if alpha:
            if by is None:
                keyed = [(element, element) for element in elements]
            else:
                keyed = [(lookup(by, element), element) for element in elements]

            def compare(a: tuple, b: tuple) -> int:
                x, y = a[0], b[0]
                if x is None or y is None:
                    cmp = 0 if x is y else (-1 if x is None else 1)
                else:
                    cmp = (x > y) - (x < y)
                return -cmp if desc else cmp
            keyed.sort(key=functools.cmp_to_key(compare))
            return [element for _, element in keyed]
        weighted = []
        for element in elements:
            source = element if by is None else lookup(by, element)
            if source is None:
                score = 0.0
            else:
                score = sort_double(source)  # strtod as sortCommand checks it
                if score is None:
                    raise Reply(NOT_DOUBLE)
            weighted.append((score, element))
        weighted.sort(reverse=desc)  # equal weights: by the elements' bytes, as Redis does
        return [element for _, element in weighted]

    ctx.register("sort", (-2, ("write", "denyoom"), 1, 1, 1), lambda argv, client: sort(argv, client, False))
    ctx.register("sort_ro", (-2, ("readonly",), 1, 1, 1), lambda argv, client: sort(argv, client, True))

