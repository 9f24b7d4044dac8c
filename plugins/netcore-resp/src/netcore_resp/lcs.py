"""LCS (Redis 7's ``lcsCommand``): the longest common subsequence of two strings, its
length, or the matching ranges (IDX, MINMATCHLEN, WITHMATCHLEN), found as Redis finds
them -- the same dynamic-programming table and the same walk back through it, so the
ranges come out in Redis's order.

The table has (len(a) + 1) * (len(b) + 1) cells of 4 bytes (an ``array``, as Redis's
uint32 table); like Redis, a table larger than ``proto-max-bulk-len`` is refused.
"""

from __future__ import annotations

from array import array
from typing import Any

from netcore_resp.context import Context
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import SYNTAX, Reply, bulk, integer

NOT_STRINGS = error_reply("The specified keys must contain string values")
LEN_AND_IDX = error_reply("If you want both the length and indexes, please just use IDX.")
TOO_LONG = error_reply("Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")


def table(a: bytes, b: bytes) -> array:
    """``t[i * (len(b) + 1) + j]``: the LCS length of a[:i] and b[:j]."""
    width = len(b) + 1
    t = array("I", bytes(4 * (len(a) + 1) * width))
    for i in range(1, len(a) + 1):
        ai = a[i - 1]
        row, up = i * width, (i - 1) * width
        for j in range(1, width):
            if ai == b[j - 1]:
                t[row + j] = t[up + j - 1] + 1
            else:
                left, above = t[row + j - 1], t[up + j]
                t[row + j] = left if left > above else above
    return t


def install(ctx: Context, max_bulk: int) -> None:
    alive = ctx.alive

    def value(key: bytes) -> bytes:
        found = alive(key)
        if found is None:
            return b""
        if found.__class__ is bytearray:
            return bytes(found)
        if found.__class__ is not bytes:
            raise Reply(NOT_STRINGS)
        return found

    def lcs(argv: list, client: Any) -> bytes:
        get_len = get_idx = with_len = False
        min_len = 0
        j = 3
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"idx":
                get_idx = True
            elif opt == b"len":
                get_len = True
            elif opt == b"withmatchlen":
                with_len = True
            elif opt == b"minmatchlen" and j + 1 < len(argv):
                min_len = string2ll(argv[j + 1])
                if min_len is None:
                    raise Reply(error_reply("value is not an integer or out of range"))
                min_len = max(min_len, 0)
                j += 1
            else:
                raise Reply(SYNTAX)
            j += 1
        a, b = value(argv[1]), value(argv[2])
        if get_len and get_idx:
            raise Reply(LEN_AND_IDX)
        if (len(a) + 1) * (len(b) + 1) * 4 > max_bulk:
            raise Reply(TOO_LONG)
        t = table(a, b)
        width = len(b) + 1
        total = t[len(a) * width + len(b)]
        if get_len:
            return integer(total)
        result = bytearray(total)
        matches = []
        idx, i, j = total, len(a), len(b)
        a_start = a_end = b_start = b_end = -1
        while i > 0 and j > 0:
            emit = False
            if a[i - 1] == b[j - 1]:
                result[idx - 1] = a[i - 1]
                if a_start < 0:
                    a_start = a_end = i - 1
                    b_start = b_end = j - 1
                elif a_start == i and b_start == j:  # contiguous: extend the range backwards
                    a_start -= 1
                    b_start -= 1
                else:
                    emit = True
                if a_start == 0 or b_start == 0:
                    emit = True
                idx, i, j = idx - 1, i - 1, j - 1
            else:
                if t[(i - 1) * width + j] > t[i * width + j - 1]:
                    i -= 1
                else:
                    j -= 1
                if a_start >= 0:
                    emit = True
            if emit:
                length = a_end - a_start + 1
                if min_len == 0 or length >= min_len:
                    matches.append((a_start, a_end, b_start, b_end, length))
                a_start = -1
        if not get_idx:
            return bulk(bytes(result))
        body = b"".join(
            b"*%d\r\n*2\r\n%s%s*2\r\n%s%s%s" % (2 + with_len, integer(s1), integer(e1), integer(s2), integer(e2),
                                              integer(n) if with_len else b"")
            for s1, e1, s2, e2, n in matches)
        head = b"%2\r\n" if ctx.resp3 else b"*4\r\n"
        return head + bulk(b"matches") + b"*%d\r\n" % len(matches) + body + bulk(b"len") + integer(total)

    ctx.register("lcs", (-3, ("readonly",), 1, 1, 1), lcs)
