"""Glob patterns: Redis's results, in linear time.

:func:`stringmatchlen` is the port of Redis's function; :func:`matches` (what the
commands use) must agree with it everywhere, and the port itself with a real
redis-server (KEYS) on patterns chosen for their corner cases.
"""

from __future__ import annotations

import random
import time

import pytest
from netcore_resp.glob import matches, stringmatchlen

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

#: (pattern, subject, Redis's answer): the cases of Redis's own tests (keyspace.tcl,
#: util.c) and the corner cases of the class syntax.
CASES = [
    (b"*", b"", False), (b"", b"", True), (b"*", b"a", True), (b"a*", b"a", True), (b"?", b"", False),
    (b"h?llo", b"hello", True), (b"h*llo", b"heeeello", True), (b"h[ae]llo", b"hallo", True),
    (b"h[^e]llo", b"hallo", True), (b"h[^e]llo", b"hello", False), (b"h[a-b]llo", b"hbllo", True),
    (b"h[b-a]llo", b"hallo", True), (b"h\\*llo", b"h*llo", True), (b"h\\*llo", b"hello", False),
    (b"[abc", b"b", True), (b"[abc", b"d", False), (b"[]", b"a", False), (b"[^]", b"a", True),
    (b"a\\", b"a\\", True), (b"[\\]]", b"]", True), (b"[a-", b"-", True), (b"*[", b"x[", False),
    (b"foo*bar", b"foobar", True), (b"foo*bar", b"foobarbar", True), (b"*a*b", b"ab", True),
    (b"*a*a*a*a*a*a*a*a*a*a*a*ab", b"a" * 3000, False),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), CASES)
def test_known_answers(pattern, subject, expected):
    assert stringmatchlen(pattern, subject) is expected
    assert matches(pattern, subject) is expected


def test_compiled_matcher_agrees_with_the_port_on_random_patterns():
    # An alphabet of every special byte and two plain ones, so that classes, escapes,
    # ranges and stars meet in every combination.
    rnd = random.Random(14)
    for _ in range(30000):
        pattern = bytes(rnd.choice(b"ab*?[]^\\-") for _ in range(rnd.randint(0, 9)))
        subject = bytes(rnd.choice(b"ab-^]\\[*") for _ in range(rnd.randint(0, 7)))
        assert matches(pattern, subject) == stringmatchlen(pattern, subject), (pattern, subject)


def test_nocase_as_config_get_uses_it():
    assert matches(b"MAX*", b"maxmemory", True)
    assert stringmatchlen(b"MAX*", b"maxmemory", True)
    assert not matches(b"MAX*", b"maxmemory")


def test_crafted_patterns_are_linear():
    """Redis's worst case for a backtracking matcher: both answer in well under a millisecond per key."""
    subject = b"a" * 3000
    for pattern in (b"*a*a*a*a*a*a*a*a*a*a*a*ab", b"a*" * 200 + b"b", b"*?" * 300 + b"b"):
        started = time.perf_counter()
        assert not matches(pattern, subject)
        assert time.perf_counter() - started < 0.05, pattern


def test_port_agrees_with_redis_server(redis_server):
    conn = redis.Redis(*redis_server, protocol=2)
    subjects = [b"", b"a", b"ab", b"a-b", b"]", b"\\", b"[x", b"hello", b"hallo", b"h*llo", b"^a"]
    conn.flushall()
    for key in subjects:
        conn.set(key, b"1")
    patterns = [p for p, _, _ in CASES if len(p) < 30] + [b"[^a-", b"[\\", b"\\", b"*\\", b"[-a]", b"[a-]*"]
    for pattern in patterns:
        expected = set(conn.keys(pattern))
        assert {s for s in subjects if stringmatchlen(pattern, s) or (pattern == b"*")} == expected, pattern
    conn.flushall()
