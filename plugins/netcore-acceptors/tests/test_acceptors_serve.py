"""Every acceptor through a real ``netcore serve``: the acceptor contract, and the refusals.

What any correct acceptor must do in a server (a burst under prefork and multi-reactor,
counters that add up, one accepting loop never losing a race, blocking schemes served)
is ``netcore.testing.acceptor_contract.AcceptorContract``, subclassed once per acceptor
here; the functions below are what is particular to one of them (exit status 2 when a
combination cannot work).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from netcore.testing.acceptor_contract import AcceptorContract
from netcore.testing.clients import connect, roundtrip


class TestShared(AcceptorContract):
    acceptor = "shared"


class TestMutex(AcceptorContract):
    acceptor = "mutex"


class TestExclusive(AcceptorContract):
    acceptor = "exclusive"


class TestReuseport(AcceptorContract):
    acceptor = "reuseport"


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
