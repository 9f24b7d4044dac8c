"""The poller interface: the one seam between the event loop and select/poll/epoll.

Modelled on CPython's ``selectors`` but thinner, because the loop's per-event path goes
through it: :meth:`Poller.poll` returns the kernel's own ``(fd, mask)`` list and the loop
maps fd to handler itself. On Linux ``POLLIN == EPOLLIN == 1``, ``POLLOUT == EPOLLOUT
== 4``, ``POLLERR == EPOLLERR == 8`` and ``POLLHUP == EPOLLHUP == 16``, so the poll and
epoll pollers return the kernel's list untouched, and only ``select`` has to build one.
"""

from __future__ import annotations

import select as _select

#: Readable (data, a pending connection or EOF).
EVENT_READ = getattr(_select, "POLLIN", 1)
#: Writable (room in the send buffer).
EVENT_WRITE = getattr(_select, "POLLOUT", 4)
#: Error or hang-up. Always reported, never asked for: a handler treats it like
#: readable, so that the failing ``recv`` tells it what happened.
EVENT_ERROR = getattr(_select, "POLLERR", 8) | getattr(_select, "POLLHUP", 16)
#: The peer shut down its side (EPOLLRDHUP). Edge-triggered pollers must ask for it with
#: every read interest: a FIN that arrived together with the last data gets no edge of its
#: own, and a reader that stops at a short read would otherwise never see it.
EVENT_RDHUP = getattr(_select, "EPOLLRDHUP", getattr(_select, "POLLRDHUP", 0x2000))
#: Any of these in a mask means: read on to EOF or the error, do not stop at a short read.
EVENT_CLOSING = EVENT_ERROR | EVENT_RDHUP
#: A registration flag, not an event: of several pollers (processes) watching the same fd
#: with this flag, the kernel wakes one (or a few) per event instead of all of them —
#: ``EPOLLEXCLUSIVE`` (Linux 4.5), the cure for the thundering herd on a shared listener.
#: Only pollers with :attr:`Poller.supports_exclusive` accept it, and only in
#: :meth:`Poller.register`; the others refuse it with :class:`PollerFlagError`.
EVENT_EXCLUSIVE = getattr(_select, "EPOLLEXCLUSIVE", 1 << 28)
#: The longest wait (seconds) a poller hands the kernel; a longer ``timeout`` is cut to
#: it. poll(2) and epoll_wait(2) take at most 2**31-1 ms (24.8 days) and select(2) a
#: time_t: past that CPython raises OverflowError, which would kill the loop for one far
#: deadline (a time-out of 1e12 s did). Waking once an hour to find the timer not yet
#: due costs nothing; the loop then waits again.
MAX_POLL_TIMEOUT = 3600.0


class PollerLimitError(ValueError):
    """The poller cannot watch this fd (``select`` and its ``FD_SETSIZE``).

    Raised by :meth:`Poller.register` so that the caller can refuse one connection with a
    clear message instead of the whole loop failing later inside ``select()``.
    """


class PollerFlagError(ValueError):
    """The poller cannot honour a registration flag (``EVENT_EXCLUSIVE`` on ``select``/``poll``)."""


def refuse_exclusive(poller: Poller, fd: int) -> PollerFlagError:
    """The error a poller without ``EPOLLEXCLUSIVE`` raises when asked for it: says what to use."""
    return PollerFlagError(
        f"the {poller.name} poller cannot register fd {fd} with EVENT_EXCLUSIVE (EPOLLEXCLUSIVE "
        "exists only for epoll); use --poller epoll-lt or --poller epoll-et"
    )


class Poller:
    """Watch file descriptors for readiness.

    Subclasses set :attr:`name` and :attr:`edge_triggered` and implement the five methods.
    ``events`` is a mask of :data:`EVENT_READ` and :data:`EVENT_WRITE`.

    An edge-triggered poller reports a change of readiness once; its users must read and
    write until the kernel says ``EAGAIN`` (or until a short read shows the buffer is empty),
    or they will never hear about that fd again. :class:`netcore.reactor.connection.Connection`
    keeps that rule in one place, reading :attr:`edge_triggered` once per connection.
    """

    name: str = "abstract"
    #: True when readiness is reported once per change (EPOLLET), not while it lasts.
    edge_triggered: bool = False
    #: Highest fd + 1 the poller can watch, or None for no limit of its own.
    max_fd: int | None = None
    #: True if :meth:`register` accepts :data:`EVENT_EXCLUSIVE`.
    supports_exclusive: bool = False
    #: True if :data:`EVENT_RDHUP` may be asked for without :data:`EVENT_READ` and is then
    #: reported (EPOLLRDHUP, Linux's POLLRDHUP): a connection whose reading is paused still
    #: learns that its peer closed. select cannot tell.
    reports_rdhup: bool = False

    def register(self, fd: int, events: int) -> None:
        """Start watching ``fd`` for ``events``. Raises :class:`PollerLimitError` past :attr:`max_fd`.

        ``events`` may include :data:`EVENT_EXCLUSIVE` where :attr:`supports_exclusive` is
        true; elsewhere that raises :class:`PollerFlagError` and registers nothing.
        """
        raise NotImplementedError

    def modify(self, fd: int, events: int) -> None:
        """Change what ``fd`` is watched for (``0`` keeps it registered but silent).

        An exclusive registration stays exclusive (the kernel forbids changing it in
        place, so an epoll poller unregisters and registers it again);
        :data:`EVENT_EXCLUSIVE` in ``events`` is ignored here: exclusivity is chosen at
        :meth:`register`.
        """
        raise NotImplementedError

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``. Must be called before the fd is closed."""
        raise NotImplementedError

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (None: forever, 0: not at all) for readiness.

        Any ``timeout`` >= 0 is taken, ``inf`` included: a poller waits at most
        :data:`MAX_POLL_TIMEOUT` and returns an empty list then, so that a far deadline
        can never make the kernel call (and with it the loop) fail.

        Returns ``(fd, mask)`` pairs, mask made of EVENT_READ, EVENT_WRITE and EVENT_ERROR
        bits. A signal arriving during the wait may end it early with an empty list.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the kernel object, if any."""

    def fileno(self) -> int:
        """The kernel object's fd, or -1 when there is none (select, poll)."""
        return -1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
