"""The accept toolkit: what ``accept()``'s failures mean, and the remedies for them.

Two loops accept connections: the reactor's :class:`~netcore_acceptors.channel.AcceptChannel`
(a non-blocking listener a poller reports) and the blocking schemes'
:class:`~netcore_acceptors.blocking_accept.Accepting` (threads asleep in ``accept()``).
They differ in how they wait and how they back off (a timer on the loop; a sleep in the
thread), and share everything here, so that a server behaves the same under load or out
of resources whichever scheme it runs:

* :func:`classify` -- the one table of accept(2)'s errors: a connection that is already
  gone (retry), out of descriptors, out of kernel memory, anything else.
* :class:`SpareDescriptor` -- muduo's spare descriptor. Out of descriptors, ``accept``
  fails with EMFILE and the connection stays queued: the client hangs in the backlog and
  a loop that retried would spin. Closing the spare frees one slot; the connection
  accepted into it is then served or closed at once, and the spare reopened.
* :class:`RateLimitedLog` -- one warning per kind per :data:`LOG_INTERVAL`, with a count
  of what was suppressed: a storm of failures must not become a storm of log lines.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from typing import Any, Callable

import structlog
from netcore.ratelimited_log import RateLimitedLog as _CoreRateLimitedLog

log = structlog.get_logger("netcore.acceptor")

#: How long an accept loop stops accepting when it cannot make progress (no spare
#: descriptor, no kernel memory): long enough not to spin, short enough that nobody waits
#: noticeably once the condition passes.
PAUSE_SECONDS = 0.1
#: At most one warning of each kind per this many seconds (per accept loop).
LOG_INTERVAL = 1.0

# -- what an accept() failure means ---------------------------------------------------------

#: The connection is gone; accept again. accept(2), Linux: "already-pending network errors
#: on the new socket" are returned by accept, and "the application should ... treat them
#: like EAGAIN by retrying".
RETRY = "retry"
#: EMFILE/ENFILE: no descriptor for the new socket; the connection stays queued.
NO_FDS = "no_fds"
#: ENOBUFS/ENOMEM: the kernel is short of memory; back off.
NO_MEMORY = "no_memory"
#: Anything else: not the connection's fault; the listener itself may be broken.
FAILED = "failed"

_RETRY_NAMES = (
    "ECONNABORTED",
    "EPROTO",
    "EPERM",
    "ENETDOWN",
    "ENOPROTOOPT",
    "EHOSTDOWN",
    "ENONET",
    "EHOSTUNREACH",
    "EOPNOTSUPP",
    "ENETUNREACH",
    "ECONNRESET",
    "ETIMEDOUT",
)
_KINDS: dict[int, str] = {
    **{getattr(errno, name): RETRY for name in _RETRY_NAMES if hasattr(errno, name)},
    errno.EMFILE: NO_FDS,
    errno.ENFILE: NO_FDS,
    errno.ENOBUFS: NO_MEMORY,
    errno.ENOMEM: NO_MEMORY,
}


def classify(exc: OSError) -> str:
    """What an ``accept()`` failure means: :data:`RETRY`, :data:`NO_FDS`, :data:`NO_MEMORY` or :data:`FAILED`."""
    return _KINDS.get(exc.errno, FAILED)


# -- out of descriptors: the spare ----------------------------------------------------------

#: What :meth:`SpareDescriptor.take` achieved.
TAKEN = "taken"  # a connection, and the spare is open again: descriptors are back
REFUSED = "refused"  # a connection taken and closed at once: the client is told, not left hanging
EMPTY = "empty"  # nothing was queued: EMFILE did not mean a connection was waiting
LOST = "lost"  # the freed slot went elsewhere (another thread), or the listener was shut down
NO_SPARE = "no_spare"  # no descriptor even for the spare: nothing could be tried

Accepted = tuple[socket.socket, Any]


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


class SpareDescriptor:
    """One descriptor held in reserve, to accept a connection into when there is no other.

    Linux reserves the new descriptor before it looks at the queue, so an ``accept()``
    out of descriptors fails at once whether or not a client waits. :meth:`take` closes
    the spare, accepts into the freed slot and reopens the spare.

    A reactor channel has one of its own. The blocking schemes share one per server
    among all their accepting threads -- a ``prethread-blocking`` server with 1,000
    threads must not keep 1,000 descriptors in reserve -- and use :attr:`lock` and
    :attr:`exhausted`: while descriptors are short, every accept goes through the lock,
    or a thread coming back from a client would call ``accept()`` just as the spare is
    closed, reserve the freed slot for itself, and leave no descriptor with which to
    refuse the next client. The lock is an accept mutex that exists only while the
    process is out of descriptors.
    """

    __slots__ = ("fd", "lock", "exhausted")

    def __init__(self) -> None:
        #: The reserved descriptor (``/dev/null``), or None while it could not be opened.
        self.fd: int | None = _open_spare()
        self.lock = threading.Lock()
        #: Set by a blocking acceptor that met EMFILE; cleared once a descriptor was free.
        self.exhausted = False

    def reopen(self) -> bool:
        """Open the spare if it is not open; True if it is open now."""
        if self.fd is None:
            self.fd = _open_spare()
        return self.fd is not None

    def take(self, accept: Callable[[], Accepted]) -> tuple[str, Accepted | None]:
        """Accept one connection into the spare's slot; returns ``(outcome, accepted)``.

        ``accepted`` is the ``(sock, peer)`` pair for :data:`TAKEN`, else None. Whatever
        the outcome, the spare has been reopened where a descriptor allowed it (see
        :attr:`fd`). With :data:`TAKEN` the caller decides: serve the client, since a
        descriptor was free for the spare, or close it. With :data:`REFUSED` the spare
        needed the connection's slot, so the connection was closed.
        """
        if not self.reopen():
            return NO_SPARE, None
        os.close(self.fd)
        self.fd = None
        try:
            accepted = accept()
        except BlockingIOError:
            self.reopen()
            return EMPTY, None
        except OSError:
            self.reopen()
            return LOST, None
        if self.reopen():
            return TAKEN, accepted
        accepted[0].close()
        self.reopen()
        return REFUSED, None

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                try:
                    os.close(self.fd)
                except OSError:
                    pass
                self.fd = None


# -- warnings ---------------------------------------------------------------------------------


class RateLimitedLog(_CoreRateLimitedLog):
    """The core's rate-limited warning, on the acceptors' logger and their interval."""

    __slots__ = ()

    def __init__(self, interval: float = LOG_INTERVAL, **context: Any) -> None:
        super().__init__("netcore.acceptor", interval, **context)


