"""Clients written by others -- redis-py and redis-cli -- against real resp servers.

The cross product is kept small (every poller under ``inline``; ``pool`` and
``multi-reactor`` under ``epoll-lt`` and ``poll``; the blocking schemes once), and each
server is shared by the tests of one parameter set.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from netcore.testing.server_process import ServerProcess

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

COMBINATIONS = [
    ("select", "inline"), ("poll", "inline"), ("epoll-lt", "inline"), ("epoll-et", "inline"),
    ("epoll-lt", "pool"), ("poll", "pool"), ("epoll-lt", "multi-reactor"), ("poll", "multi-reactor"),
    (None, "threading"),
]


def serve_args(poller: str | None, dispatch: str) -> list[str]:
    args = ["--protocol", "resp", "--dispatch", dispatch, "--set", "resp_expire_interval=0.02"]
    if poller:
        args += ["--poller", poller]
    if dispatch in ("pool", "multi-reactor-pool", "thread"):
        args += ["--threads", "4"]
    if dispatch in ("multi-reactor", "multi-reactor-pool", "prethread-blocking"):
        args += ["--workers", "2"]
    return args


@pytest.fixture(scope="module", params=COMBINATIONS, ids=lambda c: f"{c[0] or 'blocking'}-{c[1]}")
def server(request):
    with ServerProcess(*serve_args(*request.param)) as proc:
        yield proc
        proc.stop()


@pytest.fixture
def client(server):
    host, port = server.address
    # RESP2: redis-py 8 would ask for RESP3 (HELLO 3), which resp refuses as Redis refuses
    # a version it lacks; older redis-py defaults to 2 anyway.
    conn = redis.Redis(host=host, port=port, socket_timeout=20, decode_responses=False, protocol=2)
    conn.flushall()
    yield conn
    conn.close()


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.02)


def test_strings(client):
    assert client.ping() is True
    assert client.echo(b"hi") == b"hi"
    assert client.set("k", b"v") is True
    assert client.get("k") == b"v"
    assert client.get("nope") is None
    assert client.set("k", b"w", nx=True) is None
    assert client.set("k", b"w", xx=True, get=True) == b"v"
    assert client.getset("k", b"x") == b"w"
    assert client.setnx("k", b"y") is False and client.setnx("k2", b"y") is True
    assert client.mset({"a": b"1", "b": b"2"}) is True
    assert client.mget(["a", "b", "nope"]) == [b"1", b"2", None]
    assert client.incr("a") == 2 and client.incrby("a", 10) == 12
    assert client.decr("a") == 11 and client.decrby("a", 5) == 6
    assert client.append("b", b"34") == 3 and client.get("b") == b"234"
    assert client.strlen("b") == 3
    assert client.exists("a", "b", "nope") == 2
    assert client.delete("a", "nope") == 1 and client.unlink("b") == 1
    assert client.type("k") == b"string" and client.type("nope") == b"none"
    with pytest.raises(redis.ResponseError, match="not an integer"):
        client.incr("k")
    client.rpush("l", b"x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.get("l")


def test_lists_and_hashes(client):
    assert client.rpush("l", b"a", b"b") == 2
    assert client.lpush("l", b"z") == 3
    assert client.lrange("l", 0, -1) == [b"z", b"a", b"b"]
    assert client.llen("l") == 3
    assert client.lpop("l") == b"z" and client.rpop("l") == b"b"
    assert client.lpop("l", 5) == [b"a"]
    assert client.exists("l") == 0
    assert client.hset("h", mapping={"f1": b"v1", "f2": b"v2"}) == 2
    assert client.hget("h", "f1") == b"v1"
    assert client.hgetall("h") == {b"f1": b"v1", b"f2": b"v2"}
    assert client.hdel("h", "f1", "nope") == 1
    assert client.type("h") == b"hash"


def test_keyspace_commands(client):
    client.mset({"one": b"1", "two": b"2", "three": b"3"})
    assert sorted(client.keys("t*")) == [b"three", b"two"]
    assert sorted(client.keys()) == [b"one", b"three", b"two"]
    assert client.dbsize() == 3
    info = client.info()
    assert info["redis_version"] and info["db0"]["keys"] == 3
    assert client.client_setname("tester") is True and client.client_getname() in ("tester", b"tester")
    assert client.execute_command("SELECT", 0) in (True, b"OK")
    assert client.config_get("appendonly") in ({"appendonly": "no"}, {b"appendonly": b"no"})
    count = client.execute_command("COMMAND COUNT")
    assert count >= 40
    assert client.flushdb() is True and client.dbsize() == 0


def test_pipeline_keeps_order(client):
    pipe = client.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"k{i}", i)
        pipe.get(f"k{i}")
        pipe.incr("counter")
    replies = pipe.execute()
    assert replies[1::3] == [str(i).encode() for i in range(500)]
    assert replies[2::3] == list(range(1, 501))


def test_expiry_lazy_and_active(client):
    client.set("soon", b"v", px=100)
    client.set("later", b"v", ex=100)
    client.set("gone-unread", b"v", px=50)
    assert 0 < client.pttl("soon") <= 100
    assert client.ttl("later") == 100
    wait_for(lambda: client.get("soon") is None, "lazy expiry of 'soon'")
    # DBSIZE counts keys not yet removed: it drops only when the sweep removes the
    # expired key that nobody reads.
    wait_for(lambda: client.dbsize() == 1, "the active sweep removing 'gone-unread'")
    assert client.persist("later") is True and client.ttl("later") == -1
    assert client.expire("later", 1000) is True and client.ttl("later") == 1000


def test_many_keys_expire_without_reads(client):
    pipe = client.pipeline(transaction=False)
    for i in range(3000):  # more than one sweep's worth (200 by default)
        pipe.set(f"e{i}", b"v", px=30)
    pipe.execute()
    wait_for(lambda: client.dbsize() == 0, "3000 expired keys swept")
    assert client.info("stats")["expired_keys"] >= 3000


def test_redis_cli(server):
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed (Debian: apt-get install redis-tools)")
    host, port = server.address

    def run(*args: str, stdin: str | None = None) -> str:
        res = subprocess.run([cli, "-h", host, "-p", str(port), *args], input=stdin, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    assert run("FLUSHALL") == "OK\n"
    assert run("PING") == "PONG\n"
    assert run("SET", "greeting", "hello world") == "OK\n"
    assert run("GET", "greeting") == "hello world\n"
    assert run("RPUSH", "l", "a", "b") == "2\n"
    assert run("LRANGE", "l", "0", "-1") == "a\nb\n"
    assert run("HSET", "h", "f", "v") == "1\n"
    assert run("HGETALL", "h") == "f\nv\n"
    assert run("NOSUCHCOMMAND", "x").strip() == "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x'"
    assert run("GET", "l").strip() == "WRONGTYPE Operation against a key holding the wrong kind of value"
    # --pipe: redis-cli's mass insertion mode, many commands in a stream.
    script = "".join(f"SET pipe{i} {i}\r\n" for i in range(2000))
    out = run("--pipe", stdin=script)
    assert "errors: 0, replies: 2000" in out
    assert run("DBSIZE") == "2003\n"
