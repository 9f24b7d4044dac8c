"""The ``epoll-lt`` and ``epoll-et`` pollers: one ``select.epoll``, two trigger modes.

``epoll`` keeps the interest list in the kernel, so a call costs in proportion to the
fds that are *ready*, not to those registered: ten thousand idle connections cost
nothing. Its ``(fd, events)`` list is returned untouched, because on Linux ``EPOLLIN``,
``EPOLLOUT``, ``EPOLLERR`` and ``EPOLLHUP`` have the values of netcore's EVENT_* bits
(checked below, at import time).

Edge-triggered mode is a flag on every ``register``/``modify`` and nothing else here; the
burden it moves to the caller (read and write until ``EAGAIN``, or never hear of that fd
again) is carried by :class:`netcore.reactor.connection.Connection`. A ``modify`` re-arms
an edge: the kernel checks readiness again and reports what is already there.

``EVENT_EXCLUSIVE`` (``EPOLLEXCLUSIVE``, Linux 4.5) is passed through at ``register``.
The kernel refuses two things with it, so this poller handles them: ``EPOLL_CTL_MOD``
on an exclusive fd (EINVAL), hence :meth:`EpollPoller.modify` unregisters and registers
it again; and ``EPOLLRDHUP`` in the same mask (EINVAL), hence the edge-triggered
poller leaves its RDHUP out of an exclusive registration — what it is for (a peer's FIN
arriving with the last data) cannot happen on a listening socket, the one fd worth
registering exclusively.
"""

from __future__ import annotations

import select

from netcore.reactor.poller import EVENT_ERROR, EVENT_EXCLUSIVE, EVENT_READ, EVENT_WRITE, Poller

# epoll exists only on Linux, where these are equal. Were they not, returning the kernel's
# list would hand the loop wrong masks; failing the import instead makes ``netcore
# plugins`` show the poller as unavailable, with this reason.
if (select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR | select.EPOLLHUP) != (EVENT_READ, EVENT_WRITE, EVENT_ERROR):
    raise ImportError("epoll's event bits differ from netcore's EVENT_* bits on this platform")


class EpollPoller(Poller):
    """``select.epoll`` with ``EPOLLET`` added to every mask when ``edge_triggered``."""

    max_fd = None
    supports_exclusive = hasattr(select, "EPOLLEXCLUSIVE")

    def __init__(self, *, edge_triggered: bool = False) -> None:
        self.edge_triggered = edge_triggered
        self.name = "epoll-et" if edge_triggered else "epoll-lt"
        # Edge-triggered also asks for EPOLLRDHUP: a FIN that arrives with the last data
        # gets no edge of its own, so the reader must learn of it from this event (see
        # netcore.reactor.poller.EVENT_RDHUP). Level-triggered must not ask for it: it
        # would be reported again and again on a half-closed socket nobody reads.
        self._flags = (select.EPOLLET | select.EPOLLRDHUP) if edge_triggered else 0
        # select.epoll() passes EPOLL_CLOEXEC: a worker process started with fork+exec
        # (or a CGI-style child) must not inherit the loop's interest list.
        self._epoll = select.epoll()
        self._epoll_poll = self._epoll.poll
        #: fds registered with EVENT_EXCLUSIVE: modify() must re-register them.
        self._exclusive: set[int] = set()

    def register(self, fd: int, events: int) -> None:
        # A second registration fails in the kernel with EEXIST: FileExistsError, free.
        if events & EVENT_EXCLUSIVE:
            self._epoll.register(fd, events | (self._flags & select.EPOLLET))
            self._exclusive.add(fd)
            return
        self._epoll.register(fd, events | self._flags)

    def modify(self, fd: int, events: int) -> None:
        if self._exclusive and fd in self._exclusive:
            # EPOLL_CTL_MOD is EINVAL on an exclusive fd: re-register, still exclusive.
            self.unregister(fd)
            self.register(fd, events | EVENT_EXCLUSIVE)
            return
        try:
            self._epoll.modify(fd, (events & ~EVENT_EXCLUSIVE) | self._flags)
        except FileNotFoundError:  # ENOENT: never registered. A try costs nothing when it succeeds.
            raise KeyError(fd) from None

    def unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except FileNotFoundError:
            raise KeyError(fd) from None
        finally:
            if self._exclusive:
                self._exclusive.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # epoll.poll takes seconds, None (or -1) for "forever", and rounds a fraction of
        # a millisecond up, not down to a busy 0. At most FD_SETSIZE-1 events come back
        # per call; the rest wait for the next one, which the kernel serves fairly.
        return self._epoll_poll(timeout)

    def close(self) -> None:
        self._exclusive.clear()
        self._epoll.close()

    def fileno(self) -> int:
        return self._epoll.fileno()
