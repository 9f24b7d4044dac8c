"""Fixtures for the host's own tests.

The host ships no poller, so tests of the loop and the connection use the pollers of
``netcore-pollers`` when it is installed (it is, in every tox environment) and are
skipped with that reason when it is not.
"""

from __future__ import annotations

import pytest


def _pollers():
    try:
        from netcore_pollers.epoll_poller import EpollPoller
        from netcore_pollers.poll_poller import PollPoller
        from netcore_pollers.select_poller import SelectPoller
    except ImportError:
        return []
    return [
        pytest.param(SelectPoller, id="select"),
        pytest.param(PollPoller, id="poll"),
        pytest.param(lambda: EpollPoller(edge_triggered=False), id="epoll-lt"),
        pytest.param(lambda: EpollPoller(edge_triggered=True), id="epoll-et"),
    ]


POLLERS = _pollers()


@pytest.fixture(params=POLLERS or [pytest.param(None, marks=pytest.mark.skip(reason="netcore-pollers not installed"))])
def make_poller(request):
    return request.param


@pytest.fixture
def loop(make_poller):
    from netcore.reactor.loop import EventLoop

    loop = EventLoop(make_poller())
    yield loop
    loop.close()
