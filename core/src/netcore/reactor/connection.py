"""One accepted TCP (or Unix) connection on an event loop: muduo's TcpConnection.

What this module owns, so that no protocol or dispatcher has to get it right again:

* **Writes go straight to the socket when nothing is queued**; only the remainder of a
  partial write is buffered, and only then is write interest turned on. Measured as the
  largest single saving in a Python reactor (-26% of user-space time per echo message).
* **Write interest only while output is pending**, so a level-triggered poller does not
  report an always-writable socket on every iteration.
* **Water marks**: when queued output passes ``high_water`` the connection stops reading
  (the peer is not consuming what it asks for), and reads again below ``low_water``.
* **Half-close**: a peer's FIN ends reading but not writing; the connection closes only
  when every request it has received is answered and every byte owed is sent.
* **Closing without losing the last reply**: a local close flushes, sends FIN
  (``shutdown(SHUT_WR)``) and keeps reading until the peer's FIN or a linger timeout.
  Closing with unread input would make the kernel send RST, and RST can destroy
  replies still in flight to the peer.
* **Edge-triggered draining** in one place: with an edge-triggered poller a read is
  repeated while it fills the whole buffer (a shorter read means the kernel buffer was
  empty at that moment, and the next edge will say when it is not) and a write is repeated
  until it is partial.
* **A peer's FIN while reading is paused** (a reply held with LATER behind a full queue, a
  water mark): where the poller can report EPOLLRDHUP/POLLRDHUP on its own, that is asked
  for while paused, and the protocol's ``eof_pending()`` hears of it once, although the
  input before the FIN stays unread. Read interest itself cannot be kept: a
  level-triggered poller would report the unread input on every iteration. ``select``
  cannot tell; there the FIN is seen when reading resumes, as before.
* ECONNRESET, EPIPE and friends close this connection only.
* **Deadlines** map to one loop timer, re-armed lazily: a deadline moved later (the next
  keep-alive period after every request) costs two stores, not a heap operation; the
  timer that fires early finds the new time and re-arms itself.

The contract protocols rely on (submit, serial, send, deadlines) is described in
:mod:`netcore.reactor.base`.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable

import structlog

from netcore.reactor.base import LATER, ConnectionBase, ConnectionClosed, peer_text
from netcore.reactor.poller import EVENT_CLOSING, EVENT_ERROR, EVENT_RDHUP, EVENT_READ, EVENT_WRITE

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop

log = structlog.get_logger("netcore.connection")

_OPEN, _CLOSING, _LINGERING, _CLOSED = range(4)

#: Why reading is paused (bits of ``_paused``): the protocol asked, the dispatcher's
#: queue is full, or too many submissions wait behind a busy one. Each party resumes
#: only its own reason.
PAUSED_BY_PROTOCOL = 1
PAUSED_BY_DISPATCH = 2
PAUSED_BY_QUEUE = 4

#: Errors on one socket that mean "this peer is gone": close it, keep serving the rest.
PEER_GONE = (ConnectionError, TimeoutError, OSError)
#: The largest reply to a pipelined read that is queued for the loop's flush rather
#: than sent at once (:meth:`EventLoop.write_behind`): copying a larger one into the
#: queue would cost more than its wake-up saves, and it rarely fits one send anyway.
WRITE_BEHIND_MAX = 16 * 1024


class ConnectionOwner:
    """What a connection reports to: its worker's counters and connection table."""

    def connection_closed(self, connection: Connection) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def count_error(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Connection(ConnectionBase):
    """A non-blocking socket, its output buffer and its protocol, driven by one loop.

    ``protocol_factory(connection)`` makes the protocol object; the protocol calls
    :meth:`write`, :meth:`submit`, :meth:`send`, :meth:`close`, :meth:`set_deadline`,
    :meth:`pause_reading` and :meth:`resume_reading`, and receives ``data_received``,
    ``eof_received`` and ``connection_lost``. Methods are for the loop's thread, except
    what :mod:`netcore.reactor.base` says a handler may call from its own thread.
    """

    __slots__ = (
        "loop", "sock", "fd",
        "_recv", "_send", "_out", "_edge", "_recv_size", "_high_water", "_low_water",
        "_state", "_interest", "_eof", "_rdhup", "_paused", "_output_paused", "_linger_timer",
        "_linger_timeout", "_deadline_at", "_deadline_cb", "_deadline_timer", "_timer_when",
        "__weakref__",
    )

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[Connection], Any],
        owner: ConnectionOwner,
        *,
        peer: Any = None,
        recv_size: int = 65536,
        high_water: int = 256 * 1024,
        low_water: int = 64 * 1024,
        linger_timeout: float = 2.0,
    ) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Replies are whole messages: do not let Nagle hold a small one for the next.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self._init_base(owner, peer)
        self._recv = sock.recv
        self._send = sock.send
        self._out = bytearray()
        self._edge = loop.poller.edge_triggered
        self._recv_size = recv_size
        self._high_water = high_water
        self._low_water = low_water
        self._linger_timeout = linger_timeout
        self._linger_timer = None
        self._state = _OPEN
        self._eof = False
        #: Asked for while reading is paused, until the peer's FIN is reported (then 0: a
        #: level-triggered poller would report it again on every iteration). 0 for a poller
        #: that cannot report it without read interest (select).
        self._rdhup = EVENT_RDHUP if getattr(loop.poller, "reports_rdhup", False) else 0
        self._paused = 0
        self._output_paused = False
        self._interest = EVENT_READ
        self._deadline_at = 0.0
        self._deadline_cb = None
        self._deadline_timer = None
        self._timer_when = 0.0
        self._begin(protocol_factory)

    #: What the TLS handshake settled (:class:`netcore.reactor.tls.TLSInfo`); None: plaintext.
    tls = None

    def _begin(self, protocol_factory: Callable[[Connection], Any]) -> None:
        """Start serving: plaintext at once (the TLS variant handshakes first, reactor/tls.py)."""
        self.loop.register(self.fd, EVENT_READ, self._on_event)
        self._adopt_protocol(protocol_factory(self))
        self.protocol.connection_made()

    # -- the hot path -----------------------------------------------------------------
    def _on_event(self, mask: int) -> None:
        # The read is written out here rather than called: this method runs once per
        # message, and a Python call more per message is measurable.
        if mask & EVENT_WRITE:
            if self._out:
                self._flush()
            if not mask & ~EVENT_WRITE or self._state == _CLOSED:
                return
        if not self._interest & EVENT_READ:
            if mask & EVENT_ERROR and self._state != _CLOSED:
                # Error/hang-up is reported even when not asked for. Not reading (paused,
                # or the peer half-closed) means nobody would consume it, and a
                # level-triggered poller would report it forever: the peer has reset.
                self.abort(ConnectionResetError("connection reset while not reading"))
            elif mask & EVENT_RDHUP and self._state == _OPEN:
                self._on_rdhup()
            return
        if self._edge:
            self._drain_edge(mask)
            return
        # Level-triggered: one read per event; the poller reports again if more is waiting.
        try:
            data = self._recv(self._recv_size)
        except (BlockingIOError, InterruptedError):
            return
        except PEER_GONE as exc:
            self.abort(exc)
            return
        if not data:
            self._on_eof()
            return
        self.bytes_received += len(data)
        try:
            self.protocol.data_received(data)
        except Exception as exc:
            self._protocol_failed(exc)

    def _drain_edge(self, mask: int) -> None:
        """Edge-triggered reading: the one place that knows to read on.

        Read again only if the buffer came back full, because a short read already
        proved the socket drained (saves a failing recv and its exception per event) --
        unless the event said the peer shut down: its FIN gets no edge of its own.
        """
        recv = self._recv
        size = self._recv_size
        while True:
            try:
                data = recv(size)
            except (BlockingIOError, InterruptedError):
                return
            except PEER_GONE as exc:
                self.abort(exc)
                return
            if not data:
                self._on_eof()
                return
            n = len(data)
            self.bytes_received += n
            try:
                self.protocol.data_received(data)
            except Exception as exc:
                self._protocol_failed(exc)
                return
            if self._state != _OPEN or not self._interest & EVENT_READ:
                return  # closed by the protocol (a final reply), paused, or half-closed
            if n < size and not mask & EVENT_CLOSING:
                return

    def _on_rdhup(self) -> None:
        """The peer sent FIN while reading is paused: tell the protocol once (not the hot path).

        The input before the FIN is still unread and is read, in order, when reading
        resumes; ``eof_received`` follows it as usual. ``eof_pending`` lets a protocol
        that does not answer a departed client (RESP's blocked BLPOP) close at once.
        """
        if not self._rdhup:
            return  # told already (an edge-triggered poller re-reports it on every modify)
        self._rdhup = 0
        self._update_interest()
        self._call_optional("eof_pending")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now as far as the kernel takes it; queue the rest."""
        if self._state >= _LINGERING:
            return  # already sent FIN or closed: nothing more can reach the peer
        out = self._out
        if out:
            out += data
            if len(out) > self._high_water and not self._output_paused:
                self._output_paused = True
                self._update_interest()
                self._notify_writing(True)
            return
        try:
            sent = self._send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except PEER_GONE as exc:
            self.abort(exc)
            return
        self.bytes_sent += sent
        if sent < len(data):
            self._queue_remainder(data, sent)

    def _queue_remainder(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        """The kernel took only ``sent`` bytes: keep the rest and ask for writability."""
        out = self._out
        out += memoryview(data)[sent:]
        crossed = len(out) > self._high_water and not self._output_paused
        if crossed:
            self._output_paused = True
        self._update_interest()
        if crossed:
            self._notify_writing(True)

    def flush_behind(self) -> None:
        """The loop's flush before it waits: what ``write`` queued goes out now."""
        if self._out and self._state != _CLOSED and not self._interest & EVENT_WRITE:
            self._flush()

    def _flush(self) -> None:
        out = self._out
        send = self._send
        while out:
            try:
                sent = send(out)
            except (BlockingIOError, InterruptedError):
                return
            except PEER_GONE as exc:
                self.abort(exc)
                return
            self.bytes_sent += sent
            del out[:sent]  # O(1) amortised: bytearray moves its start, not its bytes
            if out and not self._edge:
                break  # level-triggered: the poller will report writable again
        resumed = self._output_paused and len(out) <= self._low_water
        if resumed:
            self._output_paused = False
        if not out:
            self._on_flushed()
        self._update_interest()
        if resumed and self._state != _CLOSED:
            self._notify_writing(False)

    def _notify_writing(self, paused: bool) -> None:
        """Tell the protocol that queued output crossed a water mark (rare: not the hot path).

        ``pause_writing()`` when output passes ``high_water``, ``resume_writing()`` once it
        is back at ``low_water``: a protocol producing a long reply (a streamed HTTP body)
        stops producing instead of buffering the whole reply for a slow reader. Looked up
        with getattr so that protocols not derived from :class:`netcore.protocol.Protocol`
        keep working.
        """
        self._call_optional("pause_writing" if paused else "resume_writing")

    def _call_optional(self, name: str) -> None:
        """The protocol's callback ``name()``, if it has one; a failure is any callback's."""
        callback = getattr(self.protocol, name, None)
        if callback is None:
            return
        try:
            callback()
        except Exception as exc:
            self._protocol_failed(exc)

    @property
    def writing_paused(self) -> bool:
        """True while queued output is above ``high_water`` (until it drains to ``low_water``)."""
        return self._output_paused

    # -- requests -----------------------------------------------------------------------
    def submit(self, handler: Callable[[Any], Any], request: Any, count: int = 1) -> None:
        """Run ``handler(request)`` and write its reply (bytes, None for no reply, or LATER).

        This is the reactor-inline executor (scheme 5): the handler runs here, on the I/O
        thread, and its reply is written at once, so replies are trivially in request
        order. :class:`~netcore.reactor.deferred.DeferredConnection` runs handlers
        elsewhere under the same contract (:mod:`netcore.reactor.base`). ``count`` is the
        number of requests this submission stands for.
        """
        self.requests += count
        if self._job_open:
            self._queue_job(handler, request)  # behind a reply still being produced
            return
        reply = handler(request)
        if reply:
            if reply is LATER:
                self._job_open = True
                self.pending += 1
                return
            if self._out or self._state >= _LINGERING:
                self.write(reply)
            elif count > 1 and len(reply) <= WRITE_BEHIND_MAX and self.loop.defers_writes:
                # The reply to a pipelined read (several requests): it leaves with the
                # iteration's other replies, just before the loop polls again.
                self._out += reply
                self.loop.write_behind(self)
            else:
                # write()'s fast path, repeated here: one Python call less per request on
                # the path every inline request takes (measured: about 0.1 µs of ~1.5 µs).
                try:
                    sent = self._send(reply)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except PEER_GONE as exc:
                    self.abort(exc)
                    return
                self.bytes_sent += sent
                if sent < len(reply):
                    self._queue_remainder(reply, sent)
        done = self._job_done
        if done is not None:
            if self._state != _CLOSED:
                done()

    def _start_job(self, handler: Callable[[Any], Any], request: Any) -> bool:
        try:
            reply = handler(request)
        except Exception as exc:
            self._protocol_failed(exc)
            return False
        if reply is LATER:
            self.pending += 1
            return True
        if reply:
            self.write(reply)
        done = self._job_done
        if done is not None and self._state != _CLOSED:
            done()
        return False

    def job_finished(self, reply: Any = None) -> None:
        """End the submission whose handler returned LATER; from any thread (hops to the loop)."""
        if not self.loop.in_loop_thread():
            self.loop.call_soon_threadsafe(self.job_finished, reply)
            return
        if self._state == _CLOSED:
            return
        ConnectionBase.job_finished(self, reply)

    def _pause_for_jobs(self) -> None:
        self.pause_reading(PAUSED_BY_QUEUE)

    def _resume_for_jobs(self) -> None:
        self.resume_reading(PAUSED_BY_QUEUE)

    def send(self, data: bytes | bytearray | memoryview) -> bool:
        """Stream output from a handler: written now; False once above ``high_water``.

        A handler runs on this thread, so it must never wait here: on False it stops
        producing and goes on in the protocol's ``resume_writing()`` (returning
        :data:`~netcore.reactor.base.LATER` meanwhile).
        """
        if self._state >= _LINGERING:
            raise ConnectionClosed("the connection is closed")
        self.write(data)
        if self._state == _CLOSED:
            raise ConnectionClosed("the peer is gone")
        return not self._output_paused

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of file ``fd`` from ``offset`` by ``os.sendfile``.

        Only while nothing is queued (order) and only as far as the socket takes it now;
        returns what the kernel took, and the caller streams the rest with :meth:`send`.
        The bytes never pass through Python.
        """
        if self._out or self._state >= _LINGERING:
            return 0
        return self._send_file(self.fd, fd, offset, count)

    def count_error(self) -> None:
        """Count a failure (an app error, say) in the worker's statistics."""
        self.owner.count_error()

    def run_on_io_thread(self, callback: Callable[..., Any], *args: Any) -> None:
        """``callback(*args)`` on this connection's loop thread: now if on it, else posted."""
        loop = self.loop
        if loop.in_loop_thread():
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    def post(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` from any thread without waiting (dropped once the connection closed).

        Not flow-controlled: the caller bounds what it posts (check ``output_size``, as a
        Pub/Sub output-buffer limit does). Posts from one thread arrive in their order.
        """
        loop = self.loop
        if loop.in_loop_thread():
            self.write(data)
        else:
            loop.call_soon_threadsafe(self.write, data)

    def _replies_done(self) -> None:
        """If nothing is owed any more, finish a close that was waiting for the replies."""
        if not self.pending and (self._eof or self._state == _CLOSING) and not self._out:
            self._on_flushed()

    # -- deadlines ----------------------------------------------------------------------
    def set_deadline(self, at: float, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` (loop thread) once ``time.monotonic()`` passes ``at``.

        Replaces the previous deadline. A deadline later than the armed timer leaves the
        timer alone (it re-arms when it fires early): the common case, a keep-alive
        deadline moved after every request, costs no timer operation.
        """
        self._deadline_at = at
        self._deadline_cb = callback
        timer = self._deadline_timer
        if timer is not None:
            if self._timer_when <= at:
                return
            timer.cancel()
        if self._state == _CLOSED:
            return
        self._timer_when = at
        self._deadline_timer = self.loop.call_at(at, self._on_deadline)

    def cancel_deadline(self) -> None:
        """No deadline any more (the armed timer, if any, finds nothing to do)."""
        self._deadline_cb = None

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        callback = self._deadline_cb
        if callback is None or self._state == _CLOSED:
            return
        at = self._deadline_at
        if at > self.loop.time():
            self._timer_when = at
            self._deadline_timer = self.loop.call_at(at, self._on_deadline)
            return
        self._deadline_cb = None
        try:
            callback()
        except Exception as exc:
            self._protocol_failed(exc)

    # -- flow control -------------------------------------------------------------------
    def pause_reading(self, reason: int = PAUSED_BY_PROTOCOL) -> None:
        """Stop reading until :meth:`resume_reading` with the same ``reason`` (backpressure)."""
        if not self._paused & reason:
            self._paused |= reason
            self._update_interest()

    def resume_reading(self, reason: int = PAUSED_BY_PROTOCOL) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            self._update_interest()

    @property
    def reading(self) -> bool:
        return bool(self._interest & EVENT_READ)

    @property
    def output_size(self) -> int:
        return len(self._out)

    def _update_interest(self) -> None:
        state = self._state
        if state == _CLOSED:
            return
        if state == _LINGERING:
            wanted = EVENT_READ
        else:
            wanted = EVENT_WRITE if self._out else 0
            if state == _OPEN and not self._eof:
                wanted |= self._rdhup if self._paused or self._output_paused else EVENT_READ
        if wanted != self._interest:
            self._interest = wanted
            self.loop.modify(self.fd, wanted)

    # -- closing ----------------------------------------------------------------------
    def _on_eof(self) -> None:
        self._eof = True
        if self._state == _LINGERING:
            self._finish_close(None)
            return
        try:
            self.protocol.eof_received()
        except Exception as exc:
            self._protocol_failed(exc)
            return
        if self._state != _CLOSED:
            self._update_interest()
            if not self._out and not self.pending:
                self._on_flushed()

    def close(self) -> None:
        """Stop reading; close once every pending reply is written, without losing it."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        if not self._out and not self.pending:
            self._on_flushed()
        else:
            self._update_interest()

    def drain_and_close(self) -> None:
        """For a graceful server stop: answer what has already arrived, then announce the
        stop to the protocol (``stop_requested``).

        Input already in the kernel's buffer was sent before the stop; reading it now and
        answering it is what "finish in-flight requests" means for a stream protocol. The
        connection is not closed here: the protocol closes it after a final reply, or the
        worker once it is quiet (:mod:`netcore.reactor.drain`).
        """
        if self._state == _OPEN and not self._eof and self._interest & EVENT_READ:
            self._drain_edge(EVENT_RDHUP)  # read until EAGAIN, whatever the poller
        if self._state == _OPEN:
            try:
                self.protocol.stop_requested()
            except Exception as exc:
                self._protocol_failed(exc)

    def _on_flushed(self) -> None:
        """Output is empty: close now if closing was asked for or the peer has gone."""
        if self.pending or self._state == _CLOSED:
            return
        if self._eof and self._state in (_OPEN, _CLOSING):
            self._finish_close(None)  # peer already sent FIN: nothing to linger for
        elif self._state == _CLOSING:
            self._start_linger()

    def _start_linger(self) -> None:
        self._state = _LINGERING
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._finish_close(None)
            return
        self.loop._handlers[self.fd] = self._on_linger_event
        self._update_interest()
        self._linger_timer = self.loop.call_later(self._linger_timeout, self._finish_close, None)

    def _on_linger_event(self, _mask: int) -> None:
        # Discard what the peer still sends until its FIN, so that close() sends FIN, not RST.
        try:
            while self._recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish_close(None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Close at once, dropping queued output (the peer reset, or an error)."""
        self._out.clear()
        self._finish_close(exc)

    def _finish_close(self, exc: BaseException | None) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._deadline_cb = None
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        self.loop.unregister(self.fd)
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

    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    def __repr__(self) -> str:
        state = ("open", "closing", "lingering", "closed")[self._state]
        return f"<Connection fd={self.fd} peer={peer_text(self.peer)} {state}>"
