"""DUMP and RESTORE, between netcore servers.

Redis's DUMP payload is its RDB encoding of the value (listpacks, intsets, quicklists)
plus an RDB version and a CRC64; reproducing it would tie netcore to Redis's internal
encodings. So DUMP here writes netcore's own payload -- a magic tag, the value as
length-prefixed fields, a CRC32 -- which RESTORE on any netcore of the same payload
version takes back; a payload from redis-server (or damaged) is refused with Redis's
``DUMP payload version or checksum are wrong``. The format is plain data, parsed
strictly: RESTORE never evaluates anything it is given (no pickle).
"""

from __future__ import annotations

import collections
import struct
import zlib
from typing import Any

from netcore_resp.context import Context
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.keyspace import now_ms
from netcore_resp.replies import OK, SYNTAX, Reply, bulk
from netcore_resp.zsets import ZSet

MAGIC = b"\x00netcore-dump-1\x00"
BAD_PAYLOAD = error_reply("DUMP payload version or checksum are wrong")
BAD_FORMAT = error_reply("Bad data format")
BUSYKEY = b"-BUSYKEY Target key name already exists.\r\n"
_LEN = struct.Struct("<Q")
_SCORE = struct.Struct("<d")


def _items(parts: list[bytes], items: Any) -> None:
    parts.append(_LEN.pack(len(items)))
    for item in items:
        parts.append(_LEN.pack(len(item)))
        parts.append(item)


def encode(value: Any) -> bytes:
    parts = [MAGIC]
    kind = value.__class__
    if kind is bytes:
        parts += [b"s", value]
    elif kind is collections.deque:
        parts.append(b"l")
        _items(parts, value)
    elif kind is set:
        parts.append(b"S")
        # Sorted: a set's order follows its members' (per-process random) hashes and the
        # order they came in, so the same set restored could dump differently (1 run in 8
        # for two members whose hashes share a slot).
        _items(parts, sorted(value))
    elif kind is dict:
        parts.append(b"h")
        _items(parts, [x for pair in value.items() for x in pair])
    elif kind is ZSet:
        parts.append(b"z")
        _items(parts, [x for member, score in value.scores.items() for x in (member, _SCORE.pack(score))])
    else:
        raise Reply(error_reply("DUMP of this type is not supported"))
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def decode(payload: bytes) -> Any:
    if len(payload) < len(MAGIC) + 5 or not payload.startswith(MAGIC):
        raise Reply(BAD_PAYLOAD)
    body, crc = payload[:-4], struct.unpack("<I", payload[-4:])[0]
    if zlib.crc32(body) != crc:
        raise Reply(BAD_PAYLOAD)
    kind, data = body[len(MAGIC):len(MAGIC) + 1], memoryview(body)[len(MAGIC) + 1:]
    if kind == b"s":
        return bytes(data)
    items = []
    try:
        (count,), pos = _LEN.unpack_from(data, 0), _LEN.size
        for _ in range(count):
            (size,), pos = _LEN.unpack_from(data, pos), pos + _LEN.size
            if pos + size > len(data):
                raise Reply(BAD_FORMAT)
            items.append(bytes(data[pos:pos + size]))
            pos += size
    except struct.error:
        raise Reply(BAD_FORMAT) from None
    if pos != len(data) or not items:
        # An empty list, set, hash or sorted set is no value (Redis refuses one on load:
        # a key holding it would answer EXISTS 1 and then fail every command).
        raise Reply(BAD_FORMAT)
    if kind == b"l":
        return collections.deque(items)
    if kind == b"S":
        members = set(items)
        if len(members) == len(items):  # duplicates: Redis's "Duplicate set members detected"
            return members
    elif kind == b"h" and len(items) % 2 == 0:
        fields = dict(zip(items[::2], items[1::2]))
        if 2 * len(fields) == len(items):
            return fields
    elif kind == b"z" and len(items) % 2 == 0 and all(len(s) == _SCORE.size for s in items[1::2]):
        scores = [_SCORE.unpack(score)[0] for score in items[1::2]]
        members = items[::2]
        # NaN is no score (Redis: "Zset with NAN score detected"); nor is a member twice.
        if all(score == score for score in scores) and len(set(members)) == len(members):
            return ZSet(zip(members, scores))
    raise Reply(BAD_FORMAT)


def install(ctx: Context) -> None:
    ks, alive = ctx.ks, ctx.alive

    def dump(argv, client):
        value = alive(argv[1])
        return ctx.nil if value is None else bulk(encode(value))

    def restore(argv, client):
        """RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]."""
        key = argv[1]
        ttl = string2ll(argv[2])
        if ttl is None:
            raise Reply(error_reply("value is not an integer or out of range"))
        replace = absttl = False
        j = 4
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"replace":
                replace = True
            elif opt == b"absttl":
                absttl = True
            elif opt in (b"idletime", b"freq") and j + 1 < len(argv):
                if string2ll(argv[j + 1]) is None or string2ll(argv[j + 1]) < 0:
                    raise Reply(error_reply(f"Invalid {opt.decode().upper()} value, must be >= 0"))
                j += 1  # no LRU/LFU clock here: accepted and ignored
            else:
                raise Reply(SYNTAX)
            j += 1
        if ttl < 0:
            raise Reply(error_reply("Invalid TTL value, must be >= 0"))
        if not replace and alive(key) is not None:
            return BUSYKEY
        value = decode(argv[3])
        ks.delete(key)
        when = (ttl if absttl else now_ms() + ttl) if ttl else None
        if when is not None and when <= now_ms():
            return OK  # already expired: nothing is created, as in Redis
        ctx.data[key] = value
        if when is not None:
            ks.set_deadline(key, when)
        return OK

    ctx.register("dump", (2, ("readonly",), 1, 1, 1), dump)
    ctx.register("restore", (-4, ("write", "denyoom"), 1, 1, 1), restore)
