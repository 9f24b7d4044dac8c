"""Streams, the core of them: XADD, XLEN, XRANGE/XREVRANGE, XDEL, XTRIM, consumer groups
(XGROUP, XREADGROUP, XACK, XCLAIM, XAUTOCLAIM), XREAD and XINFO (STREAM [FULL], GROUPS,
CONSUMERS).

A stream is its entries in ID order (IDs only ever grow, so appending keeps a plain list
sorted and ``bisect`` finds a range), a dict from ID to fields, and the consumer groups
with their pending-entries lists. IDs are ``(ms, seq)`` tuples, compared as Redis
compares them. Not implemented: blocking reads (``BLOCK`` answers an error rather than
returning at once, which a client would take for "no data"), XPENDING, XSETID; docs/resp.md
lists them. Argument checks, their order and their texts are Redis 7.0's ``t_stream.c``.
"""

from __future__ import annotations

import bisect
import re
import time
from typing import Any

from netcore_resp.context import Context
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import (
    EMPTY_ARRAY,
    NOT_INTEGER,
    OK,
    ONE,
    SYNTAX,
    WRONGTYPE,
    ZERO,
    Reply,
    arity_error,
    bulk,
    check_subcommand,
    cstr,
    help_reply,
    integer,
    subcommand_syntax,
)

U64 = 2**64 - 1
MAX = (U64, U64)
INVALID_ID = error_reply("Invalid stream ID specified as stream command argument")
TOO_SMALL = error_reply("The ID specified in XADD is equal or smaller than the target stream top item")
ZERO_ID = error_reply("The ID specified in XADD must be greater than 0-0")
EXHAUSTED = error_reply("The stream has exhausted the last possible ID, unable to add more items")
NO_BLOCK = error_reply("netcore does not implement blocking stream reads (XREAD/XREADGROUP BLOCK)")
#: Trimmed at most per ``~`` trim without LIMIT: Redis's 100 * stream-node-max-entries.
APPROX_LIMIT = 10000
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _u64(text: bytes) -> int | None:
    """Redis's ``string2ull``: ``string2ll`` (never negative), else ``strtoull``, which
    takes leading blanks, a sign (``-1`` wraps to 2^64-1) and leading zeros."""
    number = string2ll(text)
    if number is not None:
        return number if number >= 0 else None
    match = _STRTOULL.fullmatch(text)
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits.lstrip(b"0")) > 20 or int(digits) > U64:
        return None
    return -int(digits) % 2**64 if sign == b"-" else int(digits)


def parse_id(arg: bytes, missing_seq: int = 0, strict: bool = False, star: bool = False) -> tuple[int, Any]:
    """A stream ID as Redis's ``streamGenericParseIDOrReply`` reads it (as a C string, at
    most 127 bytes): ``ms-seq``, or ``ms`` (seq ``missing_seq``), each part an unsigned
    64-bit number; unless ``strict``, ``-`` and ``+``; with ``star`` (XADD's ID),
    ``ms-*`` as ``(ms, None)``."""
    text = cstr(arg)
    if len(arg) > 127 or (strict and text in (b"-", b"+")):
        raise Reply(INVALID_ID)
    if text == b"-":
        return (0, 0)
    if text == b"+":
        return MAX
    ms_text, dash, seq_text = text.partition(b"-")
    ms = _u64(ms_text)
    if ms is not None and not dash:
        return (ms, missing_seq)
    if ms is not None and star and seq_text == b"*":
        return (ms, None)
    seq = _u64(seq_text)
    if ms is None or seq is None:
        raise Reply(INVALID_ID)
    return (ms, seq)


def parse_interval(arg: bytes, missing_seq: int, start: bool) -> tuple[int, int]:
    """A range bound of XRANGE/XREVRANGE/XAUTOCLAIM: an ID, or ``(`` and an ID (strict),
    exclusive: the next ID after it (``start``) or the one before it."""
    if len(arg) > 1 and arg[:1] == b"(":
        ms, seq = parse_id(arg[1:], missing_seq, strict=True)
        if start:
            if (ms, seq) == MAX:
                raise Reply(error_reply("invalid start ID for the interval"))
            return (ms + 1, 0) if seq == U64 else (ms, seq + 1)
        if (ms, seq) == (0, 0):
            raise Reply(error_reply("invalid end ID for the interval"))
        return (ms - 1, U64) if seq == 0 else (ms, seq - 1)
    return parse_id(arg, missing_seq)


class TrimArgs:
    """XADD's and XTRIM's options (Redis's ``streamParseAddOrTrimArgsOrReply``)."""

    __slots__ = ("strategy", "threshold", "limit", "nomkstream", "id", "pos")

    def __init__(self) -> None:
        self.strategy: bytes | None = None  # b"maxlen" or b"minid"
        self.threshold: Any = None
        self.limit = 0  # most entries trimmed; 0: all that should be
        self.nomkstream = False
        self.id: Any = None  # XADD's explicit ID ((ms, None) for ms-*), None for *
        self.pos = 0  # XADD: where the ID is


def add_or_trim_args(argv: list, xadd: bool) -> TrimArgs:
    """One parser for XADD's options before the ID and XTRIM's, in Redis's order of
    checks and with its texts. A ``~`` trim is exact here too, but, as Redis's, removes
    at most LIMIT entries (default :data:`APPROX_LIMIT`)."""
    args = TrimArgs()
    approx = limit_given = False
    i, n = 2, len(argv)
    while i < n:
        more = n - 1 - i
        opt = cstr(argv[i]).lower()
        if xadd and opt == b"*":
            break
        if opt in (b"maxlen", b"minid") and more:
            if args.strategy is not None:
                raise Reply(error_reply("syntax error, MAXLEN and MINID options at the same time are not compatible"))
            approx = False
            if more >= 2 and cstr(argv[i + 1]) in (b"~", b"="):
                approx = cstr(argv[i + 1]) == b"~"
                i += 1
            if opt == b"maxlen":
                args.threshold = string2ll(argv[i + 1])
                if args.threshold is None:
                    raise Reply(NOT_INTEGER)
                if args.threshold < 0:
                    raise Reply(error_reply("The MAXLEN argument must be >= 0."))
            else:
                args.threshold = parse_id(argv[i + 1], strict=True)
            args.strategy = opt
            i += 1
        elif opt == b"limit" and more:
            args.limit = string2ll(argv[i + 1])
            if args.limit is None:
                raise Reply(NOT_INTEGER)
            if args.limit < 0:
                raise Reply(error_reply("The LIMIT argument must be >= 0."))
            limit_given = True
            i += 1
        elif xadd and opt == b"nomkstream":
            args.nomkstream = True
        elif xadd:
            args.id = parse_id(argv[i], strict=True, star=True)
            break
        else:
            raise Reply(SYNTAX)
        i += 1
    if args.limit and args.strategy is None:
        raise Reply(error_reply("syntax error, LIMIT cannot be used without specifying a trimming strategy"))
    if not xadd and args.strategy is None:
        raise Reply(error_reply("syntax error, XTRIM must be called with a trimming strategy"))
    if limit_given and not approx:
        raise Reply(error_reply("syntax error, LIMIT cannot be used without the special ~ option"))
    if not limit_given and approx:
        args.limit = APPROX_LIMIT
    args.pos = i
    return args


def id_text(entry_id: tuple[int, int]) -> bytes:
    return b"%d-%d" % entry_id


class Group:
    __slots__ = ("last_id", "entries_read", "pending", "consumers")

    def __init__(self, last_id: tuple[int, int], entries_read: int) -> None:
        self.last_id = last_id
        self.entries_read = entries_read
        #: id -> [consumer name, delivery time ms, delivery count], in ID order when sorted
        self.pending: dict[tuple[int, int], list] = {}
        #: name -> [seen time ms, active time ms]
        self.consumers: dict[bytes, list[int]] = {}

    def copy(self) -> Group:
        twin = Group(self.last_id, self.entries_read)
        twin.pending = {k: list(v) for k, v in self.pending.items()}
        twin.consumers = {k: list(v) for k, v in self.consumers.items()}
        return twin


class Stream:
    __slots__ = ("ids", "entries", "last_id", "entries_added", "max_deleted", "groups")

    def __init__(self) -> None:
        self.ids: list[tuple[int, int]] = []
        self.entries: dict[tuple[int, int], list[bytes]] = {}
        self.last_id = (0, 0)
        self.entries_added = 0
        self.max_deleted = (0, 0)
        self.groups: dict[bytes, Group] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Any:
        return iter(self.ids)

    def copy(self) -> Stream:
        twin = Stream()
        twin.ids = list(self.ids)
        twin.entries = dict(self.entries)
        twin.last_id, twin.entries_added, twin.max_deleted = self.last_id, self.entries_added, self.max_deleted
        twin.groups = {name: group.copy() for name, group in self.groups.items()}
        return twin

    def span(self, start: tuple[int, int], end: tuple[int, int]) -> list[tuple[int, int]]:
        return self.ids[bisect.bisect_left(self.ids, start):bisect.bisect_right(self.ids, end)]

    # -- a group's logical read counter and lag (Redis 7.0's t_stream.c; -1: unknown) --
    def has_tombstones(self, start: tuple[int, int]) -> bool:
        """``streamRangeHasTombstones(s, start, NULL)``: a deleted entry at or after ``start``."""
        if not self.ids or self.max_deleted == (0, 0) or self.ids[0] > self.max_deleted:
            return False
        return start <= self.max_deleted

    def distance(self, entry_id: tuple[int, int]) -> int:
        """``streamEstimateDistanceFromFirstEverEntry``: how many entries were ever added up
        to ``entry_id``, where that is known; else -1."""
        if not self.entries_added:
            return 0
        if not self.ids and entry_id <= self.last_id:
            return self.entries_added
        if entry_id == self.last_id:
            return self.entries_added
        if entry_id > self.last_id:
            return -1
        first = self.ids[0] if self.ids else (0, 0)
        if self.max_deleted == (0, 0) or self.max_deleted < first:
            if entry_id < first:
                return self.entries_added - len(self.ids)
            if entry_id == first:
                return self.entries_added - len(self.ids) + 1
        return -1

    def advance(self, group: Group, entry_id: tuple[int, int]) -> None:
        """A group delivers ``entry_id`` (after its last one): its read counter follows."""
        if group.entries_read != -1 and not self.has_tombstones(entry_id):
            group.entries_read += 1
        elif self.entries_added:
            group.entries_read = self.distance(entry_id)
        group.last_id = entry_id

    def lag(self, group: Group) -> int | None:
        """``streamReplyWithCGLag``: entries not yet delivered to ``group``; None if unknown."""
        if not self.entries_added:
            return 0
        if group.entries_read != -1 and not self.has_tombstones(group.last_id):
            return self.entries_added - group.entries_read
        read = self.distance(group.last_id)
        return None if read == -1 else self.entries_added - read

    def delete(self, entry_id: tuple[int, int]) -> bool:
        if self.entries.pop(entry_id, None) is None:
            return False
        del self.ids[bisect.bisect_left(self.ids, entry_id)]
        self.max_deleted = max(self.max_deleted, entry_id)
        return True


#: XGROUP's subcommands and their arities (Redis 7.0's command table: checked first).
XGROUP_ARITY = {b"create": -5, b"setid": -5, b"destroy": 4, b"createconsumer": 5, b"delconsumer": 5, b"help": 2}
XGROUP_HELP = (
    b"CREATE <key> <groupname> <id|$> [option]",
    b"    Create a new consumer group. Options are:",
    b"    * MKSTREAM",
    b"      Create the empty stream if it does not exist.",
    b"    * ENTRIESREAD entries_read",
    b"      Set the group's entries_read counter (internal use).",
    b"CREATECONSUMER <key> <groupname> <consumer>",
    b"    Create a new consumer in the specified group.",
    b"DELCONSUMER <key> <groupname> <consumer>",
    b"    Remove the specified consumer.",
    b"DESTROY <key> <groupname>",
    b"    Remove the specified group.",
    b"SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    b"    Set the current group ID and entries_read counter.",
)


XINFO_ARITY = {b"consumers": 4, b"groups": 3, b"stream": -3, b"help": 2}
XINFO_HELP = (
    b"CONSUMERS <key> <groupname>",
    b"    Show consumers of <groupname>.",
    b"GROUPS <key>",
    b"    Show the stream consumer groups.",
    b"STREAM <key> [FULL [COUNT <count>]",
    b"    Show information about the stream.",
)
#: XAUTOCLAIM's largest COUNT: LONG_MAX / max(sizeof(streamID), attempts factor 10).
AUTOCLAIM_MAX = (2**63 - 1) // 16


def xgroup_options(argv: list, sub: bytes) -> tuple[bool, int]:
    """(MKSTREAM, ENTRIESREAD) after XGROUP CREATE's or SETID's ID: read before the key is
    looked up, as Redis's ``xgroupCommand`` does. ENTRIESREAD -1 (the default) is "unknown"."""
    mkstream, entries_read = False, -1
    j = 5
    while j < len(argv):
        opt = cstr(argv[j]).lower()
        if sub == b"create" and opt == b"mkstream":
            mkstream = True
            j += 1
        elif sub in (b"create", b"setid") and opt == b"entriesread" and j + 1 < len(argv):
            entries_read = string2ll(argv[j + 1])
            if entries_read is None:
                raise Reply(NOT_INTEGER)
            if entries_read < -1:
                raise Reply(error_reply("value for ENTRIESREAD must be positive or -1"))
            j += 2
        else:
            raise Reply(subcommand_syntax(argv))
    return mkstream, entries_read


def install(ctx: Context) -> None:
    data, alive, register = ctx.data, ctx.alive, ctx.register

    def notify(event: str, key: bytes) -> None:
        ctx.info.notify("t", event, key, ctx.db)

    def get(key: bytes) -> Stream | None:
        value = alive(key)
        if value is not None and value.__class__ is not Stream:
            raise Reply(WRONGTYPE)
        return value

    def entry_reply(stream: Stream, entry_id: tuple[int, int]) -> bytes:
        fields = stream.entries.get(entry_id)
        if fields is None:
            return b"*2\r\n" + bulk(id_text(entry_id)) + ctx.nil_array
        return b"*2\r\n" + bulk(id_text(entry_id)) + b"*%d\r\n" % len(fields) + b"".join(map(bulk, fields))

    def entries_reply(stream: Stream, ids: list) -> bytes:
        return b"*%d\r\n" % len(ids) + b"".join(entry_reply(stream, i) for i in ids)

    def trim(stream: Stream, args: TrimArgs) -> int:
        """Trim ``stream`` as ``args`` say: the entries removed."""
        ids = stream.ids
        if args.strategy == b"maxlen":
            doomed = max(0, len(ids) - args.threshold)
        else:
            doomed = bisect.bisect_left(ids, args.threshold)
        if args.limit:
            doomed = min(doomed, args.limit)
        for entry_id in ids[:doomed]:
            del stream.entries[entry_id]
        del ids[:doomed]
        return doomed

    def next_id(stream: Stream, explicit: Any) -> tuple[int, int]:
        """The ID XADD gives its entry (Redis's ``streamAppendItem``): ``*`` is the clock's
        millisecond or the last ID plus one, ``ms-*`` the next sequence of ``ms``."""
        last = stream.last_id
        if explicit is None:
            ms = _ms()
            if ms > last[0]:
                return (ms, 0)
            return (last[0] + 1, 0) if last[1] == U64 else (last[0], last[1] + 1)
        if explicit[1] is None:
            if explicit[0] != last[0]:
                return (explicit[0], 0)
            if last[1] == U64:  # Redis 7.0 answers this with the text of its other failure
                raise Reply(error_reply("Elements are too large to be stored"))
            return (last[0], last[1] + 1)
        return explicit

    def xadd(argv, client):
        args = add_or_trim_args(argv, True)
        fields = argv[args.pos + 1:]
        if len(fields) < 2 or len(fields) % 2:
            raise Reply(arity_error("xadd"))
        if args.id == (0, 0):
            raise Reply(ZERO_ID)
        key = argv[1]
        stream = get(key)
        if stream is None:
            if args.nomkstream:
                return ctx.nil
            stream = Stream()
        if stream.last_id == MAX:
            raise Reply(EXHAUSTED)
        new = next_id(stream, args.id)
        if new <= stream.last_id:
            raise Reply(TOO_SMALL)
        data[key] = stream
        stream.ids.append(new)
        stream.entries[new] = list(fields)
        stream.last_id = new
        stream.entries_added += 1
        notify("xadd", key)
        if args.strategy is not None and trim(stream, args):
            notify("xtrim", key)
        return bulk(id_text(new))

    def xlen(argv, client):
        stream = get(argv[1])
        return integer(len(stream)) if stream else ZERO

    def range_generic(argv, reverse: bool):
        """XRANGE/XREVRANGE, with Redis's order of checks: the bounds, COUNT (repeatable,
        negative as 0), then the key; COUNT 0 is a null array."""
        low = parse_interval(argv[3] if reverse else argv[2], 0, True)
        high = parse_interval(argv[2] if reverse else argv[3], U64, False)
        count = -1
        j = 4
        while j < len(argv):
            if cstr(argv[j]).lower() != b"count" or j + 1 >= len(argv):
                raise Reply(SYNTAX)
            count = string2ll(argv[j + 1])
            if count is None:
                raise Reply(NOT_INTEGER)
            count = max(count, 0)
            j += 2
        stream = get(argv[1])
        if stream is None:
            return EMPTY_ARRAY
        if count == 0:
            return ctx.nil_array
        ids = stream.span(low, high)
        if reverse:
            ids.reverse()
        return entries_reply(stream, ids[:count] if count > 0 else ids)

    def xdel(argv, client):
        stream = get(argv[1])  # the key first, then the IDs (all, before any is deleted)
        if stream is None:
            return ZERO
        ids = [parse_id(arg, strict=True) for arg in argv[2:]]
        removed = sum(1 for entry_id in ids if stream.delete(entry_id))
        if removed:
            notify("xdel", argv[1])
        return integer(removed)

    def xtrim(argv, client):
        args = add_or_trim_args(argv, False)
        stream = get(argv[1])
        if stream is None:
            return ZERO
        removed = trim(stream, args)
        if removed:
            notify("xtrim", argv[1])
        return integer(removed)

    # -- consumer groups ----------------------------------------------------------------
    def group_of(key: bytes, name: bytes, command: str) -> tuple[Stream, Group]:
        stream = get(key)
        group = stream.groups.get(name) if stream is not None else None
        if group is None:
            suffix = b" in XREADGROUP with GROUP option" if command == "XREADGROUP" else b""
            raise Reply(b"-NOGROUP No such key '%s' or consumer group '%s'%s\r\n" % (cstr(key), cstr(name), suffix))
        return stream, group

    def consumer(key: bytes, group: Group, name: bytes) -> list[int]:
        entry = group.consumers.get(name)
        if entry is None:
            entry = group.consumers[name] = [_ms(), -1]
            notify("xgroup-createconsumer", key)
        return entry

    def xgroup(argv, client):
        sub = check_subcommand(argv, XGROUP_ARITY)
        if sub == b"help":
            return help_reply(b"XGROUP", XGROUP_HELP)
        mkstream, entries_read = xgroup_options(argv, sub)
        key, name = argv[2], argv[3]
        stream = get(key)
        if stream is None and not mkstream:
            raise Reply(error_reply("The XGROUP subcommand requires the key to exist. Note that for CREATE "
                                    "you may want to use the MKSTREAM option to create an empty stream "
                                    "automatically."))
        group = stream.groups.get(name) if stream is not None else None
        if group is None and sub in (b"setid", b"createconsumer", b"delconsumer"):
            raise Reply(b"-NOGROUP No such consumer group '%s' for key name '%s'\r\n" % (cstr(name), cstr(key)))
        if sub == b"create":
            if len(argv) > 8:
                raise Reply(subcommand_syntax(argv))
            if argv[4] == b"$":
                start = stream.last_id if stream is not None else (0, 0)
            else:
                start = parse_id(argv[4], strict=True)
            if stream is None:
                stream = data[key] = Stream()
            if name in stream.groups:
                raise Reply(b"-BUSYGROUP Consumer Group name already exists\r\n")
            stream.groups[name] = Group(start, entries_read)
            notify("xgroup-create", key)
            return OK
        if sub == b"setid":
            if len(argv) not in (5, 7):
                raise Reply(subcommand_syntax(argv))
            group.last_id = stream.last_id if argv[4] == b"$" else parse_id(argv[4])
            group.entries_read = entries_read
            notify("xgroup-setid", key)
            return OK
        if sub == b"destroy":
            if group is None:
                return ZERO
            del stream.groups[name]
            notify("xgroup-destroy", key)
            return ONE
        if sub == b"createconsumer":
            if argv[4] in group.consumers:
                return ZERO
            consumer(key, group, argv[4])
            return ONE
        # delconsumer
        if argv[4] not in group.consumers:
            return ZERO
        del group.consumers[argv[4]]
        owned = [i for i, pel in group.pending.items() if pel[0] == argv[4]]
        for entry_id in owned:
            del group.pending[entry_id]
        notify("xgroup-delconsumer", key)
        return integer(len(owned))

    def parse_read(argv: list, first: int) -> tuple[int | None, bool, list[bytes], list[bytes]]:
        count, noack, j = None, False, first
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"count" and j + 1 < len(argv):
                count = string2ll(argv[j + 1])
                if count is None:
                    raise Reply(error_reply("value is not an integer or out of range"))
                j += 2
            elif opt == b"block" and j + 1 < len(argv):
                raise Reply(NO_BLOCK)
            elif opt == b"noack":
                noack = True
                j += 1
            elif opt == b"streams":
                rest = argv[j + 1:]
                if not rest or len(rest) % 2:
                    raise Reply(error_reply("Unbalanced 'xread' list of streams: for each stream key an ID or '$' "
                                            "must be specified."))
                half = len(rest) // 2
                return (count if count and count > 0 else None), noack, rest[:half], rest[half:]
            else:
                raise Reply(SYNTAX)
        raise Reply(SYNTAX)

    def streams_reply(found: list[tuple[bytes, bytes]]) -> bytes:
        if not found:
            return ctx.nil_array
        if ctx.resp3:
            return b"%%%d\r\n" % len(found) + b"".join(bulk(k) + body for k, body in found)
        return b"*%d\r\n" % len(found) + b"".join(b"*2\r\n" + bulk(k) + body for k, body in found)

    def xread(argv, client):
        count, _, keys, ids = parse_read(argv, 1)
        found = []
        for key, id_arg in zip(keys, ids):
            stream = get(key)
            after = (stream.last_id if stream else (0, 0)) if id_arg == b"$" else parse_id(id_arg)
            if stream:
                new = stream.ids[bisect.bisect_right(stream.ids, after):][:count]
                if new:
                    found.append((key, entries_reply(stream, new)))
        return streams_reply(found)

    def xreadgroup(argv, client):
        if len(argv) < 4 or argv[1].lower() != b"group":
            raise Reply(SYNTAX)
        name, who = argv[2], argv[3]
        count, noack, keys, ids = parse_read(argv, 4)
        found = []
        now = _ms()
        for key, id_arg in zip(keys, ids):
            stream, group = group_of(key, name, "XREADGROUP")
            seen = consumer(key, group, who)
            seen[0] = now
            if id_arg == b">":
                new = stream.ids[bisect.bisect_right(stream.ids, group.last_id):][:count]
                if new:
                    for entry_id in new:
                        stream.advance(group, entry_id)
                    seen[1] = now
                    if not noack:
                        for entry_id in new:
                            group.pending[entry_id] = [who, now, 1]
                found.append((key, entries_reply(stream, new)))
            else:
                after = parse_id(id_arg)
                mine = sorted(i for i, pel in group.pending.items() if pel[0] == who and i > after)[:count]
                found.append((key, entries_reply(stream, mine)))
        if all(body == EMPTY_ARRAY for _, body in found) and all(i == b">" for i in ids):
            return ctx.nil_array
        return streams_reply(found)

    def xack(argv, client):
        stream = get(argv[1])
        group = stream.groups.get(argv[2]) if stream else None
        if group is None:  # nothing to acknowledge: the IDs are not even read
            return ZERO
        ids = [parse_id(arg, strict=True) for arg in argv[3:]]
        return integer(sum(1 for i in ids if group.pending.pop(i, None) is not None))

    def claim_options(argv: list, j: int) -> tuple[bool, bool, int | None, int, tuple[int, int] | None]:
        """XCLAIM's options after its IDs: (FORCE, JUSTID, delivery time or None, RETRYCOUNT
        or -1, LASTID or None), with Redis's texts."""
        force = justid = False
        when, retries, last_id = None, -1, None
        now = _ms()
        while j < len(argv):
            opt = cstr(argv[j]).lower()
            more = j + 1 < len(argv)
            if opt == b"force":
                force = True
            elif opt == b"justid":
                justid = True
            elif opt in (b"idle", b"time", b"retrycount") and more:
                j += 1
                number = string2ll(argv[j])
                if number is None:
                    raise Reply(error_reply(f"Invalid {opt.decode().upper()} option argument for XCLAIM"))
                if opt == b"retrycount":
                    retries = number
                else:
                    when = now - number if opt == b"idle" else number
            elif opt == b"lastid" and more:
                j += 1
                last_id = parse_id(argv[j], strict=True)
            else:
                raise Reply(error_reply(b"Unrecognized XCLAIM option '%s'" % cstr(argv[j])))
            j += 1
        if when is not None and not 0 <= when <= now:  # a bogus time is now, as Redis takes it
            when = now
        return force, justid, when, retries, last_id

    def xclaim(argv, client):
        key, who = argv[1], argv[3]
        stream, group = group_of(key, argv[2], "XCLAIM")
        min_idle = string2ll(argv[4])
        if min_idle is None:
            raise Reply(error_reply("Invalid min-idle-time argument for XCLAIM"))
        min_idle = max(0, min_idle)
        ids, j = [], 5
        while j < len(argv):  # IDs up to the first argument that is none: the options
            try:
                ids.append(parse_id(argv[j], strict=True))
            except Reply:
                break
            j += 1
        force, justid, when, retries, last_id = claim_options(argv, j)
        if last_id is not None and last_id > group.last_id:
            group.last_id = last_id
        now = _ms()
        seen = consumer(key, group, who)
        seen[0] = now
        claimed = []
        for entry_id in ids:
            pel = group.pending.get(entry_id)
            if entry_id not in stream.entries:
                if pel is not None:
                    del group.pending[entry_id]
                continue
            if pel is None:
                if not force:
                    continue
                pel = group.pending[entry_id] = [who, now, 1]  # a new NACK: delivered once
            elif min_idle and now - pel[1] < min_idle:
                continue
            pel[0], pel[1] = who, now if when is None else when
            if retries >= 0:
                pel[2] = retries
            elif not justid:
                pel[2] += 1
            claimed.append(entry_id)
        if claimed:
            seen[1] = now
        if justid:
            return b"*%d\r\n" % len(claimed) + b"".join(bulk(id_text(i)) for i in claimed)
        return entries_reply(stream, claimed)

    def xautoclaim(argv, client):
        key, who = argv[1], argv[3]
        min_idle = string2ll(argv[4])
        if min_idle is None:
            raise Reply(error_reply("Invalid min-idle-time argument for XAUTOCLAIM"))
        min_idle = max(0, min_idle)
        start = parse_interval(argv[5], 0, True)
        count, justid, j = 100, False, 6
        while j < len(argv):
            opt = cstr(argv[j]).lower()
            if opt == b"count" and j + 1 < len(argv):
                count = string2ll(argv[j + 1])
                if count is None or not 1 <= count <= AUTOCLAIM_MAX:
                    raise Reply(error_reply("COUNT must be > 0"))
                j += 1
            elif opt == b"justid":
                justid = True
            else:
                raise Reply(SYNTAX)
            j += 1
        stream, group = group_of(key, argv[2], "XAUTOCLAIM")
        now = _ms()
        seen = consumer(key, group, who)
        seen[0] = now
        # Redis's walk of the PEL from ``start``: at most 10 * COUNT entries looked at,
        # COUNT claimed or found deleted; the cursor is the next entry not looked at.
        candidates = sorted(i for i in group.pending if i >= start)
        attempts, k = count * 10, 0
        claimed, deleted = [], []
        while attempts and count and k < len(candidates):
            attempts -= 1
            entry_id = candidates[k]
            k += 1
            pel = group.pending[entry_id]
            if entry_id not in stream.entries:
                del group.pending[entry_id]
                deleted.append(entry_id)
                count -= 1
                continue
            if min_idle and now - pel[1] < min_idle:
                continue
            pel[0], pel[1] = who, now
            if not justid:
                pel[2] += 1
            claimed.append(entry_id)
            count -= 1
        if claimed:
            seen[1] = now
        cursor = id_text(candidates[k]) if k < len(candidates) else b"0-0"
        body = (b"*%d\r\n" % len(claimed) + b"".join(bulk(id_text(i)) for i in claimed)) if justid \
            else entries_reply(stream, claimed)
        return b"*3\r\n" + bulk(cursor) + body + b"*%d\r\n" % len(deleted) + b"".join(
            bulk(id_text(i)) for i in deleted)

    def xinfo(argv, client):
        sub = check_subcommand(argv, XINFO_ARITY)
        if sub == b"help":
            return help_reply(b"XINFO", XINFO_HELP)
        stream = alive(argv[2])
        if stream is None:
            raise Reply(error_reply("no such key"))
        if stream.__class__ is not Stream:
            raise Reply(WRONGTYPE)
        if sub == b"consumers":
            group = stream.groups.get(argv[3])
            if group is None:
                raise Reply(b"-NOGROUP No such consumer group '%s' for key name '%s'\r\n"
                            % (cstr(argv[3]), cstr(argv[2])))
            now = _ms()
            return b"*%d\r\n" % len(group.consumers) + b"".join(
                pairs([(b"name", bulk(who)), (b"pending", integer(sum(1 for pel in group.pending.values()
                                                                       if pel[0] == who))),
                       (b"idle", integer(max(0, now - group.consumers[who][0])))])
                for who in sorted(group.consumers))
        if sub == b"groups":
            return b"*%d\r\n" % len(stream.groups) + b"".join(
                pairs([(b"name", bulk(name)), (b"consumers", integer(len(group.consumers))),
                       (b"pending", integer(len(group.pending))),
                       (b"last-delivered-id", bulk(id_text(group.last_id))),
                       (b"entries-read", read_counter(group)), (b"lag", lag_reply(stream, group))])
                for name, group in sorted(stream.groups.items()))
        return stream_info(argv, stream)

    def read_counter(group: Group) -> bytes:
        return ctx.nil if group.entries_read == -1 else integer(group.entries_read)

    def lag_reply(stream: Stream, group: Group) -> bytes:
        lag = stream.lag(group)
        return ctx.nil if lag is None else integer(lag)

    def stream_info(argv: list, stream: Stream) -> bytes:
        """XINFO STREAM key [FULL [COUNT n]] (COUNT 0: everything; negative: 10)."""
        options = [cstr(arg).lower() for arg in argv[3:]]
        if len(options) not in (0, 1, 3) or options[:1] not in ([], [b"full"]) or \
                (len(options) == 3 and options[1] != b"count"):
            raise Reply(subcommand_syntax(argv))
        count = 10
        if len(options) == 3:
            count = string2ll(argv[5])
            if count is None:
                raise Reply(NOT_INTEGER)
            if count < 0:
                count = 10
        first = stream.ids[0] if stream.ids else (0, 0)
        # The radix tree's figures are those of Redis's for a stream of at most one node
        # (100 entries): an empty tree is its head node, one key takes two.
        fields = [(b"length", integer(len(stream))), (b"radix-tree-keys", integer(1 if stream.ids else 0)),
                  (b"radix-tree-nodes", integer(2 if stream.ids else 1)),
                  (b"last-generated-id", bulk(id_text(stream.last_id))),
                  (b"max-deleted-entry-id", bulk(id_text(stream.max_deleted))),
                  (b"entries-added", integer(stream.entries_added)),
                  (b"recorded-first-entry-id", bulk(id_text(first)))]
        if not options:
            fields += [(b"groups", integer(len(stream.groups))),
                       (b"first-entry", entry_reply(stream, stream.ids[0]) if stream.ids else ctx.nil),
                       (b"last-entry", entry_reply(stream, stream.ids[-1]) if stream.ids else ctx.nil)]
            return pairs(fields)
        upto = count or None  # how many entries, and of each pending list
        groups = []
        for name, group in sorted(stream.groups.items()):
            pending = sorted(group.pending.items())
            consumers = []
            for who in sorted(group.consumers):  # no active-time: Redis 7.2 added it
                owned = [(i, pel) for i, pel in pending if pel[0] == who]
                consumers.append(pairs([
                    (b"name", bulk(who)), (b"seen-time", integer(group.consumers[who][0])),
                    (b"pel-count", integer(len(owned))),
                    (b"pending", b"*%d\r\n" % len(owned[:upto]) + b"".join(
                        b"*3\r\n" + bulk(id_text(i)) + integer(pel[1]) + integer(pel[2])
                        for i, pel in owned[:upto]))]))
            groups.append(pairs([
                (b"name", bulk(name)), (b"last-delivered-id", bulk(id_text(group.last_id))),
                (b"entries-read", read_counter(group)), (b"lag", lag_reply(stream, group)),
                (b"pel-count", integer(len(pending))),
                (b"pending", b"*%d\r\n" % len(pending[:upto]) + b"".join(
                    b"*4\r\n" + bulk(id_text(i)) + bulk(pel[0]) + integer(pel[1]) + integer(pel[2])
                    for i, pel in pending[:upto])),
                (b"consumers", b"*%d\r\n" % len(consumers) + b"".join(consumers))]))
        fields += [(b"entries", entries_reply(stream, stream.ids[:upto])),
                   (b"groups", b"*%d\r\n" % len(groups) + b"".join(groups))]
        return pairs(fields)

    def pairs(fields: list[tuple[bytes, bytes]]) -> bytes:
        """A map of already encoded values (a flat array in RESP2)."""
        head = b"%%%d\r\n" % len(fields) if ctx.resp3 else b"*%d\r\n" % (2 * len(fields))
        return head + b"".join(bulk(name) + value for name, value in fields)

    w = ("write", "denyoom", "fast")
    register("xadd", (-5, w, 1, 1, 1), xadd)
    register("xlen", (2, ("readonly", "fast"), 1, 1, 1), xlen)
    register("xrange", (-4, ("readonly",), 1, 1, 1), lambda argv, client: range_generic(argv, False))
    register("xrevrange", (-4, ("readonly",), 1, 1, 1), lambda argv, client: range_generic(argv, True))
    register("xdel", (-3, ("write", "fast"), 1, 1, 1), xdel)
    register("xtrim", (-4, ("write",), 1, 1, 1), xtrim)
    register("xgroup", (-2, ("write",), 2, 2, 1), xgroup)
    register("xread", (-4, ("readonly",), 0, 0, 0), xread)
    register("xreadgroup", (-7, ("write",), 0, 0, 0), xreadgroup)
    register("xack", (-4, ("write", "fast"), 1, 1, 1), xack)
    register("xclaim", (-6, ("write", "fast"), 1, 1, 1), xclaim)
    register("xautoclaim", (-6, ("write", "fast"), 1, 1, 1), xautoclaim)
    register("xinfo", (-2, ("readonly",), 2, 2, 1), xinfo)
