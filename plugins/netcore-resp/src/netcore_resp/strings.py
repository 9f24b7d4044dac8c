"""String commands beyond the hot ones of :mod:`netcore_resp.commands`: ranges,
GETDEL/GETEX, SETEX/PSETEX, MSETNX. Error texts follow Redis 7.0's ``t_string.c``."""

from __future__ import annotations

from netcore_resp.context import Context
from netcore_resp.floats import string2d
from netcore_resp.framing import LLONG_MAX, error_reply, string2ll
from netcore_resp.keyspace import now_ms
from netcore_resp.replies import NOT_INTEGER, OK, ONE, STRING_TOO_LONG, SYNTAX, ZERO, Reply, bulk, cstr, integer

NOT_FLOAT = error_reply("value is not a valid float")
NAN_OR_INF = error_reply("increment would produce NaN or Infinity")


def parse_float(value: bytes) -> float:
    """Redis's ``string2d`` (ZADD, ZINCRBY, WEIGHTS): strtod's syntax (hex too, no
    underscores or blanks), not NaN, no overflow or underflow to zero."""
    number = string2d(value)
    if number is None:
        raise Reply(NOT_FLOAT)
    return number


#: SET's and GETEX's expiry options: (milliseconds per unit, relative to now).
EXPIRE_UNITS = {b"ex": (1000, True), b"px": (1, True), b"exat": (1000, False), b"pxat": (1, False)}


def string_options(argv: list, first: int, for_set: bool) -> tuple[set, bytes | None, bytes | None]:
    """The options of SET (from ``argv[3]``) or GETEX (from ``argv[2]``): (flags among nx, xx,
    get, keepttl, persist; the expiry option or None; its argument).

    One parser for both, as Redis's ``parseExtendedStringArgumentsOrReply``: an expiry
    option may repeat (the last one counts) but not follow another kind, KEEPTTL and
    PERSIST exclude them, anything else is a syntax error. Options are compared as C
    strings (up to a NUL), as Redis compares them. The number is read later
    (:func:`expire_deadline`): GETEX on a missing key answers nil whatever it is."""
    flags: set = set()
    unit = expire = None
    j, n = first, len(argv)
    while j < n:
        opt = cstr(argv[j]).lower()
        if for_set and ((opt == b"nx" and b"xx" not in flags) or (opt == b"xx" and b"nx" not in flags)
                        or opt == b"get" or (opt == b"keepttl" and unit is None)):
            flags.add(opt)
        elif not for_set and opt == b"persist" and unit is None:
            flags.add(opt)
        elif (opt in EXPIRE_UNITS and unit in (None, opt) and b"keepttl" not in flags
              and b"persist" not in flags and j + 1 < n):
            unit, expire = opt, argv[j + 1]
            j += 1
        else:
            raise Reply(SYNTAX)
        j += 1
    return flags, unit, expire


def expire_deadline(arg: bytes, unit: bytes, name: str) -> int:
    """The absolute deadline (ms) of SET's or GETEX's ``unit`` ``arg``, refused as Redis's
    ``getExpireMillisecondsOrReply`` refuses it: not positive, or past LLONG_MAX in ms."""
    number = string2ll(arg)
    if number is None:
        raise Reply(NOT_INTEGER)
    unit_ms, relative = EXPIRE_UNITS[unit]
    invalid = error_reply(f"invalid expire time in '{name}' command")
    if number <= 0 or number > LLONG_MAX // unit_ms:
        raise Reply(invalid)
    number *= unit_ms
    if relative:
        base = now_ms()
        if number > LLONG_MAX - base:
            raise Reply(invalid)
        number += base
    return number


def install(ctx: Context, max_bulk: int) -> None:
    ks, data, string_value, register = ctx.ks, ctx.data, ctx.string_value, ctx.register

    def getrange(argv, client):
        start, end = string2ll(argv[2]), string2ll(argv[3])
        if start is None or end is None:
            raise Reply(NOT_INTEGER)
        value = string_value(argv[1]) or b""
        n = len(value)
        if start < 0 and end < 0 and start > end:
            return bulk(b"")
        if start < 0:
            start = max(0, n + start)
        if end < 0:
            end = max(0, n + end)
        end = min(end, n - 1)
        if start > end or n == 0:
            return bulk(b"")
        return bulk(value[start:end + 1])

    def setrange(argv, client):
        offset = string2ll(argv[2])
        if offset is None:
            raise Reply(NOT_INTEGER)
        if offset < 0:
            raise Reply(error_reply("offset is out of range"))
        key, piece = argv[1], argv[3]
        value = string_value(key)
        if value is None:
            if not piece:
                return ZERO
            value = b""
        if not piece:
            return integer(len(value))
        if offset + len(piece) > max_bulk:
            raise Reply(STRING_TOO_LONG)
        # Changed in place (as Redis's SDS): one copy of a plain SET value, then each
        # SETRANGE costs its own piece (and any zero padding), not the value's length.
        if value.__class__ is bytes:
            value = data[key] = bytearray(value)
        if offset > len(value):
            value += bytes(offset - len(value))
        value[offset:offset + len(piece)] = piece
        return integer(len(value))

    def getdel(argv, client):
        key = argv[1]
        value = string_value(key)
        if value is not None:
            ks.delete(key)
        return ctx.maybe_bulk(value)

    def getex(argv, client):
        flags, unit, expire = string_options(argv, 2, False)
        key = argv[1]
        value = string_value(key)
        if value is None:
            return ctx.nil
        if unit is not None:
            when = expire_deadline(expire, unit, "getex")
            if when <= now_ms():
                ks.delete(key)
            else:
                ks.set_deadline(key, when)
        elif flags:  # PERSIST
            ks.persist(key)
        return bulk(value)

    def set_expiring(argv, unit_ms: int, name: str) -> bytes:
        number = string2ll(argv[2])
        if number is None:
            raise Reply(NOT_INTEGER)
        if number <= 0 or number > LLONG_MAX // unit_ms:
            raise Reply(error_reply(f"invalid expire time in '{name}' command"))
        key = argv[1]
        data[key] = argv[3]
        ks.set_deadline(key, now_ms() + number * unit_ms)
        return OK

    def msetnx(argv, client):
        if len(argv) % 2 == 0:
            raise Reply(error_reply("wrong number of arguments for 'msetnx' command"))
        keys = argv[1::2]
        if any(ctx.alive(key) is not None for key in keys):
            return ZERO
        for i in range(1, len(argv), 2):
            data[argv[i]] = argv[i + 1]
            ks.persist(argv[i])
        return ONE

    w = ("write", "denyoom")
    register("getrange", (4, ("readonly",), 1, 1, 1), getrange)
    register("substr", (4, ("readonly",), 1, 1, 1), getrange)
    register("setrange", (4, w, 1, 1, 1), setrange)
    register("getdel", (2, ("write", "fast"), 1, 1, 1), getdel)
    register("getex", (-2, ("write", "fast"), 1, 1, 1), getex)
    register("setex", (4, w, 1, 1, 1), lambda argv, client: set_expiring(argv, 1000, "setex"))
    register("psetex", (4, w, 1, 1, 1), lambda argv, client: set_expiring(argv, 1, "psetex"))
    register("msetnx", (-3, w, 1, -1, 2), msetnx)
