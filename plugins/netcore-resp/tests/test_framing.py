"""The reference parser, inline splitting and glob patterns, in process (no server needed)."""

from __future__ import annotations

import random

import pytest
from netcore_resp.framing import INVALID_BULK, INVALID_MULTIBULK, TOO_BIG_INLINE, RequestParser, splitargs, string2ll
from netcore_resp.glob import matches


def encode(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


STREAM = (encode(b"SET", b"k", b"v" * 3000) + b"PING\r\n" + encode(b"GET", b"k") + b"ECHO \"a b\"\n"
          + b"*0\r\n" + encode(b"MSET", *[b"%d" % i for i in range(300)]) + encode(b"X", b"\r\n\x00*$"))
EXPECTED = [[b"SET", b"k", b"v" * 3000], [b"PING"], [b"GET", b"k"], [b"ECHO", b"a b"],
            [b"MSET", *[b"%d" % i for i in range(300)]], [b"X", b"\r\n\x00*$"]]


@pytest.mark.parametrize("seed", range(20))
def test_any_split_of_the_stream_gives_the_same_commands(seed):
    rnd = random.Random(seed)
    parser = RequestParser()
    got, i = [], 0
    while i < len(STREAM):
        n = rnd.randint(1, 200)
        cmds, error = parser.feed(STREAM[i:i + n])
        assert error is None
        got += cmds
        i += n
    assert got == EXPECTED and parser.idle


def test_a_large_bulk_is_not_rescanned_for_every_piece():
    parser = RequestParser()
    parser.feed(b"*2\r\n$4\r\nECHO\r\n$1000000\r\n")
    for _ in range(999):
        assert parser.feed(b"x" * 1000) == ([], None)
        assert parser._need == 1000002  # the bulk, then its CRLF: nothing parsed meanwhile
    assert parser.feed(b"x" * 1000 + b"\r\n") == ([[b"ECHO", b"x" * 1000000]], None)


@pytest.mark.parametrize("data, error", [
    (b"*1\r\n$11\r\n", INVALID_BULK),  # over max_bulk=10, before any payload
    (b"*4\r\n", INVALID_MULTIBULK),  # over max_multibulk=3
    (b"*1\x00", INVALID_MULTIBULK),
    (b"*1\r\n$1\x00", INVALID_BULK),
    (b"x" * 1025, TOO_BIG_INLINE),
])
def test_limits_are_applied_as_soon_as_seen(data, error):
    parser = RequestParser(max_bulk=10, max_multibulk=3, max_inline=1024)
    assert parser.feed(data) == ([], error)


def test_string2ll_is_redis_strict():
    assert [string2ll(x) for x in (b"0", b"-1", b"123", b"9223372036854775807", b"-9223372036854775808")] == \
        [0, -1, 123, 2**63 - 1, -(2**63)]
    for bad in (b"", b"-0", b"+1", b"01", b" 1", b"1 ", b"1.0", b"9223372036854775808", b"1_0", b"\xd9\xa1"):
        assert string2ll(bad) is None, bad


@pytest.mark.parametrize("line, args", [
    (b"SET a b", [b"SET", b"a", b"b"]),
    (b"  a \t b  ", [b"a", b"b"]),
    (b'ECHO "a b"', [b"ECHO", b"a b"]),
    (b'"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\"z"', [b"AJ\n\r\t\b\a\\\"z"]),
    (b'"\\xZZ"', [b"xZZ"]),
    (b"'it\\'s' ok", [b"it's", b"ok"]),
    (b"'no \\n escape'", [b"no \\n escape"]),
    (b'a"b c"', [b"ab c"]),
    (b'a"b c"d', None),
    (b"a\x0bb", [b"a\x0bb"]),  # \v ends no word (sdssplitargs), though it is skipped between words
    (b"", []),
    (b'"unterminated', None),
    (b"'unterminated", None),
    (b'"closed"x', None),
    (b"'closed'x", None),
])
def test_splitargs_is_sdssplitargs(line, args):
    assert splitargs(line) == args


@pytest.mark.parametrize("pattern, subject, result", [
    (b"*", b"anything", True), (b"h?llo", b"hello", True), (b"h?llo", b"hllo", False),
    (b"h[ae]llo", b"hallo", True), (b"h[^e]llo", b"hello", False), (b"h[^e]llo", b"hallo", True),
    (b"h[a-b]llo", b"hbllo", True), (b"h[b-a]llo", b"hbllo", True), (b"h\\*llo", b"h*llo", True),
    (b"h\\*llo", b"hello", False), (b"a[", b"a", False), (b"a[bc", b"ab", True), (b"[]", b"x", False),
    (b"[^]", b"x", True), (b"*.txt", b"a.txt", True), (b"*.txt", b"atxt", False), (b"a**b", b"ab", True),
    (b"a\nb*", b"a\nbc", True), (b"[\\]]", b"]", True),
])
def test_glob_is_stringmatchlen(pattern, subject, result):
    assert matches(pattern, subject) is result
