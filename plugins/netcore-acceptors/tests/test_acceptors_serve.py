"""Every acceptor through a real ``netcore serve``: in-process schemes serve echo, refusals exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from netcore.testing.clients import connect, roundtrip

ACCEPTORS = ["shared", "mutex", "exclusive", "reuseport"]


@pytest.mark.parametrize("dispatch", ["inline", "multi-reactor", "pool"])
@pytest.mark.parametrize("acceptor", ACCEPTORS)
def test_every_acceptor_serves_echo_in_process(start_server, acceptor, dispatch):
    server = start_server("--acceptor", acceptor, "--dispatch", dispatch, "--workers", "2", "--protocol", "echo")
    assert server.started["acceptor"] == acceptor
    clients = [connect(server.address) for _ in range(5)]  # several at once: the lock moves between them
    try:
        for i, sock in enumerate(clients):
            payload = f"hello {acceptor} {i}".encode() * 50
            assert roundtrip(sock, payload) == payload
    finally:
        for sock in clients:
            sock.close()
    server.stop()
    stats = server.stopped_event()["stats"]
    assert stats["connections_accepted"] == 5
    assert stats["accept_eagain"] == 0  # one accepting loop: nothing to lose a race to


@pytest.mark.parametrize("acceptor", ["mutex", "reuseport"])
def test_blocking_scheme_serves_with_the_acceptor(start_server, acceptor):
    """Blocking schemes accept from bind()'s sockets directly (reuseport: slot 0's)."""
    server = start_server("--acceptor", acceptor, "--dispatch", "threading", "--protocol", "echo")
    with connect(server.address) as sock:
        assert roundtrip(sock, b"ping") == b"ping"
    server.stop()


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netcore", "serve", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("poller", ["select", "poll"])
@pytest.mark.parametrize("dispatch", ["inline", "prefork"])
def test_exclusive_refused_without_epoll(poller, dispatch):
    done = _serve("--acceptor", "exclusive", "--poller", poller, "--dispatch", dispatch, "--bind", "127.0.0.1:0")
    assert done.returncode == 2, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "'acceptor'" in lines[0] and "'poller'" in lines[0] and repr(poller) in lines[0]
    assert "epoll-lt" in lines[0]


def test_exclusive_accepted_under_a_blocking_scheme():
    """A blocking scheme never uses the poller: exclusive is not refused for a poller it ignores."""
    from netcore.testing.server_process import ServerProcess

    with ServerProcess("--acceptor", "exclusive", "--poller", "select", "--dispatch", "iterative") as server:
        with connect(server.address) as sock:
            assert roundtrip(sock, b"x") == b"x"
        server.stop()


@pytest.mark.parametrize("bind", ["unix:{tmp}/r.sock", "fd://0"])
def test_reuseport_refuses_unix_and_inherited_sockets(tmp_path, bind):
    done = _serve("--acceptor", "reuseport", "--bind", bind.format(tmp=tmp_path))
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    message = done.stderr.strip()
    assert "'acceptor'" in message and "'bind'" in message and "reuseport" in message
    assert not (tmp_path / "r.sock").exists()
