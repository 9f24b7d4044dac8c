"""The ``select`` poller: two fd sets and one ``select(2)`` call.

``select`` is the one poller that has to build its answer in Python: the kernel hands
back a read list and a write list, and the loop wants one ``(fd, mask)`` pair per fd.
It also has a hard ceiling, ``FD_SETSIZE``: the kernel's bitmaps have that many bits and
CPython refuses a larger fd. We refuse it at ``register``, where the caller can turn away
one connection with a clear message, rather than let the next ``select()`` fail and take
the whole loop down with it.

``select`` keeps no interest list in the kernel; :class:`FdSets` is the one it is handed
on every call, kept ready-made. Over it, the registration bookkeeping (a second
registration, an unknown fd, ``EVENT_EXCLUSIVE`` refused) is
:class:`~netcore_pollers.poll_like.PollLikePoller`'s, the same as poll's and epoll's.
"""

from __future__ import annotations

import select

from netcore.reactor.poller import EVENT_READ, EVENT_WRITE, MAX_POLL_TIMEOUT, PollerLimitError

from netcore_pollers.poll_like import PollLikePoller

#: Linux's FD_SETSIZE; CPython does not export it, so this is the usual value.
FD_SETSIZE: int = getattr(select, "FD_SETSIZE", 1024)


class FdSets:
    """``select``'s interest list: the read and write sets, with a kernel object's methods.

    The sets exist so that :meth:`SelectPoller.poll` does not rebuild them on every call,
    which is the frequent operation; a registration updates them instead.
    """

    __slots__ = ("readers", "writers")

    def __init__(self) -> None:
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def register(self, fd: int, events: int) -> None:
        if not 0 <= fd < FD_SETSIZE:
            if fd < 0:
                raise ValueError(f"invalid fd {fd}")
            raise PollerLimitError(
                f"fd {fd} is too high for the select poller, which can only watch fds "
                f"below {FD_SETSIZE} (FD_SETSIZE); use --poller poll or --poller epoll-lt"
            )
        self.modify(fd, events)

    def modify(self, fd: int, events: int) -> None:
        if events & EVENT_READ:
            self.readers.add(fd)
        else:
            self.readers.discard(fd)
        if events & EVENT_WRITE:
            self.writers.add(fd)
        else:
            self.writers.discard(fd)

    def unregister(self, fd: int) -> None:
        self.readers.discard(fd)
        self.writers.discard(fd)


class SelectPoller(PollLikePoller):
    """``select(2)`` over :class:`FdSets`, passed to it as they are."""

    name = "select"
    edge_triggered = False
    max_fd = FD_SETSIZE
    supports_exclusive = False
    #: select has no way to report a peer's FIN without read interest.
    reports_rdhup = False
    _kernel_factory = FdSets

    def __init__(self) -> None:
        super().__init__()
        # The sets themselves, not copies: poll() reads them without an attribute chain.
        self._readers = self._kernel.readers
        self._writers = self._kernel.writers

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if timeout is not None and timeout > MAX_POLL_TIMEOUT:
            timeout = MAX_POLL_TIMEOUT  # select's time_t cannot take inf or 1e12 s
        readable, writable, _ = select.select(self._readers, self._writers, (), timeout)
        # Most calls have only one kind of event (a server mostly reads; it asks for
        # write interest only while output is queued): skip the merge for them.
        if not writable:
            return [(fd, EVENT_READ) for fd in readable]
        if not readable:
            return [(fd, EVENT_WRITE) for fd in writable]
        ready = dict.fromkeys(readable, EVENT_READ)
        for fd in writable:
            ready[fd] = ready.get(fd, 0) | EVENT_WRITE
        return list(ready.items())
