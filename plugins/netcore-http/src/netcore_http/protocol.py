"""HTTP/1.1 framing on the I/O thread; responses produced wherever the dispatcher runs them.

Why httptools: it wraps llhttp, the parser of Node.js, which is fuzzed, maintained and
strict by default -- it already refuses repeated or conflicting Content-Length,
Content-Length with Transfer-Encoding, bad chunk sizes and extensions, bare CR or LF,
obs-fold, whitespace before the colon, control characters and malformed versions. It is
also what uvicorn uses, so the benchmark compares servers, not parsers. What llhttp
accepts and HTTP/1.1 servers must still refuse (a missing or repeated Host, a
Transfer-Encoding other than one ``chunked``, versions other than 1.0/1.1) and every
size limit are checked here, in the parser callbacks.

How a connection runs:

* ``data_received`` feeds the parser; each complete request is queued. When no batch is
  being handled, every queued request becomes ONE batch, handed to
  ``connection.submit(self._handle, batch)``: all requests found in one read are
  answered with one ``send`` (the pipelining fast path) and, whatever thread the
  dispatcher runs the batch on, a connection has at most one batch in flight, so
  responses -- streamed ones included -- go out in request order.
* Where the batch ran decides how its output travels. On the I/O thread (``inline``,
  the reactor of ``prefork``, and the blocking schemes, where the serving thread is the
  I/O thread) it is returned to ``submit`` or written directly; a streamed body stops
  when output passes the high-water mark and resumes on ``resume_writing``. On another
  thread (``pool``, ``thread``, ...) output is posted to the loop with
  ``call_soon_threadsafe`` and the handler thread waits while more than the high-water
  mark is queued or in transit.
* Request bodies are read in full (bounded by ``max_body_size``) before the app runs:
  the app may then run on the I/O thread without ever waiting for the network, and a
  body the app does not read can never be taken for the next request.
* One lazily re-armed timer per connection enforces the keep-alive idle timeout, the
  absolute header deadline and the body progress timeout: the steady state of a busy
  keep-alive connection touches no timer at all. Under the blocking schemes (no loop)
  the same deadlines become socket timeouts.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import httptools
import structlog
from netcore.errors import SettingError
from netcore.protocol import Protocol

from netcore_http.hello import HelloTable
from netcore_http.responses import CONTINUE, error_response

if TYPE_CHECKING:
    from netcore.server import Server

log = structlog.get_logger("netcore.http")

#: What handling a request left to do (``Request`` order): keep the connection, close it
#: after this response, wait for the output to drain (a suspended stream), or nothing
#: at all because the client is gone.
DONE, CLOSE, SUSPENDED, GONE = range(4)
#: Parser phases: between requests, inside a request head, inside a body.
IDLE, HEAD, BODY = range(3)
#: Streamed output is sent in pieces of about this size.
STREAM_FLUSH = 64 * 1024
#: Requests queued behind a busy batch before the connection stops reading.
MAX_QUEUED = 64
#: Connection modes (which Connection header a response carries).
KEEP_ALIVE_11, CLOSE_MODE, KEEP_ALIVE_10 = range(3)

_get_ident = threading.get_ident
_monotonic = time.monotonic


class ClientGone(Exception):
    """The connection closed while a response was being produced."""


class _Reject(Exception):
    """Raised in a parser callback: the request is refused with ``protocol._reject_status``."""


class Request:
    """One parsed request. ``error`` is set instead for a refused one (its status code)."""

    __slots__ = ("method", "url", "version", "headers", "body", "mode", "error", "message")

    def __init__(self, method: bytes, url: bytes, version: str, headers: list, body: bytes, mode: int) -> None:
        self.method = method
        self.url = url
        self.version = version
        self.headers = headers
        self.body = body
        self.mode = mode
        self.error = 0
        self.message = ""


def _refused(status: int, message: str) -> Request:
    request = Request(b"", b"", "1.1", [], b"", CLOSE_MODE)
    request.error = status
    request.message = message
    return request


class Limits:
    """The settings the protocol reads, resolved once at start."""

    def __init__(self, config: Any) -> None:
        get = config.get
        self.max_request_line = get("max_request_line", 8190)
        self.max_header_count = get("max_header_count", 100)
        self.max_header_field = get("max_header_field", 8190)
        self.max_header_bytes = get("max_header_bytes", 65536)
        self.max_body_size = get("max_body_size", 10 << 20)
        self.header_timeout = get("header_timeout", 10.0)
        self.body_timeout = get("body_timeout", 30.0)
        self.keepalive_timeout = get("keepalive_timeout", 5.0)
        self.access_log = get("access_log", False)
        # A head can never honestly be longer than this; bytes beyond it are refused
        # even before the parser reports a complete field (bounds its buffering).
        self.max_raw_head = self.max_request_line + self.max_header_bytes + 4096


class HttpProtocol(Protocol):
    """One HTTP/1.1 connection. See the module docstring for the shape."""

    #: Set on the per-server subclass made by :meth:`for_server`.
    limits: Limits
    keepalive_timeout: float
    responder: Callable[[HttpProtocol, Request], int]
    wsgi: Any = None

    @classmethod
    def for_server(cls, server: Server) -> Callable[[Any], HttpProtocol]:
        config = server.config
        limits = Limits(config)
        attributes: dict[str, Any] = {"limits": limits, "keepalive_timeout": limits.keepalive_timeout}
        app_spec = config.get("app", "") or ""
        if app_spec:
            from netcore_http.apps import load_app
            from netcore_http.wsgi import WsgiHost

            try:
                app = load_app(app_spec)
            except (ImportError, AttributeError, ValueError, TypeError) as exc:
                raise SettingError("app", app_spec, f"module:callable or module:factory() ({exc})") from None
            host = WsgiHost(app, limits, multithread=bool(server.dispatcher.multithread),
                            multiprocess=bool(server.dispatcher.multiprocess))
            attributes["wsgi"] = host
            attributes["responder"] = staticmethod(host.respond)
        else:
            attributes["_handle"] = _hello_handler(limits)
        return type(cls.__name__, (cls,), attributes)

    @classmethod
    def configure(cls, config: Any) -> Callable[[Any], HttpProtocol]:  # pragma: no cover - for_server is used
        raise NotImplementedError("HttpProtocol is assembled through for_server()")

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self._loop = connection.loop
        self._io_ident = _get_ident()
        self._parser = httptools.HttpRequestParser(self)
        self._queue: list[Request] = []
        self._busy = False
        self._reading_paused = False
        self._broken = False
        self._stopping = False
        self._gone = False
        self._phase = IDLE
        self._now = _monotonic()
        # the request being parsed
        self._url = b""
        self._headers: list = []
        self._raw_head = 0
        self._body: list = []
        self._body_size = 0
        self._mode = KEEP_ALIVE_11
        self._method = b""
        self._version = "1.1"
        self._continue_owed = False
        self._reject_status = 0
        self._reject_reason = ""
        # deadlines: a fresh connection must send its first request within header_timeout
        self._idle_since = self._now
        self._idle_timeout = self.limits.header_timeout
        self._head_since = self._now
        self._body_since = self._now
        self._timer = None
        self._timer_when = 0.0
        self._sock_timeout: float | None = None
        # the batch in progress
        self._threaded = False
        self._out: list = []
        self._out_size = 0
        self._state = DONE
        self._rest: list | None = None
        self._stream: Any = None
        self._flow: threading.Condition | None = None
        self._in_transit = 0
        self._buffered = 0
        self._environ_base: dict | None = None

    # -- connection events (I/O thread) -----------------------------------------------
    def connection_made(self) -> None:
        self._schedule()

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return  # after a refused request nothing more is parsed
        self._now = _monotonic()
        in_head = self._phase == HEAD
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request is complete and queued; we speak no other protocol, so answer it
            # and close (what follows the head is not HTTP/1.1 any more).
            if self._queue:
                self._queue[-1].mode = CLOSE_MODE
            self._broken = True
        except httptools.HttpParserError as exc:
            status = self._reject_status or 400
            self._refuse(status, self._reject_reason or str(exc))
        else:
            if in_head and self._phase == HEAD:
                # The whole read was head bytes: bound what the parser may be buffering
                # for a field it has not completed yet.
                self._raw_head += len(data)
                if self._raw_head > self.limits.max_raw_head:
                    self._refuse(431, "request header fields too large")
        if self._queue:
            if not self._busy:
                self._dispatch()
            elif len(self._queue) >= MAX_QUEUED and not self._reading_paused:
                self._reading_paused = True
                self.connection.pause_reading()
        if not self._busy:
            # Between requests the deadline only moves later, and an armed timer that fires
            # early re-arms itself: the common case costs no timer operation at all.
            if self._phase != IDLE or self._timer is None or self._timer_when > self._idle_since + self._idle_timeout:
                self._schedule()

    def eof_received(self) -> None:
        # The peer half-closed: answer what is complete (the connection closes once the
        # replies are written); a partial request can never complete now.
        self._phase = IDLE

    def stop_requested(self) -> None:
        """Graceful stop: idle keep-alive connections close now, busy ones after their response."""
        self._stopping = True
        if not self._busy and not self._queue and self._phase == IDLE:
            self.connection.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        flow = self._flow
        if flow is not None:
            with flow:
                flow.notify_all()
        call, self._stream = self._stream, None
        if call is not None:
            call.close_app()

    def pause_writing(self) -> None:
        """Nothing to do: a producer checks ``connection.writing_paused`` after each write."""

    def resume_writing(self) -> None:
        flow = self._flow
        if flow is not None:
            with flow:
                self._buffered = self.connection.output_size
                flow.notify_all()
        call = self._stream
        if call is None:
            return
        # A stream suspended on the I/O thread: produce more now that the peer read some.
        self._stream = None
        self._threaded = False
        self._out = []
        self._out_size = 0
        from netcore_http.wsgi import pump

        state = pump(self, call)
        if state == SUSPENDED:
            self._stream = call
            return
        rest, self._rest = self._rest, None
        if state == DONE and rest:
            state = self._run(rest)
            if state == SUSPENDED:
                return
        data = b"".join(self._out)
        self._out = []
        if data:
            self.connection.write(data)
        self._after_batch(state)
        self._dispatch()

    # -- parser callbacks (I/O thread, inside feed_data) ---------------------------------
    # A request begins with its target (llhttp knows every method, so the method itself
    # is bounded): no on_message_begin callback, one Python call less per request.
    def on_url(self, url: bytes) -> None:
        if self._phase == HEAD:  # a further fragment of a target split across reads
            url = self._url + url
            if len(url) > self.limits.max_request_line:
                self._reject(414, "request target too long")
        else:
            self._phase = HEAD
            self._head_since = self._now
            self._headers = []
            self._raw_head = 0
            if len(url) > self.limits.max_request_line:
                self._reject(414, "request target too long")
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Count and sizes are checked once the head is complete; until then the raw-bytes
        # bound in data_received keeps what is buffered finite.
        if self._phase == HEAD:
            self._headers.append((name, value))
            return
        # a trailer field of a chunked body: counted as body, dropped
        self._body_size += len(name) + len(value)
        if self._body_size > self.limits.max_body_size:
            self._reject(413, "request body too large")

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._reject(505 if version >= "2" else 400, f"HTTP/{version} is not supported")
        hosts = 0
        transfer_encodings = 0
        transfer_encoding = b""
        expect = False
        length = 0
        total = 0
        largest = 0
        limits = self.limits
        headers = self._headers
        if len(headers) > limits.max_header_count:
            self._reject(431, "too many header fields")
        for name, value in headers:
            n = len(name)
            size = n + len(value)
            total += size
            if size > largest:
                largest = size
            # Compare lengths first: most fields are none of these, and lower() costs more.
            if n == 4:
                if name.lower() == b"host":
                    hosts += 1
            elif n == 14:
                if name.lower() == b"content-length":
                    length = int(value)  # llhttp has checked the digits and refused repeats
            elif n == 17:
                if name.lower() == b"transfer-encoding":
                    transfer_encodings += 1
                    transfer_encoding = value
            elif n == 6:
                if name.lower() == b"expect" and value.lower() == b"100-continue":
                    expect = True
        if largest > limits.max_header_field:
            self._reject(431, "header field too large")
        if total + 4 * len(headers) > limits.max_header_bytes:
            self._reject(431, "request header fields too large")
        if hosts != (1 if version == "1.1" else hosts) or hosts > 1:
            self._reject(400, "missing Host header" if not hosts else "repeated Host header")
        if transfer_encodings:
            if transfer_encodings > 1 or transfer_encoding.strip().lower() != b"chunked":
                self._reject(400, "unsupported or repeated Transfer-Encoding")
            if version == "1.0":
                self._reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        if length > limits.max_body_size:
            self._reject(413, "request body too large")
        if parser.should_keep_alive() and not self._stopping:
            self._mode = KEEP_ALIVE_11 if version == "1.1" else KEEP_ALIVE_10
        else:
            self._mode = CLOSE_MODE
        self._method = parser.get_method()
        self._version = version
        self._body = []
        self._body_size = 0
        self._phase = BODY
        self._body_since = self._now
        if expect and version == "1.1" and (length or transfer_encodings):
            if self._busy or self._queue:
                self._continue_owed = True  # after the responses still owed, in order
            else:
                self.connection.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._body_size += len(body)
        self._body_since = self._now
        if self._body_size > self.limits.max_body_size:
            self._reject(413, "request body too large")

    def on_message_complete(self) -> None:
        body = self._body
        self._queue.append(Request(self._method, self._url, self._version, self._headers,
                                   (body[0] if len(body) == 1 else b"".join(body)) if body else b"",
                                   self._mode))
        self._phase = IDLE
        self._continue_owed = False

    def _reject(self, status: int, reason: str) -> None:
        self._reject_status = status
        self._reject_reason = reason
        raise _Reject(reason)

    def _refuse(self, status: int, reason: str) -> None:
        """Queue an error response (after the responses still owed) and stop parsing."""
        self._queue.append(_refused(status, reason))
        self._broken = True
        self._phase = IDLE

    # -- batches -------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Hand every queued request to the dispatcher as one batch (I/O thread)."""
        connection = self.connection
        while self._queue and not self._busy:
            batch = self._queue
            self._queue = []
            self._busy = True
            self._state = -1
            if self._sock_timeout is not None:
                connection.sock.settimeout(None)  # blocking scheme: writes must not time out
                self._sock_timeout = None
            connection.submit(self._handle, batch)
            if len(batch) > 1:
                connection.requests += len(batch) - 1
            state = self._state
            if state < 0:
                return  # runs on another thread; _deliver continues
            if state == DONE and not self._stopping:
                # _after_batch's common case, written out: this runs once per batch.
                self._busy = False
                if self._reading_paused:
                    self._reading_paused = False
                    connection.resume_reading()
                if self._continue_owed:
                    self._continue_owed = False
                    connection.write(CONTINUE)
                self._idle_since = self._now
                self._idle_timeout = self.keepalive_timeout
            else:
                self._after_batch(state)

    def _handle(self, batch: list[Request]) -> bytes | None:
        """The handler ``submit`` runs: answer a batch, on whatever thread it is given."""
        threaded = self._loop is not None and _get_ident() != self._io_ident
        self._threaded = threaded
        self._out = []
        self._out_size = 0
        try:
            state = self._run(batch)
        except ClientGone:
            state = GONE
        out = self._out
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        if threaded:
            self._loop.call_soon_threadsafe(self._deliver, data, state)
            return None
        self._state = state
        return data

    def _run(self, batch: list[Request]) -> int:
        respond = self.responder
        for index, request in enumerate(batch):
            state = respond(self, request)
            if state:
                if state == SUSPENDED:
                    self._rest = batch[index + 1:]
                return state
        return DONE

    def _deliver(self, data: bytes, state: int) -> None:
        """A batch finished on a handler thread (I/O thread)."""
        if self.connection.closed:
            return
        if data:
            self.connection.write(data)
        self._now = _monotonic()
        self._after_batch(state)
        self._dispatch()
        if not self._busy:
            self._schedule()

    def _after_batch(self, state: int) -> None:
        if state == SUSPENDED:
            return  # resume_writing continues the stream
        self._busy = False
        connection = self.connection
        if state != DONE or self._stopping:
            self._queue.clear()
            self._broken = True
            connection.close()
            return
        if self._reading_paused:
            self._reading_paused = False
            connection.resume_reading()
        if self._continue_owed:
            self._continue_owed = False
            connection.write(CONTINUE)
        self._idle_since = self._now
        self._idle_timeout = self.keepalive_timeout

    # -- output of a batch (any thread) ---------------------------------------------------
    def emit(self, data: bytes) -> bool:
        """Add response bytes; False when a stream on the I/O thread must stop for now."""
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size < STREAM_FLUSH:
            return True
        return self.flush()

    def flush(self) -> bool:
        out = self._out
        data = b"".join(out)
        out.clear()
        self._out_size = 0
        if self._threaded:
            self._post(data)
            return True
        connection = self.connection
        connection.write(data)
        if self._gone or connection.closed:
            raise ClientGone
        return self._loop is None or not connection.writing_paused

    def _post(self, data: bytes) -> None:
        """From a handler thread: queue ``data`` for the loop, waiting while too much is owed."""
        flow = self._flow
        if flow is None:
            flow = self._flow = threading.Condition(threading.Lock())
        high = self.connection._high_water
        with flow:
            while self._in_transit + self._buffered > high and not self._gone:
                flow.wait(1.0)
            if self._gone:
                raise ClientGone
            self._in_transit += len(data)
        self._loop.call_soon_threadsafe(self._write_posted, data)

    def _write_posted(self, data: bytes) -> None:
        connection = self.connection
        connection.write(data)
        with self._flow:
            self._in_transit -= len(data)
            self._buffered = connection.output_size
            self._flow.notify_all()

    def count_error(self) -> None:
        """Count an app failure in the worker's statistics (from any thread)."""
        if self._threaded:
            self._loop.call_soon_threadsafe(self._count_error)
        else:
            self._count_error()

    def _count_error(self) -> None:
        owner = getattr(self.connection, "owner", None)
        if owner is not None:
            owner.count_error()

    # -- deadlines (I/O thread) -----------------------------------------------------------
    def _deadline(self) -> float:
        phase = self._phase
        if phase == IDLE:
            return self._idle_since + self._idle_timeout
        if phase == HEAD:
            return self._head_since + self.limits.header_timeout
        return self._body_since + self.limits.body_timeout

    def _schedule(self) -> None:
        if self._broken or self._gone:
            return
        deadline = self._deadline()
        loop = self._loop
        if loop is None:
            # Blocking scheme: the serving thread waits in recv(); let the kernel time it out.
            timeout = max(0.001, deadline - _monotonic())
            if self._sock_timeout != timeout:
                self.connection.sock.settimeout(timeout)
                self._sock_timeout = timeout
            return
        timer = self._timer
        if timer is not None:
            if self._timer_when <= deadline:
                return  # fires early and re-arms: no heap operation per request
            timer.cancel()
        self._timer_when = deadline
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        connection = self.connection
        if connection.closed or self._busy or self._queue or self._broken:
            return  # a busy connection is re-armed when its batch finishes
        deadline = self._deadline()
        if deadline > _monotonic():
            self._schedule()
            return
        if self._phase == IDLE:
            connection.close()  # keep-alive idle timeout: a quiet close
            return
        self._broken = True
        connection.write(error_response(408, "request timeout"))
        connection.close()


def _hello_handler(limits: Limits) -> Callable[[HttpProtocol, list], bytes | None]:
    """The built-in app as the batch handler itself: prebuilt responses, no WSGI layer.

    It replaces ``HttpProtocol._handle`` (same contract) so that a batch costs one call
    and a lookup per request: this is the path the uvicorn/nginx comparison measures.
    """
    cache = HelloTable()
    access_log = limits.access_log
    wall = time.time

    def handle(protocol: HttpProtocol, batch: list[Request]) -> bytes | None:
        second = int(wall())
        table = cache.table if second == cache.second else cache.refresh(second)
        out = []
        state = DONE
        for request in batch:
            if request.error:
                out.append(error_response(request.error, request.message))
                state = CLOSE
                break
            method = request.method
            url = request.url
            found = (method == b"GET" or method == b"HEAD") and (url == b"/" or url[:2] == b"/?")
            mode = request.mode
            response = table[found, mode, method == b"HEAD"]
            out.append(response)
            if access_log:
                log.info("http.access", method=method.decode("latin-1"), target=url.decode("latin-1"),
                         status=200 if found else 404, bytes=len(response))
            if mode == CLOSE_MODE:
                state = CLOSE
                break
        data = out[0] if len(out) == 1 else b"".join(out)
        if protocol._loop is not None and _get_ident() != protocol._io_ident:
            protocol._loop.call_soon_threadsafe(protocol._deliver, data, state)
            return None
        protocol._state = state
        return data

    return handle
