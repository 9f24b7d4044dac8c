"""SETBIT, GETBIT, BITCOUNT on string values (Redis 7.0's ``bitops.c``; bit 0 is the most
significant bit of the first byte)."""

from __future__ import annotations

from netcore_resp.context import Context
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import NOT_INTEGER, SYNTAX, ZERO, Reply, integer

BIT_OFFSET = error_reply("bit offset is not an integer or out of range")
BIT_VALUE = error_reply("bit is not an integer or out of range")


def install(ctx: Context, max_bulk: int) -> None:
    data, string_value, register = ctx.data, ctx.string_value, ctx.register

    def offset_of(arg: bytes) -> int:
        offset = string2ll(arg)
        if offset is None or offset < 0 or offset >> 3 >= max_bulk:
            raise Reply(BIT_OFFSET)
        return offset

    def setbit(argv, client):
        offset = offset_of(argv[2])
        if argv[3] not in (b"0", b"1"):
            raise Reply(BIT_VALUE)
        key = argv[1]
        value = string_value(key)
        # Changed in place (as Redis's SDS): a plain SET value is copied once into a
        # bytearray, then each SETBIT costs O(1) (plus any zero padding it adds).
        if value is None:
            value = data[key] = bytearray()
        elif value.__class__ is bytes:
            value = data[key] = bytearray(value)
        index, bit = offset >> 3, 7 - (offset & 7)
        if index >= len(value):
            value += bytes(index + 1 - len(value))
        old = (value[index] >> bit) & 1
        if argv[3] == b"1":
            value[index] |= 1 << bit
        else:
            value[index] &= ~(1 << bit) & 0xFF
        return integer(old)

    def getbit(argv, client):
        offset = offset_of(argv[2])
        value = string_value(argv[1]) or b""
        index = offset >> 3
        return integer((value[index] >> (7 - (offset & 7))) & 1 if index < len(value) else 0)

    def bitcount(argv, client):
        # Redis looks the key up first: a missing key counts 0 whatever the arguments.
        value = string_value(argv[1])
        if value is None:
            return ZERO
        if len(argv) == 2:
            return integer(sum(bin(b).count("1") for b in value) if len(value) < 4096
                           else int.from_bytes(value, "big").bit_count())
        if len(argv) not in (4, 5):
            raise Reply(SYNTAX)
        start, end = string2ll(argv[2]), string2ll(argv[3])
        if start is None or end is None:
            raise Reply(NOT_INTEGER)
        # An empty negative range answers before the unit is read (bitcountCommand).
        if start < 0 and end < 0 and start > end:
            return ZERO
        unit_bits = False
        if len(argv) == 5:
            unit = argv[4].lower()
            if unit not in (b"byte", b"bit"):
                raise Reply(SYNTAX)
            unit_bits = unit == b"bit"
        total = len(value) * 8 if unit_bits else len(value)
        if start < 0:
            start = max(0, total + start)
        if end < 0:
            end = max(0, total + end)
        end = min(end, total - 1)
        if start > end or not value:
            return integer(0)
        if unit_bits:
            # Only the bytes the range covers: O(range), not O(value).
            first = start >> 3
            chunk = value[first:(end >> 3) + 1]
            start, end = start - (first << 3), end - (first << 3)
            number = int.from_bytes(chunk, "big")
            piece = (number >> (len(chunk) * 8 - 1 - end)) & ((1 << (end - start + 1)) - 1)
            return integer(piece.bit_count())
        return integer(int.from_bytes(value[start:end + 1], "big").bit_count())

    register("setbit", (4, ("write", "denyoom"), 1, 1, 1), setbit)
    register("getbit", (3, ("readonly", "fast"), 1, 1, 1), getbit)
    register("bitcount", (-2, ("readonly",), 1, 1, 1), bitcount)
