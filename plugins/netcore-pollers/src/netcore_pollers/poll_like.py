"""What the pollers share: the registration bookkeeping, over an interest list per class.

As in CPython's ``selectors._PollLikeSelector``, the pollers are one class that differs by
class attributes: the factory of the kernel object holding the interest list
(``select.poll``, ``select.epoll``, or ``select``'s two fd sets), the kernel's event bits,
the flags added to every registration (``EPOLLET | EPOLLRDHUP`` for ``epoll-et``) and
whether ``EVENT_EXCLUSIVE`` is supported. Only :meth:`poll` is each poller's own, because
it is the one call on the loop's per-iteration path and each kernel takes its timeout in
its own unit; it stays one Python frame over the kernel call.

The bookkeeping lives here, in Python, for every poller, because the kernels disagree:
``poll`` silently turns a second ``register`` into a ``modify`` and cannot say which fds
it holds; ``epoll`` answers EEXIST/ENOENT but forbids ``EPOLL_CTL_MOD`` on an exclusive
registration, so the poller must remember which those are. One ``fd -> flags`` dict gives
all of them the same answers: ``FileExistsError`` for a second registration (epoll's own
answer), ``KeyError`` for an unknown fd (as ``selectors`` does), an exclusive registration
that stays exclusive across :meth:`modify`. Like the loop's handler table, it relies on
the interface's rule that an fd is unregistered before it is closed.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar

from netcore.reactor.poller import (
    EVENT_ERROR,
    EVENT_EXCLUSIVE,
    EVENT_READ,
    EVENT_WRITE,
    MAX_POLL_TIMEOUT,
    Poller,
    refuse_exclusive,
)

#: MAX_POLL_TIMEOUT as poll(2) takes it.
_MAX_POLL_MS = int(MAX_POLL_TIMEOUT * 1000)


class PollLikePoller(Poller):
    """A poller over one interest-list object; subclasses set the class attributes below."""

    #: Builds the object holding the interest list; it has ``register(fd, mask)``,
    #: ``modify(fd, mask)``, ``unregister(fd)`` and, for :meth:`poll`, ``poll(timeout)``.
    _kernel_factory: ClassVar[Callable[[], Any]]
    #: The kernel's readable, writable and error|hang-up bits. They must be netcore's
    #: EVENT_* bits, so that :meth:`poll` can return the kernel's list without a copy;
    #: a class whose bits differ fails at import (``netcore plugins`` then shows the
    #: poller as unavailable, with the reason) rather than hand the loop wrong masks.
    _EVENT_READ: ClassVar[int] = EVENT_READ
    _EVENT_WRITE: ClassVar[int] = EVENT_WRITE
    _EVENT_ERROR: ClassVar[int] = EVENT_ERROR
    #: Added to the mask of every registration (the trigger mode, for epoll).
    _flags: ClassVar[int] = 0
    #: The flags of an exclusive registration, EVENT_EXCLUSIVE among them; used only
    #: where :attr:`supports_exclusive` is true.
    _exclusive_flags: ClassVar[int] = EVENT_EXCLUSIVE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (cls._EVENT_READ, cls._EVENT_WRITE, cls._EVENT_ERROR) != (EVENT_READ, EVENT_WRITE, EVENT_ERROR):
            raise ImportError(f"{cls.name}: the kernel's event bits differ from netcore's EVENT_* bits here")

    def __init__(self) -> None:
        self._kernel = type(self)._kernel_factory()
        #: Bound once: poll() runs every loop iteration. (select's fd sets have no poll:
        #: select's poll() is its own.)
        self._kernel_poll = getattr(self._kernel, "poll", None)
        #: fd -> the flags it was registered with (EVENT_EXCLUSIVE for an exclusive one).
        self._registered: dict[int, int] = {}

    def register(self, fd: int, events: int) -> None:
        if fd in self._registered:
            raise FileExistsError(f"fd {fd} is already registered with {self!r}")
        if events & EVENT_EXCLUSIVE:
            if not self.supports_exclusive:
                raise refuse_exclusive(self, fd)
            flags = self._exclusive_flags
        else:
            flags = self._flags
        self._kernel.register(fd, (events & ~EVENT_EXCLUSIVE) | flags)
        self._registered[fd] = flags  # only once the kernel took it: a refused fd is not half-registered

    def modify(self, fd: int, events: int) -> None:
        flags = self._registered[fd]  # KeyError for an unknown fd
        events = (events & ~EVENT_EXCLUSIVE) | flags  # exclusivity is chosen at register()
        if flags & EVENT_EXCLUSIVE:
            # EPOLL_CTL_MOD is EINVAL on an exclusive fd: register it again, still exclusive.
            self._kernel.unregister(fd)
            self._kernel.register(fd, events)
            return
        self._kernel.modify(fd, events)

    def unregister(self, fd: int) -> None:
        del self._registered[fd]  # KeyError for an unknown fd
        self._kernel.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # poll(2) counts milliseconds. Round up: a timer due in 0.4 ms must sleep 1 ms,
        # not 0, or the loop spins on poll() until the timer is due. At most
        # MAX_POLL_TIMEOUT: poll(2) takes an int (inf or 1e12 s would raise OverflowError).
        if timeout is None:
            return self._kernel_poll(-1)
        return self._kernel_poll(math.ceil(timeout * 1000) if timeout < MAX_POLL_TIMEOUT else _MAX_POLL_MS)

    def close(self) -> None:
        # An interest list with no kernel resource (poll, select): emptying it is all
        # "closing" can mean. A poller holding a kernel object closes that instead.
        for fd in self._registered:
            self._kernel.unregister(fd)
        self._registered.clear()
