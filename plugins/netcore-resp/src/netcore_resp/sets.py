"""Sets: a Redis set is a Python ``set`` of bytes (its class is its type, as for the others).

Replies list members in the set's iteration order (Redis's order is its hash table's:
neither is sorted, and clients must not rely on it). In RESP3, SMEMBERS and the set
algebra answer with the set type (``~``), as Redis does.
"""

from __future__ import annotations

import random

from netcore_resp.context import Context
from netcore_resp.framing import string2ll
from netcore_resp.hashes import OUT_OF_RANGE, RANDOM_MAX
from netcore_resp.replies import NOT_INTEGER, ONE, ZERO, Reply, bulk, error_reply, integer, non_negative
from netcore_resp.scan import scan_members

W, R = ("write", "denyoom", "fast"), ("readonly", "fast")
MUST_BE_POSITIVE = error_reply("value is out of range, must be positive")


def install(ctx: Context) -> None:
    ks, data, typed, resp3 = ctx.ks, ctx.data, ctx.typed, ctx.resp3
    register = ctx.register

    def members_reply(items) -> bytes:
        items = list(items)
        return (b"~%d\r\n" if resp3 else b"*%d\r\n") % len(items) + b"".join(map(bulk, items))

    def get(key: bytes) -> set | None:
        return typed(key, set)

    def sadd(argv, client):
        key = argv[1]
        members = get(key)
        if members is None:
            members = data[key] = set()
        before = len(members)
        members.update(argv[2:])
        return integer(len(members) - before)

    def srem(argv, client):
        key = argv[1]
        members = get(key)
        if members is None:
            return ZERO
        before = len(members)
        members.difference_update(argv[2:])
        removed = before - len(members)
        if not members:
            ks.delete(key)
        return integer(removed)

    def smembers(argv, client):
        return members_reply(get(argv[1]) or ())

    def sismember(argv, client):
        members = get(argv[1])
        return ONE if members and argv[2] in members else ZERO

    def smismember(argv, client):
        members = get(argv[1]) or ()
        return b"*%d\r\n" % (len(argv) - 2) + b"".join(ONE if m in members else ZERO for m in argv[2:])

    def scard(argv, client):
        members = get(argv[1])
        return integer(len(members)) if members else ZERO

    def srandmember(argv, client):
        members = get(argv[1])
        if len(argv) == 2:
            return ctx.maybe_bulk(random.choice(tuple(members)) if members else None)
        if len(argv) != 3:
            raise Reply(error_reply("syntax error"))
        count = string2ll(argv[2])
        if count is None:
            raise Reply(NOT_INTEGER)
        if not -RANDOM_MAX <= count <= RANDOM_MAX:
            raise Reply(OUT_OF_RANGE)
        if not members:
            return b"*0\r\n"
        pool = tuple(members)
        if count >= 0:
            chosen = random.sample(pool, min(count, len(pool)))
        else:
            chosen = [random.choice(pool) for _ in range(-count)]
        return b"*%d\r\n" % len(chosen) + b"".join(map(bulk, chosen))

    def spop(argv, client):
        key = argv[1]
        members = get(key)
        if len(argv) > 3:
            raise Reply(error_reply("syntax error"))
        if len(argv) == 3:
            count = string2ll(argv[2])
            if count is None or count < 0:
                raise Reply(MUST_BE_POSITIVE)
            if not members:
                return members_reply(())
            chosen = random.sample(tuple(members), min(count, len(members)))
            members.difference_update(chosen)
            if not members:
                ks.delete(key)
            return members_reply(chosen)
        if not members:
            return ctx.nil
        member = random.choice(tuple(members))
        members.discard(member)
        if not members:
            ks.delete(key)
        return bulk(member)

    def smove(argv, client):
        source, destination, member = argv[1], argv[2], argv[3]
        if ctx.alive(source) is None:
            return ZERO  # before any type check, as Redis's smoveCommand
        src = get(source)
        dst = get(destination)
        if src is None or member not in src:
            return ZERO
        if source == destination:
            return ONE
        src.discard(member)
        if not src:
            ks.delete(source)
        if dst is None:
            dst = data[destination] = set()
        dst.add(member)
        return ONE

    def algebra(keys, op) -> set:
        sets = [get(key) for key in keys]  # every key type-checked first, as Redis does
        if op == "inter":
            if any(not s for s in sets):
                return set()
            sets.sort(key=len)
            return set(sets[0]).intersection(*sets[1:])
        result = set(sets[0] or ())
        for s in sets[1:]:
            if s:
                result = result.union(s) if op == "union" else result.difference(s)
        return result

    def store(destination: bytes, result: set) -> bytes:
        ks.delete(destination)
        if result:
            data[destination] = result
        return integer(len(result))

    def make(op):
        def read(argv, client):
            return members_reply(algebra(argv[1:], op))

        def write(argv, client):
            return store(argv[1], algebra(argv[2:], op))

        return read, write

    for op, name in (("inter", "sinter"), ("union", "sunion"), ("diff", "sdiff")):
        read, write = make(op)
        register(name, (-2, ("readonly",), 1, -1, 1), read)
        register(name + "store", (-3, ("write", "denyoom"), 1, -1, 1), write)

    def sintercard(argv, client):
        numkeys = string2ll(argv[1])
        if numkeys is None or numkeys <= 0:
            raise Reply(error_reply("numkeys should be greater than 0"))
        if len(argv) < 2 + numkeys:
            raise Reply(error_reply("Number of keys can't be greater than number of args"))
        limit = 0
        rest = argv[2 + numkeys:]
        if rest:
            if len(rest) != 2 or rest[0].lower() != b"limit":
                raise Reply(error_reply("syntax error"))
            limit = non_negative(rest[1], "LIMIT")
        n = len(algebra(argv[2:2 + numkeys], "inter"))
        return integer(min(n, limit) if limit else n)

    def sscan(argv, client):
        return scan_members(argv, get)

    register("sadd", (-3, W, 1, 1, 1), sadd)
    register("srem", (-3, ("write", "fast"), 1, 1, 1), srem)
    register("smembers", (2, ("readonly",), 1, 1, 1), smembers)
    register("sismember", (3, R, 1, 1, 1), sismember)
    register("smismember", (-3, R, 1, 1, 1), smismember)
    register("scard", (2, R, 1, 1, 1), scard)
    register("srandmember", (-2, ("readonly",), 1, 1, 1), srandmember)
    register("spop", (-2, ("write", "fast"), 1, 1, 1), spop)
    register("smove", (4, ("write", "fast"), 1, 2, 1), smove)
    register("sintercard", (-3, ("readonly",), 0, 0, 0), sintercard)
    register("sscan", (-3, ("readonly",), 1, 1, 1), sscan)
