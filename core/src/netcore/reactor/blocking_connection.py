"""A blocking connection: one accepted socket served from accept to close by one thread.

The loop-less counterpart of :class:`netcore.reactor.connection.Connection`, used by the
blocking schemes (iterative, forking, threading, prefork-blocking, prethread-blocking).
It gives protocols the same interface (:mod:`netcore.reactor.base`), so the same protocol
code runs under every scheme. Deadlines become a receive timeout (``SO_RCVTIMEO``, which
leaves sends blocking and untimed): the thread waiting in ``recv`` wakes when the
deadline passes, runs the protocol's callback, and reads on.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any, Callable

import structlog

from netcore.reactor.admission import admit_blocking
from netcore.reactor.base import LATER, ConnectionBase, ConnectionClosed
from netcore.reactor.connection import PAUSED_BY_PROTOCOL, ConnectionOwner, peer_text
from netcore.reactor.tls import blocking_reader, send_close_notify

log = structlog.get_logger("netcore.connection")

_OPEN, _CLOSING, _LINGERING, _CLOSED = range(4)
_NO_TIMEOUT = struct.pack("ll", 0, 0)
_monotonic = time.monotonic

#: Errors on one socket that mean "this peer is gone": close it, keep serving the rest.
PEER_GONE = (ConnectionError, TimeoutError, OSError)


class BlockingConnection(ConnectionBase):
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
        "sock", "fd",
        "_factory", "_recv_size", "_linger_timeout", "_state", "_eof", "_paused", "_stop", "_sockets_lock",
        "_deadline_at", "_deadline_cb", "_rcvtimeo", "_write_lock", "_layers", "tls", "__weakref__",
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
        layers: Any = None,
        **_reactor_options: Any,  # high_water/low_water: there is no output buffer to bound
    ) -> None:
        sock.settimeout(None)  # blocking: the kernel does the waiting, that is the scheme
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Replies are whole messages: do not let Nagle hold a small one for the next.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.fd = sock.fileno()
        self._init_base(owner, peer)
        self._deadline_at = 0.0
        self._deadline_cb: Callable[[], Any] | None = None
        self._rcvtimeo = False  # SO_RCVTIMEO is set on the socket
        #: Serialises this thread's writes with post() from other threads: a message
        #: posted from elsewhere must never land inside a reply being sent.
        self._write_lock = threading.Lock()
        self._factory = protocol_factory
        self._recv_size = recv_size
        self._linger_timeout = linger_timeout
        self._state = _OPEN
        self._eof = False
        self._paused = 0
        #: None, or how the server asked this connection to stop: "drain" (a graceful stop
        #: began: tell the protocol before the next input), "draining" (told), "graceful"
        #: (the read side is shut: the connection was quiet) or "fast".
        self._stop: str | None = None
        # Held around close() and the stop's shutdown(): without it, a stop could read this
        # socket's fd number, lose the CPU, and shut down whichever new socket got the
        # number after this thread closed it. Reentrant: the signal handler may interrupt
        # the main thread inside close() (iterative).
        self._sockets_lock = sockets_lock if sockets_lock is not None else threading.RLock()
        #: The listeners' PROXY/TLS layers (reactor/admission.py), applied in serve().
        self._layers = layers
        #: What the TLS handshake settled (:class:`netcore.reactor.tls.TLSInfo`); None: plaintext.
        self.tls = None

    # -- the serving loop ---------------------------------------------------------------
    def serve(self) -> None:
        """Serve until the connection closes; the calling thread does nothing else meanwhile."""
        if self._layers is not None and not self._admit():
            return
        try:
            self._adopt_protocol(self._factory(self))
            self.protocol.connection_made()
        except Exception as exc:
            self._protocol_failed(exc)
            return
        recv = self.sock.recv if self.tls is None else blocking_reader(self.sock)
        size = self._recv_size
        while self._state == _OPEN:
            if self._deadline_cb is not None or self._rcvtimeo:
                if not self._arm_receive_timeout():
                    continue  # the deadline passed and its callback ran: look again
            try:
                data = recv(size)
            except BlockingIOError:
                continue  # the receive timeout: the deadline is looked at again above
            except PEER_GONE as exc:
                self.abort(exc)
                return
            if not data:
                self._on_end_of_input()
                break
            self.bytes_received += len(data)
            try:
                self.protocol.data_received(data)
                if self._stop == "drain" and self._state == _OPEN:
                    # The stop is told to the protocol here, on this thread, once what
                    # arrived with this read is answered (as a reactor connection reads
                    # what is queued before it tells): the next reply is final.
                    self._stop = "draining"
                    self.protocol.stop_requested()
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
        if stop is not None:
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
    def submit(self, handler: Callable[[Any], Any], request: Any, count: int = 1) -> None:
        """Run ``handler(request)`` here, on the connection's own thread, and write its reply.

        In the blocking schemes the connection's thread *is* the worker: there is nowhere
        else to send the work, and nothing else for this thread to do while it runs.
        """
        self.requests += count
        if self._job_open:
            self._queue_job(handler, request)
            return
        if self._start_job(handler, request):
            self._job_open = True

    def _start_job(self, handler: Callable[[Any], Any], request: Any) -> bool:
        self.pending += 1
        try:
            reply = handler(request)
        except BaseException:
            self.pending -= 1
            raise
        if reply is LATER:
            return True
        self.pending -= 1
        if reply:
            self.write(reply)
        done = self._job_done
        if done is not None and self._state != _CLOSED:
            done()
        return False

    def send(self, data: bytes | bytearray | memoryview) -> bool:
        """Stream output: blocks until the kernel has taken it (the flow control is the
        kernel's); always True, or :class:`ConnectionClosed` once the peer is gone."""
        if self._state >= _LINGERING:
            raise ConnectionClosed("the connection is closed")
        self.write(data)
        if self._state == _CLOSED:
            raise ConnectionClosed("the peer is gone")
        return True

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """``os.sendfile`` until ``count`` bytes are sent or the file ends (blocking)."""
        if self._state >= _LINGERING:
            return 0
        if self.tls is not None:
            return 0  # sendfile would bypass encryption: the caller streams with send()
        return self._send_file(self.fd, fd, offset, count)

    def count_error(self) -> None:
        """Count a failure in the worker's statistics (the worker locks)."""
        self.owner.count_error()

    def run_on_io_thread(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` now, on the calling thread.

        A blocking connection has no loop to post to: its thread sleeps in ``recv``. What
        a protocol runs this way (resume reading, write) is safe from any thread here.
        """
        callback(*args)

    def post(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` from any thread; blocks while the kernel's buffer is full."""
        self.write(data)

    # -- deadlines ----------------------------------------------------------------------
    def set_deadline(self, at: float, callback: Callable[[], Any]) -> None:
        """``callback()`` runs on this thread once ``time.monotonic()`` passes ``at``.

        Applied before the next ``recv`` as a receive timeout; a handler or a write in
        progress is never interrupted by it.
        """
        self._deadline_at = at
        self._deadline_cb = callback

    def cancel_deadline(self) -> None:
        self._deadline_cb = None

    def _arm_receive_timeout(self) -> bool:
        """Set SO_RCVTIMEO to what is left of the deadline; False if it passed (callback run).

        Set before every ``recv`` while a deadline exists, because the timeout counts
        from the start of each call: a client trickling a byte at a time would otherwise
        restart it forever (slowloris).
        """
        callback = self._deadline_cb
        if callback is None:
            self._receive_timeout(None)
            self._rcvtimeo = False
            return True
        remaining = self._deadline_at - _monotonic()
        if remaining <= 0:
            self._deadline_cb = None
            try:
                callback()
            except Exception as exc:
                self._protocol_failed(exc)
            return False
        seconds = int(remaining)
        micros = int((remaining - seconds) * 1_000_000) or 1  # a zero timeval would mean "no timeout"
        if self.tls is not None:
            self._receive_timeout(remaining)
        else:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, micros))
        self._rcvtimeo = True
        return True

    def _receive_timeout(self, seconds: float | None) -> None:
        """TLS: a socket timeout (OpenSSL retries a read SO_RCVTIMEO ends); else SO_RCVTIMEO."""
        if self.tls is not None:
            self.sock.settimeout(seconds)
        else:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)

    def _admit(self) -> bool:
        """The PROXY header and the TLS handshake, before the protocol exists (this thread)."""
        setup = self._layers.for_socket(self.sock)
        if setup is None:
            return True
        admitted = admit_blocking(self.sock, self.peer, setup, self.owner)
        if admitted is None:
            self._finish_close(None)
            return False
        with self._sockets_lock:
            self.sock, self.peer, self.tls = admitted
        # A shutdown asked for during the handshake could not reach the socket (the TLS
        # wrap detached the one it was asked of): apply it now. Not a mere announcement
        # ("drain", which a connection the final accept took has from the start): its
        # request follows the handshake, and is read and answered as usual.
        if self._stop in ("graceful", "fast"):
            self._shutdown(socket.SHUT_RDWR if self._stop == "fast" else socket.SHUT_RD)
        return True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, blocking until the kernel has taken it."""
        if self._state >= _LINGERING:
            return  # already sent FIN or closed: nothing more can reach the peer
        if self._rcvtimeo and self.tls is not None:
            self._receive_timeout(None)  # a TLS deadline is a socket timeout: sends stay untimed
            self._rcvtimeo = False
        send = self.sock.send
        try:
            with self._write_lock:
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
        return self._state == _OPEN and not self._eof and not self._paused and self._stop not in ("graceful", "fast")

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
        if self.tls is not None:
            sock.settimeout(self._linger_timeout)  # SSL_shutdown waits for the peer's reply
            send_close_notify(sock)
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
    def announce_stop(self) -> None:
        """A graceful stop began (any thread, signal handler): only a flag. The serving
        thread calls ``protocol.stop_requested()`` after its next read is handed over,
        so that the reply to the read after is final (see :mod:`netcore.reactor.drain`);
        a connection that reads nothing more is shut once quiet."""
        if self._stop is None:
            self._stop = "drain"

    def stop_gracefully(self) -> None:
        """Shut the read side: ``recv`` returns what is queued, then b'' (the stop).

        During a drain this is for a connection that has stayed quiet; a connection
        whose read side is shut can answer only what had already arrived."""
        if self._stop != "fast":
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
                # The socket's own shutdown: an SSLSocket's would drop its SSL object under
                # the serving thread, which still has to send close_notify.
                socket.socket.shutdown(self.sock, how)
            except OSError:
                pass

    def __repr__(self) -> str:
        state = ("open", "closing", "lingering", "closed")[self._state]
        return f"<BlockingConnection fd={self.fd} peer={peer_text(self.peer)} {state}>"

