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

#: What handling a request left to do: keep the connection, close it
#: after this response, wait for the output to drain (a suspended stream), or nothing
#: at all because the client is gone.
DONE, CLOSE, SUSPENDED, GONE = range(4)
#: Parser phases: between requests, inside a request head, inside a body.
IDLE, HEAD, BODY = range(3)
#: Streamed output is sent in pieces of about this size.
STREAM_FLUSH = 64 * 1024
#: Requests queued behind a busy batch before the connection stops reading.
MAX_QUEUED = 64
#: The header names that frame a request or speak about its connection, in their usual
#: spelling and in lower case, and their lengths (compared first: cheaper than lower()).
_FRAMING_NAMES = frozenset((b"Expect", b"Connection", b"Content-Length", b"Transfer-Encoding", b"expect",
                            b"connection", b"content-length", b"transfer-encoding"))
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING_NAMES)
#: Connection modes (which Connection header a response carries).
KEEP_ALIVE_11, CLOSE_MODE, KEEP_ALIVE_10 = range(3)

_get_ident = threading.get_ident
_monotonic = time.monotonic


class ClientGone(Exception):
    """The connection closed while a response was being produced."""


class _Reject(Exception):
    """Raised in a parser callback: the request is refused with ``protocol._reject_status``."""


#: A parsed request is a plain tuple -- building one costs a fraction of an object's
#: ``__init__`` call, and this happens for every request:
#: ``(method, url, version, headers, body, mode, error)``, ``error`` None or, for a
#: refused request, ``(status, message)``.
METHOD, URL, VERSION, HEADERS, BODY, MODE, ERROR = range(7)


def _refused(status: int, message: str) -> tuple:
    return (b"", b"", "1.1", [], b"", CLOSE_MODE, (status, message))


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
        else:
            attributes["_handle"] = _hello_handler(limits)
        return type(cls.__name__, (cls,), attributes)

    @classmethod
    def configure(cls, config: Any) -> Callable[[Any], HttpProtocol]:  # pragma: no cover - for_server is used
        raise NotImplementedError("HttpProtocol is assembled through for_server()")

    # Per-connection state that the per-request path never reads lives here, on the
    # class: a connection costs fewer stores to set up, and the first assignment shadows
    # it. (What the per-request path reads is set in __init__: in Python 3.11 reading a
    # class default through an instance is not specialised, an instance attribute is.)
    _reject_status = 0
    _reject_reason = ""
    _url = b""
    _request: tuple = ()
    _raw_head = 0
    _body_size = 0
    _out_size = 0
    _rest: list | None = None
    _stream: Any = None
    _flow: threading.Condition | None = None
    _in_transit = 0
    _buffered = 0

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._loop = connection.loop
        self._io_ident = _get_ident()
        self._parser = httptools.HttpRequestParser(self)
        self._queue: list[tuple] = []
        self._busy = False
        self._broken = False
        self._stopping = False
        self._gone = False
        self._reading_paused = False
        self._continue_owed = False
        # True while the next finished batch needs more than the common ending (reading
        # paused, a 100 Continue owed, a stop requested, or the first batch, which
        # swaps the header deadline for the keep-alive one): one test on the fast path.
        self._special = True
        self._phase = IDLE
        self._now = now = _monotonic()
        self._headers: list = []
        self._body: list | None = None  # None: the request being parsed has no body (the common case)
        self._out: list = []
        self._state = DONE
        self._threaded = False
        self._environ_base: dict | None = None
        self._timer: Any = None
        self._timer_when = 0.0
        self._sock_timeout: float | None = None
        self._handler = self._handle  # bound once: submit() gets it per request
        self._respond = self.wsgi.respond if self.wsgi is not None else None
        # The limits read per request, as instance attributes: in Python 3.11 reading a
        # class attribute through an instance is not specialised, and this is per request.
        limits = self.limits
        self._max_request_line = limits.max_request_line
        self._max_header_count = limits.max_header_count
        self._max_header_field = limits.max_header_field
        self._max_header_bytes = limits.max_header_bytes
        # deadlines: a fresh connection must send its first request within header_timeout
        self._idle_since = now
        self._idle_timeout = self.limits.header_timeout
        self._head_since = now
        self._body_since = now

    # -- connection events (I/O thread) -----------------------------------------------
    def connection_made(self) -> None:
        self._schedule()

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return  # after a refused request nothing more is parsed
        self._now = _monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request is complete and queued; we speak no other protocol, so answer it
            # and close (what follows the head is not HTTP/1.1 any more).
            if self._queue:
                self._queue[-1] = self._queue[-1][:MODE] + (CLOSE_MODE, None)
            self._broken = True
        except httptools.HttpParserError as exc:
            status = self._reject_status or 400
            self._refuse(status, self._reject_reason or str(exc))
        else:
            if self._phase == HEAD:
                self._partial_head(len(data))
        batch = self._queue
        if batch:
            if self._busy:
                if len(batch) >= MAX_QUEUED and not self._reading_paused:
                    self._reading_paused = True
                    self._special = True
                    self.connection.pause_reading()
                return  # the batch in flight re-arms the timer when it ends
            state = self._submit(batch)
            if state == DONE and not self._special:
                self._busy = False
                self._idle_since = self._now
                # The keep-alive deadline only moves later and an armed timer that fires
                # early re-arms itself: no timer operation unless a request is partial.
                if self._phase or self._timer is None:
                    self._schedule()
                return
            if state < 0:
                return  # runs on another thread; _deliver continues
            self._after_batch(state)
            self._dispatch()
            if self._busy:
                return
        if self._phase != IDLE or self._timer is None or self._timer_when > self._idle_since + self._idle_timeout:
            self._schedule()

    def _partial_head(self, size: int) -> None:
        """The read ended inside a request head: bound what the parser may be buffering.

        Counted are whole reads that were nothing but head bytes (the head began in an
        earlier read: on_url stamps it with the read's clock reading), so a field that
        trickles in can never grow past ``max_raw_head`` plus one read.
        """
        if self._head_since == self._now:
            self._raw_head = 0
            return
        self._raw_head += size
        if self._raw_head > self.limits.max_raw_head:
            self._refuse(431, "request header fields too large")

    def eof_received(self) -> None:
        # The peer half-closed: answer what is complete (the connection closes once the
        # replies are written); a partial request can never complete now.
        self._phase = IDLE

    def stop_requested(self) -> None:
        """Graceful stop: idle keep-alive connections close now, busy ones after their response."""
        self._stopping = True
        self._special = True
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
        self._now = _monotonic()
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
        else:
            self._phase = HEAD
            self._head_since = self._now
            self._headers = []
        self._url = url
        if len(url) > self._max_request_line:
            self._reject(414, "request target too long")

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
        headers = self._headers
        hosts = 0
        total = 0
        largest = 0
        framing = None
        for name, value in headers:
            n = len(name)
            size = n + len(value)
            total += size
            if size > largest:
                largest = size
            # Compare lengths first: most fields are neither Host nor one that frames the
            # message or the connection; then the usual spelling, as lower() costs a call.
            if n == 4:
                if name == b"Host" or name.lower() == b"host":
                    hosts += 1
            elif n in _FRAMING_LENGTHS and (name in _FRAMING_NAMES or name.lower() in _FRAMING_NAMES):
                if framing is None:
                    framing = []
                framing.append((name, value))
        parser = self._parser
        if framing is None and parser.should_keep_alive():
            # The common request: keep-alive, no body, no field about the connection.
            # llhttp accepts only the versions 0.9, 1.0, 1.1 and 2.0, and without a
            # Connection field keeps alive exactly those whose minor version is not 0:
            # this is HTTP/1.1. (get_http_version() formats a string: 0.3 us.)
            if hosts != 1 or largest > self._max_header_field or len(headers) > self._max_header_count \
                    or total + 4 * len(headers) > self._max_header_bytes:
                self._check_head("1.1", headers, hosts, total, largest)
            self._request = (parser.get_method(), self._url, "1.1", headers, b"",
                             CLOSE_MODE if self._stopping else KEEP_ALIVE_11, None)
            return
        self._framed_head(framing or (), headers, hosts, total, largest)

    def _framed_head(self, framing: Any, headers: list, hosts: int, total: int, largest: int) -> None:
        """on_headers_complete for a request that is not HTTP/1.1 keep-alive without a body."""
        parser = self._parser
        transfer_encodings = 0
        transfer_encoding = b""
        expect = False
        connection_field = False
        length = 0
        for name, value in framing:
            lower = name.lower()
            if lower == b"connection":
                connection_field = True
            elif lower == b"content-length":
                length = int(value)  # llhttp has checked the digits and refused repeats
            elif lower == b"transfer-encoding":
                transfer_encodings += 1
                transfer_encoding = value
            elif lower == b"expect" and value.lower() == b"100-continue":
                expect = True
        keep_alive = parser.should_keep_alive()
        if keep_alive and not connection_field:
            version = "1.1"  # see on_headers_complete
        else:
            version = parser.get_http_version()
        self._check_head(version, headers, hosts, total, largest)
        limits = self.limits
        if transfer_encodings:
            if transfer_encodings > 1 or transfer_encoding.strip().lower() != b"chunked":
                self._reject(400, "unsupported or repeated Transfer-Encoding")
            if version == "1.0":
                self._reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        if length > limits.max_body_size:
            self._reject(413, "request body too large")
        if keep_alive and not self._stopping:
            mode = KEEP_ALIVE_11 if version == "1.1" else KEEP_ALIVE_10
        else:
            mode = CLOSE_MODE
        self._request = (parser.get_method(), self._url, version, headers, b"", mode, None)
        if length or transfer_encodings:
            self._body = []
            self._body_size = 0
            self._phase = BODY
            self._body_since = self._now
            if expect and version == "1.1":
                if self._busy or self._queue:
                    self._continue_owed = True  # after the responses still owed, in order
                    self._special = True
                else:
                    self.connection.write(CONTINUE)
        # Without a body on_message_complete follows at once: the phase may stay HEAD.

    def _check_head(self, version: str, headers: list, hosts: int, total: int, largest: int) -> None:
        """Refuse what llhttp accepts and an HTTP/1.1 server must not (in this order)."""
        if version != "1.1" and version != "1.0":
            self._reject(505 if version >= "2" else 400, f"HTTP/{version} is not supported")
        if len(headers) > self._max_header_count:
            self._reject(431, "too many header fields")
        if largest > self._max_header_field:
            self._reject(431, "header field too large")
        if total + 4 * len(headers) > self._max_header_bytes:
            self._reject(431, "request header fields too large")
        if hosts != 1 and (hosts or version == "1.1"):
            self._reject(400, "missing Host header" if not hosts else "repeated Host header")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._body_size += len(body)
        self._body_since = self._now
        if self._body_size > self.limits.max_body_size:
            self._reject(413, "request body too large")

    def on_message_complete(self) -> None:
        body = self._body
        if body is None:
            self._queue.append(self._request)
        else:
            self._body = None
            self._continue_owed = False
            method, url, version, headers, _, mode, _ = self._request
            self._queue.append((method, url, version, headers, body[0] if len(body) == 1 else b"".join(body),
                                mode, None))
        self._phase = IDLE

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
        while self._queue and not self._busy:
            state = self._submit(self._queue)
            if state < 0:
                return  # runs on another thread; _deliver continues
            self._after_batch(state)

    def _submit(self, batch: list) -> int:
        """Hand ``batch`` (the whole queue) to the dispatcher; returns the state it left.

        -1 means the handler runs on another thread and ``_deliver`` finishes the batch.
        """
        self._queue = []
        self._busy = True
        self._state = -1
        connection = self.connection
        if self._sock_timeout is not None:
            connection.sock.settimeout(None)  # blocking scheme: writes must not time out
            self._sock_timeout = None
        connection.submit(self._handler, batch)
        if len(batch) > 1:
            connection.requests += len(batch) - 1
        return self._state

    def _handle(self, batch: list[tuple]) -> bytes | None:
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

    def _run(self, batch: list[tuple]) -> int:
        respond = self._respond
        if len(batch) == 1:
            state = respond(self, batch[0])
            if state == SUSPENDED:
                self._rest = []
            return state
        for index, request in enumerate(batch):
            state = respond(self, request)
            if state:
                if state == SUSPENDED:
                    self._rest = batch[index + 1:]
                return state
        return DONE

    def _deliver(self, data: bytes, state: int) -> None:
        """A batch finished on a handler thread (I/O thread)."""
        connection = self.connection
        if connection.closed:
            return
        if data:
            connection.write(data)
        self._now = now = _monotonic()
        if state == DONE and not self._special and not self._queue:
            # The common ending, as in data_received.
            self._busy = False
            self._idle_since = now
            if self._phase or self._timer is None:
                self._schedule()
            return
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
        self._special = False

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

    def handle(protocol: HttpProtocol, batch: list[tuple]) -> bytes | None:
        threaded = protocol._loop is not None and _get_ident() != protocol._io_ident
        now = _monotonic() if threaded else protocol._now
        table = cache.table if now < cache.until else cache.current(now)
        if len(batch) == 1 and not access_log:
            # One request per read (keep-alive without pipelining): the common case.
            method, url, _, _, _, mode, error = batch[0]
            if error:
                data = error_response(*error)
                state = CLOSE
            else:
                data = table[(method == b"GET" or method == b"HEAD") and (url == b"/" or url[:2] == b"/?"),
                             mode, method == b"HEAD"]
                state = CLOSE if mode == CLOSE_MODE else DONE
        else:
            out = []
            state = DONE
            for method, url, _, _, _, mode, error in batch:
                if error:
                    out.append(error_response(*error))
                    state = CLOSE
                    break
                found = (method == b"GET" or method == b"HEAD") and (url == b"/" or url[:2] == b"/?")
                response = table[found, mode, method == b"HEAD"]
                out.append(response)
                if access_log:
                    log.info("http.access", method=method.decode("latin-1"), target=url.decode("latin-1"),
                             status=200 if found else 404, bytes=len(response))
                if mode == CLOSE_MODE:
                    state = CLOSE
                    break
            data = out[0] if len(out) == 1 else b"".join(out)
        if threaded:
            protocol._loop.call_soon_threadsafe(protocol._deliver, data, state)
            return None
        protocol._state = state
        return data

    return handle
