"""The accept channel: one listener watched by one loop, muduo's ``Acceptor::handleRead``.

What it guarantees, and why each point is here rather than in every acceptor:

* **Batches.** One wake-up accepts until ``EAGAIN``: under a burst, one poll answers many
  connections. A level-triggered poller stops after :attr:`AcceptChannel.max_batch` so that
  a flood of connects cannot starve the connections already open (the poller reports the
  listener again next iteration); an edge-triggered poller must go on until ``EAGAIN``,
  or the connections still queued would never be reported again.
* **The herd, counted.** Every wake-up counts ``accept_wakeups``; a wake-up whose first
  ``accept`` finds nothing counts ``accept_eagain`` — another worker got there first.
* **EMFILE/ENFILE without hanging clients or spinning.** Out of descriptors, ``accept``
  fails and the connection stays queued: the client hangs in the backlog, and a
  level-triggered poller reports the listener again at once, forever — a busy loop. As
  in muduo, the channel keeps one spare descriptor open; on EMFILE it closes the spare,
  accepts the connection into the freed slot, closes it at once (the client sees its
  connection closed instead of a hang) and reopens the spare. Draining the queue this
  way is what keeps a level-triggered poller from spinning. If the spare cannot be
  reopened (another thread of this process took the slot), the channel stops watching
  the listener for :data:`PAUSE_SECONDS` instead of spinning.
* **Errors belong to one connection.** ``ECONNABORTED`` and the network errors Linux
  passes on from the new socket are skipped (accept(2) says to retry); ``on_connection``
  raising closes that socket only. Warnings are rate-limited to one per second per kind,
  with a count of what was suppressed: a storm must not become a log storm, and the
  normal path logs nothing at all.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import structlog
from netcore.acceptor import Listener, OnConnection
from netcore.reactor.poller import EVENT_READ, PollerLimitError

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop
    from netcore.reactor.timers import TimerHandle
    from netcore.stats import WorkerStats

log = structlog.get_logger("netcore.acceptor")

#: A level-triggered wake-up accepts at most this many connections.
MAX_BATCH = 256
#: How long a channel stops watching its listener when it cannot make progress
#: (no spare descriptor, no kernel memory): long enough not to spin, short enough
#: that nobody waits noticeably once the condition passes.
PAUSE_SECONDS = 0.1
#: At most one warning of each kind per this many seconds.
LOG_INTERVAL = 1.0

# accept(2), Linux: "already-pending network errors on the new socket" are returned by
# accept; "the application should ... treat them like EAGAIN by retrying".
_SKIP = frozenset(
    getattr(errno, name)
    for name in (
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
    if hasattr(errno, name)
)
_NO_FDS = frozenset((errno.EMFILE, errno.ENFILE))
_NO_MEMORY = frozenset((errno.ENOBUFS, errno.ENOMEM))

# What the EMFILE path achieved (see AcceptChannel._refuse_one).
_REFUSED, _EMPTY, _STUCK = range(3)


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


class RateLimitedLog:
    """Log an event at most once per ``interval`` per key, reporting how many were skipped."""

    __slots__ = ("interval", "_last", "_suppressed")

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, **fields: Any) -> bool:
        """Log ``key`` as a warning unless it was logged within the interval; True if logged.

        ``exc_info=True`` among ``fields`` attaches the traceback being handled.
        """
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            fields["suppressed"] = suppressed
        log.warning(key, **fields)
        return True


class AcceptChannel:
    """Accepts connections from one listener on one loop and hands them to ``on_connection``.

    Created registered; :meth:`close` unregisters it (the listening socket stays open: it
    belongs to the acceptor, and other workers may still be accepting from it). Every
    method runs on the loop's thread.
    """

    def __init__(
        self,
        loop: EventLoop,
        listener: Listener,
        on_connection: OnConnection,
        stats: WorkerStats,
        *,
        max_batch: int = MAX_BATCH,
        events: int = EVENT_READ,
    ) -> None:
        self.loop = loop
        self.listener = listener
        self.on_connection = on_connection
        self.stats = stats
        self.max_batch = max_batch
        #: The registration mask: EVENT_READ, plus EVENT_EXCLUSIVE for ``exclusive``. The
        #: channel never modifies a registration (holding and pausing unregister), so an
        #: exclusive one, which epoll cannot modify, needs nothing special here.
        self.events = events
        #: Read once: the poller does not change under a running loop.
        self.edge_triggered = bool(getattr(loop.poller, "edge_triggered", False))
        self.fd = listener.fileno()
        self.closed = False
        self._accept = listener.sock.accept
        self._unix = listener.sock.family == socket.AF_UNIX
        self._unix_peer = listener.path or "unix"
        self._spare = _open_spare()
        self._paused = False
        self._held = False
        self._resume_timer: TimerHandle | None = None
        self._log = RateLimitedLog()
        try:
            loop.register(self.fd, self.events, self.handle_read)
        except BaseException:
            self._close_spare()
            raise

    # -- the event ---------------------------------------------------------------------
    def handle_read(self, _mask: int) -> None:
        """The listener is readable: accept a batch (see the module docstring)."""
        if self.closed:  # a report already in the poller's list when we closed
            return
        stats = self.stats
        stats.accept_wakeups += 1
        accept = self._accept
        limit = None if self.edge_triggered else self.max_batch
        accepted = 0
        attempts = 0
        while limit is None or accepted < limit:
            attempts += 1
            try:
                sock, peer = accept()
            except BlockingIOError:
                if attempts == 1:
                    stats.accept_eagain += 1
                return
            except InterruptedError:  # pragma: no cover - PEP 475 retries inside accept()
                continue
            except OSError as exc:
                code = exc.errno
                if code in _SKIP:  # that connection is gone; it counts toward the batch
                    accepted += 1
                    continue
                if code in _NO_FDS:
                    outcome = self._refuse_one(exc)
                    if outcome == _REFUSED:
                        accepted += 1
                        continue
                    if outcome == _EMPTY and attempts == 1:
                        stats.accept_eagain += 1
                    return
                if code in _NO_MEMORY:
                    stats.errors += 1
                    self._log.warning("accept.no_memory", address=self.listener.address, error=str(exc))
                    self._pause()
                    return
                stats.errors += 1
                self._log.warning("accept.failed", address=self.listener.address, error=str(exc))
                self._pause()
                return
            accepted += 1
            if self._unix and not peer:
                peer = self._unix_peer
            try:
                self.on_connection(sock, peer)
            except PollerLimitError as exc:
                sock.close()
                stats.errors += 1
                poller = self.loop.poller
                self._log.warning(
                    "accept.poller_limit",
                    address=self.listener.address,
                    poller=getattr(poller, "name", type(poller).__name__),
                    max_fd=getattr(poller, "max_fd", None),
                    error=str(exc),
                    hint="this poller cannot watch more descriptors; use the poll or epoll poller",
                )
            except Exception:
                sock.close()
                stats.errors += 1
                self._log.warning(
                    "accept.on_connection_failed", address=self.listener.address, peer=repr(peer), exc_info=True
                )
            if self.closed:  # on_connection stopped accepting (a connection limit, a stop)
                return

    def _refuse_one(self, exc: OSError) -> int:
        """Out of descriptors: accept one queued connection into the spare slot and close it.

        Linux checks for a free descriptor before it looks at the queue, so EMFILE does
        not mean a connection is waiting: the spare's accept tells. Returns
        :data:`_REFUSED` (one connection closed; the batch may go on), :data:`_EMPTY`
        (nothing was queued; the batch is over — going on would spin, EMFILE forever)
        or :data:`_STUCK` (no descriptor even for the spare; the channel paused).
        """
        if self._spare is None:
            self._spare = _open_spare()
        outcome = _STUCK
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
            try:
                conn, _peer = self._accept()
            except BlockingIOError:
                outcome = _EMPTY
            except OSError:
                pass  # the slot went to another thread of this process
            else:
                conn.close()
                outcome = _REFUSED
            self._spare = _open_spare()
            if self._spare is None:
                outcome = _STUCK  # without a spare the next EMFILE could not be drained
        if outcome == _EMPTY:
            return outcome
        self.stats.errors += 1
        self._log.warning(
            "accept.out_of_descriptors",
            address=self.listener.address,
            error=str(exc),
            action="connection closed at once" if outcome == _REFUSED else "accepting paused",
            hint="raise the open-files limit (ulimit -n) or lower the load",
        )
        if outcome == _STUCK:
            self._pause()
        return outcome

    # -- pausing -----------------------------------------------------------------------
    def _pause(self) -> None:
        """Stop watching the listener for a moment: the alternative is a spinning loop."""
        if self._paused or self.closed:
            return
        self._paused = True
        try:
            self.loop.unregister(self.fd)
        except (OSError, ValueError, KeyError):
            pass
        self._resume_timer = self.loop.call_later(PAUSE_SECONDS, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        if self.closed or not self._paused:
            return
        if self._held:
            self._paused = False  # stays unregistered: release() registers it
            return
        self._paused = False
        if self._spare is None:
            self._spare = _open_spare()
        try:
            self.loop.register(self.fd, self.events, self.handle_read)
        except (OSError, ValueError) as exc:
            # The listener was closed under us: nothing left to watch.
            self.closed = True
            self._close_spare()
            log.warning("accept.resume_failed", address=self.listener.address, error=str(exc))

    def hold(self) -> None:
        """Stop watching the listener until :meth:`release` (a connection limit)."""
        if self._held or self.closed:
            return
        self._held = True
        if not self._paused:
            try:
                self.loop.unregister(self.fd)
            except (OSError, ValueError, KeyError):
                pass

    def release(self) -> None:
        if not self._held or self.closed:
            return
        self._held = False
        if not self._paused:
            self._paused = True  # let _resume re-register it, with its error handling
            self._resume()

    # -- closing -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting on this loop. The listening socket is left open. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        if not self._paused and not self._held:
            try:
                self.loop.unregister(self.fd)
            except (OSError, ValueError, KeyError):
                pass  # the socket was closed first; the poller forgot it already
        self._close_spare()

    def _close_spare(self) -> None:
        if self._spare is not None:
            try:
                os.close(self._spare)
            except OSError:
                pass
            self._spare = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "paused" if self._paused else "open"
        return f"<AcceptChannel {self.listener.address} {state}>"
