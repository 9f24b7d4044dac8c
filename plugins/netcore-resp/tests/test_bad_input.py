"""Bad input: protocol errors close only that connection, limits hold, memory stays bounded."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from netcore.testing.clients import connect, recv_exactly
from netcore.testing.server_process import ServerProcess, run_netcore

INVALID_MULTIBULK = b"-ERR Protocol error: invalid multibulk length\r\n"
INVALID_BULK = b"-ERR Protocol error: invalid bulk length\r\n"


def read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    got = b""
    while len(got) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got


def ping(address) -> None:
    with connect(address) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert recv_exactly(sock, 7) == b"+PONG\r\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("data, reply", [
    (b"*1\x00\r\n$4\r\nPING\r\n", INVALID_MULTIBULK),  # NUL in the count: Redis would wait forever
    (b"*1\x00", INVALID_MULTIBULK),  # ... refused before the line even ends
    (b"*1\r\n$4\x00\r\nPING\r\n", INVALID_BULK),
    (b"*1\r\n$4\x00", INVALID_BULK),
])
def test_nul_in_a_header_is_refused_at_once(data, reply, resp_inline):
    with connect(resp_inline.address) as sock:
        sock.sendall(b"SET a 1\r\n" + data)
        assert read_until_closed(sock) == b"+OK\r\n" + reply
    ping(resp_inline.address)


def test_huge_bulk_announcement_is_refused_before_its_payload(resp_inline):
    """A client announcing 600 MB (over proto-max-bulk-len) gets the error without sending a byte more."""
    before = rss_kib(resp_inline.pid)
    with connect(resp_inline.address) as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n")
        assert read_until_closed(sock) == INVALID_BULK
    assert rss_kib(resp_inline.pid) < before + 10 * 1024
    ping(resp_inline.address)


def test_errors_close_only_that_connection(resp_inline):
    with connect(resp_inline.address) as good, connect(resp_inline.address) as bad:
        good.sendall(b"SET shared 1\r\n")
        assert recv_exactly(good, 5) == b"+OK\r\n"
        bad.sendall(b"*x\r\n")
        assert read_until_closed(bad) == INVALID_MULTIBULK
        good.sendall(b"GET shared\r\n")
        assert recv_exactly(good, 7) == b"$1\r\n1\r\n"


def test_limits_from_settings():
    with ServerProcess("--protocol", "resp", "--set", "resp_max_bulk=1048576", "--set", "resp_max_multibulk=3",
                       "--set", "resp_max_inline=1024") as server:
        with connect(server.address) as sock:  # over the bulk limit: refused at once
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
            assert read_until_closed(sock) == INVALID_BULK
        with connect(server.address) as sock:  # at the limit, sent slowly in pieces: accepted
            value = b"v" * 1048576
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n")
            for i in range(0, len(value), 65536):
                sock.sendall(value[i:i + 65536])
            sock.sendall(b"\r\n*2\r\n$6\r\nSTRLEN\r\n$1\r\nk\r\n")
            assert recv_exactly(sock, 5 + 10) == b"+OK\r\n:1048576\r\n"
        with connect(server.address) as sock:
            sock.sendall(b"*4\r\n")
            assert read_until_closed(sock) == INVALID_MULTIBULK
        with connect(server.address) as sock:
            sock.sendall(b"ECHO " + b"x" * 1100)
            assert read_until_closed(sock) == b"-ERR Protocol error: too big inline request\r\n"
        server.stop()


def test_bad_limit_setting_fails_at_start():
    res = run_netcore("serve", "--protocol", "resp", "--set", "resp_max_bulk=10", "--bind", "127.0.0.1:0")
    assert res.returncode == 2
    assert "resp_max_bulk" in res.stderr and "1024" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("dispatch", ["inline", "pool"])
def test_a_client_that_pipelines_without_reading_is_paused(dispatch):
    """GETs of a 1 KiB value, sent without reading: the server stops reading once its output
    passes the high-water mark, so the client's sends block while the server's memory stays
    bounded, and every reply arrives once the client reads."""
    args = ["--protocol", "resp", "--dispatch", dispatch, "--poller", "epoll-lt"]
    if dispatch == "pool":
        args += ["--threads", "2"]
    with ServerProcess(*args) as server:
        with connect(server.address) as sock:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nv\r\n$1024\r\n" + b"x" * 1024 + b"\r\n")
            assert recv_exactly(sock, 5) == b"+OK\r\n"
        base = rss_kib(server.pid)
        get = b"*2\r\n$3\r\nGET\r\n$1\r\nv\r\n"
        reply = b"$1024\r\n" + b"x" * 1024 + b"\r\n"
        chunk = get * 1000
        sock = connect(server.address)
        sock.setblocking(False)
        sent = 0
        idle_since = time.monotonic()
        budget = 400 * 1024 * 1024  # what an unbounded server would let through: 400 MB of GETs
        while sent < budget and time.monotonic() - idle_since < 2.0:
            offset = sent % len(chunk)  # chunk is whole GETs: continue the stream where it stopped
            try:
                n = sock.send(chunk[offset:])
            except BlockingIOError:
                time.sleep(0.01)
                continue
            sent += n
            idle_since = time.monotonic()
        requests = sent // len(get)
        assert sent < 64 * 1024 * 1024, f"the server kept reading: {sent} bytes accepted"
        # Replies owed for what was sent would be ~55x larger; the server holds only a bounded part.
        assert rss_kib(server.pid) - base < 128 * 1024
        ping(server.address)  # everyone else is still served
        # Now read (while completing the last, partly sent GET): every reply arrives.
        sock.setblocking(True)
        sock.settimeout(60)
        partial = sent % len(get)
        if partial:
            requests += 1
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(recv_exactly(sock, len(reply) * requests)))
        reader.start()
        if partial:
            sock.sendall(get[partial:])
        reader.join(120)
        assert got and got[0] == reply * requests
        sock.close()
        server.stop()
