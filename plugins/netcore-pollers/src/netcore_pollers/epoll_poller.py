"""The ``epoll-lt`` and ``epoll-et`` pollers: one ``select.epoll``, two trigger modes.

``epoll`` keeps the interest list in the kernel, so a call costs in proportion to the
fds that are *ready*, not to those registered: ten thousand idle connections cost
nothing. Its ``(fd, events)`` list is returned untouched, because on Linux ``EPOLLIN``,
``EPOLLOUT``, ``EPOLLERR`` and ``EPOLLHUP`` have the values of netcore's EVENT_* bits
(checked when the class is defined, at import time).

The two modes are two classes that differ by attributes only
(:class:`~netcore_pollers.poll_like.PollLikePoller` does the rest). Edge-triggered mode
is a flag on every ``register``/``modify`` and nothing else here; the burden it moves to
the caller (read and write until ``EAGAIN``, or never hear of that fd again) is carried
by :class:`netcore.reactor.connection.Connection`. A ``modify`` re-arms an edge: the
kernel checks readiness again and reports what is already there.

``EVENT_EXCLUSIVE`` (``EPOLLEXCLUSIVE``, Linux 4.5) is passed through at ``register``.
The kernel refuses two things with it: ``EPOLL_CTL_MOD`` on an exclusive fd (EINVAL),
hence the base class's ``modify`` unregisters and registers it again; and ``EPOLLRDHUP``
in the same mask (EINVAL), hence :attr:`EpollETPoller._exclusive_flags` leaves RDHUP out
— what it is for (a peer's FIN arriving with the last data) cannot happen on a listening
socket, the one fd worth registering exclusively.
"""

from __future__ import annotations

import select

from netcore.reactor.poller import EVENT_EXCLUSIVE, MAX_POLL_TIMEOUT

from netcore_pollers.poll_like import PollLikePoller

if not hasattr(select, "epoll"):
    # Failing the import makes ``netcore plugins`` show the poller as unavailable, with this reason.
    raise ImportError("epoll exists only on Linux")


class EpollPoller(PollLikePoller):
    """``epoll-lt``: ``select.epoll``, level-triggered. ``EpollPoller(edge_triggered=True)`` is ``epoll-et``."""

    name = "epoll-lt"
    edge_triggered = False
    max_fd = None
    supports_exclusive = hasattr(select, "EPOLLEXCLUSIVE")
    #: EPOLLRDHUP reports a peer's FIN without read interest (a paused connection asks for it).
    reports_rdhup = True
    # select.epoll() passes EPOLL_CLOEXEC: a worker process started with fork+exec
    # (or a CGI-style child) must not inherit the loop's interest list.
    _kernel_factory = select.epoll
    _EVENT_READ = select.EPOLLIN
    _EVENT_WRITE = select.EPOLLOUT
    _EVENT_ERROR = select.EPOLLERR | select.EPOLLHUP
    _flags = 0
    _exclusive_flags = EVENT_EXCLUSIVE

    def __new__(cls, *, edge_triggered: bool | None = None) -> EpollPoller:
        # One class, two registrations: the plugin registers ``epoll-et`` as this class
        # with ``edge_triggered=True`` (and callers build it so), which picks the subclass.
        if edge_triggered is not None and bool(edge_triggered) != cls.edge_triggered:
            if cls is not EpollPoller:
                raise TypeError(f"{cls.__name__} is {cls.name}; build EpollPoller(edge_triggered=...) instead")
            cls = EpollETPoller
        return super().__new__(cls)

    def __init__(self, *, edge_triggered: bool | None = None) -> None:
        super().__init__()

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # epoll.poll takes seconds, None (or -1) for "forever", and rounds a fraction of
        # a millisecond up, not down to a busy 0. At most FD_SETSIZE-1 events come back
        # per call; the rest wait for the next one, which the kernel serves fairly. At
        # most MAX_POLL_TIMEOUT: epoll_wait takes an int of ms (inf would raise OverflowError).
        if timeout is not None and timeout > MAX_POLL_TIMEOUT:
            timeout = MAX_POLL_TIMEOUT
        return self._kernel_poll(timeout)

    def close(self) -> None:
        self._registered.clear()
        self._kernel.close()

    def fileno(self) -> int:
        return self._kernel.fileno()


class EpollETPoller(EpollPoller):
    """``epoll-et``: ``EPOLLET`` added to every mask, and ``EPOLLRDHUP`` with it.

    A FIN that arrives with the last data gets no edge of its own, so the reader must
    learn of it from this event (see :data:`netcore.reactor.poller.EVENT_RDHUP`).
    Level-triggered must not ask for it: it would be reported again and again on a
    half-closed socket nobody reads.
    """

    name = "epoll-et"
    edge_triggered = True
    _flags = select.EPOLLET | select.EPOLLRDHUP
    _exclusive_flags = EVENT_EXCLUSIVE | select.EPOLLET  # EPOLLRDHUP with EPOLLEXCLUSIVE is EINVAL
