"""Fixtures for the acceptor tests: real loops on real pollers, and a descriptor-leak check."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from acceptor_testing import POLLERS, open_fds  # noqa: E402
from netcore.reactor.loop import EventLoop  # noqa: E402


@pytest.fixture(autouse=True)
def no_fd_leak():
    """Fail a test that leaves descriptors open (listeners, spares, accepted sockets)."""
    before = open_fds()
    yield
    leaked = open_fds() - before
    assert not leaked, f"descriptors left open: {sorted(leaked)}"


@pytest.fixture
def all_children_reaped():
    """For tests that fork worker processes: none is left behind, zombie or alive."""
    yield
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.fixture(params=sorted(POLLERS))
def poller_name(request):
    """Each channel test runs under a level-triggered and an edge-triggered poller."""
    return request.param


@pytest.fixture
def make_loop(poller_name):
    loops = []

    def make(name: str | None = None) -> EventLoop:
        loop = EventLoop(POLLERS[name or poller_name](), name=f"test-{len(loops)}")
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close()


@pytest.fixture
def loop(make_loop):
    return make_loop()
