"""The ``select`` poller: two fd sets and one ``select(2)`` call.

``select`` is the one poller that has to build its answer in Python: the kernel hands
back a read list and a write list, and the loop wants one ``(fd, mask)`` pair per fd.
It also has a hard ceiling, ``FD_SETSIZE``: the kernel's bitmaps have that many bits and
CPython refuses a larger fd. We refuse it in :meth:`SelectPoller.register`, where the
caller can turn away one connection with a clear message, rather than let the next
``select()`` fail and take the whole loop down with it.
"""

from __future__ import annotations

import select

from netcore.reactor.poller import EVENT_EXCLUSIVE, EVENT_READ, EVENT_WRITE, Poller, PollerLimitError, refuse_exclusive

#: Linux's FD_SETSIZE; CPython does not export it, so this is the usual value.
FD_SETSIZE: int = getattr(select, "FD_SETSIZE", 1024)


class SelectPoller(Poller):
    """Keeps the read and write sets ready-made, so :meth:`poll` passes them as they are."""

    name = "select"
    edge_triggered = False
    max_fd = FD_SETSIZE

    def __init__(self) -> None:
        # fd -> interest. The sets below are derived from it; they exist so that poll()
        # does not rebuild them on every call, which is the frequent operation.
        self._interest: dict[int, int] = {}
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def register(self, fd: int, events: int) -> None:
        if fd in self._interest:
            raise FileExistsError(f"fd {fd} is already registered with {self!r}")
        if events & EVENT_EXCLUSIVE:
            raise refuse_exclusive(self, fd)
        if not 0 <= fd < self.max_fd:
            if fd < 0:
                raise ValueError(f"invalid fd {fd}")
            raise PollerLimitError(
                f"fd {fd} is too high for the select poller, which can only watch fds "
                f"below {self.max_fd} (FD_SETSIZE); use --poller poll or --poller epoll-lt"
            )
        self._interest[fd] = events
        self._watch(fd, events)

    def modify(self, fd: int, events: int) -> None:
        if fd not in self._interest:
            raise KeyError(fd)
        self._interest[fd] = events
        self._watch(fd, events)

    def unregister(self, fd: int) -> None:
        del self._interest[fd]  # KeyError for an unknown fd, as the interface asks
        self._readers.discard(fd)
        self._writers.discard(fd)

    def _watch(self, fd: int, events: int) -> None:
        if events & EVENT_READ:
            self._readers.add(fd)
        else:
            self._readers.discard(fd)
        if events & EVENT_WRITE:
            self._writers.add(fd)
        else:
            self._writers.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
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

    def close(self) -> None:
        self._interest.clear()
        self._readers.clear()
        self._writers.clear()
