"""WebSockets for ASGI apps (RFC 6455, ASGI websocket spec 2.4) on a netcore connection.

The http protocol hands an ``Upgrade: websocket`` request of an ASGI app to
:func:`upgrade`, on the loop thread, and hears nothing of the connection again:
:class:`WebSocketProtocol` takes its events over (``connection.set_protocol``). Its
callbacks and the app's task run on one thread, the reactor's, whose asyncio loop hosts
the netcore loop (``netcore.reactor.asyncio_host``), so nothing here is locked or handed
between threads: a frame the app sends goes straight to the socket.

What the pieces are and why:

* **Frames: wsproto's sans-I/O ``wsproto.connection.Connection``**, fed after the
  handshake that ws_handshake.py answers (the head is already parsed: see there). wsproto
  parses frames incrementally -- a long frame's payload comes out as it arrives, so the
  message size limit (``ws_max_size``, close 1009) is enforced before a byte more than
  the limit is held -- unmasks, checks UTF-8 and control frames, and speaks
  permessage-deflate. Data frames the server sends without an extension are framed here
  (:func:`frame_header`): a two-to-ten-byte header, where wsproto's ``send`` copies the
  payload three times -- per message, the cost that an echo benchmark measures.
* **Backpressure both ways, per message.** ``await send(...)`` writes the frame with
  ``connection.send``; past the connection's high-water mark it waits until
  ``resume_writing`` (a client that stops reading blocks the app's sends, memory stays
  at the water mark plus one message). Received messages wait in a queue for the app's
  ``receive``; at ``ws_max_queue`` messages reading pauses (``pause_reading``) until the
  app catches up.
* **One deadline per connection** (``connection.set_deadline``, not asyncio timers): the
  keepalive ping every ``ws_ping_interval`` seconds, the pong it waits for
  (``ws_ping_timeout``; none: close 1011), and the peer's answer to a close frame
  (:data:`CLOSE_TIMEOUT`). The reactor re-arms that deadline lazily, so moving it costs
  no timer operation, and it is the same mechanism HTTP's keep-alive uses.
* **Graceful stop**: ``stop_requested`` sends close 1001 "server shutting down" (the
  app's receive gets ``websocket.disconnect`` 1001 at once), waits for the peer's close
  (bounded by :data:`CLOSE_TIMEOUT`) and closes; ``is_idle`` is False until then, so the
  drain never cuts an open WebSocket without its close frame.
* **After a disconnect** the app's ``send`` raises :class:`ClientDisconnected`, an
  ``OSError`` (the ASGI spec's "server-specific subclass of OSError"; uvicorn's name, and
  Starlette turns it into ``WebSocketDisconnect``).

Nothing received or sent is ever logged: only app failures are, with their traceback.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import structlog
from netcore.protocol import ConnectionClosed
from wsproto.connection import Connection as FrameConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

from netcore_http import access as accesslog
from netcore_http.ws_frames import INFLATE_SLICE, JOIN_LIMIT, Fragments, frame_header
from netcore_http.ws_handshake import (
    HandshakeError,
    accept_response,
    check_request,
    denial_head,
    negotiate_extensions,
    plain_response,
)

log = structlog.get_logger("netcore.http.websocket")

#: Seconds the peer has to answer our close frame before the connection is closed anyway
#: (the ``websockets`` library's default close timeout is 10; a graceful stop should not
#: wait that long for a peer that does not answer).
CLOSE_TIMEOUT = 5.0
#: Bytes read before the app accepts (a client may not send frames before the 101, but a
#: hostile one can): beyond this reading pauses until the handshake is answered.
EARLY_INPUT_LIMIT = 64 * 1024

_monotonic = time.monotonic

# States of a WebSocketProtocol.
CONNECTING, OPEN, CLOSING, RESPONDING, CLOSED = range(5)


class ClientDisconnected(OSError):
    """``send`` on a WebSocket whose peer is gone (ASGI: an OSError subclass)."""


@dataclass(frozen=True)
class WebSocketOptions:
    """The ``ws_*`` settings, read once by the http protocol's factory."""

    enabled: bool = True
    max_size: int = 16 * 1024 * 1024
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    max_queue: int = 32
    per_message_deflate: bool = True

    @classmethod
    def from_config(cls, config: Any) -> WebSocketOptions:
        get = config.get
        return cls(enabled=get("ws", "auto") != "none", max_size=int(get("ws_max_size", cls.max_size)),
                   ping_interval=float(get("ws_ping_interval", cls.ping_interval)),
                   ping_timeout=float(get("ws_ping_timeout", cls.ping_timeout)),
                   max_queue=int(get("ws_max_queue", cls.max_queue)),
                   per_message_deflate=bool(get("ws_per_message_deflate", cls.per_message_deflate)))


def upgrade(connection: Any, app: Callable[..., Awaitable[None]], scope: dict, headers: list,
            leftover: bytes, options: WebSocketOptions) -> WebSocketProtocol | None:
    """Take over ``connection`` for a WebSocket handshake of ``app`` (loop thread).

    ``scope`` has the common ASGI keys; this adds ``type``, ``scheme`` and
    ``subprotocols``. A request that is not a valid handshake is answered (400) and
    closed here; otherwise the app runs as an asyncio task and its ``websocket.accept``
    sends the 101. Returns the protocol that now owns the connection, or None.

    The caller checks ``options.enabled`` first: with ``ws = none`` an upgrade request is
    an ordinary HTTP request for the app (uvicorn's ``--ws none``), and so it is for a
    WSGI app always (PEP 3333 has no way to hand a connection over).
    """
    try:
        offer = check_request(headers)
    except HandshakeError as exc:
        body = plain_response(exc.status, exc.message, exc.headers)
        connection.write(body)
        connection.close()
        if accesslog.current is not None:
            _record(accesslog.current, scope, headers, connection, exc.status, len(exc.message) + 1, 0.0)
        return None
    scope = dict(scope)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if connection.tls is not None else "ws"
    scope["subprotocols"] = offer.subprotocols
    scope["asgi"] = {**scope.get("asgi", {"version": "3.0"}), "spec_version": "2.4"}
    scope["extensions"] = {**(scope.get("extensions") or {}), "websocket.http.response": {}}
    protocol = WebSocketProtocol(connection, app, scope, offer, options)
    protocol.headers = headers
    connection.set_protocol(protocol)
    if leftover:
        protocol.data_received(leftover)
    protocol.start()
    return protocol


def _record(access: Any, scope: dict, headers: list, connection: Any, status: int, sent: int,
            started: float) -> None:
    """One access-log record for the handshake's answer: 101, the refusal, or the app's denial.

    Only when the user turned the access log on (that is what it is for); the WebSocket's
    messages are never logged.
    """
    target = scope.get("raw_path") or b"/"
    if scope.get("query_string"):
        target = target + b"?" + scope["query_string"]
    client = scope.get("client")
    peer = str(client[0]) if client else accesslog.peer_address(connection.peer)
    access.record((b"GET", target, scope.get("http_version", "1.1"), headers), status, sent, started, peer)


class WebSocketProtocol:
    """One WebSocket: the connection's protocol after the upgrade, and the ASGI channel."""

    tells_client_on_stop = True  # the close frame 1001 tells the client
    serial = False
    job_done = None

    def __init__(self, connection: Any, app: Callable[..., Awaitable[None]], scope: dict, offer: Any,
                 options: WebSocketOptions) -> None:
        self.connection = connection
        self.app = app
        self.scope = scope
        self.offer = offer
        self.options = options
        self.state = CONNECTING
        self.task: asyncio.Task | None = None
        self._frames: FrameConnection | None = None
        self._plain = True  # no extension: data frames are framed here (frame_header)
        self._early = bytearray()
        self._connect_sent = False
        self._queue: collections.deque = collections.deque()
        self._waiter: asyncio.Future | None = None
        self._writable: asyncio.Future | None = None
        self._paused = False
        self._parts: Fragments | None = None  # a fragmented message still arriving
        self._ping: bytes | None = None  # the payload of the ping awaiting its pong
        self._ping_at = 0.0  # when the next ping is due, or when the awaited pong is late
        self._close_by = 0.0
        self._stop_requested = False
        self._disconnected = False  # the app was given websocket.disconnect
        self._gone = False  # the transport is closed
        self.headers: list = []  # the request's, for the access log
        self._access = accesslog.current
        self._started = _monotonic() if self._access is not None else 0.0

    # -- from the http protocol ------------------------------------------------------------
    def start(self) -> None:
        """Run the app as a task of the asyncio loop that hosts this reactor (loop thread)."""
        self.task = asyncio.get_running_loop().create_task(self._run_app())

    async def _run_app(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, ClientDisconnected) and (self._gone or self._disconnected):
                # The peer left while the app was sending and the app let the error end
                # it: how an app that never looks at websocket.disconnect learns. Not a failure.
                return
            # The traceback, not the request: the path and the messages are the client's data.
            log.error("http.websocket_app_failed", accepted=self.state != CONNECTING, exc_info=exc)
            self.connection.count_error()
            self._app_ended(500, 1011)
        else:
            self._app_ended(500, 1000)

    def _app_ended(self, status: int, code: int) -> None:
        """The app returned or failed: answer a handshake it left open, close an open socket."""
        if self._gone:
            return
        if self.state == CONNECTING:
            self._refuse(status, "" if status != 500 else "Internal Server Error")
        elif self.state == OPEN:
            self._close(code, "" if code == 1000 else "internal error")
        elif self.state == RESPONDING:
            self._finish()

    # -- connection events (loop thread) --------------------------------------------------
    def connection_made(self) -> None:
        """set_protocol's call: the connection is ours now. The http protocol's deadline
        (keep-alive, header timeout) must not fire on it: until the app accepts there is none."""
        self.connection.cancel_deadline()

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == OPEN or state == CLOSING:
            frames = self._frames
            if self._plain or len(data) <= INFLATE_SLICE:
                frames.receive_data(data)
                self._process(frames)
                return
            # Compressed: wsproto inflates whatever part of a frame it is given at once, and
            # deflate expands up to ~1000x. Fed in slices, one inflation holds at most about
            # ws_max_size's default before the size check sees it (a compression bomb).
            view = memoryview(data)
            for start in range(0, len(data), INFLATE_SLICE):
                if self.state != OPEN and self.state != CLOSING:
                    return
                frames.receive_data(bytes(view[start:start + INFLATE_SLICE]))
                self._process(frames)
        elif state == CONNECTING:
            early = self._early
            early += data
            if len(early) > EARLY_INPUT_LIMIT and not self._paused:
                self._paused = True
                self.connection.pause_reading()
        # RESPONDING or CLOSED: what arrives after the end is dropped

    def eof_received(self) -> None:
        """The peer's FIN without a close frame (or after it): 1006 for the app, then closed."""
        self._disconnect(1006, "")

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        self.state = CLOSED
        self._disconnect(1006, "")
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_result(None)  # the waiting send sees _gone and raises
        self._writable = None

    def stop_requested(self) -> None:
        """Graceful stop: close 1001 now if open; once the app accepts if not yet."""
        self._stop_requested = True
        if self.state == OPEN:
            self._close(1001, "server shutting down")

    def is_idle(self) -> bool:
        return self.state == CLOSED

    def pause_writing(self) -> None:
        """Output passed the high-water mark: ``send`` reports it, sends wait in _flow."""

    def resume_writing(self) -> None:
        writable = self._writable
        self._writable = None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- frames in ------------------------------------------------------------------------
    def _process(self, frames: FrameConnection) -> None:
        for event in frames.events():
            kind = type(event)
            if kind is BytesMessage or kind is TextMessage:
                if self.state == OPEN:
                    self._message(event, kind is TextMessage)
            elif kind is Ping:
                if frames.state == ConnectionState.OPEN:
                    self.connection.write(frames.send(event.response()))
            elif kind is Pong:
                if self._ping is not None and event.payload == self._ping:
                    self._ping = None
                    self._ping_at = _monotonic() + self.options.ping_interval
                    self._arm()
            elif kind is CloseConnection:
                self._peer_closed(frames, event)
                return

    def _message(self, event: Message, text: bool) -> None:
        data = event.data
        limit = self.options.max_size
        parts = self._parts
        if parts is None and event.message_finished:  # one frame, one message: the common case
            if (len(data) if not text or data.isascii() else len(data.encode())) > limit:
                self._too_big()
                return
            self._deliver({"type": "websocket.receive", "bytes": None, "text": data} if text
                          else {"type": "websocket.receive", "bytes": data, "text": None})
            return
        if parts is None:
            parts = self._parts = Fragments(bytearray() if not text else None)
        parts.size += len(data) if not text or data.isascii() else len(data.encode())
        if parts.size > limit:
            self._parts = None
            self._too_big()
            return
        parts.add(data)
        if event.message_finished:
            self._parts = None
            if text:
                self._deliver({"type": "websocket.receive", "bytes": None, "text": parts.text()})
            else:
                self._deliver({"type": "websocket.receive", "bytes": bytes(parts.binary), "text": None})

    def _too_big(self) -> None:
        self._close(1009, f"message larger than {self.options.max_size} bytes")

    def _peer_closed(self, frames: FrameConnection, event: CloseConnection) -> None:
        """A close frame arrived -- or wsproto found the input broken (it says so the same way)."""
        connection = self.connection
        if frames.state == ConnectionState.REMOTE_CLOSING:
            # The peer began the closing handshake: answer it, then end the connection
            # (RFC 6455 7.1.1: the server closes the TCP connection first).
            connection.write(frames.send(event.response()))
            self._disconnect(event.code, event.reason or "")
        elif frames.state == ConnectionState.OPEN:
            # Not a frame from the peer: wsproto failed to parse (1002 protocol error,
            # 1007 bad UTF-8). Fail the WebSocket connection: our close frame, then close.
            connection.write(frames.send(CloseConnection(event.code, event.reason)))
            self._disconnect(event.code, event.reason or "")
        else:
            # The answer to our close: the closing handshake is complete.
            self._disconnect(event.code, event.reason or "")
        self.state = CLOSED
        connection.cancel_deadline()
        connection.close()

    # -- the ASGI channel -------------------------------------------------------------------
    def _deliver(self, message: dict) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        self._queue.append(message)
        if len(self._queue) >= self.options.max_queue and not self._paused and not self._gone:
            self._paused = True
            self.connection.pause_reading()

    def _disconnect(self, code: int, reason: str) -> None:
        """Tell the app, once, that the WebSocket is over."""
        if self._disconnected:
            return
        self._disconnected = True
        self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def receive(self) -> dict:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        queue = self._queue
        if queue:
            message = queue.popleft()
            if self._paused and len(queue) < self.options.max_queue and self.state != CONNECTING:
                self._paused = False
                if not self._gone:
                    self.connection.resume_reading()
            return message
        if self._disconnected:
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("receive() called while another receive() is waiting")
        waiter = self._waiter = self.connection.loop.asyncio_loop.create_future()  # no getpid(): asgi.py
        return await waiter

    async def send(self, message: dict) -> None:
        kind = message["type"]
        state = self.state
        if self._gone or (self._disconnected and state != RESPONDING):
            raise ClientDisconnected("the WebSocket is closed")
        if state == OPEN:
            if kind == "websocket.send":
                await self._send_message(message)
            elif kind == "websocket.close":
                self._close(message.get("code") or 1000, message.get("reason") or "")
            else:
                raise RuntimeError(f"expected ASGI message 'websocket.send' or 'websocket.close', got {kind!r}")
        elif state == CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse(403, "")  # uvicorn's answer to a close before accept
            elif kind == "websocket.http.response.start":
                self._response_start(message)
            else:
                raise RuntimeError("expected ASGI message 'websocket.accept', 'websocket.close' or "
                                   f"'websocket.http.response.start', got {kind!r}")
        elif state == RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"expected ASGI message 'websocket.http.response.body', got {kind!r}")
            await self._response_body(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after 'websocket.close'")

    async def _send_message(self, message: dict) -> None:
        data = message.get("bytes")
        if data is None:
            text = message.get("text")
            if text is None:
                raise RuntimeError("a 'websocket.send' message needs 'bytes' or 'text'")
            if not self._plain:
                await self._flow(self._frames.send(Message(data=text)))
                return
            opcode, data = 0x1, text.encode("utf-8")
        elif not self._plain:
            await self._flow(self._frames.send(Message(data=bytes(data))))
            return
        else:
            opcode = 0x2
        if len(data) < JOIN_LIMIT:
            await self._flow(frame_header(opcode, len(data)) + data)
        else:
            self.connection.write(frame_header(opcode, len(data)))
            await self._flow(data)

    async def _flow(self, data: bytes) -> None:
        """Write ``data``; if that took output past the high-water mark, wait for resume_writing."""
        try:
            writable = self.connection.send(data)
        except ConnectionClosed:
            raise ClientDisconnected("the WebSocket is closed") from None
        if not writable:
            waiter = self._writable
            if waiter is None:
                waiter = self._writable = self.connection.loop.asyncio_loop.create_future()
            await waiter
            if self._gone:
                raise ClientDisconnected("the WebSocket is closed")

    # -- handshake answers ---------------------------------------------------------------------
    def _accept(self, message: dict) -> None:
        extensions, accepted = negotiate_extensions(self.offer, self.options.per_message_deflate)
        head = accept_response(self.offer, message.get("subprotocol"), accepted, message.get("headers") or ())
        frames = self._frames = FrameConnection(ConnectionType.SERVER, extensions)
        self._plain = not extensions
        self.state = OPEN
        connection = self.connection
        connection.write(head)
        if self._access is not None:
            self._log(101, 0)
        interval = self.options.ping_interval
        self._ping_at = _monotonic() + interval if interval > 0 else 0.0
        self._arm()
        early = self._early
        self._early = bytearray()
        if self._paused and len(self._queue) < self.options.max_queue:
            self._paused = False
            connection.resume_reading()
        if early:
            frames.receive_data(bytes(early))
            self._process(frames)
        if self._stop_requested and self.state == OPEN:
            self._close(1001, "server shutting down")

    def _refuse(self, status: int, message: str) -> None:
        """Answer the handshake with an HTTP error and end the connection."""
        self.state = CLOSED
        self._disconnect(1006, "")
        self.connection.write(plain_response(status, message))
        self.connection.close()
        if self._access is not None:
            self._log(status, len(message) + 1 if message else 0)

    def _log(self, status: int, sent: int) -> None:
        _record(self._access, self.scope, self.headers, self.connection, status, sent, self._started)

    def _response_start(self, message: dict) -> None:
        status = int(message["status"])
        headers = list(message.get("headers") or ())
        denial_head(status, headers, None)  # refuse a bad status or header now: the app fails, 500
        self.state = RESPONDING
        self._response = (status, headers)

    async def _response_body(self, message: dict) -> None:
        body = bytes(message.get("body") or b"")
        more = bool(message.get("more_body"))
        head = self._response
        if head is not None:
            self._response = None
            self._denial_status = head[0]
            self.connection.write(denial_head(head[0], head[1], None if more else len(body)))
        if body:
            self._denial_sent += len(body)
            await self._flow(body)
        if not more:
            if self._access is not None:
                self._log(self._denial_status, self._denial_sent)
            self._finish()

    def _finish(self) -> None:
        """The app's denial response is complete (or abandoned): close the connection."""
        self.state = CLOSED
        self._disconnect(1006, "")
        self.connection.close()

    _response: tuple | None = None
    _denial_status = 0
    _denial_sent = 0

    # -- closing and the one deadline ------------------------------------------------------------
    def _close(self, code: int, reason: str) -> None:
        """Send our close frame; the peer's answer (or CLOSE_TIMEOUT) ends the connection."""
        frames = self._frames
        self.state = CLOSING
        self._disconnect(code, reason)
        try:
            self.connection.write(frames.send(CloseConnection(code, reason)))
        except LocalProtocolError:  # pragma: no cover - a close already went out
            pass
        if self._paused:  # read the peer's close even if the app stopped receiving
            self._paused = False
            if not self._gone:
                self.connection.resume_reading()
        self._close_by = _monotonic() + CLOSE_TIMEOUT
        self._arm()

    def _arm(self) -> None:
        if self._gone:
            return
        state = self.state
        if state == CLOSING:
            self.connection.set_deadline(self._close_by, self._on_deadline)
        elif state == OPEN and self._ping_at:
            self.connection.set_deadline(self._ping_at, self._on_deadline)

    def _on_deadline(self) -> None:
        state = self.state
        now = _monotonic()
        if state == CLOSING:
            if now >= self._close_by:
                self.state = CLOSED
                self.connection.close()  # the peer never answered our close
                return
        elif state == OPEN and self._ping_at:
            if now >= self._ping_at:
                options = self.options
                if self._ping is not None:
                    self._close(1011, "keepalive ping timeout")
                    self.state = CLOSED
                    self.connection.close()  # an unresponsive peer: do not wait for its close
                    return
                self._ping = os.urandom(4)
                self.connection.write(self._frames.send(Ping(self._ping)))
                self._ping_at = now + (options.ping_timeout if options.ping_timeout > 0 else options.ping_interval)
                if options.ping_timeout <= 0:
                    self._ping = None
        self._arm()

