"""Connections whose handlers run on other threads, with replies written in request order.

The reactor + thread schemes (6, 7, 8, 11) keep framing and I/O on the loop thread and
move ``handler(request)`` elsewhere. Two things must then still hold, whatever thread
finishes first:

* **Order.** Replies are written in the order the requests were submitted. Each
  request gets a sequence number; a reply that comes back early waits in a small dict
  until the ones before it are written. (HTTP/1.1 pipelining and RESP require this; a
  pool with eight threads finishes out of order all the time.) A ``serial`` protocol
  has one submission in flight at a time, so it skips that bookkeeping entirely: the
  rest wait in the connection's queue (:mod:`netcore.reactor.base`).
* **Bounds.** A connection stops reading while it has ``max_pending`` requests in
  flight, and while the executor's queue is full. Memory is bounded by the socket
  buffers, not by how fast a client can send. A handler streaming output with
  :meth:`DeferredConnection.send` waits while more than ``high_water`` bytes are queued
  or on their way to the loop: a slow reader slows the producer, it does not fill memory.

**Hand-offs per batch, not per request.** A job is a plain tuple ``(connection, seq,
handler, request)``; an executor runs a list of them with :func:`run_jobs` on one of its
threads, and the replies of that list travel back to the loop in one
``call_soon_threadsafe`` (the loop coalesces wake-ups too). Handing work between threads
costs a queue operation, a thread wake-up and two GIL transfers, whatever the size of
what is handed over: an executor that hands over the requests of one loop iteration
together (``PoolExecutor``) pays that once per iteration instead of once per request.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import structlog

from netcore.reactor.base import LATER, ConnectionClosed
from netcore.reactor.connection import _CLOSED, _CLOSING, _LINGERING, PAUSED_BY_DISPATCH, Connection

log = structlog.get_logger("netcore.connection")


#: How long a handler thread may hold replies it has produced before posting them: a
#: batch of slow handlers still answers its first request about when it is done.
POST_AFTER = 0.0005

_monotonic = time.monotonic


def run_jobs(jobs: list[tuple]) -> None:
    """Run ``jobs`` (``(connection, seq, handler, request)`` tuples) on this thread.

    What every executor calls on its handler thread. Replies go back to their loops in
    one ``call_soon_threadsafe`` per list (and per loop), or sooner once handlers have
    taken :data:`POST_AFTER` seconds; a handler's exception is its connection's only.
    """
    if len(jobs) == 1:
        connection, seq, handler, request = jobs[0]
        try:
            reply = handler(request)
        except BaseException as exc:
            connection.loop.call_soon_threadsafe(connection._reply_ready, seq, None, exc)
        else:
            connection.loop.call_soon_threadsafe(connection._reply_ready, seq, reply, None)
        return
    results: list[tuple] = []
    append = results.append
    started = _monotonic()
    for job in jobs:
        connection, seq, handler, request = job
        try:
            append((connection, seq, handler(request), None))
        except BaseException as exc:
            append((connection, seq, None, exc))
        if _monotonic() - started > POST_AFTER:
            _post(results)
            results = []
            append = results.append
            started = _monotonic()
    if results:
        _post(results)


def _post(results: list[tuple]) -> None:
    loop = results[0][0].loop
    for result in results:
        if result[0].loop is not loop:  # several loops (multi-reactor-pool): one post each
            by_loop: dict[Any, list] = {}
            for item in results:
                by_loop.setdefault(item[0].loop, []).append(item)
            for each, items in by_loop.items():
                each.call_soon_threadsafe(_deliver, items)
            return
    loop.call_soon_threadsafe(_deliver, results)


def _deliver(results: list[tuple]) -> None:
    """On the loop: hand each reply to its connection, in the order they were produced."""
    for connection, seq, reply, exc in results:
        connection._reply_ready(seq, reply, exc)


class Executor:
    """Where deferred handlers run. Implementations live in the dispatch plugins.

    :meth:`submit` is called on a loop thread and must not block it. It returns False
    when its queue is now full; it then calls ``connection.executor_has_room()`` — on the
    connection's loop, through ``call_soon_threadsafe`` — once there is room again.
    The job it is given is a tuple for :func:`run_jobs`: run it (alone or with others)
    on a worker thread; ``run_jobs`` never raises.
    """

    def submit(self, connection: DeferredConnection, job: tuple) -> bool:
        raise NotImplementedError

    def connection_closed(self, connection: DeferredConnection) -> None:
        """The connection is gone (thread-per-connection executors end its thread)."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; with ``wait``, finish the queued ones and join the threads."""


class DeferredConnection(Connection):
    """A :class:`Connection` whose :meth:`submit` hands the handler to an :class:`Executor`."""

    __slots__ = ("executor", "max_pending", "_next_seq", "_next_reply", "_early", "_waiting_for_room",
                 "_flow", "_in_transit", "_buffered")

    def __init__(self, *args: Any, executor: Executor, max_pending: int = 64, **kwargs: Any) -> None:
        self.executor = executor
        self.max_pending = max_pending
        self._next_seq = 0
        self._next_reply = 0
        self._early: dict[int, Any] = {}
        self._waiting_for_room = False
        #: Created by the first send() from a handler thread (most connections never stream).
        self._flow: threading.Condition | None = None
        self._in_transit = 0
        self._buffered = 0
        super().__init__(*args, **kwargs)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, handler: Callable[[Any], Any], request: Any, count: int = 1) -> None:
        self.requests += count
        if self._serial:
            if self._job_open:
                self._queue_job(handler, request)
                return
            self._job_open = True
        self.pending += 1
        seq = self._next_seq
        self._next_seq = seq + 1
        if not self.executor.submit(self, (self, seq, handler, request)):
            self._waiting_for_room = True
            self.pause_reading(PAUSED_BY_DISPATCH)
        elif self.pending >= self.max_pending:
            self.pause_reading(PAUSED_BY_DISPATCH)

    def _start_job(self, handler: Callable[[Any], Any], request: Any) -> bool:
        """A serial protocol's next submission, taken from the queue (loop thread).

        Goes through :meth:`submit` (counted already: ``count`` 0), which sets
        ``_job_open`` again: it is in flight until its reply comes back.
        """
        self._job_open = False
        self.submit(handler, request, 0)
        return True

    def executor_has_room(self) -> None:
        """The executor's queue drained (loop thread): read again unless too much is in flight."""
        self._waiting_for_room = False
        if self.pending < self.max_pending:
            self.resume_reading(PAUSED_BY_DISPATCH)

    # -- replies (loop thread) ---------------------------------------------------------------
    def _reply_ready(self, seq: int, reply: Any, exc: BaseException | None) -> None:
        if self._state == _CLOSED:
            return  # aborted (reset, error, fast stop) while the handler ran: drop it
        if exc is not None:
            if not isinstance(exc, ConnectionClosed):
                log.error("connection.handler_failed", fd=self.fd, exc_info=exc)
                self.owner.count_error()
            self.abort(exc)
            return
        if self._serial:
            # One submission in flight: it is the next reply, no reordering to do.
            self._next_reply = seq + 1
            if reply is LATER:
                return  # job_finished() ends it
            self.pending -= 1
            if reply:
                self.write(reply)
            self._after_reply()
            return
        if seq != self._next_reply:
            self._early[seq] = reply  # finished before an earlier request: wait its turn
            return
        if reply is LATER or self._early:
            self._write_in_order(seq, reply)
            return
        # The common case, written out (once per request): the reply due, none behind it.
        self._next_reply = seq + 1
        self.pending -= 1
        if reply:
            self.write(reply)
        done = self._job_done
        if done is not None and self._state != _CLOSED:
            done()
        if self._paused & PAUSED_BY_DISPATCH and not self._waiting_for_room and self.pending < self.max_pending:
            self.resume_reading(PAUSED_BY_DISPATCH)
        if not self.pending and (self._eof or self._state == _CLOSING) and not self._out:
            self._on_flushed()

    def _write_in_order(self, seq: int, reply: Any) -> None:
        """Write ``reply`` (the one due) and every early one that follows it."""
        write = self.write
        early = self._early
        done = self._job_done
        while True:
            if reply is LATER:
                self._job_open = True  # the rest wait in _early until job_finished()
                self._next_reply = seq
                return
            if reply:
                write(reply)
            seq += 1
            self.pending -= 1
            if done is not None and self._state != _CLOSED:
                done()
            if seq not in early:
                break
            reply = early.pop(seq)
        self._next_reply = seq
        if self._state == _CLOSED:
            return
        if not self._waiting_for_room and self.pending < self.max_pending:
            self.resume_reading(PAUSED_BY_DISPATCH)
        if not self.pending:
            self._replies_done()

    def _after_reply(self) -> None:
        """A serial submission's reply is written: tell the protocol, start the next one."""
        done = self._job_done
        if done is not None and self._state != _CLOSED:
            done()
        if self._state == _CLOSED:
            return
        self._run_waiting()  # clears _job_open, or starts the next submission
        if self._state == _CLOSED:
            return
        if self._paused & PAUSED_BY_DISPATCH and not self._waiting_for_room and self.pending < self.max_pending:
            self.resume_reading(PAUSED_BY_DISPATCH)

    def job_finished(self, reply: Any = None) -> None:
        """End a submission that returned LATER; from any thread (posted to the loop)."""
        if not self.loop.in_loop_thread():
            self.loop.call_soon_threadsafe(self.job_finished, reply)
            return
        if self._state == _CLOSED:
            return
        if not self._job_open:
            raise RuntimeError("job_finished() without a submission that returned LATER")
        if self._serial:
            self.pending -= 1
            if reply:
                self.write(reply)
            self._after_reply()
            return
        self._job_open = False
        # Not serial: the LATER reply was the one due; go on with those that came back early.
        self._write_in_order(self._next_reply, reply or None)

    # -- streaming from a handler thread -----------------------------------------------------
    def send(self, data: bytes | bytearray | memoryview) -> bool:
        """Stream output from the handler's thread, waiting while too much is owed.

        The bytes are posted to the loop, which writes them; this thread waits while more
        than ``high_water`` bytes are queued in the connection or still on their way, and
        goes on once the output is back at ``low_water``. Only a ``serial`` protocol may
        stream: with two submissions in flight a stream could overtake an earlier reply.
        Called on the loop thread itself, it behaves as :meth:`Connection.send`.
        """
        loop = self.loop
        if loop.in_loop_thread():
            return Connection.send(self, data)
        if not self._serial:
            raise RuntimeError("send() from a handler thread needs a serial protocol (serial = True)")
        flow = self._flow
        if flow is None:
            flow = self._flow = threading.Condition(threading.Lock())
        size = len(data)
        high = self._high_water
        with flow:
            while self._in_transit + self._buffered > high and self._state < _LINGERING:
                flow.wait(1.0)
            if self._state >= _LINGERING:
                raise ConnectionClosed("the connection is closed")
            self._in_transit += size
        loop.call_soon_threadsafe(self._write_sent, data, size)
        return True

    def _write_sent(self, data: Any, size: int) -> None:
        if self._state < _LINGERING:
            self.write(data)
        flow = self._flow
        with flow:
            self._in_transit -= size
            self._buffered = len(self._out)
            flow.notify_all()

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """From a handler thread: 0 (the caller streams the file with :meth:`send`)."""
        if not self.loop.in_loop_thread():
            return 0
        return Connection.sendfile(self, fd, offset, count)

    def _notify_writing(self, paused: bool) -> None:
        flow = self._flow
        if flow is not None and not paused:
            with flow:
                self._buffered = len(self._out)
                flow.notify_all()
        super()._notify_writing(paused)

    def count_error(self) -> None:
        """Count a failure in the worker's statistics, from the handler's thread or the loop's."""
        if self.loop.in_loop_thread():
            self.owner.count_error()
        else:
            self.loop.call_soon_threadsafe(self.owner.count_error)

    def _finish_close(self, exc: BaseException | None) -> None:
        was_closed = self._state == _CLOSED
        super()._finish_close(exc)
        if was_closed:
            return
        flow = self._flow
        if flow is not None:
            with flow:
                flow.notify_all()  # a handler waiting in send() learns the peer is gone
        self.executor.connection_closed(self)
