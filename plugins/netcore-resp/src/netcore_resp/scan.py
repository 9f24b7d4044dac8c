"""SCAN, HSCAN, SSCAN and ZSCAN cursors, with Redis's guarantee at a cost per call
proportional to ``COUNT``.

Redis's guarantee: an element present for the whole of a full iteration is returned at
least once, whatever is added or removed meanwhile (an element may come twice, one
added or removed meanwhile may or may not come); a full iteration ends with cursor 0.
Redis gets it by walking its hash table's buckets in reverse-binary order. Python gives
no way to resume iterating a dict from a position, so each scanned dict (the keys of a
database, the fields of a hash, the members of a sorted set) gets a :class:`Mirror`:

* ``order``, a list of its keys in the dict's insertion order, to which keys are only
  ever appended. A cursor is a place in that list (plus an *epoch*, below): a call
  returns ``order[place:place + count]`` (those still present), so its cost is
  ``count``. A key keeps its place for as long as it is in the list, and a key added
  goes after every cursor handed out, so no cursor can step over a key that stays.
* Catching up with the dict without hooking every write (the commands write the dicts
  directly, and plain ``SET`` must stay one dict store): a dict keeps its keys in
  insertion order, and overwriting a key keeps its place, so the keys added since the
  last call are the dict's *tail*, after the last key that was already there then and
  has not been deleted since. ``rec`` remembers the very key object of every key the
  mirror has seen; walking ``reversed(dict)`` stops at the first key whose object is the
  one remembered (the same dict entry: a key deleted and added again is a new object,
  from the new command's arguments). Keys of 0 or 1 byte are skipped by that test
  (CPython shares those objects). So each call also pays for the keys added since the
  previous one: O(1) per write, amortised.
* Deleted keys stay in ``order`` until they outnumber the live ones; then the list is
  compacted (a C-speed pass, paid for by those deletions) under a new epoch, and the
  cursors of the last few epochs are translated (to at most :data:`BLOCK` places before
  where they were: some keys may come twice, none is skipped). A cursor of an unknown
  epoch (too old, or made up) starts the iteration again: duplicates, never a miss.

A cursor is ``place << 27 | end << 10 | epoch``: its place in ``order``, where the
iteration stops (the length of ``order`` when it began, as a 12-bit mantissa and a 5-bit
exponent, rounded up: keys added later need not come, and a steady stream of them must
not keep the iteration from ending) and the epoch (never 0, so only the end is 0).
A dict of at most ``count`` elements is returned whole with cursor 0, as Redis does for
small hashes and sets.

SSCAN: a Python set keeps no insertion order and shows no tail of new members, so a set
larger than ``count`` gets a :class:`SetIndex` instead: its members sorted by hash (as
Redis's cursor walks buckets in a fixed order), and the cursor is a place in that order,
the last hash looked at (``hash + 2**63 + 1``, so never 0): a call returns the next
``count`` members still in the set, O(count) (plus members deleted since, skipped once).
The guarantee needs every member present when an iteration began to be in the index:
the call with cursor 0 checks that (``members <= indexed``, one C-speed pass) and adds
the ones missing; an index dropped from the cache is rebuilt from the set as it is then,
which still holds every member present since the iteration began, so a cursor never
restarts. SADD and SREM pay nothing.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections import OrderedDict
from typing import Any, Callable

from netcore_resp.framing import string2ll
from netcore_resp.glob import compile_glob
from netcore_resp.replies import NOT_INTEGER, SYNTAX, Reply, bulk, cstr, error_reply

INVALID_CURSOR = error_reply("invalid cursor")

EPOCH_BITS = 10
_EPOCH_MASK = (1 << EPOCH_BITS) - 1
#: The end of an iteration (the length of the order when it began), rounded up to a
#: 12-bit mantissa and a 5-bit exponent.
END_BITS = 17
_MANTISSA = 12
_PLACE_SHIFT = EPOCH_BITS + END_BITS
#: Granularity of the translation of cursors across a compaction.
BLOCK = 64
#: Deleted keys kept in a mirror's order beyond the number of live ones before compacting.
SLACK = 1024
#: Epochs of a mirror whose cursors are still translated.
HISTORY = 8
#: Hash fields / sorted-set members dicts whose mirrors are kept (the most recently scanned).
COLLECTIONS = 16

_epochs = itertools.count()


def _new_epoch() -> int:
    return next(_epochs) % _EPOCH_MASK + 1


def _end_code(n: int) -> int:
    """The code of the smallest ``m << e`` (m < 4096) not below ``n``: at most n/2048 above."""
    e = max(0, n.bit_length() - _MANTISSA)
    m = -(-n >> e)
    if m >> _MANTISSA:
        m, e = m >> 1, e + 1
    return e << _MANTISSA | m


def _end(code: int) -> int:
    return (code & ((1 << _MANTISSA) - 1)) << (code >> _MANTISSA)


class Mirror:
    """The insertion order of one dict, for cursors: see the module's docstring."""

    __slots__ = ("order", "rec", "epoch", "history")

    def __init__(self, items: dict) -> None:
        self.order = list(items)
        self.rec = dict(zip(items, items))
        self.epoch = _new_epoch()
        #: old epoch -> (live places before each BLOCK of its order, the epoch after it)
        self.history: OrderedDict[int, tuple[list[int], int]] = OrderedDict()

    def sync(self, items: dict) -> None:
        """Append the keys added to ``items`` since the last call (the dict's tail)."""
        rec = self.rec
        seen = rec.get
        tail = []
        for key in reversed(items):
            if seen(key) is key and len(key) > 1:
                break
            tail.append(key)
        if tail:
            append = self.order.append
            for key in reversed(tail):
                if key not in rec:
                    append(key)
                rec[key] = key
        if len(self.order) - len(items) > len(items) + SLACK:
            self._compact(items)

    def _compact(self, items: dict) -> None:
        contains = items.__contains__
        order = self.order
        prefix = list(itertools.islice(itertools.accumulate(map(contains, order), initial=0), 0, None, BLOCK))
        epoch = _new_epoch()
        history = self.history
        history.pop(epoch, None)
        history[self.epoch] = (prefix, epoch)
        while len(history) > HISTORY:
            history.popitem(last=False)
        self.order = list(filter(contains, order))
        self.rec = dict(zip(items, items))
        self.epoch = epoch

    def place(self, cursor: int) -> tuple[int, int]:
        """(place, end) in ``order`` of a ``cursor`` (not 0); (0, end of order) for an unknown epoch."""
        epoch = cursor & _EPOCH_MASK
        end = _end(cursor >> EPOCH_BITS & ((1 << END_BITS) - 1))
        place = cursor >> _PLACE_SHIFT
        for _ in range(HISTORY + 1):
            if epoch == self.epoch:
                return place, end
            entry = self.history.get(epoch)
            if entry is None:
                break
            prefix, epoch = entry
            place = prefix[min(place // BLOCK, len(prefix) - 1)]
            after = -(-end // BLOCK)  # rounded up: no key before the old end falls beyond the new
            end = prefix[after] if after < len(prefix) else 1 << 62
        return 0, len(self.order)

    def page(self, items: dict, cursor: int, count: int) -> tuple[int, list]:
        """(next cursor, candidates): the caller keeps those still in ``items``.

        The cursor carries where the iteration ends: the length of ``order`` when it
        began (rounded up). Keys added since need not be returned, and without that end
        an iteration under a steady stream of new keys (``count`` or more per call) would
        never finish."""
        self.sync(items)
        order = self.order
        if cursor:
            start, end = self.place(cursor)
            code = _end_code(end) if end < len(order) else _end_code(len(order))
        else:
            start, code = 0, _end_code(len(order))
        stop = start + count
        if stop >= min(_end(code), len(order)):
            return 0, order[start:stop]
        return stop << _PLACE_SHIFT | code << EPOCH_BITS | self.epoch, order[start:stop]


#: Offset from a member's hash to its SSCAN cursor (``hash + 2**63 + 1``: 1 .. 2**64).
_HASH_OFFSET = 2**63 + 1


class SetIndex:
    """The members of one set in hash order, for SSCAN: see the module's docstring."""

    __slots__ = ("hashes", "order", "indexed")

    def __init__(self, members: set) -> None:
        self._build(members)

    def _build(self, members: set, order: list | None = None) -> None:
        self.order = sorted(members, key=hash) if order is None else order
        self.hashes = array("q", map(hash, self.order))
        self.indexed = members.copy()

    def sync(self, members: set) -> None:
        """An iteration begins: index the members added since the last call (inserted one
        by one when they are few, else merged in one pass), or rebuild when deleted members
        outnumber the live ones."""
        if members <= self.indexed:
            added: set = set()
        else:
            added = members - self.indexed
        dead = len(self.indexed) - (len(members) - len(added))
        if dead > len(members) + SLACK:
            self._build(members)
        elif len(added) * 64 > len(self.order):  # two sorted runs: Timsort merges them in O(n)
            self._build(self.indexed | added, sorted(self.order + sorted(added, key=hash), key=hash))
        else:
            hashes, order = self.hashes, self.order
            for member in added:
                h = hash(member)
                i = bisect.bisect_right(hashes, h)
                hashes.insert(i, h)
                order.insert(i, member)
            self.indexed |= added

    def page(self, members: set, cursor: int, count: int) -> tuple[int, list]:
        """(next cursor, the next ``count`` members still in ``members`` after ``cursor``):
        members of one hash are never split between two calls."""
        hashes, order = self.hashes, self.order
        n = len(order)
        i = 0 if cursor == 0 else bisect.bisect_right(hashes, cursor - _HASH_OFFSET)
        batch: list = []
        while i < n and (len(batch) < count or hashes[i] == hashes[i - 1]):
            if order[i] in members:
                batch.append(order[i])
            i += 1
        return (0 if i >= n else hashes[i - 1] + _HASH_OFFSET), batch


_collections: OrderedDict[int, tuple[Any, Any]] = OrderedDict()


def _index_of(items: Any, make: Callable[[Any], Any]) -> tuple[Any, bool]:
    """(the index of a hash, sorted set or set, made now?): the last :data:`COLLECTIONS`
    collections scanned keep theirs."""
    entry = _collections.get(id(items))
    if entry is not None and entry[0] is items:
        _collections.move_to_end(id(items))
        return entry[1], False
    index = make(items)
    _collections[id(items)] = (items, index)
    while len(_collections) > COLLECTIONS:
        _collections.popitem(last=False)
    return index, True


def page(items: dict, cursor: int, count: int) -> tuple[int, list]:
    """The next batch of a dict's keys (keys not in ``items`` any more are left out)."""
    if len(items) <= count:
        return 0, list(items)
    mirror, _ = _index_of(items, Mirror)
    nxt, batch = mirror.page(items, cursor, count)
    return nxt, [key for key in batch if key in items]


def members_page(members: set, cursor: int, count: int) -> tuple[int, list]:
    """SSCAN's next batch of a set's members."""
    if len(members) <= count:
        return 0, list(members)
    index, made = _index_of(members, SetIndex)
    if cursor == 0 and not made:
        index.sync(members)
    return index.page(members, cursor, count)


#: C's ``isspace``: a cursor starting with one of these is refused.
_SPACE = frozenset(b" \t\n\v\f\r")
EMPTY_SCAN = b"*2\r\n$1\r\n0\r\n*0\r\n"


def parse_cursor(arg: bytes) -> int:
    """A cursor as Redis's ``parseScanCursorOrReply`` reads it: C's ``strtoul`` on the
    argument as a C string, so any unsigned 64-bit number, an optional sign (``-1`` is
    2^64-1), the empty string as 0; a leading blank, junk or more than 64 bits is refused."""
    text = cstr(arg)
    if not text:
        return 0
    digits = text[1:] if text[:1] in b"+-" else text
    if text[0] in _SPACE or not digits.isdigit() or len(digits.lstrip(b"0")) > 20:
        raise Reply(INVALID_CURSOR)
    number = int(digits)
    if number >> 64:
        raise Reply(INVALID_CURSOR)
    return -number % 2**64 if text[:1] == b"-" else number


def parse_options(argv: list, first: int, allow_type: bool) -> tuple[int, Callable | None, bytes | None]:
    """(count, match predicate or None, type name or None): the options of SCAN (TYPE
    too) and of HSCAN/SSCAN/ZSCAN, in any order, the last of a repeated one counting
    (Redis's ``scanGenericCommand``; names compared as C strings)."""
    count, match, kind = 10, None, None
    j, n = first, len(argv)
    while j < n:
        opt = cstr(argv[j]).lower()
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
            kind = cstr(argv[j + 1]).lower()
        else:
            raise Reply(SYNTAX)
        j += 2
    return count, match, kind


def open_collection(argv: list, lookup: Callable[[bytes], Any]) -> tuple[Any, int, int, Callable | None] | None:
    """HSCAN, SSCAN, ZSCAN's checks in Redis's order: the cursor, then the key (``lookup``
    raises for the wrong type), then the options. None for a missing key: an empty scan
    whatever the options say. Else (collection, cursor, count, match)."""
    cursor = parse_cursor(argv[2])
    value = lookup(argv[1])
    if not value:
        return None
    count, match, _ = parse_options(argv, 3, False)
    return value, cursor, count, match


def reply(cursor: int, elements: list[bytes]) -> bytes:
    return b"*2\r\n" + bulk(b"%d" % cursor) + b"*%d\r\n" % len(elements) + b"".join(map(bulk, elements))


def scan_keys(ks: Any, type_name: Callable[[Any], bytes], argv: list) -> bytes:
    """SCAN over one database (a :class:`netcore_resp.keyspace.Keyspace`, which holds the mirror)."""
    cursor = parse_cursor(argv[1])
    count, match, kind = parse_options(argv, 2, True)
    data = ks.data
    if len(data) <= count:
        nxt, keys = 0, list(data)
    else:
        if ks.scan_mirror is None:
            ks.scan_mirror = Mirror(data)
        nxt, keys = ks.scan_mirror.page(data, cursor, count)
    alive = ks.alive
    keys = [key for key in keys if alive(key) is not None]  # lazily expires what is due
    if match is not None:
        keys = list(filter(match, keys))
    if kind is not None:
        keys = [key for key in keys if type_name(data[key]) == kind]
    return reply(nxt, keys)


def scan_fields(argv: list, lookup: Callable[[bytes], Any]) -> bytes:
    """HSCAN: field, value pairs."""
    opened = open_collection(argv, lookup)
    if opened is None:
        return EMPTY_SCAN
    fields, cursor, count, match = opened
    nxt, names = page(fields, cursor, count)
    if match is not None:
        names = list(filter(match, names))
    return reply(nxt, [x for name in names for x in (name, fields[name])])


def scan_members(argv: list, lookup: Callable[[bytes], Any]) -> bytes:
    """SSCAN (a set): elements without values."""
    opened = open_collection(argv, lookup)
    if opened is None:
        return EMPTY_SCAN
    members, cursor, count, match = opened
    nxt, names = members_page(members, cursor, count)
    if match is not None:
        names = list(filter(match, names))
    return reply(nxt, names)
