"""A blocking connection: one accepted socket served from accept to close by one thread.

The loop-less counterpart of :class:`netcore.reactor.connection.Connection`, used by the
blocking schemes (iterative, forking, threading, prefork-blocking, prethread-blocking).
It gives protocols the same interface, so the same protocol code runs under every scheme.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

import structlog

from netcore.reactor.connection import PAUSED_BY_PROTOCOL, ConnectionOwner, peer_text

log = structlog.get_logger("netcore.connection")

_OPEN, _CLOSING, _LINGERING, _CLOSED = range(4)

#: Errors on one socket that mean "this peer is gone": close it, keep serving the rest.
PEER_GONE = (ConnectionError, TimeoutError, OSError)


class BlockingConnection:
    """A blocking socket and its protocol, served from accept to close by one thread.

    The protocol sees the reactor ``Connection``'s interface (``submit``, ``write``,
    ``close``, ``abort``, ``pause_reading``/``resume_reading``, ``requests``, ``pending``,
    ``bytes_received``, ``bytes_sent``, ``peer``, ``output_size``, ``reading``,
    ``closed``), so the same protocol runs under every scheme. What differs is that
    nothing is ever queued: a write blocks until the kernel has taken every byte, and a
    handler runs on this thread before the next ``recv``. Replies are therefore in
    request order without any bookkeeping, and backpressure is automatic: while the
    thread is blocked sending to a peer that does not read, it reads nothing more.

    Every method is for the serving thread, except :meth:`stop_gracefully` and
    :meth:`stop_now`, which the server's stop calls from other threads and from the
    signal handler; they only shut the socket down, which is what wakes a blocked call.
    """

    __slots__ = (
        "sock", "fd", "peer", "owner", "protocol", "bytes_received", "bytes_sent", "requests", "pending",
        "_factory", "_recv_size", "_linger_timeout", "_state", "_eof", "_paused", "_stop", "_sockets_lock",
        "__weakref__",
    )

    #: There is no event loop: the serving thread itself waits in the kernel. Code that
    #: would use ``connection.loop.call_soon_threadsafe`` has no business here -- under a
    #: blocking scheme every protocol callback and handler already runs on this thread.
    loop = None

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[BlockingConnection], Any],
        owner: ConnectionOwner,
        *,
        peer: Any = None,
        recv_size: int = 65536,
        linger_timeout: float = 2.0,
        sockets_lock: Any = None,
        **_reactor_options: Any,  # high_water/low_water: there is no output buffer to bound
    ) -> None:
        sock.settimeout(None)  # blocking: the kernel does the waiting, that is the scheme
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Replies are whole messages: do not let Nagle hold a small one for the next.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.owner = owner
        self.protocol: Any = None
        self.bytes_received = 0
        self.bytes_sent = 0
        #: Requests handed to :meth:`submit` (the ``requests`` statistic).
        self.requests = 0
        #: Requests whose reply is not yet written: 1 while a handler runs, else 0.
        self.pending = 0
        self._factory = protocol_factory
        self._recv_size = recv_size
        self._linger_timeout = linger_timeout
        self._state = _OPEN
        self._eof = False
        self._paused = 0
        #: None, or how the server asked this connection to stop: "graceful" or "fast".
        self._stop: str | None = None
        # Held around close() and the stop's shutdown(): without it, a stop could read this
        # socket's fd number, lose the CPU, and shut down whichever new socket got the
        # number after this thread closed it. Reentrant: the signal handler may interrupt
        # the main thread inside close() (iterative).
        self._sockets_lock = sockets_lock if sockets_lock is not None else threading.RLock()

    # -- the serving loop ---------------------------------------------------------------
    def serve(self) -> None:
        """Serve until the connection closes; the calling thread does nothing else meanwhile."""
        try:
            self.protocol = self._factory(self)
            self.protocol.connection_made()
        except Exception as exc:
            self._protocol_failed(exc)
            return
        recv = self.sock.recv
        size = self._recv_size
        while self._state == _OPEN:
            try:
                data = recv(size)
            except PEER_GONE as exc:
                self.abort(exc)
                return
            if not data:
                self._on_end_of_input()
                break
            self.bytes_received += len(data)
            try:
                self.protocol.data_received(data)
            except Exception as exc:
                self._protocol_failed(exc)
                return
        if self._state == _CLOSING:
            self._linger()

    def _on_end_of_input(self) -> None:
        """``recv`` returned b'': the peer's FIN, or the server's stop shut our read side."""
        stop = self._stop
        if stop == "fast":
            self.abort()
            return
        if stop == "graceful":
            # Everything the peer sent before the stop has been read and answered (the
            # kernel hands out queued bytes before reporting the shut-down read side).
            try:
                self.protocol.stop_requested()
            except Exception as exc:
                self._protocol_failed(exc)
                return
            # Nothing more can be read now, so nothing could complete a partial request:
            # a protocol that did not close has nothing left to wait for.
            self.close()
            return
        self._eof = True
        try:
            self.protocol.eof_received()
        except Exception as exc:
            self._protocol_failed(exc)
            return
        if self._state in (_OPEN, _CLOSING):
            # Every reply is written (writes block) and the peer has sent FIN: there is
            # no unread input that could turn our close into an RST, so no lingering.
            self._finish_close(None)

    # -- what protocols call -------------------------------------------------------------
    def submit(self, handler: Callable[[Any], Any], request: Any) -> None:
        """Run ``handler(request)`` here, on the connection's own thread, and write its reply.

        In the blocking schemes the connection's thread *is* the worker: there is nowhere
        else to send the work, and nothing else for this thread to do while it runs.
        """
        self.requests += 1
        self.pending += 1
        try:
            reply = handler(request)
        finally:
            self.pending -= 1
        if reply:
            self.write(reply)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, blocking until the kernel has taken it."""
        if self._state >= _LINGERING:
            return  # already sent FIN or closed: nothing more can reach the peer
        send = self.sock.send
        try:
            # A blocking send takes everything unless a signal interrupts it; sendall()
            # would do the same but could not say how much went out before an error.
            sent = send(data)
            self.bytes_sent += sent
            if sent < (data.nbytes if isinstance(data, memoryview) else len(data)):
                view = memoryview(data).cast("B")[sent:]
                while view:
                    sent = send(view)
                    self.bytes_sent += sent
                    view = view[sent:]
        except PEER_GONE as exc:
            self.abort(exc)

    def close(self) -> None:
        """Close after what is owed (nothing is ever queued), without losing the last reply.

        The serving loop then half-closes (FIN) and reads until the peer's FIN or the
        linger timeout, as the reactor's connection does: closing with unread input
        makes the kernel send RST, and RST can destroy replies still in flight.
        """
        if self._state == _OPEN:
            self._state = _CLOSING

    def abort(self, exc: BaseException | None = None) -> None:
        """Close at once (the peer reset, or an error)."""
        self._finish_close(exc)

    def pause_reading(self, reason: int = PAUSED_BY_PROTOCOL) -> None:
        """Recorded only (``reading`` says False); it cannot change what happens next.

        A blocking connection reads only when its thread comes back to ``recv``, after
        the protocol's callback and the handler have returned and the reply has been
        sent: backpressure is built in. And no other thread exists to call
        :meth:`resume_reading` later, so actually stopping would stop for good.
        """
        self._paused |= reason

    def resume_reading(self, reason: int = PAUSED_BY_PROTOCOL) -> None:
        self._paused &= ~reason

    @property
    def reading(self) -> bool:
        return self._state == _OPEN and not self._eof and not self._paused and self._stop is None

    @property
    def output_size(self) -> int:
        """Always 0: writes block until sent, nothing is buffered."""
        return 0

    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    # -- closing ----------------------------------------------------------------------
    def _linger(self) -> None:
        self._state = _LINGERING
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._finish_close(None)
            return
        # Discard what the peer still sends until its FIN, so that close() sends FIN, not RST.
        deadline = time.monotonic() + self._linger_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                if not sock.recv(65536):
                    break
        except OSError:  # TimeoutError included
            pass
        self._finish_close(None)

    def _protocol_failed(self, exc: BaseException) -> None:
        log.error("connection.protocol_failed", fd=self.fd, peer=peer_text(self.peer), exc_info=exc)
        self.owner.count_error()
        self.abort(exc)

    def _finish_close(self, exc: BaseException | None) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        with self._sockets_lock:
            try:
                self.sock.close()
            except OSError:
                pass
        protocol = self.protocol
        if protocol is not None:
            try:
                protocol.connection_lost(exc)
            except Exception:
                log.exception("connection.protocol_failed", fd=self.fd, during="connection_lost")
        self.owner.connection_closed(self)

    # -- what the server's stop calls (other threads, signal handler) -----------------------
    def stop_gracefully(self) -> None:
        """Shut the read side: ``recv`` returns what is queued, then b'' (the stop)."""
        if self._stop is None:
            self._stop = "graceful"
        self._shutdown(socket.SHUT_RD)

    def stop_now(self) -> None:
        """Shut both sides: blocked ``recv``/``send`` return at once; the thread aborts."""
        self._stop = "fast"
        self._shutdown(socket.SHUT_RDWR)

    def _shutdown(self, how: int) -> None:
        with self._sockets_lock:
            if self.sock.fileno() == -1:
                return
            try:
                self.sock.shutdown(how)
            except OSError:
                pass

    def __repr__(self) -> str:
        state = ("open", "closing", "lingering", "closed")[self._state]
        return f"<BlockingConnection fd={self.fd} peer={peer_text(self.peer)} {state}>"

