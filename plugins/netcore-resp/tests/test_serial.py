"""One connection's batches under the schemes that run handlers on other threads.

resp declares ``serial = True``: a connection has at most one batch in flight, so what
one client pipelines runs in its order even on a pool of eight threads, and QUIT closes
only after its reply, with nothing after it run. Raw sockets, so that the bytes on the
wire are exactly what is checked.
"""

from __future__ import annotations

import socket
import time

import pytest
from netcore.testing.clients import recv_until_eof
from netcore.testing.server_process import ServerProcess

#: Bound on every socket wait; only a broken server gets near it.
PATIENCE = 20.0
SCHEMES = {
    "pool": ["--dispatch", "pool", "--threads", "8"],
    "multi-reactor-pool": ["--dispatch", "multi-reactor-pool", "--workers", "2", "--threads", "4"],
}
PAIRS = 2000


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + PATIENCE
    while len(got) < size:
        assert time.monotonic() < deadline, f"{len(got)} of {size} bytes within {PATIENCE}s"
        chunk = sock.recv(65536)
        assert chunk, f"the server closed after {len(got)} of {size} bytes: {bytes(got[-200:])!r}"
        got += chunk
    return bytes(got)


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def server(request, tmp_path_factory):
    # Threads switch every microsecond instead of every 5 ms, and reads are 1 KiB, so that
    # one write is ~100 batches: two of one connection running at once (the race serial
    # prevents) shows within one test.
    directory = tmp_path_factory.mktemp("switchinterval")
    (directory / "sitecustomize.py").write_text("import sys\nsys.setswitchinterval(1e-6)\n")
    with ServerProcess("--protocol", "resp", "--poller", "epoll-lt", "--set", "recv_size=1024", *SCHEMES[request.param],
                       env={"PYTHONPATH": str(directory)}) as proc:
        yield proc
        proc.stop()


def test_pipelined_incr_get_pairs_run_in_order(server):
    """2,000 INCR k + GET k in one write (~100 KB: ~100 reads, ~100 batches): every
    INCR answers n and every GET sees n, for n = 1..2000 in order."""
    key = b"serial:%d" % time.monotonic_ns()
    payload = (command(b"INCR", key) + command(b"GET", key)) * PAIRS
    expected = b"".join(b":%d\r\n$%d\r\n%d\r\n" % (n, len(b"%d" % n), n) for n in range(1, PAIRS + 1))
    with socket.create_connection(server.address, timeout=PATIENCE) as sock:
        sock.sendall(payload)
        got = read_exactly(sock, len(expected))
    assert got == expected, "replies out of order or lost: a connection had two batches in flight"


def test_quit_closes_after_its_reply_and_nothing_after_it_runs(server):
    with socket.create_connection(server.address, timeout=PATIENCE) as sock:
        sock.sendall(b"PING\r\nQUIT\r\nPING\r\n")
        assert recv_until_eof(sock, PATIENCE) == b"+PONG\r\n+OK\r\n"


def test_commands_sent_after_quit_in_separate_writes_do_not_run(server):
    """What arrives while QUIT is on a handler thread is read and submitted, but must not run."""
    key = b"afterquit:%d" % time.monotonic_ns()
    for _ in range(20):
        with socket.create_connection(server.address, timeout=PATIENCE) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(command(b"PING") + command(b"QUIT"))
            sock.sendall(command(b"INCR", key))
            sock.sendall(command(b"PING"))
            assert recv_until_eof(sock, PATIENCE) == b"+PONG\r\n+OK\r\n"
    with socket.create_connection(server.address, timeout=PATIENCE) as sock:
        sock.sendall(command(b"EXISTS", key))
        assert read_exactly(sock, 4) == b":0\r\n"


def test_a_protocol_error_behind_batches_in_flight_closes_after_every_reply(server):
    """The error is framed while earlier batches still run on the pool: their replies, then
    the error, then EOF -- the close waits for the last reply owed."""
    key = b"beforeerror:%d" % time.monotonic_ns()
    with socket.create_connection(server.address, timeout=PATIENCE) as sock:
        sock.sendall(command(b"INCR", key) * PAIRS + b"*x\r\n" + command(b"INCR", key))
        got = recv_until_eof(sock, PATIENCE)
    expected = b"".join(b":%d\r\n" % n for n in range(1, PAIRS + 1))
    assert got == expected + b"-ERR Protocol error: invalid multibulk length\r\n"
