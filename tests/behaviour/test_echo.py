"""Echo conformance against a real ``netcore serve`` for every combination of the matrix.

What every scheme owes whatever the protocol (many clients, the events and counters,
TERM and INT, a reset or failing connection costing only itself, pipelining, nothing
left behind) is ``netcore.testing.dispatcher_contract.DispatcherContract``, run here
once per combination by :class:`TestDispatcherContract`; the functions below are what
this matrix checks beyond it. Clients are plain blocking sockets in threads, as a user's
would be. Nothing here waits by sleeping: every wait is for bytes, an EOF or a server
event, and is bounded.
"""

from __future__ import annotations

import os
import random
import resource
import socket
import threading
import time

import pytest
from netcore.testing.clients import TIMEOUT, connect, recv_exactly, roundtrip, wait_until_served
from netcore.testing.dispatcher_contract import DispatcherContract
from netcore.testing.server_process import child_pids, cpu_seconds


class TestDispatcherContract(DispatcherContract):
    """The dispatcher contract under the combination of the matrix (conftest.py)."""

    @pytest.fixture
    def server_args(self, combination):
        return combination


@pytest.mark.parametrize("size", [1, 1000, 65536, 1_000_003, 5 * 1024 * 1024])
def test_random_payload_with_small_buffers(echo_server, size):
    """4 KiB socket buffers force partial reads and writes on both sides."""
    payload = random.Random(size).randbytes(size)
    with connect(echo_server.address, bufsize=4096) as sock:
        assert roundtrip(sock, payload) == payload


def test_half_close_receives_everything_then_eof(echo_server):
    payload = os.urandom(2 * 1024 * 1024)
    with connect(echo_server.address) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        data = recv_exactly(sock, len(payload) + 1)  # one more: it must be EOF, not data
        sender.join(TIMEOUT)
    assert data == payload


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
