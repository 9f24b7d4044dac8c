"""Generic key commands: RENAME, RENAMENX, COPY, RANDOMKEY, TOUCH, OBJECT, EXPIRE, PEXPIRE,
EXPIREAT, PEXPIREAT, EXPIRETIME, PEXPIRETIME (Redis 7.0's ``db.c``, ``object.c``, ``expire.c``).

MOVE, SWAPDB and COPY ... DB reach the other databases through ``ctx.info.keyspaces``."""

from __future__ import annotations

import collections
import random
from typing import Any

from netcore_resp.context import Context
from netcore_resp.framing import LLONG_MAX, LLONG_MIN, error_reply, string2ll
from netcore_resp.keyspace import now_ms
from netcore_resp.replies import (
    DB_OUT_OF_RANGE,
    MINUS_ONE,
    MINUS_TWO,
    NOT_INTEGER,
    OK,
    ONE,
    SYNTAX,
    ZERO,
    Reply,
    arity_error,
    bulk,
    cstr,
    integer,
)
from netcore_resp.streams import Stream
from netcore_resp.zsets import ZSet

NO_SUCH_KEY = error_reply("no such key")
SAME_OBJECT = error_reply("source and destination objects are the same")
INT_RANGE = error_reply("value is out of range, value must between -2147483648 and 2147483647")
ENCODINGS = {bytes: b"raw", bytearray: b"raw", collections.deque: b"quicklist", dict: b"hashtable", set: b"hashtable", ZSet: b"skiplist",
             Stream: b"stream"}


def install(ctx: Context) -> None:
    ks, data, alive, register = ctx.ks, ctx.data, ctx.alive, ctx.register

    def rename(argv, client, nx: bool) -> bytes:
        source, destination = argv[1], argv[2]
        value = alive(source)
        if value is None:
            raise Reply(NO_SUCH_KEY)
        if source == destination:
            return ZERO if nx else OK
        if nx and alive(destination) is not None:
            return ZERO
        deadline = ks.deadline(source)
        ks.delete(source)
        ks.delete(destination)
        data[destination] = value
        if deadline != -1:
            ks.set_deadline(destination, deadline)
        return ONE if nx else OK

    def database(arg: bytes) -> Any:
        """Another database by index (MOVE, COPY ... DB, SWAPDB)."""
        index = string2ll(arg)
        if index is None:
            raise Reply(NOT_INTEGER)
        if not -(2**31) <= index < 2**31:  # Redis's getIntFromObjectOrReply
            raise Reply(INT_RANGE)
        if not 0 <= index < len(ctx.info.keyspaces):
            raise Reply(DB_OUT_OF_RANGE)
        return ctx.info.keyspaces[index]

    def copy_(argv, client):
        source, destination = argv[1], argv[2]
        replace = False
        target = ks
        j = 3
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"replace":
                replace = True
            elif opt == b"db" and j + 1 < len(argv):
                target = database(argv[j + 1])
                j += 1
            else:
                raise Reply(SYNTAX)
            j += 1
        if target is ks and source == destination:
            raise Reply(SAME_OBJECT)
        value = alive(source)
        if value is None:
            return ZERO
        if target.alive(destination) is not None:
            if not replace:
                return ZERO
            target.delete(destination)
        # A copy of anything mutable (a string grown in place is a bytearray): never two
        # keys sharing one object.
        target.data[destination] = value if value.__class__ is bytes else value.copy()
        deadline = ks.deadline(source)
        if deadline != -1:
            target.set_deadline(destination, deadline)
        return ONE

    def move(argv, client):
        target = database(argv[2])
        if target is ks:
            raise Reply(SAME_OBJECT)
        key = argv[1]
        value = alive(key)
        if value is None or target.alive(key) is not None:
            return ZERO
        deadline = ks.deadline(key)
        ks.delete(key)
        target.data[key] = value
        if deadline != -1:
            target.set_deadline(key, deadline)
        return ONE

    def swapdb(argv, client):
        for arg, which in ((argv[1], "first"), (argv[2], "second")):
            index = string2ll(arg)
            if index is None or not -(2**31) <= index < 2**31:
                raise Reply(error_reply(f"invalid {which} DB index"))
        database(argv[1]).swap(database(argv[2]))
        return OK

    def randomkey(argv, client):
        for _ in range(100):  # a few tries past keys that turn out to be expired
            if not data:
                return ctx.nil
            key = random.choice(tuple(data)) if len(data) < 1000 else next(iter(data))
            if alive(key) is not None:
                return bulk(key)
        return ctx.nil

    def touch(argv, client):
        return integer(sum(1 for key in argv[1:] if alive(key) is not None))

    def object_(argv, client):
        sub = argv[1].lower()
        if sub == b"help":
            if len(argv) != 2:
                raise Reply(arity_error("object|help"))
            return ctx.array([b"OBJECT <subcommand> [<arg> [value] [opt] ...]", b"ENCODING <key>", b"FREQ <key>",
                              b"IDLETIME <key>", b"REFCOUNT <key>"])
        if sub not in (b"encoding", b"freq", b"idletime", b"refcount"):
            raise Reply(error_reply(b"unknown subcommand '%s'. Try OBJECT HELP." % cstr(argv[1])[:128]))
        if len(argv) != 3:
            raise Reply(arity_error("object|" + sub.decode("latin-1")))
        value = alive(argv[2])
        if value is None:
            return ctx.nil
        if sub == b"encoding":
            if value.__class__ is bytes:
                if string2ll(value) is not None:
                    return bulk(b"int")
                return bulk(b"embstr" if len(value) <= 44 else b"raw")
            return bulk(ENCODINGS.get(value.__class__, b"hashtable"))
        if sub == b"refcount":
            return ONE
        if sub == b"freq":
            raise Reply(error_reply("An LFU maxmemory policy is not selected, access frequency not tracked. "
                                    "Please note that when switching between policies at runtime LRU and LFU "
                                    "data will take some time to adjust."))
        return ZERO  # idletime: not tracked

    def expire_options(argv) -> tuple[bool, bool, bool, bool]:
        """NX, XX, GT, LT of the EXPIRE family, all read (and their conflicts refused)
        before the time is, as Redis's ``parseExtendedExpireArgumentsOrReply`` (which compares
        C strings: an option ends at a NUL)."""
        nx = xx = gt = lt = False
        for opt in argv[3:]:
            low = cstr(opt).lower()
            if low == b"nx":
                nx = True
            elif low == b"xx":
                xx = True
            elif low == b"gt":
                gt = True
            elif low == b"lt":
                lt = True
            else:
                raise Reply(error_reply(b"Unsupported option %s" % cstr(opt)))
        if nx and (xx or gt or lt):
            raise Reply(error_reply("NX and XX, GT or LT options at the same time are not compatible"))
        if gt and lt:
            raise Reply(error_reply("GT and LT options at the same time are not compatible"))
        return nx, xx, gt, lt

    def expire_generic(argv, name: str, unit_ms: int, relative: bool) -> bytes:
        """EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: one body, as Redis's ``expireGenericCommand``
        (options, then the time and its overflow checks, then the key)."""
        nx, xx, gt, lt = expire_options(argv)
        when = string2ll(argv[2])
        if when is None:
            raise Reply(NOT_INTEGER)
        invalid = error_reply(f"invalid expire time in '{name}' command")
        if unit_ms == 1000:
            if when > LLONG_MAX // 1000 or when < -(-LLONG_MIN // 1000):
                raise Reply(invalid)
            when *= 1000
        base = now_ms() if relative else 0
        if when > LLONG_MAX - base:
            raise Reply(invalid)
        when += base
        key = argv[1]
        if alive(key) is None:
            return ZERO
        current = ks.deadline(key)
        if nx and current != -1:
            return ZERO
        if xx and current == -1:
            return ZERO
        if gt and (current == -1 or when <= current):
            return ZERO
        if lt and current != -1 and when >= current:
            return ZERO
        if when <= now_ms():
            ks.delete(key)
        else:
            ks.set_deadline(key, when)
        return ONE

    def expiretime(argv, client, unit_ms: int) -> bytes:
        key = argv[1]
        if alive(key) is None:
            return MINUS_TWO
        when = ks.deadline(key)
        # Seconds rounded to the nearest, as Redis's ttlGenericCommand: (ms + 500) / 1000.
        return MINUS_ONE if when == -1 else integer((when + unit_ms // 2) // unit_ms)

    register("rename", (3, ("write",), 1, 2, 1), lambda argv, client: rename(argv, client, False))
    register("renamenx", (3, ("write", "fast"), 1, 2, 1), lambda argv, client: rename(argv, client, True))
    register("copy", (-3, ("write", "denyoom"), 1, 2, 1), copy_)
    register("move", (3, ("write", "fast"), 1, 1, 1), move)
    register("swapdb", (3, ("write", "fast"), 0, 0, 0), swapdb)
    register("randomkey", (1, ("readonly",), 0, 0, 0), randomkey)
    register("touch", (-2, ("readonly", "fast"), 1, -1, 1), touch)
    register("object", (-2, ("readonly",), 2, 2, 1), object_)
    for name, unit_ms, relative in (("expire", 1000, True), ("pexpire", 1, True), ("expireat", 1000, False),
                                    ("pexpireat", 1, False)):
        register(name, (-3, ("write", "fast"), 1, 1, 1),
                 lambda argv, client, name=name, unit_ms=unit_ms, relative=relative:
                 expire_generic(argv, name, unit_ms, relative))
    register("expiretime", (2, ("readonly", "fast"), 1, 1, 1), lambda argv, client: expiretime(argv, client, 1000))
    register("pexpiretime", (2, ("readonly", "fast"), 1, 1, 1), lambda argv, client: expiretime(argv, client, 1))


NO_MONITOR = error_reply("netcore does not implement MONITOR (it would copy every command of every client "
                         "to the monitors)")


def install_server(ctx: Context) -> None:
    """TIME, MEMORY USAGE (an estimate from the Python objects' sizes), WAIT (there are no
    replicas: 0 of them acknowledged) and MONITOR's refusal."""
    import sys
    import time

    register = ctx.register

    def time_(argv, client):
        now = time.time_ns() // 1000
        return b"*2\r\n" + bulk(b"%d" % (now // 1_000_000)) + bulk(b"%d" % (now % 1_000_000))

    def memory(argv, client):
        sub = argv[1].lower()
        if sub == b"usage":
            value = ctx.alive(argv[2]) if len(argv) >= 3 else None
            if value is None:
                return ctx.nil
            size = sys.getsizeof(argv[2]) + sys.getsizeof(value)
            if value.__class__ is dict:
                size += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in value.items())
            elif value.__class__ is not bytes and value.__class__ is not bytearray:
                size += sum(sys.getsizeof(item) for item in value)
            return integer(size)
        if sub == b"doctor":
            return bulk(b"Sam, I detected no memory problems in this netcore instance.")
        raise Reply(error_reply(b"unknown subcommand '%s'. Try MEMORY HELP." % argv[1]))

    def wait(argv, client):
        """Redis's checks and texts; then 0, at once (Redis without replicas answers 0 at
        once for numreplicas <= 0, and after the timeout otherwise: docs/resp.md)."""
        if string2ll(argv[1]) is None:
            raise Reply(NOT_INTEGER)
        timeout = string2ll(argv[2])
        if timeout is None:
            raise Reply(error_reply("timeout is not an integer or out of range"))
        if timeout < 0:
            raise Reply(error_reply("timeout is negative"))
        return ZERO

    register("time", (1, ("loading", "stale", "fast"), 0, 0, 0), time_)
    register("wait", (3, ("noscript",), 0, 0, 0), wait)
    register("monitor", (1, ("admin", "noscript", "loading", "stale"), 0, 0, 0), lambda argv, client: NO_MONITOR)
    register("memory", (-2, ("readonly",), 0, 0, 0), memory)
