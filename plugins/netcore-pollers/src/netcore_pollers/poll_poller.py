"""The ``poll`` poller: ``poll(2)``, whose answer the loop can use without a copy.

``poll`` has no ``FD_SETSIZE`` ceiling, but the kernel still walks every registered fd on
every call, so its cost grows with the number of connections, idle or not; ``epoll``
is the answer to that. What it saves over ``select`` is the Python side: the kernel's
``(fd, revents)`` list is already what :meth:`Poller.poll` promises, because
:data:`EVENT_READ` and friends *are* ``POLLIN`` and friends. The check below proves that
at import time; on a platform where it failed, the poller would translate instead of
returning wrong bits.
"""

from __future__ import annotations

import math
import select

from netcore.reactor.poller import EVENT_ERROR, EVENT_EXCLUSIVE, EVENT_READ, EVENT_WRITE, Poller, refuse_exclusive

#: True where the kernel's bits are netcore's bits (Linux, the BSDs, macOS): no translation.
NATIVE_BITS = (select.POLLIN, select.POLLOUT, select.POLLERR | select.POLLHUP) == (
    EVENT_READ,
    EVENT_WRITE,
    EVENT_ERROR,
)


def _to_kernel(events: int) -> int:
    return (select.POLLIN if events & EVENT_READ else 0) | (select.POLLOUT if events & EVENT_WRITE else 0)


def _from_kernel(revents: int) -> int:
    return (
        (EVENT_READ if revents & select.POLLIN else 0)
        | (EVENT_WRITE if revents & select.POLLOUT else 0)
        | (EVENT_ERROR if revents & (select.POLLERR | select.POLLHUP | select.POLLNVAL) else 0)
    )


class PollPoller(Poller):
    """One ``select.poll`` object, plus the set of registered fds it will not tell us."""

    name = "poll"
    edge_triggered = False
    max_fd = None

    def __init__(self) -> None:
        self._poll = select.poll()
        self._poll_call = self._poll.poll
        # select.poll silently turns a second register() into a modify() and cannot say
        # which fds it holds, so we keep the set to refuse a double registration the way
        # the other pollers do (FileExistsError, epoll's own answer).
        self._fds: set[int] = set()

    def register(self, fd: int, events: int) -> None:
        if fd in self._fds:
            raise FileExistsError(f"fd {fd} is already registered with {self!r}")
        if events & EVENT_EXCLUSIVE:
            raise refuse_exclusive(self, fd)
        self._poll.register(fd, events if NATIVE_BITS else _to_kernel(events))
        self._fds.add(fd)

    def modify(self, fd: int, events: int) -> None:
        if fd not in self._fds:
            raise KeyError(fd)
        events &= ~EVENT_EXCLUSIVE  # chosen at register(), where it is refused
        self._poll.modify(fd, events if NATIVE_BITS else _to_kernel(events))

    def unregister(self, fd: int) -> None:
        self._fds.remove(fd)  # KeyError for an unknown fd
        self._poll.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # poll(2) counts milliseconds. Round up: a timer due in 0.4 ms must sleep 1 ms,
        # not 0, or the loop spins on poll() until the timer is due.
        events = self._poll_call(-1 if timeout is None else math.ceil(timeout * 1000))
        if NATIVE_BITS:
            return events
        return [(fd, _from_kernel(revents)) for fd, revents in events]  # pragma: no cover

    def close(self) -> None:
        # A poll object holds no kernel resource; emptying it is all "closing" can mean.
        for fd in self._fds:
            self._poll.unregister(fd)
        self._fds.clear()
