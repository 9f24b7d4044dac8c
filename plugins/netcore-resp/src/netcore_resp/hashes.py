"""Hash commands beyond HSET/HGET/HDEL/HGETALL (:mod:`netcore_resp.commands`), after
Redis 7.0's ``t_hash.c``."""

from __future__ import annotations

import random

from netcore_resp.context import Context
from netcore_resp.floats import add_ld, format_ld, string2ld
from netcore_resp.framing import LLONG_MAX, LLONG_MIN, error_reply, string2ll
from netcore_resp.replies import NOT_INTEGER, OK, ONE, ZERO, Reply, bulk, integer
from netcore_resp.strings import NAN_OR_INF, NOT_FLOAT

#: Largest |count| of HRANDFIELD/SRANDMEMBER: a negative count repeats elements, and a
#: count of 2**62 would build a reply no memory holds (Redis refuses beyond LONG_MAX/2).
RANDOM_MAX = 2**31
OUT_OF_RANGE = error_reply("value is out of range")
HASH_NOT_INTEGER = error_reply("hash value is not an integer")
HASH_NOT_FLOAT = error_reply("hash value is not a float")


def random_count(argv: list, option: bytes) -> tuple[int, bool]:
    """HRANDFIELD / ZRANDMEMBER's ``key count [WITHVALUES|WITHSCORES]``: (count, option given)."""
    count = string2ll(argv[2])
    if count is None:
        raise Reply(NOT_INTEGER)
    if not -RANDOM_MAX <= count <= RANDOM_MAX:
        raise Reply(OUT_OF_RANGE)
    given = len(argv) == 4 and argv[3].lower() == option
    if len(argv) > 4 or (len(argv) == 4 and not given):
        raise Reply(error_reply("syntax error"))
    return count, given


def pick_random(names: tuple, count: int) -> list:
    """``count`` distinct names (count >= 0), or -count with repetitions (Redis's rule)."""
    if count >= 0:
        return random.sample(names, min(count, len(names)))
    return [random.choice(names) for _ in range(-count)]


def install(ctx: Context) -> None:
    data, typed, register = ctx.data, ctx.typed, ctx.register

    def get(key: bytes) -> dict | None:
        return typed(key, dict)

    def create(key: bytes) -> dict:
        fields = get(key)
        if fields is None:
            fields = data[key] = {}
        return fields

    def hincrby(argv, client):
        delta = string2ll(argv[3])
        if delta is None:
            raise Reply(NOT_INTEGER)
        fields = create(argv[1])
        old = fields.get(argv[2])
        current = 0
        if old is not None:
            current = string2ll(old)
            if current is None:
                raise Reply(HASH_NOT_INTEGER)
        value = current + delta
        if not LLONG_MIN <= value <= LLONG_MAX:
            raise Reply(error_reply("increment or decrement would overflow"))
        fields[argv[2]] = b"%d" % value
        return integer(value)

    def hincrbyfloat(argv, client):
        """In long double, as Redis (``1e400`` is a number; the sum printed ``%.17Lf``)."""
        delta = string2ld(argv[3])
        if delta is None:
            raise Reply(NOT_FLOAT)
        if delta.__class__ is float:  # infinite: refused before the hash is created, as Redis 7 does
            raise Reply(error_reply("value is NaN or Infinity"))
        fields = create(argv[1])
        old = fields.get(argv[2])
        current = (0, 0)
        if old is not None:
            current = string2ld(old)
            if current is None:
                raise Reply(HASH_NOT_FLOAT)
        value = add_ld(current, delta)
        if value.__class__ is float:
            raise Reply(NAN_OR_INF)
        fields[argv[2]] = encoded = format_ld(value)
        return bulk(encoded)

    def hmget(argv, client):
        fields = get(argv[1]) or {}
        return ctx.array([fields.get(name) for name in argv[2:]])

    def hkeys(argv, client):
        return ctx.array(list(get(argv[1]) or ()))

    def hvals(argv, client):
        return ctx.array(list((get(argv[1]) or {}).values()))

    def hlen(argv, client):
        return integer(len(get(argv[1]) or ()))

    def hexists(argv, client):
        return ONE if argv[2] in (get(argv[1]) or ()) else ZERO

    def hsetnx(argv, client):
        fields = create(argv[1])
        if argv[2] in fields:
            return ZERO
        fields[argv[2]] = argv[3]
        return ONE

    def hstrlen(argv, client):
        return integer(len((get(argv[1]) or {}).get(argv[2], b"")))

    def hmset(argv, client):
        if len(argv) % 2:
            raise Reply(error_reply("wrong number of arguments for 'hmset' command"))
        fields = create(argv[1])
        for i in range(2, len(argv), 2):
            fields[argv[i]] = argv[i + 1]
        return OK

    def hrandfield(argv, client):
        fields = get(argv[1])
        if len(argv) == 2:
            return ctx.maybe_bulk(random.choice(tuple(fields)) if fields else None)
        count, withvalues = random_count(argv, b"withvalues")
        if not fields:
            return b"*0\r\n"
        chosen = pick_random(tuple(fields), count)
        if not withvalues:
            return b"*%d\r\n" % len(chosen) + b"".join(map(bulk, chosen))
        if ctx.resp3:
            return b"*%d\r\n" % len(chosen) + b"".join(b"*2\r\n" + bulk(n) + bulk(fields[n]) for n in chosen)
        return b"*%d\r\n" % (2 * len(chosen)) + b"".join(bulk(n) + bulk(fields[n]) for n in chosen)

    fast_w, fast_r = ("write", "denyoom", "fast"), ("readonly", "fast")
    register("hincrby", (4, fast_w, 1, 1, 1), hincrby)
    register("hincrbyfloat", (4, fast_w, 1, 1, 1), hincrbyfloat)
    register("hmget", (-3, fast_r, 1, 1, 1), hmget)
    register("hkeys", (2, ("readonly",), 1, 1, 1), hkeys)
    register("hvals", (2, ("readonly",), 1, 1, 1), hvals)
    register("hlen", (2, fast_r, 1, 1, 1), hlen)
    register("hexists", (3, fast_r, 1, 1, 1), hexists)
    register("hsetnx", (4, fast_w, 1, 1, 1), hsetnx)
    register("hstrlen", (3, fast_r, 1, 1, 1), hstrlen)
    register("hmset", (-4, fast_w, 1, 1, 1), hmset)
    register("hrandfield", (-2, ("readonly",), 1, 1, 1), hrandfield)
