"""The fast path's splitters against the reference parser (the Python port of Redis's).

A splitter may return None for any read (the reference parser then takes it), but when
it returns commands they must be exactly what Redis would have read: what the reference
parser gives for the same bytes, with no error and nothing left over. Both splitters are
held to that: the compiled one (where it is built, as in CI) and the hiredis one (always,
since it is what a machine without a C compiler or Python's headers runs). The compiled
one must also accept every canonical read, or it would be a slow path in disguise.

The server-level test runs ``netcore serve`` with the compiled splitter made unimportable,
as on such a machine: it must say so at start and serve pipelines all the same.
"""

from __future__ import annotations

import random
import socket

import pytest
from netcore.testing.server_process import ServerProcess, module_env
from netcore_resp import splitting
from netcore_resp.framing import RequestParser

PATIENCE = 20.0
BULK_MAX = 512 * 1024 * 1024
MULTIBULK_MAX = 1024 * 1024


def encode(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def reference(data: bytes, max_bulk: int = BULK_MAX, max_multibulk: int = MULTIBULK_MAX) -> list | None:
    """What Redis reads from ``data`` if it is all complete commands without an error, else None."""
    parser = RequestParser(max_bulk, max_multibulk)
    cmds, error = parser.feed(data)
    return cmds if error is None and parser.idle else None


def splitters(max_bulk: int = BULK_MAX, max_multibulk: int = MULTIBULK_MAX, recv_size: int = 65536) -> dict:
    found = {"hiredis": splitting.HiredisSplitter(max_bulk, max_multibulk, recv_size)}
    if splitting.COMPILED:
        found["compiled"] = splitting.splitter_factory(max_bulk, max_multibulk, recv_size)()
    return found


def random_command(rnd: random.Random) -> list[bytes]:
    alphabet = b"ab*$+:-\r\n0123456789\x00 "
    return [bytes(rnd.choice(alphabet) for _ in range(rnd.choice((0, 1, 3, 9, 10, 99, 100, 300))))
            for _ in range(rnd.choice((1, 2, 3, 9, 10, 11)))]


#: Headers hiredis reads in a reply and Redis does not in a request.
REPLY_TYPES = {bytes([c]) for c in b"+:-~>%|=(,#_!"}

MUTATIONS = (
    lambda s, i: s[:i] + s[i + 1:],                       # a byte lost
    lambda s, i: s[:i] + b"0" + s[i:],                    # a zero in front of a count (or inside a payload)
    lambda s, i: s[:i] + b"+" + s[i + 1:],                # a header turned simple string / plus sign
    lambda s, i: s[:i] + b":" + s[i + 1:],
    lambda s, i: s[:i] + b"~" + s[i + 1:],                # RESP3 set, which hiredis reads as a list
    lambda s, i: s[:i] + b"-" + s[i:],                    # a negative count
    lambda s, i: s[:i] + b"\n" + s[i + 1:],               # a CR lost
    lambda s, i: s[:i] + b"\x00" + s[i + 1:],
    lambda s, i: s[:i],                                   # the read ends inside a command
    lambda s, i: s[:i] + b"9" + s[i:],                    # a count made longer
)


@pytest.mark.parametrize("seed", range(4))
def test_what_a_splitter_returns_is_what_redis_reads(seed):
    rnd = random.Random(seed)
    for _ in range(1000):
        data = b"".join(encode(*random_command(rnd)) for _ in range(rnd.randint(1, 5)))
        for _ in range(rnd.randint(0, 3)):
            data = rnd.choice(MUTATIONS)(data, rnd.randrange(len(data) + 1))
        if not data:
            continue
        expected = reference(data)
        for name, split in splitters().items():
            got = split(data)
            if name == "hiredis" and got not in (None, expected):
                # Its known limit (splitting's docstring): a reply-type header kept the length.
                assert any(line[:1] in REPLY_TYPES for line in data.split(b"\r\n")), data
                continue
            assert got is None or got == expected, (name, data)
            if name == "compiled" and expected is not None and data == b"".join(encode(*c) for c in expected):
                assert got == expected, ("a canonical read refused", data)


@pytest.mark.parametrize("data", [
    b"*2\r\n$0003\r\nGET\r\n+abc\r\n",       # "+" and zero padding: the same length as canonical
    b"*1\r\n+PING\r\n", b"*1\r\n:1\r\n", b"*1\r\n*1\r\n$4\r\nPING\r\n", b"*1\r\n$-1\r\n",
    b"*1\r\n$03\r\nabc\r\n", b"*01\r\n$4\r\nPING\r\n", b"*+1\r\n$4\r\nPING\r\n", b"*1\r\n$+4\r\nPING\r\n",
    b"*1\r\n$4\r\nPINGxx", b"*1\r\n$4\nPING\r\n", b"*1\n$4\r\nPING\r\n", b"*1\r\n$4\r\nPI\x00G\r",
    b"*0\r\n", b"*-1\r\n", b"PING\r\n", b"", b"*", b"*1\r\n", b"*1\r\n$4\r\nPING\r\n*",
    b"*2147483647\r\n$4\r\nPING\r\n", b"*1\r\n$99999999999999999999\r\nx\r\n", b"*1\r\n$4 \r\nPING\r\n",
])
def test_the_compiled_splitter_takes_only_canonical_requests(data):
    if not splitting.COMPILED:
        pytest.skip("the C splitter is not built here (no compiler or no Python headers)")
    assert splitters()["compiled"](data) is None


def test_the_limits_send_a_read_to_the_reference_parser():
    """Over resp_max_bulk or resp_max_multibulk Redis answers an error, which only the
    reference parser gives: neither splitter may take such a read."""
    over_bulk = encode(b"SET", b"k", b"v" * 101)
    over_args = encode(*[b"x"] * 11)
    within = encode(b"SET", b"k", b"v" * 100) + encode(*[b"x"] * 10)
    for name, split in splitters(max_bulk=100, max_multibulk=10, recv_size=64).items():
        assert split(over_bulk) is None and split(over_args) is None, name
        assert reference(over_bulk, 100, 10) is None and reference(over_args, 100, 10) is None
        assert split(within) in (None, reference(within, 100, 10)), name
    assert splitters(max_bulk=100, max_multibulk=10)["compiled" if splitting.COMPILED else "hiredis"](within) \
        in (None, [[b"SET", b"k", b"v" * 100], [b"x"] * 10])


def test_a_read_that_failed_leaves_no_state_behind():
    """After a refused read the next one is judged alone (hiredis's reader is reset)."""
    for name, split in splitters().items():
        assert split(encode(b"SET", b"k", b"v")[:-3]) is None, name
        assert split(encode(b"GET", b"k")) == [[b"GET", b"k"]], name


def test_a_large_pipeline_in_one_read():
    cmds = [[b"SET", b"key:%d" % i, b"v" * (i % 300)] for i in range(2000)]
    data = b"".join(encode(*c) for c in cmds)
    for name, split in splitters().items():
        assert split(data) in (None, cmds), name
    if splitting.COMPILED:
        assert splitters()["compiled"](data) == cmds


# -- the server without the compiled splitter ---------------------------------------------
WITHOUT_C = """\
import sys
sys.modules["netcore_resp._multibulk"] = None  # as where it was never built: importing it fails
"""


def exchange(address: tuple[str, int], data: bytes, expected: int, until_closed: bool) -> bytes:
    """Send ``data``; read ``expected`` bytes, or (``until_closed``) everything until FIN."""
    with socket.create_connection(address, timeout=PATIENCE) as sock:
        sock.sendall(data)
        got = b""
        while until_closed or len(got) < expected:
            chunk = sock.recv(65536)
            if not chunk:
                assert until_closed, f"closed after {got!r}"
                break
            got += chunk
        return got


@pytest.mark.parametrize("compiled", [False, True], ids=["without-c", "as-installed"])
def test_the_server_serves_pipelines_with_either_splitter_and_says_which(tmp_path, compiled):
    if compiled and not splitting.COMPILED:
        pytest.skip("the C splitter is not built here (no compiler or no Python headers)")
    env = {} if compiled else module_env(tmp_path, "sitecustomize", WITHOUT_C)
    pipeline = b"".join(encode(b"SET", b"k%d" % i, b"v" * i) for i in range(50))
    pipeline += b"".join(encode(b"GET", b"k%d" % i) for i in range(50))
    pipeline += b"*2\r\n$0003\r\nGET\r\n+k10\r\n"  # Redis: a protocol error, then it closes
    expected = b"+OK\r\n" * 50 + b"".join(b"$%d\r\n%s\r\n" % (i, b"v" * i) for i in range(50))
    error = b"-ERR Protocol error: invalid bulk length\r\n"  # Redis judges $0003 first
    with ServerProcess("--protocol", "resp", "--dispatch", "inline", env=env) as server:
        got = exchange(server.address, pipeline, len(expected), until_closed=compiled)
        server.stop()
    warned = [e for e in server.events if e.get("event") == "resp.splitter_not_compiled"]
    assert bool(warned) is not compiled
    assert got[:len(expected)] == expected
    if compiled:
        assert got[len(expected):] == error
