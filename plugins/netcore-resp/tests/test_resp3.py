"""RESP3 after HELLO 3, byte for byte against redis-server; and redis-py 8 with its defaults.

The HELLO reply itself holds values that differ between servers (version, client id), so
it is checked for its shape; everything after it on the same connection must be the
bytes redis-server sends.
"""

from __future__ import annotations

import socket
import time

import pytest

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 20.0
MARKER = b"$7\r\n__end__\r\n"

CASES = {
    "nulls": b"GET nope\r\nMGET a nope\r\nSET a 1\r\nMGET a nope\r\nLPOP nope\r\nLPOP nope 2\r\nHGET nope f\r\n"
             b"SET a 2 GET\r\nSET b 1 NX GET\r\nCLIENT GETNAME\r\n",
    "maps": b"HSET h a 1 b 2\r\nHGETALL h\r\nHGETALL nope\r\nCONFIG GET maxmemory\r\nCONFIG GET nomatch\r\n",
    "hello-errors": b"HELLO 4\r\nHELLO x\r\nHELLO 3 FOO\r\nHELLO 3 AUTH default\r\nHELLO 3 AUTH bob secret\r\n"
                    b"HELLO 3 SETNAME \"a b\"\r\nAUTH x\r\nAUTH bob x\r\nAUTH default x\r\nAUTH\r\n",
}


def session(address, script: bytes, version: bytes = b"3") -> tuple[bytes, bytes]:
    """HELLO ``version``, then ``script`` + ECHO marker: (the HELLO reply, the rest)."""
    with socket.create_connection(address, timeout=PATIENCE) as sock:
        sock.sendall(b"FLUSHALL\r\nHELLO " + version + b"\r\n")
        got = b""
        deadline = time.monotonic() + PATIENCE
        while not got.endswith(b"$7\r\nmodules\r\n*0\r\n"):
            assert time.monotonic() < deadline, got
            chunk = sock.recv(65536)
            assert chunk, f"closed after {got!r}"
            got += chunk
        hello = got
        sock.sendall(script + b"ECHO __end__\r\n")
        got = b""
        while not got.endswith(MARKER):
            assert time.monotonic() < deadline, got
            chunk = sock.recv(65536)
            assert chunk, f"closed after {got!r}"
            got += chunk
        return hello, got[:-len(MARKER)]


def test_hello_reply_shape(redis_server, resp_inline):
    for version, head in ((b"3", b"%7\r\n"), (b"2", b"*14\r\n")):
        theirs, _ = session(redis_server, b"", version)
        ours, _ = session(resp_inline.address, b"", version)
        assert theirs.startswith(b"+OK\r\n" + head) and ours.startswith(b"+OK\r\n" + head)
        assert b"$5\r\nproto\r\n:" + version in ours


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name, redis_server, resp_inline):
    assert session(resp_inline.address, CASES[name])[1] == session(redis_server, CASES[name])[1]


def test_hello_switches_in_the_middle_of_a_pipeline(resp_inline):
    """The commands after HELLO in the same read answer in the new protocol."""
    _, got = session(resp_inline.address, b"HSET h a 1\r\nHELLO 2 SETNAME two\r\nHGETALL h\r\nGET nope\r\n"
                                          b"CLIENT GETNAME\r\nHELLO 3\r\nGET nope\r\n")
    assert got.startswith(b":1\r\n*14\r\n")
    after = got.split(b"$7\r\nmodules\r\n*0\r\n")
    assert after[1].startswith(b"*2\r\n$1\r\na\r\n$1\r\n1\r\n$-1\r\n$3\r\ntwo\r\n%7\r\n")
    assert after[2] == b"_\r\n"


def test_redis_py_defaults_speak_resp3(resp_inline):
    r = redis.Redis(*resp_inline.address, socket_timeout=PATIENCE)
    try:
        assert r.ping()
        assert r.connection_pool.get_connection().protocol in (3, "3")
        r.flushall()
        assert r.set("k", "v") and r.get("k") == b"v" and r.get("missing") is None
        r.hset("h", mapping={"a": "1", "b": "2"})
        assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
        assert r.info()["redis_version"]
        pipe = r.pipeline(transaction=False)
        for i in range(100):
            pipe.set(f"p{i}", i)
            pipe.get(f"p{i}")
        replies = pipe.execute()
        assert replies == [x for i in range(100) for x in (True, str(i).encode())]
        r.client_setname("me")
        assert r.client_getname() in ("me", b"me")
    finally:
        r.close()
