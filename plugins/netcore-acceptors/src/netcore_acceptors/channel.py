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

The error table, the spare descriptor and the rate-limited log are the accept toolkit
(:mod:`netcore_acceptors.accept_errors`), which the blocking schemes use as well.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import structlog
from netcore.acceptor import Listener, OnConnection
from netcore.reactor.poller import EVENT_READ, PollerLimitError

from netcore_acceptors.accept_errors import (
    EMPTY,
    NO_FDS,
    NO_MEMORY,
    PAUSE_SECONDS,
    REFUSED,
    RETRY,
    TAKEN,
    RateLimitedLog,
    SpareDescriptor,
    classify,
)

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop
    from netcore.reactor.timers import TimerHandle
    from netcore.stats import WorkerStats

log = structlog.get_logger("netcore.acceptor")

#: A level-triggered wake-up accepts at most this many connections.
MAX_BATCH = 256

#: What the EMFILE path achieved beyond the spare's own outcomes (see AcceptChannel._refuse_one).
_STUCK = "stuck"


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
        self._spare = SpareDescriptor()
        self._paused = False
        self._held = False
        self._resume_timer: TimerHandle | None = None
        self._log = RateLimitedLog()
        try:
            loop.register(self.fd, self.events, self.handle_read)
        except BaseException:
            self._spare.close()
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
                kind = classify(exc)
                if kind == RETRY:  # that connection is gone; it counts toward the batch
                    accepted += 1
                    continue
                if kind == NO_FDS:
                    outcome = self._refuse_one(exc)
                    if outcome == REFUSED:
                        accepted += 1
                        continue
                    if outcome == EMPTY and attempts == 1:
                        stats.accept_eagain += 1
                    return
                stats.errors += 1
                if kind == NO_MEMORY:
                    self._log.warning("accept.no_memory", address=self.listener.address, error=str(exc))
                else:
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

    def _refuse_one(self, exc: OSError) -> str:
        """Out of descriptors: accept one queued connection into the spare slot and close it.

        Linux checks for a free descriptor before it looks at the queue, so EMFILE does
        not mean a connection is waiting: the spare's accept tells. Returns
        :data:`~netcore_acceptors.accept_errors.REFUSED` (one connection closed; the batch
        may go on), :data:`~netcore_acceptors.accept_errors.EMPTY` (nothing was queued;
        the batch is over -- going on would spin, EMFILE forever) or :data:`_STUCK` (no
        descriptor for the spare, or its slot went to another thread; the channel paused).
        A connection taken while a descriptor was free again is closed too: the batch goes
        on, and its next ``accept()`` shows whether the shortage is over.
        """
        outcome, accepted = self._spare.take(self._accept)
        if outcome == TAKEN:
            accepted[0].close()
            outcome = REFUSED
        if self._spare.fd is None or outcome not in (REFUSED, EMPTY):
            outcome = _STUCK  # without a spare the next EMFILE could not be drained
        if outcome == EMPTY:
            return outcome
        self.stats.errors += 1
        self._log.warning(
            "accept.out_of_descriptors",
            address=self.listener.address,
            error=str(exc),
            action="connection closed at once" if outcome == REFUSED else "accepting paused",
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
        self._spare.reopen()
        try:
            self.loop.register(self.fd, self.events, self.handle_read)
        except (OSError, ValueError) as exc:
            # The listener was closed under us: nothing left to watch.
            self.closed = True
            self._spare.close()
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
        self._spare.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "paused" if self._paused else "open"
        return f"<AcceptChannel {self.listener.address} {state}>"
