"""Connections whose handlers run on other threads, with replies written in request order.

The reactor + thread schemes (6, 7, 8, 11) keep framing and I/O on the loop thread and
move ``handler(request)`` elsewhere. Two things must then still hold, whatever thread
finishes first:

* **Order.** Replies are written in the order the requests were submitted. Each
  request gets a sequence number; a reply that comes back early waits in a small dict
  until the ones before it are written. (HTTP/1.1 pipelining and RESP require this; a
  pool with eight threads finishes out of order all the time.)
* **Bounds.** A connection stops reading while it has ``max_pending`` requests in
  flight, and while the executor's queue is full. Memory is bounded by the socket
  buffers, not by how fast a client can send.

A reply travels back with ``loop.call_soon_threadsafe``; the loop coalesces the
wake-ups, so a busy pool costs one eventfd write per loop iteration, not per reply.
"""

from __future__ import annotations

from typing import Any, Callable

import structlog

from netcore.reactor.connection import PAUSED_BY_DISPATCH, Connection

log = structlog.get_logger("netcore.connection")


class Executor:
    """Where deferred handlers run. Implementations live in the dispatch plugins.

    :meth:`submit` is called on a loop thread and must not block it. It returns False
    when its queue is now full; it then calls ``connection.executor_has_room()`` — on the
    connection's loop, through ``call_soon_threadsafe`` — once there is room again.
    The job it is given is ``job()``: run it on a worker thread; it never raises.
    """

    def submit(self, connection: DeferredConnection, job: Callable[[], None]) -> bool:
        raise NotImplementedError

    def connection_closed(self, connection: DeferredConnection) -> None:
        """The connection is gone (thread-per-connection executors end its thread)."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; with ``wait``, finish the queued ones and join the threads."""


class DeferredConnection(Connection):
    """A :class:`Connection` whose :meth:`submit` hands the handler to an :class:`Executor`."""

    __slots__ = ("executor", "max_pending", "_next_seq", "_next_reply", "_early", "_waiting_for_room")

    def __init__(self, *args: Any, executor: Executor, max_pending: int = 64, **kwargs: Any) -> None:
        self.executor = executor
        self.max_pending = max_pending
        self._next_seq = 0
        self._next_reply = 0
        self._early: dict[int, Any] = {}
        self._waiting_for_room = False
        super().__init__(*args, **kwargs)

    def submit(self, handler: Callable[[Any], Any], request: Any) -> None:
        self.requests += 1
        self.pending += 1
        seq = self._next_seq
        self._next_seq = seq + 1
        call_back = self.loop.call_soon_threadsafe
        reply_ready = self._reply_ready

        def job() -> None:
            try:
                reply = handler(request)
            except BaseException as exc:  # the handler's error is this connection's only
                call_back(reply_ready, seq, None, exc)
            else:
                call_back(reply_ready, seq, reply, None)

        if not self.executor.submit(self, job):
            self._waiting_for_room = True
            self.pause_reading(PAUSED_BY_DISPATCH)
        elif self.pending >= self.max_pending:
            self.pause_reading(PAUSED_BY_DISPATCH)

    def executor_has_room(self) -> None:
        """The executor's queue drained (loop thread): read again unless too much is in flight."""
        self._waiting_for_room = False
        if self.pending < self.max_pending:
            self.resume_reading(PAUSED_BY_DISPATCH)

    def _reply_ready(self, seq: int, reply: Any, exc: BaseException | None) -> None:
        if self.closed:
            return  # aborted (reset, error, fast stop) while the handler ran: drop it
        if exc is not None:
            log.error("connection.handler_failed", fd=self.fd, exc_info=exc)
            self.owner.count_error()
            self.abort(exc)
            return
        if seq != self._next_reply:
            self._early[seq] = reply  # finished before an earlier request: wait its turn
            return
        write = self.write
        early = self._early
        while True:
            if reply:
                write(reply)
            seq += 1
            self.pending -= 1
            if seq not in early:
                break
            reply = early.pop(seq)
        self._next_reply = seq
        if self.closed:
            return
        if not self._waiting_for_room and self.pending < self.max_pending:
            self.resume_reading(PAUSED_BY_DISPATCH)
        if not self.pending:
            self._replies_done()

    def _finish_close(self, exc: BaseException | None) -> None:
        was_closed = self.closed
        super()._finish_close(exc)
        if not was_closed:
            self.executor.connection_closed(self)
