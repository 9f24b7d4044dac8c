"""Streams, the core of them: XADD, XLEN, XRANGE/XREVRANGE, XDEL, XTRIM, consumer groups
(XGROUP, XREADGROUP, XACK, XCLAIM, XAUTOCLAIM), XREAD and XINFO STREAM [FULL].

A stream is its entries in ID order (IDs only ever grow, so appending keeps a plain list
sorted and ``bisect`` finds a range), a dict from ID to fields, and the consumer groups
with their pending-entries lists. IDs are ``(ms, seq)`` tuples, compared as Redis
compares them. Not implemented: blocking reads (``BLOCK`` answers an error rather than
returning at once, which a client would take for "no data"), XPENDING, XSETID, XINFO
GROUPS/CONSUMERS; docs/resp.md lists them.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from netcore_resp.context import Context
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import EMPTY_ARRAY, OK, ONE, SYNTAX, WRONGTYPE, ZERO, Reply, arity_error, bulk, integer

MAX = (2**64 - 1, 2**64 - 1)
INVALID_ID = error_reply("Invalid stream ID specified as stream command argument")
TOO_SMALL = error_reply("The ID specified in XADD is equal or smaller than the target stream top item")
ZERO_ID = error_reply("The ID specified in XADD must be greater than 0-0")
NO_BLOCK = error_reply("netcore does not implement blocking stream reads (XREAD/XREADGROUP BLOCK)")


def _ms() -> int:
    return time.time_ns() // 1_000_000


def parse_id(arg: bytes, missing_seq: int = 0, strict: bool = False) -> tuple[int, int]:
    """``ms-seq`` or ``ms`` (seq ``missing_seq``), and unless ``strict`` ``-`` and ``+``."""
    if not strict and arg == b"-":
        return (0, 0)
    if not strict and arg == b"+":
        return MAX
    ms_text, dash, seq_text = arg.partition(b"-")
    ms = string2ll(ms_text) if ms_text.isdigit() else None
    seq = (string2ll(seq_text) if seq_text.isdigit() else None) if dash else missing_seq
    if ms is None or seq is None or ms < 0 or seq < 0:
        raise Reply(INVALID_ID)
    return (ms, seq)


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

    def delete(self, entry_id: tuple[int, int]) -> bool:
        if self.entries.pop(entry_id, None) is None:
            return False
        del self.ids[bisect.bisect_left(self.ids, entry_id)]
        self.max_deleted = max(self.max_deleted, entry_id)
        return True


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

    def trim(stream: Stream, argv: list, j: int) -> tuple[int, int]:
        """MAXLEN|MINID [=|~] threshold [LIMIT n] at argv[j]: (entries removed, next j)."""
        strategy = argv[j].lower()
        j += 1
        if j < len(argv) and argv[j] in (b"=", b"~"):
            j += 1
        if j >= len(argv):
            raise Reply(SYNTAX)
        if strategy == b"maxlen":
            threshold = string2ll(argv[j])
            if threshold is None or threshold < 0:
                raise Reply(error_reply("The MAXLEN argument must be >= 0."))
            doomed = stream.ids[:max(0, len(stream.ids) - threshold)] if stream else []
        else:
            minimum = parse_id(argv[j])
            doomed = stream.ids[:bisect.bisect_left(stream.ids, minimum)] if stream else []
        j += 1
        if j + 1 < len(argv) and argv[j].lower() == b"limit":
            if string2ll(argv[j + 1]) is None:
                raise Reply(SYNTAX)
            j += 2  # an exact trim has no node boundaries to respect: LIMIT changes nothing
        if stream is not None:
            for entry_id in doomed:
                del stream.entries[entry_id]
            del stream.ids[:len(doomed)]
        return len(doomed), j

    def xadd(argv, client):
        key = argv[1]
        j = 2
        nomkstream = False
        trimming = None
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"nomkstream":
                nomkstream = True
                j += 1
            elif opt in (b"maxlen", b"minid"):
                trimming = j
                _, j = trim(None, argv, j)
            else:
                break
        fields = argv[j + 1:]
        if j >= len(argv) or not fields or len(fields) % 2:
            raise Reply(arity_error("xadd"))
        id_arg = argv[j]
        explicit = None
        if id_arg != b"*":
            if id_arg.endswith(b"-*"):
                explicit = (parse_id(id_arg[:-2], strict=True)[0], None)
            else:
                explicit = parse_id(id_arg, strict=True)
                if explicit == (0, 0):
                    raise Reply(ZERO_ID)
        stream = get(key)
        if stream is None:
            if nomkstream:
                return ctx.nil
            stream = Stream()
        last = stream.last_id
        if explicit is None:
            ms = max(_ms(), last[0])
            new = (ms, last[1] + 1 if ms == last[0] else 0)
        elif explicit[1] is None:
            if explicit[0] < last[0]:
                raise Reply(TOO_SMALL)
            new = (explicit[0], last[1] + 1 if explicit[0] == last[0] else 0)
        else:
            new = explicit
        if new <= last:
            raise Reply(TOO_SMALL)
        data[key] = stream
        stream.ids.append(new)
        stream.entries[new] = list(fields)
        stream.last_id = new
        stream.entries_added += 1
        notify("xadd", key)
        if trimming is not None:
            removed, _ = trim(stream, argv, trimming)
            if removed:
                notify("xtrim", key)
        return bulk(id_text(new))

    def xlen(argv, client):
        stream = get(argv[1])
        return integer(len(stream)) if stream else ZERO

    def range_generic(argv, reverse: bool):
        low_arg, high_arg = (argv[3], argv[2]) if reverse else (argv[2], argv[3])

        def bound(arg: bytes, high: bool) -> tuple[int, int]:
            if arg[:1] == b"(":
                entry_id = parse_id(arg[1:], 2**64 - 1 if high else 0, strict=True)
                return (entry_id[0], entry_id[1] - 1) if high else (entry_id[0], entry_id[1] + 1)
            return parse_id(arg, 2**64 - 1 if high else 0)
        low, high = bound(low_arg, False), bound(high_arg, True)
        count = None
        if len(argv) == 6 and argv[4].lower() == b"count":
            count = string2ll(argv[5])
            if count is None:
                raise Reply(error_reply("value is not an integer or out of range"))
        elif len(argv) != 4:
            raise Reply(SYNTAX)
        stream = get(argv[1])
        if not stream or count == 0 or count is not None and count < 0:
            return EMPTY_ARRAY
        ids = stream.span(low, high)
        if reverse:
            ids.reverse()
        return entries_reply(stream, ids[:count] if count is not None else ids)

    def xdel(argv, client):
        ids = [parse_id(arg, strict=True) for arg in argv[2:]]
        stream = get(argv[1])
        if stream is None:
            return ZERO
        removed = sum(1 for entry_id in ids if stream.delete(entry_id))
        if removed:
            notify("xdel", argv[1])
        return integer(removed)

    def xtrim(argv, client):
        stream = get(argv[1])
        if argv[2].lower() not in (b"maxlen", b"minid"):
            raise Reply(SYNTAX)
        removed, j = trim(stream, argv, 2)
        if j != len(argv):
            raise Reply(SYNTAX)
        if removed:
            notify("xtrim", argv[1])
        return integer(removed)

    # -- consumer groups ----------------------------------------------------------------
    def group_of(key: bytes, name: bytes, command: str) -> tuple[Stream, Group]:
        stream = get(key)
        group = stream.groups.get(name) if stream is not None else None
        if group is None:
            raise Reply(b"-NOGROUP No such key '%s' or consumer group '%s' in %s with GROUP option\r\n"
                        % (key, name, command.encode()) if command == "XREADGROUP" else
                        b"-NOGROUP No such consumer group '%s' for key name '%s'\r\n" % (name, key))
        return stream, group

    def consumer(key: bytes, group: Group, name: bytes) -> list[int]:
        entry = group.consumers.get(name)
        if entry is None:
            entry = group.consumers[name] = [_ms(), -1]
            notify("xgroup-createconsumer", key)
        return entry

    def xgroup(argv, client):
        sub = argv[1].lower()
        if sub == b"help":
            return EMPTY_ARRAY
        if len(argv) < 4:
            raise Reply(arity_error(f"xgroup|{sub.decode('latin-1')}"))
        key, name = argv[2], argv[3]
        if sub == b"create":
            if len(argv) < 5:
                raise Reply(arity_error("xgroup|create"))
            mkstream = any(a.lower() == b"mkstream" for a in argv[5:])
            stream = get(key)
            if stream is None:
                if not mkstream:
                    raise Reply(error_reply("The XGROUP subcommand requires the key to exist. Note that for CREATE "
                                            "you may want to use the MKSTREAM option to create an empty stream "
                                            "automatically."))
                stream = data[key] = Stream()
            start = stream.last_id if argv[4] == b"$" else parse_id(argv[4])
            if name in stream.groups:
                raise Reply(b"-BUSYGROUP Consumer Group name already exists\r\n")
            stream.groups[name] = Group(start, 0)
            notify("xgroup-create", key)
            return OK
        stream, group = group_of(key, name, "XGROUP")
        if sub == b"setid":
            group.last_id = stream.last_id if argv[4] == b"$" else parse_id(argv[4])
            notify("xgroup-setid", key)
            return OK
        if sub == b"destroy":
            del stream.groups[name]
            notify("xgroup-destroy", key)
            return ONE
        if sub == b"createconsumer":
            if argv[4] in group.consumers:
                return ZERO
            consumer(key, group, argv[4])
            return ONE
        if sub == b"delconsumer":
            if argv[4] not in group.consumers:
                return ZERO
            del group.consumers[argv[4]]
            owned = [i for i, pel in group.pending.items() if pel[0] == argv[4]]
            for entry_id in owned:
                del group.pending[entry_id]
            notify("xgroup-delconsumer", key)
            return integer(len(owned))
        raise Reply(error_reply(b"unknown subcommand '%s'. Try XGROUP HELP." % argv[1]))

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
                    group.last_id = new[-1]
                    group.entries_read += len(new)
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
        ids = [parse_id(arg, strict=True) for arg in argv[3:]]
        if group is None:
            return ZERO
        return integer(sum(1 for i in ids if group.pending.pop(i, None) is not None))

    def claim(key: bytes, stream: Stream, group: Group, who: bytes, ids: list, min_idle: int, force: bool,
              justid: bool) -> tuple[list, list]:
        now = _ms()
        claimed, deleted = [], []
        for entry_id in ids:
            pel = group.pending.get(entry_id)
            if entry_id not in stream.entries:
                if pel is not None:
                    del group.pending[entry_id]
                    deleted.append(entry_id)
                continue
            if pel is None:
                if not force:
                    continue
                pel = group.pending[entry_id] = [who, now, 0]
            elif now - pel[1] < min_idle:
                continue
            pel[0], pel[1] = who, now
            if not justid:
                pel[2] += 1
            claimed.append(entry_id)
        seen = consumer(key, group, who)
        seen[0] = now
        if claimed:
            seen[1] = now
        return claimed, deleted

    def xclaim(argv, client):
        key, who = argv[1], argv[3]
        min_idle = string2ll(argv[4])
        if min_idle is None:
            raise Reply(error_reply("Invalid min-idle-time argument for XCLAIM"))
        ids, force, justid, j = [], False, False, 5
        while j < len(argv):
            try:
                ids.append(parse_id(argv[j], strict=True))
                j += 1
            except Reply:
                break
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"force":
                force = True
            elif opt == b"justid":
                justid = True
            elif opt in (b"idle", b"time", b"retrycount", b"lastid") and j + 1 < len(argv):
                j += 1
            else:
                raise Reply(error_reply(b"Unrecognized XCLAIM option '%s'" % argv[j]))
            j += 1
        stream, group = group_of(key, argv[2], "XCLAIM")
        claimed, _ = claim(key, stream, group, who, ids, max(0, min_idle), force, justid)
        if justid:
            return b"*%d\r\n" % len(claimed) + b"".join(bulk(id_text(i)) for i in claimed)
        return entries_reply(stream, claimed)

    def xautoclaim(argv, client):
        key, who = argv[1], argv[3]
        min_idle = string2ll(argv[4])
        if min_idle is None:
            raise Reply(error_reply("Invalid min-idle-time argument for XAUTOCLAIM"))
        start = parse_id(argv[5])
        count, justid, j = 100, False, 6
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"count" and j + 1 < len(argv):
                count = string2ll(argv[j + 1])
                if count is None or count < 1:
                    raise Reply(error_reply("COUNT must be > 0"))
                j += 1
            elif opt == b"justid":
                justid = True
            else:
                raise Reply(SYNTAX)
            j += 1
        stream, group = group_of(key, argv[2], "XAUTOCLAIM")
        candidates = sorted(i for i in group.pending if i >= start)
        scan, rest = candidates[:count], candidates[count:]
        claimed, deleted = claim(key, stream, group, who, scan, max(0, min_idle), False, justid)
        cursor = id_text(rest[0]) if rest else b"0-0"
        body = (b"*%d\r\n" % len(claimed) + b"".join(bulk(id_text(i)) for i in claimed)) if justid \
            else entries_reply(stream, claimed)
        return b"*3\r\n" + bulk(cursor) + body + b"*%d\r\n" % len(deleted) + b"".join(
            bulk(id_text(i)) for i in deleted)

    def xinfo(argv, client):
        sub = argv[1].lower()
        if sub != b"stream" or len(argv) < 3:
            raise Reply(error_reply(b"unknown subcommand or wrong number of arguments for '%s'" % argv[1]))
        stream = alive(argv[2])
        if stream is None:
            raise Reply(error_reply("no such key"))
        if stream.__class__ is not Stream:
            raise Reply(WRONGTYPE)
        full = len(argv) >= 4 and argv[3].lower() == b"full"
        first = stream.ids[0] if stream.ids else (0, 0)
        fields = [(b"length", integer(len(stream))), (b"radix-tree-keys", integer(1 if stream.ids else 0)),
                  (b"radix-tree-nodes", integer(1 if stream.ids else 0)),
                  (b"last-generated-id", bulk(id_text(stream.last_id))),
                  (b"max-deleted-entry-id", bulk(id_text(stream.max_deleted))),
                  (b"entries-added", integer(stream.entries_added)),
                  (b"recorded-first-entry-id", bulk(id_text(first)))]
        if not full:
            fields += [(b"groups", integer(len(stream.groups))),
                       (b"first-entry", entry_reply(stream, stream.ids[0]) if stream.ids else ctx.nil),
                       (b"last-entry", entry_reply(stream, stream.ids[-1]) if stream.ids else ctx.nil)]
            return pairs(fields)
        groups = []
        for name, group in stream.groups.items():
            pending = sorted(group.pending.items())
            consumers = []
            for who, (seen, active) in group.consumers.items():
                owned = [(i, pel) for i, pel in pending if pel[0] == who]
                consumers.append(pairs([
                    (b"name", bulk(who)), (b"seen-time", integer(seen)), (b"active-time", integer(active)),
                    (b"pel-count", integer(len(owned))),
                    (b"pending", b"*%d\r\n" % len(owned) + b"".join(
                        b"*3\r\n" + bulk(id_text(i)) + integer(pel[1]) + integer(pel[2]) for i, pel in owned))]))
            groups.append(pairs([
                (b"name", bulk(name)), (b"last-delivered-id", bulk(id_text(group.last_id))),
                (b"entries-read", integer(group.entries_read)),
                (b"lag", integer(max(0, stream.entries_added - group.entries_read))),
                (b"pel-count", integer(len(pending))),
                (b"pending", b"*%d\r\n" % len(pending) + b"".join(
                    b"*4\r\n" + bulk(id_text(i)) + bulk(pel[0]) + integer(pel[1]) + integer(pel[2])
                    for i, pel in pending)),
                (b"consumers", b"*%d\r\n" % len(consumers) + b"".join(consumers))]))
        fields += [(b"entries", entries_reply(stream, stream.ids[:10])),
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
