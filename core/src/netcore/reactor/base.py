"""What every connection gives a protocol, whatever the scheme: the connection contract.

Three classes implement it -- the reactor's :class:`~netcore.reactor.connection.Connection`
(handlers run on the loop thread), :class:`~netcore.reactor.deferred.DeferredConnection`
(handlers run on other threads) and
:class:`~netcore.reactor.blocking_connection.BlockingConnection` (one thread does
everything with blocking calls). A protocol written against this contract never needs to
know which one it has; docs/plugin-authoring.md states the guarantees.

The contract, in short:

* ``submit(handler, request, count=1)`` runs ``handler(request)`` where the scheme says
  and writes the reply it returns, replies in submission order. ``count`` is how many
  requests the submission stands for (a batch of pipelined commands is one submission):
  the ``requests`` statistic is kept here, not by protocols.
* ``serial = True`` on the protocol class: at most one submission in flight per
  connection; later ones wait here, in order, and the connection stops reading while
  too many wait. (Only the threaded schemes can have two in flight; everywhere else the
  flag costs nothing.) Needed by protocols whose handlers share per-connection state
  (a transaction, a streamed response).
* ``job_done()`` on the protocol, if it defines it, runs on the I/O thread after each
  submission's reply has been handed to the connection: where a protocol moves its
  keep-alive deadline, closes after a final reply (``discard_waiting()`` then drops
  what was read after it), or resumes reading.
* A handler may return :data:`LATER`: the reply is not finished; the protocol ends it
  with ``connection.job_finished(reply)`` (from any thread). Submissions made meanwhile
  wait behind it.
* ``send(data)``, callable from the handler, on whatever thread it runs, streams output
  with flow control: on a handler thread it blocks while more than ``high_water`` bytes
  are queued or on their way to the loop; on the I/O thread it never blocks and returns
  False once output is above ``high_water`` -- stop producing and continue in
  ``resume_writing()``. Raises :class:`ConnectionClosed` once the peer is gone.
* ``set_deadline(at, callback)`` / ``cancel_deadline()``: ``callback()`` runs on the I/O
  thread once ``time.monotonic()`` passes ``at``. The reactor maps this to its timers
  (lazily: moving a deadline later costs no timer operation), the blocking connection to
  a receive timeout. One deadline per connection, which is what header, body and
  keep-alive timeouts need.
* ``count_error()``: count a failure in the worker's statistics, from any thread.
* ``peer`` and ``tls``: the client's address (the original client's behind an accepted
  PROXY header) and, on a TLS listener, what the handshake established (None on
  plaintext). Both are set before the protocol exists: it never sees either layer.
* ``run_on_io_thread(callback, *args)``: run something on the connection's I/O thread
  from any thread (muduo's ``runInLoop``): at once if already there, else posted to its
  loop. ``post(data)`` is the write made that way -- never blocking, written in the order
  posted -- for output that does not answer this connection's own request (a Pub/Sub
  message published by another client, on another loop).
"""

from __future__ import annotations

import collections
import os
from typing import Any, Callable

import structlog

log = structlog.get_logger("netcore.connection")


class _Later:
    __slots__ = ()

    def __repr__(self) -> str:
        return "LATER"


#: What a handler returns when its reply is not finished yet (see ``job_finished``).
LATER: Any = _Later()


class ConnectionClosed(ConnectionError):
    """Raised by ``send`` (and ``job_finished``'s writes) once the connection is closed."""


#: Submissions that may wait behind a busy one before the connection stops reading.
QUEUED_JOBS_LIMIT = 64


class ConnectionBase:
    """The state and the job queue every connection class shares.

    Subclasses implement ``write``, ``pause_reading``/``resume_reading``, the deadline
    methods and their own fast ``submit``; the queue of waiting submissions (for a
    ``serial`` protocol, or behind a :data:`LATER` reply) is kept here once.
    """

    __slots__ = (
        "peer", "owner", "protocol", "bytes_received", "bytes_sent", "requests", "pending",
        "_jobs", "_job_open", "_job_done", "_serial",
    )

    def _init_base(self, owner: Any, peer: Any) -> None:
        self.peer = peer
        self.owner = owner
        self.protocol: Any = None
        self.bytes_received = 0
        self.bytes_sent = 0
        #: Requests submitted (``count`` per submission): the ``requests`` statistic.
        self.requests = 0
        #: Submissions whose reply is not yet written (running, waiting, or LATER).
        self.pending = 0
        self._jobs: collections.deque | None = None
        self._job_open = False
        self._job_done: Callable[[], Any] | None = None
        self._serial = False

    def _adopt_protocol(self, protocol: Any) -> None:
        """Read once what the protocol declares: nothing is looked up per request."""
        self.protocol = protocol
        self._serial = bool(getattr(protocol, "serial", False))
        self._job_done = getattr(protocol, "job_done", None)

    def set_protocol(self, protocol: Any) -> None:
        """Hand this connection to another protocol: an HTTP ``Upgrade`` (WebSocket).

        asyncio's ``transport.set_protocol``, Twisted's ``switchProtocol``: from now on
        every event — ``data_received``, ``eof_received``, ``stop_requested``, the water
        marks, ``connection_lost``, ``is_idle``, ``job_done`` — goes to ``protocol``, whose
        ``connection_made()`` runs now. The old protocol hears nothing more (no
        ``connection_lost``); bytes it read but did not consume it passes on itself, with
        ``protocol.data_received(leftover)``. Call it on the connection's own thread (the
        loop's, or a blocking scheme's serving thread) when no submission is in flight:
        waiting submissions would be answered by the new protocol's ``job_done``.
        """
        self._adopt_protocol(protocol)
        protocol.connection_made()

    # -- waiting submissions --------------------------------------------------------------
    def _queue_job(self, handler: Callable[[Any], Any], request: Any) -> None:
        jobs = self._jobs
        if jobs is None:
            jobs = self._jobs = collections.deque()
        jobs.append((handler, request))
        self.pending += 1
        if len(jobs) >= QUEUED_JOBS_LIMIT:
            self._pause_for_jobs()

    def discard_waiting(self) -> int:
        """Drop the submissions waiting behind the one in flight; returns how many.

        For a protocol's final reply (HTTP ``Connection: close``, RESP ``QUIT``, a
        protocol error): what was read after it must not be answered, and under a pool it
        may already wait here. Call it from ``job_done`` before ``close()``. Submissions
        already handed to handler threads (a protocol that is not ``serial``) are not
        waiting and still get their replies.
        """
        jobs = self._jobs
        if not jobs:
            return 0
        count = len(jobs)
        jobs.clear()
        self.pending -= count
        self._resume_for_jobs()
        return count

    def _pause_for_jobs(self) -> None:
        """Too many submissions wait: stop reading (subclasses know how)."""

    def _resume_for_jobs(self) -> None:
        """The waiting submissions drained: read again."""

    def job_finished(self, reply: Any = None) -> None:
        """End the submission whose handler returned :data:`LATER`, writing ``reply`` last.

        On the I/O thread here; the reactor connections also accept other threads.
        """
        if not self._job_open:
            raise RuntimeError("job_finished() without a submission that returned LATER")
        self.pending -= 1
        if reply:
            self.write(reply)
        done = self._job_done
        if done is not None and not self.closed:
            done()
        self._run_waiting()

    def _run_waiting(self) -> None:
        """The open submission ended: start the waiting ones, in order (I/O thread).

        ``_job_open`` stays set while they run -- one invariant keeps every ``submit`` a
        single test: a submission waits whenever ``_job_open`` is set, and submissions
        wait only then, so nothing submitted meanwhile (from ``job_done``, say) can
        overtake one that waited. It is cleared once none is left or none stayed open.
        """
        jobs = self._jobs
        while jobs and not self.closed:
            handler, request = jobs.popleft()
            self.pending -= 1
            if len(jobs) == QUEUED_JOBS_LIMIT // 2:
                self._resume_for_jobs()
            if self._start_job(handler, request):
                return  # this one is open now (LATER, or in flight on another thread)
        self._job_open = False
        if jobs is not None:
            self._resume_for_jobs()
        if not self.pending:
            self._replies_done()

    def _start_job(self, handler: Callable[[Any], Any], request: Any) -> bool:
        """Run one waiting submission now (counted already); True if it stays open."""
        raise NotImplementedError

    def _send_file(self, out_fd: int, fd: int, offset: int, count: int) -> int:
        """``os.sendfile`` until ``count`` bytes, the end of the file, or a full socket.

        The part of ``sendfile`` both socket kinds share: a non-blocking socket stops at
        EAGAIN with what it took; a failed send closes the connection.
        """
        sent = 0
        try:
            while sent < count:
                n = os.sendfile(out_fd, fd, offset + sent, count - sent)
                if n == 0:
                    break
                sent += n
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self.bytes_sent += sent
            self.abort(exc)
            raise ConnectionClosed("the peer is gone") from exc
        self.bytes_sent += sent
        return sent

    def abort(self, exc: BaseException | None = None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _protocol_failed(self, exc: BaseException) -> None:
        """A protocol callback raised: log it, count it, and close this connection only."""
        log.error("connection.protocol_failed", fd=self.fd, peer=peer_text(self.peer), exc_info=exc)
        self.owner.count_error()
        self.abort(exc)

    def _replies_done(self) -> None:
        """Nothing is owed any more: finish a close that waited for the replies."""

    # -- interface the subclasses implement ------------------------------------------------
    closed: bool

    def write(self, data: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def peer_text(peer: Any) -> str:
    """``127.0.0.1:5000``, ``[::1]:5000``, a Unix path, or ``-``: a peer as logs show it."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = peer[0]
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer) if peer else "-"
