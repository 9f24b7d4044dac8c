"""One keyspace, many threads: every command atomic, every connection's commands in order.

Under the schemes that run handlers on several threads (``pool``, ``thread``,
``thread-per-connection``, ``multi-reactor``, ``multi-reactor-pool``, and the blocking
``threading`` and ``prethread-blocking``) many clients INCR the same key, pipelined and
not; the total must be exact. A lost update would show as a smaller number.
"""

from __future__ import annotations

import threading

import pytest
from netcore.testing.server_process import ServerProcess

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

SCHEMES = {
    "pool": ["--threads", "4"],
    "thread": ["--threads", "8"],
    "thread-per-connection": [],
    "multi-reactor": ["--workers", "2"],
    "multi-reactor-pool": ["--workers", "2", "--threads", "4"],
    "threading": [],
    "prethread-blocking": ["--workers", "16"],
}
CLIENTS = 12
ROUNDS = 20
PIPELINE = 25


@pytest.fixture(scope="module")
def eager_thread_switches(tmp_path_factory):
    """Environment for a server whose threads switch every microsecond instead of every 5 ms.

    The GIL's default switch interval makes a race inside a few-microsecond command rare
    enough to pass by luck; switching this often makes an unprotected read-modify-write
    lose updates within a few thousand commands (checked by running these tests with the
    keyspace lock removed).
    """
    directory = tmp_path_factory.mktemp("switchinterval")
    (directory / "sitecustomize.py").write_text("import sys\nsys.setswitchinterval(1e-6)\n")
    return {"PYTHONPATH": str(directory)}


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def server(request, eager_thread_switches):
    poller = [] if request.param in ("threading", "prethread-blocking") else ["--poller", "epoll-lt"]
    with ServerProcess("--protocol", "resp", "--dispatch", request.param, *poller, *SCHEMES[request.param],
                       env=eager_thread_switches) as proc:
        yield proc
        proc.stop()


def run_clients(server, body) -> list:
    host, port = server.address
    failures: list = []

    def run(i: int) -> None:
        conn = redis.Redis(host=host, port=port, socket_timeout=30, protocol=2)
        try:
            body(conn, i)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failures.append((i, repr(exc)))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a client is stuck"
    return failures


def test_concurrent_incr_is_exact(server):
    host, port = server.address
    redis.Redis(host=host, port=port, protocol=2).delete("counter", "list")

    def body(conn, i):
        for r in range(ROUNDS):
            if r % 2:
                conn.incr("counter")
                conn.rpush("list", b"x")
            else:
                pipe = conn.pipeline(transaction=False)
                for _ in range(PIPELINE):
                    pipe.incrby("counter", 2)
                pipe.execute()

    assert run_clients(server, body) == []
    check = redis.Redis(host=host, port=port, protocol=2)
    expected = CLIENTS * (ROUNDS // 2) * (1 + PIPELINE * 2)
    assert int(check.get("counter")) == expected
    assert check.llen("list") == CLIENTS * (ROUNDS // 2)


def test_each_connection_reads_its_own_writes_in_order(server):
    """A pipelined SET then GET of one connection must never run out of order (pool threads)."""

    # Pipelines of ~400 KB: the server reads each in many pieces, so one connection has
    # many batches, which a pool would otherwise run on several threads at once.
    pad = b"p" * 100

    def body(conn, i):
        for r in range(2):
            pipe = conn.pipeline(transaction=False)
            for n in range(1500):
                pipe.set(f"own{i}", b"%d-" % n + pad)
                pipe.get(f"own{i}")
                pipe.append(f"log{i}", b"%d," % n)
            replies = pipe.execute()
            assert replies[1::3] == [b"%d-" % n + pad for n in range(1500)], f"round {r}: out of order"
        assert conn.get(f"log{i}") == b"".join(b"%d," % n for n in range(1500)) * 2

    assert run_clients(server, body) == []
