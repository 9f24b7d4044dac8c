"""Helpers for the acceptor tests: two small real pollers, one-iteration runs, fd counts.

The pollers keep these tests independent of netcore-pollers.

They are not mocks: ``select.poll`` (level-triggered) and ``select.epoll`` with
``EPOLLET`` (edge-triggered) are the kernel's own; the accept channel must behave under
both, and the edge-triggered one is what catches a batch that stops before EAGAIN.
Also imported by the subprocess scripts, hence a module and not conftest code.
"""

from __future__ import annotations

import math
import os
import select

from netcore.reactor.poller import Poller
from netcore.testing.loops import run_until as _run_until


class PollPoller(Poller):
    name = "poll"
    edge_triggered = False

    def __init__(self) -> None:
        self._poll = select.poll()

    def register(self, fd: int, events: int) -> None:
        self._poll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._poll.modify(fd, events)

    def unregister(self, fd: int) -> None:
        self._poll.unregister(fd)

    def poll(self, timeout):
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        return self._poll.poll(ms)


class EpollETPoller(Poller):
    name = "epoll-et"
    edge_triggered = True

    def __init__(self) -> None:
        self._epoll = select.epoll()

    def register(self, fd: int, events: int) -> None:
        self._epoll.register(fd, events | select.EPOLLET)

    def modify(self, fd: int, events: int) -> None:
        self._epoll.modify(fd, events | select.EPOLLET)

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def poll(self, timeout):
        return self._epoll.poll(-1 if timeout is None else timeout)

    def close(self) -> None:
        self._epoll.close()

    def fileno(self) -> int:
        return self._epoll.fileno()


POLLERS = {"poll": PollPoller, "epoll-et": EpollETPoller}


def run_once(loop) -> None:
    """One iteration of ``loop``: a ``poll(0)`` and the handlers of what it reported."""
    loop.call_soon(loop.stop)
    loop.run_forever()


def open_fds() -> set[int]:
    """This process's open descriptors, not counting the one used to list them."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue  # listdir's own descriptor, closed by the time it returned
        fds.add(int(name))
    return fds



def run_until(loop, predicate, timeout: float) -> bool:
    """Run ``loop`` until ``predicate()`` holds or ``timeout`` seconds pass; the last value."""
    return _run_until(loop, predicate, timeout, check=False)
