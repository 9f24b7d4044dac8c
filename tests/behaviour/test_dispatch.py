"""What each scheme does with slow handlers and pipelined requests: the essay's argument,
measured on real servers.

A handler that blocks (``--set echo_delay=D``) stalls every client of a scheme that runs
handlers on its only I/O thread (``inline``) or serves one client at a time
(``iterative``); schemes that run handlers on other threads serve the clients in
parallel. The test compares the elapsed time of N simultaneous requests with the serial
time N x D: a behaviour that is either there or not, with a wide margin, not a speed test.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time

import pytest
from matrix import SERIAL_DISPATCHES

DELAY = 0.5
CLIENTS = 4
#: Schemes whose slow handlers stall the other clients.
STALLING = {"inline", "iterative", "multi-reactor"}


def _timed_requests(address, clients):
    """Each client sends one request at the same moment; returns the elapsed time until all replied."""
    socks = [socket.create_connection(address, timeout=30) for _ in range(clients)]
    go = threading.Barrier(clients + 1)
    replies = {}

    def client(i, sock):
        go.wait(10)
        sock.sendall(b"req%d" % i)
        replies[i] = sock.recv(100)

    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    go.wait(10)
    start = time.monotonic()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - start
    for s in socks:
        s.close()
    assert replies == {i: b"req%d" % i for i in range(clients)}
    return elapsed


def test_slow_handler_stalls_only_single_threaded_schemes(start_server, combination, dispatch):
    if dispatch in SERIAL_DISPATCHES:
        pytest.skip("iterative: covered by test_iterative_serves_one_client_at_a_time")
    if dispatch == "prefork":
        pytest.skip("prefork: a slow handler stalls the clients of its own worker, and which worker "
                    "takes a client is the acceptor's business (tests/test_process_schemes.py)")
    # One I/O loop for multi-reactor (to show it stalls like inline); one thread per client
    # for prethread-blocking (each thread serves its client to the end).
    workers = {"multi-reactor": ["--workers", "1"], "prethread-blocking": ["--workers", str(CLIENTS)]}.get(dispatch, [])
    server = start_server(*combination, *workers, "--protocol", "echo", "--set", f"echo_delay={DELAY}")
    elapsed = _timed_requests(server.address, CLIENTS)
    serial = CLIENTS * DELAY
    if dispatch in STALLING:
        assert elapsed >= serial * 0.95, f"{dispatch} should run slow handlers one after another"
    else:
        assert elapsed < serial * 0.6, f"{dispatch} should overlap slow handlers ({elapsed:.2f}s)"
    assert server.stop() == 0


def test_iterative_serves_one_client_at_a_time(start_server, combination, dispatch):
    if dispatch != "iterative":
        pytest.skip("only the iterative scheme")
    server = start_server(*combination, "--protocol", "echo")
    first = socket.create_connection(server.address, timeout=30)
    first.sendall(b"one")
    assert first.recv(10) == b"one"
    second = socket.create_connection(server.address, timeout=30)  # waits in the backlog
    second.sendall(b"two")
    second.settimeout(0.5)
    with pytest.raises(TimeoutError):
        second.recv(10)  # not served while the first client is connected
    second.settimeout(30)
    first.close()
    assert second.recv(10) == b"two"  # served once the first has left
    second.close()
    assert server.stop() == 0


def test_pipelined_requests_come_back_in_order(start_server, combination, dispatch):
    """Many small requests in flight on one connection; a pool finishes them out of order."""
    server = start_server(*combination, "--protocol", "echo", "--set", "echo_burn=0.0005")
    rng = random.Random(7)
    messages = [b"<%d:%s>" % (i, rng.randbytes(rng.randint(1, 300)).hex().encode()) for i in range(400)]
    expected = b"".join(messages)
    with socket.create_connection(server.address, timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        received = bytearray()

        def read_all():
            while len(received) < len(expected):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        for message in messages:
            sock.sendall(message)  # separate sends: many separate reads, many requests
        reader.join(60)
    assert bytes(received) == expected
    assert server.stop() == 0
    stats = server.stopped_event()["stats"]
    assert stats["requests"] > 1


def test_handler_error_closes_only_its_connection(start_server, combination, dispatch, tmp_path):
    """A handler that raises: its connection closes, the error is logged once, others go on."""
    if dispatch in SERIAL_DISPATCHES:
        pytest.skip("needs two clients at once")
    plugin = tmp_path / "netcore_failing_proto.py"
    plugin.write_text(
        "from netcore import hookimpl\n"
        "from netcore.protocol import Protocol\n"
        "def handle(request):\n"
        "    if request.startswith(b'boom'):\n"
        "        raise ValueError('handler failed on purpose')\n"
        "    return request\n"
        "class Failing(Protocol):\n"
        "    def data_received(self, data):\n"
        "        self.connection.submit(handle, data)\n"
        "@hookimpl\n"
        "def netcore_register_protocols(registry):\n"
        "    registry.register('failing', 'netcore_failing_proto:Failing', 'fails on boom')\n"
    )
    server = start_server("-p", "netcore_failing_proto", *combination, "--protocol", "failing",
                          env={"PYTHONPATH": str(tmp_path)})
    with socket.create_connection(server.address, timeout=30) as good, \
            socket.create_connection(server.address, timeout=30) as bad:
        good.sendall(b"fine")
        assert good.recv(10) == b"fine"
        bad.sendall(b"boom")
        try:
            assert bad.recv(10) == b""
        except ConnectionResetError:
            pass
        good.sendall(b"still")
        assert good.recv(10) == b"still"
    assert server.stop() == 0
    failures = [e for e in server.events if e.get("event") in ("connection.protocol_failed", "connection.handler_failed")]
    assert len(failures) == 1 and "handler failed on purpose" in str(failures[0])
    assert server.stopped_event()["stats"]["errors"] == 1


def _threads_and_fds(pid):
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def test_no_threads_or_fds_left_behind_by_clients(start_server, combination, dispatch):
    """After clients leave, the server is back to the threads and fds it had before them."""
    server = start_server(*combination, "--protocol", "echo")
    workers = int(combination[combination.index("--workers") + 1]) if "--workers" in combination else 1
    for index in range(workers):  # every worker fully set up: its loop, its fds
        server.wait_event("worker.started", 10, worker=index + (1 if dispatch.startswith("multi-reactor") else 0))
    baseline = _threads_and_fds(server.pid)
    clients = 1 if dispatch in SERIAL_DISPATCHES else 20
    socks = [socket.create_connection(server.address, timeout=30) for _ in range(clients)]
    for i, sock in enumerate(socks):
        sock.sendall(b"hello %d" % i)
    for i, sock in enumerate(socks):
        assert sock.recv(100) == b"hello %d" % i
        sock.close()
    deadline = time.monotonic() + 10
    while _threads_and_fds(server.pid) != baseline:  # connection threads end after their client
        assert time.monotonic() < deadline, f"{_threads_and_fds(server.pid)} != {baseline} (threads, fds)"
        time.sleep(0.05)
    assert server.stop() == 0


def test_connection_limit_leaves_clients_waiting_then_serves_them(start_server, combination, dispatch):
    """At --max-connections a worker stops watching its listener: the next client waits in
    the backlog (neither refused nor served) and is served once a connection closes."""
    if dispatch not in ("inline", "thread", "thread-per-connection", "pool", "threading"):
        pytest.skip("the limit applies per accepting worker: single-reactor schemes and threading")
    server = start_server(*combination, "--protocol", "echo", "--max-connections", "2")
    first, second = (socket.create_connection(server.address, timeout=30) for _ in range(2))
    for sock in (first, second):
        sock.sendall(b"in")
        assert sock.recv(10) == b"in"
    third = socket.create_connection(server.address, timeout=30)  # the kernel completes it
    third.sendall(b"wait")
    third.settimeout(0.5)
    with pytest.raises(TimeoutError):
        third.recv(10)  # not accepted while two are open
    third.settimeout(30)
    first.close()
    assert third.recv(10) == b"wait"  # accepted once one closed
    for sock in (second, third):
        sock.close()
    assert server.stop() == 0
    assert server.stopped_event()["stats"]["connections_accepted"] == 3
