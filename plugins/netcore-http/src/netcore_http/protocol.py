"""HTTP/1.1 framing on the I/O thread; responses produced wherever the dispatcher runs them.

Why httptools: it wraps llhttp, the parser of Node.js, which is fuzzed, maintained and
strict by default -- it already refuses repeated or conflicting Content-Length,
Content-Length with Transfer-Encoding, bad chunk sizes and extensions, bare CR or LF,
obs-fold, whitespace before the colon, control characters and malformed versions. It is
also what uvicorn uses, so the benchmark compares servers, not parsers. What llhttp
accepts and HTTP/1.1 servers must still refuse (a missing or repeated Host, a
Transfer-Encoding other than one ``chunked``, versions other than 1.0/1.1) and every
size limit are checked here, in the parser callbacks.

How a connection runs, on nothing but the connection contract (``netcore.reactor.base``):

* ``data_received`` feeds the parser; every request completed by one read becomes ONE
  batch, handed to ``connection.submit(self._handle, batch, len(batch))``: all requests
  found in one read are answered with one ``send`` (the pipelining fast path).
* The protocol is ``serial``: a connection has one batch in flight, so responses --
  streamed ones included -- go out in request order, whatever thread the dispatcher runs
  the batch on; batches that arrive meanwhile wait in the connection.
* ``job_done`` runs on the I/O thread after each batch's response is handed to the
  connection: it closes after a final response, writes a ``100 Continue`` that waited
  for earlier responses, and moves the keep-alive deadline.
* A streamed body goes through ``connection.send``: on a handler thread it waits while
  the client is slow; on the I/O thread (inline) it reports that output passed the
  high-water mark, the batch returns ``LATER`` and ``resume_writing`` produces the rest.
* Request bodies are read in full (bounded by ``max_body_size``) before the app runs:
  the app may then run on the I/O thread without ever waiting for the network, and a
  body the app does not read can never be taken for the next request.
* One connection deadline (``connection.set_deadline``) enforces the keep-alive idle
  timeout, the absolute header deadline and the body progress timeout. The deadline is
  computed from the phase when it fires, so a busy keep-alive connection touches no
  timer at all: the reactor maps it to a lazily re-armed timer, the blocking schemes to
  a receive timeout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import httptools
import structlog
from netcore.errors import SettingError
from netcore.protocol import LATER, ConnectionClosed, Protocol

from netcore_http.hello import HelloTable
from netcore_http.output import ResponseOutput
from netcore_http.request import (
    BODY,
    CLOSE,
    CLOSE_MODE,
    DONE,
    GONE,
    HEAD,
    IDLE,
    KEEP_ALIVE_10,
    KEEP_ALIVE_11,
    MODE,
    SUSPENDED,
    Limits,
    refused,
)
from netcore_http.responses import CONTINUE, error_response

if TYPE_CHECKING:
    from netcore.server import Server

log = structlog.get_logger("netcore.http")

#: The header names that frame a request or speak about its connection, in their usual
#: spelling and in lower case, and their lengths (compared first: cheaper than lower()).
_FRAMING_NAMES = frozenset((b"Expect", b"Connection", b"Content-Length", b"Transfer-Encoding", b"expect",
                            b"connection", b"content-length", b"transfer-encoding"))
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING_NAMES)

_monotonic = time.monotonic


class _Reject(Exception):
    """Raised in a parser callback: the request is refused with ``protocol._reject_status``."""


class HttpProtocol(Protocol):
    """One HTTP/1.1 connection. See the module docstring for the shape."""

    serial = True

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
            concurrency = server.concurrency
            host = WsgiHost(app, limits, multithread=concurrency.multithread,
                            multiprocess=concurrency.multiprocess)
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
    _rest: list | None = None

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._parser = httptools.HttpRequestParser(self)
        #: Requests completed by the read being parsed (submitted as one batch after it).
        self._batch: list[tuple] = []
        #: Batches submitted whose job_done has not run yet.
        self._outstanding = 0
        self._broken = False
        self._stopping = False
        self._gone = False
        self._continue_owed = False
        # True while the next finished batch needs more than the common ending (a 100
        # Continue owed, a stop requested, or the first batch, which swaps the header
        # deadline for the keep-alive one): one test on the fast path.
        self._special = True
        self._phase = IDLE
        self._now = now = _monotonic()
        self._headers: list = []
        self._body: list | None = None  # None: the request being parsed has no body (the common case)
        #: What the last batch left to do (written by the handler, read by job_done).
        self._state = DONE
        self._output = ResponseOutput(connection)
        self._armed = False  # a connection deadline is set
        self._handler = self._handle  # bound once: submit() gets it per batch
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
            if self._batch:
                self._batch[-1] = self._batch[-1][:MODE] + (CLOSE_MODE, None)
            self._broken = True
        except httptools.HttpParserError as exc:
            status = self._reject_status or 400
            self._refuse(status, self._reject_reason or str(exc))
        else:
            if self._phase == HEAD:
                self._partial_head(len(data))
        batch = self._batch
        if batch:
            self._batch = []
            self._outstanding += 1
            self.connection.submit(self._handler, batch, len(batch))
            # Under the inline and blocking schemes job_done has run by now.
        if self._phase != IDLE and not self._outstanding:
            self._schedule()  # a request is partial: its header or body deadline

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
        if not self._outstanding and not self._batch and self._phase == IDLE:
            self.connection.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        self.connection.cancel_deadline()
        output = self._output
        call, output.suspended = output.suspended, None
        if call is not None:
            call.close_app()

    def resume_writing(self) -> None:
        """Output drained: a stream suspended on the I/O thread produces more."""
        output = self._output
        call = output.suspended
        if call is None:
            return
        output.suspended = None
        self._now = _monotonic()
        state = self.wsgi.pump(output, call)
        if state == SUSPENDED:
            return
        rest, self._rest = self._rest, None
        if state == DONE and rest:
            state = self._run(rest)
            if state == SUSPENDED:
                return
        self._state = state
        self.connection.job_finished(output.take())

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
                if self._outstanding or self._batch:
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
            self._batch.append(self._request)
        else:
            self._body = None
            self._continue_owed = False
            method, url, version, headers, _, mode, _ = self._request
            self._batch.append((method, url, version, headers, body[0] if len(body) == 1 else b"".join(body),
                                mode, None))
        self._phase = IDLE

    def _reject(self, status: int, reason: str) -> None:
        self._reject_status = status
        self._reject_reason = reason
        raise _Reject(reason)

    def _refuse(self, status: int, reason: str) -> None:
        """Queue an error response (after the responses still owed) and stop parsing."""
        self._batch.append(refused(status, reason))
        self._broken = True
        self._phase = IDLE

    # -- batches -------------------------------------------------------------------------
    def _handle(self, batch: list[tuple]) -> bytes | None:
        """The handler ``submit`` runs: answer a batch, on whatever thread it is given."""
        output = self._output
        try:
            if len(batch) == 1:  # one request per read: the common case, one call less
                state = self._respond(output, batch[0])
                if state == SUSPENDED:
                    self._rest = []
            else:
                state = self._run(batch)
        except ConnectionClosed:
            state = GONE
        if state == SUSPENDED:
            return LATER  # resume_writing finishes the batch
        self._state = state
        # output.take(), written out: once per batch.
        parts = output.parts
        if not parts:
            return None
        output.parts = []
        output.size = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _run(self, batch: list[tuple]) -> int:
        respond = self._respond
        output = self._output
        if len(batch) == 1:
            state = respond(output, batch[0])
            if state == SUSPENDED:
                self._rest = []
            return state
        for index, request in enumerate(batch):
            state = respond(output, request)
            if state:
                if state == SUSPENDED:
                    self._rest = batch[index + 1:]
                return state
        return DONE

    def job_done(self) -> None:
        """A batch's response is with the connection (I/O thread): what it leaves to do."""
        self._outstanding = outstanding = self._outstanding - 1
        if self._state == DONE and not self._special:
            # The common ending: the keep-alive deadline only moves later and a deadline
            # that fires early is re-computed: no timer operation unless a request is partial.
            if not outstanding:
                self._idle_since = _monotonic()
                if self._phase or not self._armed:
                    self._schedule()
            return
        connection = self.connection
        if self._state != DONE or self._stopping:
            # A final response: nothing read after it is answered (it may wait in the
            # connection already, under a pool).
            self._batch.clear()
            self._broken = True
            connection.discard_waiting()
            connection.close()
            return
        if outstanding:
            return
        if self._continue_owed:
            self._continue_owed = False
            connection.write(CONTINUE)
        self._idle_since = _monotonic()
        self._idle_timeout = self.keepalive_timeout
        self._special = False
        self._schedule()

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
        self._armed = True
        self.connection.set_deadline(self._deadline(), self._on_deadline)

    def _on_deadline(self) -> None:
        self._armed = False
        connection = self.connection
        if connection.closed or self._outstanding or self._broken:
            return  # a busy connection is re-armed when its batch finishes
        if self._deadline() > _monotonic():
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
        # The clock reading of the read that completed the batch: under a pool it is
        # older by the hand-off, far less than the Date header's one-second resolution.
        now = protocol._now
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
        protocol._state = state
        return data

    return handle
