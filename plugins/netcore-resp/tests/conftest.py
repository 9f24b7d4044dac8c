"""Fixtures for the resp tests: a real redis-server (the oracle) and resp servers.

Every server is a real process on a free loopback port; every wait is bounded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from netcore.testing.server_process import ServerProcess

#: Bound on every socket wait; only a broken server gets near it.
PATIENCE = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Raw:
    """Plain-socket RESP exchanges, for bytes no client library would send."""

    @staticmethod
    def exchange(address, data: bytes, end: bytes | None = b"ECHO") -> tuple[bytes, bool]:
        """Send ``data`` (then, unless ``end`` is None, ``ECHO __end__``); read until the
        echo comes back or the server closes. Returns (replies before the marker, closed)."""
        marker = b"$7\r\n__end__\r\n"
        with socket.create_connection(address, timeout=PATIENCE) as sock:
            payload = data
            if end is not None:
                payload += b"*2\r\n$4\r\nECHO\r\n$7\r\n__end__\r\n"
            sock.sendall(payload)
            got = b""
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return got, True
                if not chunk:
                    return got, True
                got += chunk
                if end is not None and got.endswith(marker):
                    return got[: -len(marker)], False
            raise AssertionError(f"no end of reply within {PATIENCE}s; got {got[-200:]!r}")


@pytest.fixture(scope="session")
def raw() -> Raw:
    return Raw()


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server (16 databases, no persistence) on a free port: the oracle."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server): no oracle to compare with")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--databases", "16", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16) == b"+PONG\r\n":
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    yield ("127.0.0.1", port)
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def resp_inline():
    """One resp server (inline, epoll-lt) shared by a module's tests."""
    with ServerProcess("--protocol", "resp", "--dispatch", "inline", "--poller", "epoll-lt") as server:
        yield server
        server.stop()


@pytest.fixture
def same_bytes(raw, redis_server, resp_inline):
    """``check(case)``: ``FLUSHALL`` then ``case`` on both servers; identical replies and closing."""
    def check(case: bytes) -> None:
        script = b"FLUSHALL\r\n" + case
        assert raw.exchange(resp_inline.address, script) == raw.exchange(redis_server, script)

    return check


#: The in-process schemes the cross-connection tests run under (reactor, handler threads, loops).
SCHEMES = {
    "inline": ["--dispatch", "inline", "--poller", "epoll-lt"],
    "pool": ["--dispatch", "pool", "--threads", "4", "--poller", "epoll-lt"],
    "multi-reactor": ["--dispatch", "multi-reactor", "--workers", "2", "--poller", "epoll-lt"],
}


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def scheme_server(request):
    """One resp server per scheme of :data:`SCHEMES`, with a module's ``SERVER_ARGS`` if it has them."""
    extra = getattr(request.module, "SERVER_ARGS", [])
    with ServerProcess("--protocol", "resp", *extra, *SCHEMES[request.param]) as server:
        yield server
        server.stop()
