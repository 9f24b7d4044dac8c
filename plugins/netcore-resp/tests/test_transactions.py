"""MULTI/EXEC/DISCARD/WATCH: byte for byte against redis-server, and across connections
under the in-process schemes (WATCH invalidation by another client; redis-py's retry loop)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from netcore.testing.server_process import ServerProcess

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 20.0

CASES = {
    "multi-exec": b"MULTI\r\nSET a 1\r\nINCR a\r\nGET a\r\nLPUSH a x\r\nEXEC\r\nGET a\r\n",
    "errors": b"EXEC\r\nDISCARD\r\nMULTI x\r\nMULTI\r\nMULTI\r\nWATCH a\r\nSET a\r\nNOSUCH\r\nGET a\r\nEXEC\r\n"
              b"GET a\r\nEXEC\r\n",
    "discard": b"MULTI\r\nSET a 1\r\nDISCARD\r\nGET a\r\nEXEC\r\nWATCH\r\nUNWATCH x\r\nUNWATCH\r\n",
    "watch-own-write": b"SET w 1\r\nWATCH w\r\nSET w 2\r\nMULTI\r\nGET w\r\nEXEC\r\nWATCH w\r\nMULTI\r\nGET w\r\nEXEC\r\n",
    "watch-flush": b"SET w 1\r\nWATCH w\r\nFLUSHALL\r\nMULTI\r\nPING\r\nEXEC\r\n",
    "empty": b"MULTI\r\nEXEC\r\nmulti\r\nping\r\nExEc\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name, same_bytes):
    same_bytes(CASES[name])


SCHEMES = {
    "inline": ["--dispatch", "inline", "--poller", "epoll-lt"],
    "pool": ["--dispatch", "pool", "--threads", "4", "--poller", "epoll-lt"],
    "multi-reactor": ["--dispatch", "multi-reactor", "--workers", "2", "--poller", "epoll-lt"],
    "threading": ["--dispatch", "threading"],
}


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def server(request):
    with ServerProcess("--protocol", "resp", *SCHEMES[request.param]) as proc:
        yield proc
        proc.stop()


def test_another_connection_invalidates_a_watch(server):
    watcher = socket.create_connection(server.address, timeout=PATIENCE)
    writer = redis.Redis(*server.address, socket_timeout=PATIENCE)
    try:
        watcher.sendall(b"SET w 1\r\nWATCH w\r\n")
        expect(watcher, b"+OK\r\n+OK\r\n")
        writer.set("w", 2)
        watcher.sendall(b"MULTI\r\nGET w\r\nEXEC\r\n")
        expect(watcher, b"+OK\r\n+QUEUED\r\n*-1\r\n")
        watcher.sendall(b"WATCH w\r\nMULTI\r\nGET w\r\nEXEC\r\n")  # not touched this time
        expect(watcher, b"+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n$1\r\n2\r\n")
    finally:
        watcher.close()
        writer.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_watch_retry_loops_lose_no_increment(server, protocol):
    clients, rounds = 4, 20  # 80 contended increments: a lost one fails the count
    main = redis.Redis(*server.address, protocol=protocol, socket_timeout=PATIENCE)
    main.delete("counter")
    failures: list = []

    def work() -> None:
        conn = redis.Redis(*server.address, protocol=protocol, socket_timeout=PATIENCE)
        try:
            for _ in range(rounds):
                for _attempt in range(1000):
                    with conn.pipeline() as pipe:
                        try:
                            pipe.watch("counter")
                            value = int(pipe.get("counter") or 0)
                            pipe.multi()
                            pipe.set("counter", value + 1)
                            pipe.execute()
                            break
                        except redis.WatchError:
                            continue
                else:
                    failures.append("1000 attempts without a successful EXEC")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE * 3)
    assert not failures
    assert int(main.get("counter")) == clients * rounds
    pipe = main.pipeline(transaction=True)
    pipe.incr("counter").incr("counter")
    assert pipe.execute() == [clients * rounds + 1, clients * rounds + 2]
    main.close()


def expect(sock: socket.socket, wanted: bytes) -> None:
    got = b""
    deadline = time.monotonic() + PATIENCE
    while len(got) < len(wanted) and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {got!r}"
        got += chunk
    assert got == wanted
