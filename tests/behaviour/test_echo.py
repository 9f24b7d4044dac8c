"""Echo conformance against a real ``netcore serve`` for every combination of the matrix.

Clients are plain blocking sockets in threads, as a user's would be. Nothing here waits
by sleeping: every wait is for bytes, an EOF or a server event, and is bounded.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import socket
import struct
import threading
import time

import pytest
from netcore.testing.clients import TIMEOUT, connect, recv_exactly, roundtrip, wait_until_served
from netcore.testing.server_process import child_pids, cpu_seconds


@pytest.mark.parametrize("size", [1, 1000, 65536, 1_000_003, 5 * 1024 * 1024])
def test_random_payload_with_small_buffers(echo_server, size):
    """4 KiB socket buffers force partial reads and writes on both sides."""
    payload = random.Random(size).randbytes(size)
    with connect(echo_server.address, bufsize=4096) as sock:
        assert roundtrip(sock, payload) == payload


def test_many_concurrent_clients(echo_server, dispatch):
    failures = []
    rounds = 20

    def client(seed):
        rng = random.Random(seed)
        try:
            with connect(echo_server.address) as sock:
                for _ in range(rounds):
                    payload = rng.randbytes(rng.randint(1, 20000))
                    got = roundtrip(sock, payload)
                    if got != payload:
                        failures.append((seed, len(payload), len(got)))
                        return
        except OSError as exc:
            failures.append((seed, repr(exc)))

    clients = 10 if dispatch == "iterative" else 100  # iterative serves them one by one
    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not failures
    assert echo_server.stop() == 0
    stats = echo_server.stopped_event()["stats"]
    assert stats["connections_accepted"] == stats["connections_closed"] == clients
    assert stats["bytes_received"] == stats["bytes_sent"] > 0
    assert stats["requests"] >= clients * rounds


def test_half_close_receives_everything_then_eof(echo_server):
    payload = os.urandom(2 * 1024 * 1024)
    with connect(echo_server.address) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        data = recv_exactly(sock, len(payload) + 1)  # one more: it must be EOF, not data
        sender.join(TIMEOUT)
    assert data == payload


def test_reset_mid_stream_leaves_others_served(echo_server, concurrent):
    with connect(echo_server.address) as bystander:
        assert roundtrip(bystander, b"before") == b"before"
        for _ in range(5):
            rude = connect(echo_server.address, bufsize=4096)
            try:
                rude.sendall(os.urandom(256 * 1024))
            except OSError:
                pass
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            rude.close()  # RST with echo output still owed to it
        assert roundtrip(bystander, b"after") == b"after"
    assert echo_server.stop() == 0
    stats = echo_server.stopped_event()["stats"]
    assert stats["connections_closed"] == stats["connections_accepted"] == 6


def test_term_is_graceful_for_data_in_flight(echo_server, concurrent):
    """Bytes sent before TERM are echoed before the connection closes: none lost."""
    socks = [connect(echo_server.address) for _ in range(20)]
    payloads = [os.urandom(30000 + i) for i in range(20)]
    for sock, payload in zip(socks, payloads):
        assert roundtrip(sock, b"x") == b"x"  # accepted and registered before the stop
        sock.sendall(payload)
    echo_server.proc.send_signal(signal.SIGTERM)
    for sock, payload in zip(socks, payloads):
        assert recv_exactly(sock, len(payload) + 1) == payload  # all of it, then EOF
        sock.close()
    assert echo_server.stop() == 0
    stopped = echo_server.stopped_event()
    assert stopped["reason"] == "signal SIGTERM"
    assert stopped["stats"]["bytes_sent"] == sum(len(p) + 1 for p in payloads)


def test_int_stops_fast(echo_server):
    sock = connect(echo_server.address)
    assert roundtrip(sock, b"hi") == b"hi"
    assert echo_server.stop(signal.SIGINT) == 0
    assert echo_server.stopped_event()["reason"] == "signal SIGINT"
    assert sock.recv(10) in (b"",)
    sock.close()


def test_full_fd_table_refuses_clearly_without_spinning(start_server, combination, concurrent):
    """EMFILE: clients beyond the fd limit are closed, not left hanging; the loop does not spin."""
    if "forking" in combination:
        pytest.skip("forking: the parent closes each client's socket once a child has it; its fd "
                    "table never fills (the children's limit is one client each)")
    limit = 48

    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    # The limit is per process: one worker process, so that it is this server's limit.
    one_worker = ["--workers", "1"] if {"prefork", "prefork-blocking"} & set(combination) else []
    server = start_server(*combination, *one_worker, "--protocol", "echo", preexec_fn=lower_limit)
    held, served, refused = [], 0, 0
    for _ in range(limit + 20):
        sock = connect(server.address)
        sock.settimeout(10)
        sock.sendall(b"ping")
        try:
            data = sock.recv(4)
        except ConnectionResetError:
            data = b""
        if data == b"ping":
            served += 1
            held.append(sock)
        else:
            refused += 1
            sock.close()
    assert served >= limit - 15 and refused >= 15
    # The master (if any) and its workers: a spinning worker is the failure looked for.
    pids = [server.pid, *child_pids(server.pid)]
    before = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(1.0)  # a measurement window, not synchronisation: CPU used while idle at the limit
    assert sum(cpu_seconds(pid) for pid in pids) - before < 0.3
    for sock in held[:10]:
        sock.close()
    wait_until_served(server.address)  # the server notices the closes by itself
    for sock in held[10:]:
        sock.close()
    assert server.stop() == 0
