"""What each scheme does with slow handlers and pipelined requests: the essay's argument,
measured on real servers.

A handler that blocks (``--set echo_delay=D``) stalls every client of a scheme that runs
handlers on its only I/O thread (``inline``) or serves one client at a time
(``iterative``); schemes that run handlers on other threads serve the clients in
parallel. The test compares the elapsed time of N simultaneous requests with the serial
time N x D: a behaviour that is either there or not, with a wide margin, not a speed test.
"""

from __future__ import annotations

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
