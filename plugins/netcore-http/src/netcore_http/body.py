"""Request bodies in bounded memory: streamed to the app, or spooled before it runs.

Which one a server uses depends on one fact the connection contract states,
``server.concurrency.handler_threads``:

* **True** (``thread``, ``thread-per-connection``, ``pool``, ``multi-reactor-pool``): the
  app runs on a thread that may wait. The request is handed to the app as soon as its
  head is complete and ``wsgi.input`` is a :class:`StreamedBody`: the I/O thread feeds
  it the body as it arrives, the app thread reads it. When more than ``body_buffer_size``
  bytes wait unread the connection stops reading (``pause_reading``), so a slow app
  makes a fast client wait instead of making the server buffer; the app's read resumes
  it (``run_on_io_thread(resume_reading)``: flow control is the I/O thread's business).
* **False** (``inline``, ``multi-reactor``, ``prefork`` and the blocking schemes): the app
  runs where the I/O happens and must never wait for the network, so the body is read
  in full before it runs -- in memory up to ``body_buffer_size``, beyond that in an
  anonymous temporary file (:class:`SpooledBody`; waitress does the same with its
  ``inbuf_overflow``). Memory stays bounded; the disk holds what the client sends, up
  to ``max_body_size``.

An ASGI app's task runs on the I/O thread too, but it can wait without stalling it (its
``receive()`` is awaited): its body is streamed, through an :class:`AsgiBody`.
"""

from __future__ import annotations

import tempfile
import threading
from typing import Any, Callable

from netcore.protocol import ConnectionClosed

from netcore_http.waiting import settle

#: Body bytes an app left unread that are read and dropped to keep the connection; a
#: longer remainder closes it instead (reading it would cost more than a new connection).
DRAIN_LIMIT = 1 << 20


class RequestBodyError(ConnectionClosed):
    """The body cannot be read to its end: the client stalled, vanished or sent too much.

    A ``ConnectionError`` (an ``OSError``), as a failing socket read would raise: apps
    already treat that as "the client went away". The server answers (408, 413) itself.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SpooledBody:
    """A body read before the app runs: memory up to a threshold, then a temporary file.

    ``feed`` runs on the I/O thread inside the parser's callbacks; ``finish`` returns
    what ``wsgi.input`` reads, positioned at the start.
    """

    __slots__ = ("file",)

    def __init__(self, parts: list[bytes]) -> None:
        # An anonymous file (already unlinked where the OS allows): nothing is left on
        # disk if the process dies, and closing it frees the space at once.
        self.file = tempfile.TemporaryFile()
        self.file.writelines(parts)

    def feed(self, data: bytes) -> None:
        self.file.write(data)

    def finish(self) -> Any:
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


class BodyFlow:
    """What a body still arriving shares, whoever reads it: the bound and the flags the
    protocol reads (:class:`StreamedBody` for a WSGI app's thread, :class:`AsgiBody`
    for an ASGI app's task)."""

    def __init__(self, connection: Any, limit: int, expect: bool, on_resume: Callable[[], None],
                 on_continue: Callable[[], None]) -> None:
        self._buf = bytearray()
        self._connection = connection
        self._limit = max(limit, 1)
        self._on_resume = on_resume
        self._on_continue = on_continue
        #: A 100 Continue is owed at the first read (cleared once asked for).
        self.expect = expect
        self.finished = False
        self.error: RequestBodyError | None = None
        #: Reading is paused because the buffer is full (read by the deadline: a full
        #: buffer is the app's slowness, not the client's).
        self.paused = False
        #: The app returned: what still arrives is discarded (counted in ``dropped``).
        self.discarding = False
        self.received = 0
        self.dropped = 0
        #: The announced Content-Length (0: chunked, not known).
        self.length = 0

    def left_unread_closes(self) -> bool:
        """True if a response that ends now, with this body not all in, must close the
        connection: the client holds the body back for a 100 Continue that will not come,
        or more than :data:`DRAIN_LIMIT` of it is still to arrive. Asked when the head is
        framed (so that it says ``Connection: close``) and when the response is done."""
        if self.finished:
            return False
        return (self.expect and not self.received) or (
            self.length > 0 and self.length - self.received > DRAIN_LIMIT)


class StreamedBody(BodyFlow):
    """``wsgi.input`` for a body still arriving: fed on the I/O thread, read on the app's.

    A lock and a condition guard a bounded buffer (a ``bytearray``: deleting from its
    front is amortised O(1) in CPython). The I/O thread pauses reading when the buffer
    passes ``limit``; a read that brings it to ``limit // 2`` or below resumes it. An
    ``Expect: 100-continue`` is answered at the app's first read, never before: an app
    that refuses the request unread (a 401, a 413) spares the client the upload.
    """

    def __init__(self, connection: Any, limit: int, expect: bool, on_resume: Callable[[], None],
                 on_continue: Callable[[], None]) -> None:
        super().__init__(connection, limit, expect, on_resume, on_continue)
        self._cond = threading.Condition(threading.Lock())
        self._low = limit // 2

    # -- the I/O thread ----------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.discarding:
            self.dropped += len(data)
            return
        pause = False
        with self._cond:
            self._buf += data
            if len(self._buf) >= self._limit and not self.paused:
                self.paused = pause = True
            self._cond.notify()
        if pause:
            self._connection.pause_reading()

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def fail(self, error: RequestBodyError) -> None:
        with self._cond:
            if self.error is None and not self.finished:
                self.error = error
            self._cond.notify_all()

    def discard(self) -> bool:
        """The app is done with the body: drop what is buffered; True if reading was paused."""
        with self._cond:
            self.discarding = True
            self.dropped += len(self._buf)
            self._buf = bytearray()
            paused, self.paused = self.paused, False
            self._cond.notify_all()
        return paused

    # -- the app's thread ----------------------------------------------------------------
    def _wait(self) -> None:
        """Wait (lock held) until bytes are buffered, the body ended, or it failed."""
        if self.expect:
            self.expect = False
            if not self.received:
                self._connection.run_on_io_thread(self._on_continue)
        while not self._buf and not self.finished:
            if self.error is not None:
                raise self.error
            self._cond.wait()

    def _take(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes (lock held), resuming reading when it drained."""
        buf = self._buf
        if size >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:size])
            del buf[:size]
        if self.paused and len(buf) <= self._low:
            self.paused = False
            self._connection.run_on_io_thread(self._on_resume)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes, fewer only at the end of the body (a buffered file's semantics:
        apps call ``read(int(CONTENT_LENGTH))`` once and expect the whole body)."""
        whole = size is None or size < 0
        parts = []
        got = 0
        with self._cond:
            while whole or got < size:
                self._wait()
                if not self._buf:
                    break  # the body ended
                piece = self._take(len(self._buf) if whole else size - got)
                parts.append(piece)
                got += len(piece)
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        parts: list[bytes] = []
        got = 0
        with self._cond:
            while limit < 0 or got < limit:
                self._wait()
                buf = self._buf
                if not buf:
                    break  # the body ended
                end = buf.find(b"\n") + 1
                want = end if end else len(buf)
                if limit >= 0:
                    want = min(want, limit - got)
                piece = self._take(want)
                parts.append(piece)
                got += len(piece)
                if piece.endswith(b"\n"):
                    break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Any:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        """Nothing to release: the protocol owns the buffer."""


class AsgiBody(BodyFlow):
    """An ASGI app's request body, still arriving: fed on the I/O thread, read by ``receive()``.

    The same bounds as :class:`StreamedBody` -- reading pauses once ``limit`` bytes wait
    unread and resumes when the app has taken them; ``Expect: 100-continue`` is answered
    at the app's first ``receive()`` -- with an asyncio future for the wait instead of a
    condition: the app's task runs on the thread that feeds it (the reactor hosts the
    asyncio loop), so there is nothing to lock. The protocol drives it exactly as it
    drives a :class:`StreamedBody` (``feed``, ``finish``, ``fail``, ``discard``).
    """

    _waiter: Any = None  # the future receive() waits on, while it waits

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        settle(waiter)

    # -- the protocol (I/O thread) -------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.discarding:
            self.dropped += len(data)
            return
        self._buf += data
        if len(self._buf) >= self._limit and not self.paused:
            self.paused = True
            self._connection.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.finished = True
        self._wake()

    def fail(self, error: RequestBodyError) -> None:
        if self.error is None and not self.finished:
            self.error = error
        self._wake()

    def discard(self) -> bool:
        """The app is done with the body: drop what is buffered; True if reading was paused."""
        self.discarding = True
        self.dropped += len(self._buf)
        self._buf = bytearray()
        paused, self.paused = self.paused, False
        self._wake()
        return paused

    # -- the app's task (same thread) ----------------------------------------------------
    async def read(self) -> tuple[bytes, bool]:
        """What has arrived (at least one byte unless the body ended) and whether more follows.

        Raises the body's :class:`RequestBodyError` once nothing buffered is left and the
        body cannot end (the client stalled, vanished or sent too much).
        """
        if self.expect:
            self.expect = False
            if not self.received:
                self._on_continue()
        while not self._buf and not self.finished:
            if self.error is not None:
                raise self.error
            if self.discarding:
                return b"", False
            waiter = self._waiter = self._connection.loop.asyncio_loop.create_future()  # no getpid(): asgi.py
            await waiter
        data = bytes(self._buf)
        self._buf.clear()
        if self.paused:
            self.paused = False
            self._on_resume()
        return data, not self.finished

    def close(self) -> None:
        """Nothing to release: the protocol owns the buffer."""
