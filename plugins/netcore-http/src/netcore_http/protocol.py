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
* Request bodies never sit whole in memory (``body.py``). Where the app runs on a
  handler thread (``server.concurrency.handler_threads``) the request is submitted as
  soon as its head is complete and the body follows through a bounded
  :class:`~netcore_http.body.StreamedBody` (reading pauses while it is full); elsewhere
  the body is read before the app runs, spilling to a temporary file past
  ``body_buffer_size``. The parser always frames the body, so what the app leaves
  unread is drained (up to :data:`DRAIN_LIMIT`) or the connection closed -- it is never
  parsed as a request. While a streamed body arrives nothing after it is parsed: the
  next pipelined request waits, in the socket, until the body has been consumed.
* Two things llhttp refuses and RFC 9110/9112 allow are handled around it, off the hot
  path: an extension method (``_extension_method``: the refusal is the signal) and
  whitespace in chunk extensions (llhttp is stopped after a chunked head and
  ``chunked.py`` frames the body to the RFC's grammar).
* One connection deadline (``connection.set_deadline``) enforces the keep-alive idle
  timeout, the absolute header deadline and the body progress timeout. The deadline is
  computed from the phase when it fires, so a busy keep-alive connection touches no
  timer at all: the reactor maps it to a lazily re-armed timer, the blocking schemes to
  a receive timeout.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Callable

import httptools
import structlog
from netcore.errors import SettingError
from netcore.protocol import LATER, ConnectionClosed, Protocol

from netcore_http import access as accesslog
from netcore_http.body import DRAIN_LIMIT, RequestBodyError, SpooledBody, StreamedBody
from netcore_http.chunked import ChunkedBody, LengthBody
from netcore_http.hello import _HELLO_BODY, _NOT_FOUND_BODY, HelloTable
from netcore_http.metrics import HttpFigures, http_figures
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
from netcore_http.responses import CONTINUE, error_body_length, error_response

if TYPE_CHECKING:
    from netcore.server import Server

log = structlog.get_logger("netcore.http")

#: The header names that frame a request or speak about its connection, in their usual
#: spelling and in lower case, and their lengths (compared first: cheaper than lower()).
_FRAMING_NAMES = frozenset((b"Expect", b"Connection", b"Content-Length", b"Transfer-Encoding", b"expect",
                            b"connection", b"content-length", b"transfer-encoding"))
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING_NAMES)

_monotonic = time.monotonic



#: An extension method that is accepted: RFC 9110 token characters without lower case, 3
#: to 20 long (gunicorn's defaults).
_METHOD = re.compile(rb"[A-Z0-9!#$%&'*+.^_`|~-]{3,20}")
#: The beginning of such a method, cut off by the end of a read.
_METHOD_PREFIX = re.compile(rb"[A-Z0-9!#$%&'*+.^_`|~-]{1,19}")


def _final_batch(batch: list) -> None:
    """During a drain: the last response of ``batch`` is the final one (``Connection:
    close``). Only the last: a request parsed in the same read before it is answered
    first, not dropped behind a close."""
    last = batch[-1]
    if last[MODE] != CLOSE_MODE:
        batch[-1] = last[:MODE] + (CLOSE_MODE, None)


class _MethodShim:
    """Stands in for the parser until the head of a renamed request is complete.

    ``on_headers_complete`` asks the parser for the method: this answers with the real
    one and puts the real parser back, so the next request costs nothing extra.
    """

    __slots__ = ("protocol", "parser", "method")

    def __init__(self, protocol: Any, parser: Any, method: bytes) -> None:
        self.protocol, self.parser, self.method = protocol, parser, method

    def get_method(self) -> bytes:
        self.protocol._parser = self.parser
        return self.method

    def feed_data(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def should_keep_alive(self) -> bool:
        return self.parser.should_keep_alive()

    def get_http_version(self) -> str:
        return self.parser.get_http_version()

    def should_upgrade(self) -> bool:
        return self.parser.should_upgrade()


class _MethodPrefix:
    """Stands in for the parser while an extension method is split across reads.

    llhttp refuses the method's first bytes at once; the rest of it -- and the space
    after it, which says where it ends -- is in a later read. What has arrived is kept
    (at most the 20 bytes of a method) and parsed again with the next read in front.
    """

    __slots__ = ("protocol", "prefix")

    def __init__(self, protocol: Any, prefix: bytes) -> None:
        self.protocol, self.prefix = protocol, prefix

    def feed_data(self, data: bytes) -> None:
        self.protocol._feed_fresh(self.prefix + data)


#: The last bytes of a read: letters llhttp could still be matching against its methods.
_TRAILING_METHOD = re.compile(rb"[A-Z_-]{1,20}\Z")


def _held_method_start(last_read: bytes) -> bool:
    """Could llhttp hold the first bytes of a method from ``last_read``: does it end with
    letters that begin a method llhttp knows (it keeps those without a callback)?"""
    match = _TRAILING_METHOD.search(last_read, max(0, len(last_read) - 20))
    if match is None:
        return False
    tail = match.group()
    probe = httptools.HttpRequestParser(_NoCallbacks())
    for start in range(len(tail)):
        try:
            probe.feed_data(tail[start:])
        except httptools.HttpParserError:
            probe = httptools.HttpRequestParser(_NoCallbacks())
            continue
        return True
    return False


class _NoCallbacks:
    """A parser's protocol that wants no events: for probing what llhttp accepts."""


def _request_start(data: bytes, batch: list, first: int, position: int = 0) -> int:
    """Where the request after ``batch[first:]`` begins in ``data``, the first of them
    beginning at ``position``; -1 if one has a chunked body (its end is not known here)."""
    for request in batch[first:]:
        if request[6] is not None:
            return -1
        end = data.find(b"\r\n\r\n", position)
        if end < 0:
            return -1
        position = _after_body(request, end + 4)
        if position < 0:
            return -1
    return position


def _after_body(request: tuple, head_end: int) -> int:
    """Where ``request`` ends, its head ending at ``head_end``; -1 for a chunked body."""
    if request[4] == b"":
        return head_end
    for name, value in request[3]:
        if name.lower() == b"content-length":
            return head_end + int(value)
    return -1


class _TakeOver(Exception):
    """Raised in on_headers_complete of a chunked request: chunked.py takes the body."""


class _Reject(Exception):
    """Raised in a parser callback: the request is refused with ``protocol._reject_status``."""


class HttpProtocol(Protocol):
    """One HTTP/1.1 connection. See the module docstring for the shape."""

    serial = True

    #: Set on the per-server subclass made by :meth:`for_server`.
    limits: Limits
    keepalive_timeout: float
    wsgi: Any = None
    #: The ASGI host (asgi.py) when the app is an ASGI app; then ``_handle`` is its handler.
    asgi: Any = None
    #: Bodies are streamed to the app (True) or read before it runs (False): see body.py.
    streaming = False
    #: What a streamed body is: read on a handler thread (WSGI) or by an ASGI task.
    body_stream: Any = StreamedBody

    @classmethod
    def for_server(cls, server: Server) -> Callable[[Any], HttpProtocol]:
        config = server.config
        limits = Limits(config)
        limits.access = accesslog.configure(config)
        attributes: dict[str, Any] = {"limits": limits, "keepalive_timeout": limits.keepalive_timeout,
                                      "streaming": getattr(server.concurrency, "handler_threads", False)}
        app_spec = config.get("app", "") or ""
        if app_spec:
            from netcore_http.apps import load_app
            from netcore_http.wsgi import WsgiHost

            try:
                app = load_app(app_spec)
            except (ImportError, AttributeError, ValueError, TypeError) as exc:
                raise SettingError("app", app_spec, f"module:callable or module:factory() ({exc})") from None
            from netcore_http.hosting import is_asgi

            if is_asgi(app, config.get("interface", "auto")):
                from netcore_http.asgi import AsgiHost

                attributes.update(AsgiHost(app, limits, server, figures=http_figures(server)).protocol_attributes())
            else:
                concurrency = server.concurrency
                host = WsgiHost(app, limits, figures=http_figures(server), multithread=concurrency.multithread,
                                multiprocess=concurrency.multiprocess)
                attributes["wsgi"] = host
        else:
            attributes["_handle"] = _hello_handler(limits, http_figures(server))
        return type(cls.__name__, (cls,), attributes)

    @classmethod
    def configure(cls, config: Any) -> Callable[[Any], HttpProtocol]:  # pragma: no cover - for_server is used
        raise NotImplementedError("HttpProtocol is assembled through for_server()")

    # Per-connection state that the per-request path never reads lives here, on the
    # class: a connection costs fewer stores to set up, and the first assignment shadows
    # it. (What the per-request path reads is set in __init__: in Python 3.11 reading a
    # class default through an instance is not specialised, an instance attribute is.)
    _reject_status = 0
    #: ``(method, target)`` of a request refused once its head was complete (_reject_head).
    _refused_head: tuple[bytes, bytes] | None = None
    _reject_reason = ""
    _url = b""
    _request: tuple = ()
    _raw_head = 0
    _body_size = 0
    _rest: list | None = None
    #: The streamed body still arriving (handler-thread schemes), its announced length,
    #: and the error that ended it (answered by job_done once the app gave up).
    _stream: StreamedBody | None = None
    _body_length = 0
    _body_error: tuple | None = None
    #: A chunked head stopped llhttp (see _take_over); the last bytes of a read that
    #: ended inside a head.
    _takeover = False
    _head_tail = b""
    _entry_left = -1
    #: ASGI: the request whose app is running (it hears of flow control and of the
    #: client's going), a FIN seen, and a WebSocket upgrade waiting for earlier responses.
    _asgi_call: Any = None
    _asgi_later = False  # the batch's task outlived its handler: it calls job_finished
    _client_eof = False
    _upgrade_to: tuple | None = None
    #: The last read llhttp took without refusing it (see _extension_method).
    _last_read = b""

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
        phase = self._phase
        if phase == BODY:  # where a Content-Length body ends in this read (for _take_over)
            self._entry_left = self._body_length - self._body_size if self._body_length else -1
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            self._extension_method(data, phase, 0)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data, exc)
        except httptools.HttpParserError as exc:
            if self._takeover:
                self._take_over(data, phase, 0)
            else:
                self._refuse(*self._refusal(exc))
        else:
            if self._phase == HEAD:
                self._partial_head(data)
            self._last_read = data  # a reference, no copy: see _extension_method
        batch = self._batch
        if batch:
            self._batch = []
            self._outstanding += 1
            if self._stopping:
                _final_batch(batch)
            self.connection.submit(self._handler, batch, len(batch))
            # Under the inline and blocking schemes job_done has run by now.
        if self._phase != IDLE and (not self._outstanding or self._stream is not None):
            self._schedule()  # a request is partial: its header or body deadline
        if self._upgrade_to is not None and not self._outstanding:
            self._switch()

    def _upgrade(self, data: bytes, exc: BaseException) -> None:
        """llhttp stopped after a request asking for ``Upgrade`` (complete and queued).

        A WebSocket upgrade to an ASGI app waits for the responses before it (job_done)
        and then leaves the connection to the WebSocket protocol. Any other upgrade is
        not made, and RFC 9110 7.8 lets a server ignore it: the request is answered as
        HTTP/1.1 and the connection stays HTTP/1.1, so parsing goes on after it. (Such a
        request with a body never gets here: its body is counted out by chunked.py's
        LengthBody, see ``_framed_head``.)
        """
        batch = self._batch
        offset = exc.args[0] if exc.args else len(data)
        if self.asgi is not None and batch and _wants_websocket(batch[-1]):
            self._upgrade_to = (batch.pop(), data[offset:])
            self._broken = True
            self._special = True
            return
        self._feed_fresh(data[offset:])

    def _switch(self) -> None:
        """Every response before the upgrade is written: the WebSocket protocol takes over."""
        request, leftover = self._upgrade_to
        self._upgrade_to = None
        self.connection.cancel_deadline()
        if self.asgi.upgrade(self, request, leftover):
            return
        # No WebSocket support installed: answered as the plain request it also is.
        self._outstanding += 1
        self.connection.submit(self._handler, [request[:MODE] + (CLOSE_MODE, None)], 1)

    def _extension_method(self, data: bytes, phase: int, first: int) -> None:
        """llhttp refused a method it does not know: find the request, rename, parse on.

        RFC 9110 makes every token a method, llhttp knows a fixed list and has no
        leniency for others. Rather than parse request lines in Python for every request
        (a cost on the hot path), the refusal itself is the signal -- this path costs
        nothing until an extension method arrives. The refused request begins where the
        last one completed in this read ended (found from its head's end and its
        Content-Length: :func:`_request_start`); its method is replaced by ``GET`` for a
        fresh parser -- request framing never depends on the method (RFC 9112 6.3) --
        and restored when the head completes (:class:`_MethodShim`). What cannot be
        located stays a 400 (none is known: a method cut off by the end of a read waits for
        the rest, :class:`_MethodPrefix`), as do methods that are not
        tokens, contain lower case, or are longer than 20 characters (gunicorn's rules:
        case-folding proxies make lower-case methods a desync risk). After a chunked
        body the position is always known: chunked.py hands the rest to a new parser.
        """
        upto = len(self._batch)
        # A refused request whose head began in an earlier read had its method there,
        # which llhttp would have refused then: only a method split across reads.
        start = -1 if phase == HEAD and upto == first else self._start_after(data, phase, first, upto)
        if start == 0 and phase == IDLE and not upto and _held_method_start(self._last_read):
            # llhttp may hold the method's first bytes from the previous read: it takes
            # "F" of "FOOBAR" for the start of FLUSH, and refuses only at "O" here. Where
            # that read ended cannot be told from a body that ends with such letters, so
            # the request is refused rather than served under a method cut short.
            start = -1
        if start < 0:
            self._refuse(400, "Invalid method encountered")
            return
        space = data.find(b" ", start, start + 21)
        if space < 0 and len(data) - start < 20 and _METHOD_PREFIX.fullmatch(data, start):
            # The read ended inside the method: wait for the rest. (The connection's
            # deadline is the keep-alive one, which bytes arriving do not move.)
            self._parser = _MethodPrefix(self, data[start:])
            return
        token = data[start:space]
        if space < 0 or not _METHOD.fullmatch(token):
            self._refuse(400, "Invalid method encountered")
            return
        self._feed_fresh(b"GET" + data[space:], token)

    def _feed_fresh(self, data: bytes, method: bytes | None = None) -> None:
        """Parse ``data`` -- the bytes after a renamed method or a chunked body -- with a new parser."""
        parser = httptools.HttpRequestParser(self)
        self._parser = parser if method is None else _MethodShim(self, parser, method)
        first = len(self._batch)
        try:
            parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            self._extension_method(data, IDLE, first)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data, exc)
        except httptools.HttpParserError as exc:
            if self._takeover:
                self._take_over(data, IDLE, first)
            else:
                self._refuse(*self._refusal(exc))
        else:
            if self._phase == HEAD:
                self._partial_head(data)

    def _take_over(self, data: bytes, phase: int, first: int) -> None:
        """llhttp was stopped at the end of a chunked request's head: decode its body here.

        The head ends at the first CRLF CRLF after the request's start (llhttp accepts no
        other line ending): found from the previous requests of this read, or -- for a
        head that began in an earlier read -- in the last bytes of that read and this one.
        """
        self._takeover = False
        batch = self._batch
        # The requests completed in this read before the chunked one (a streamed chunked
        # request is in the batch already, as the last entry).
        upto = len(batch) - (1 if self._stream is not None and batch and batch[-1][4] is self._stream else 0)
        start = self._start_after(data, phase, first, upto)
        if phase == HEAD and upto == first:
            end = start  # the request's own head began in an earlier read: where it ends
        else:
            end = data.find(b"\r\n\r\n", start) if start >= 0 else -1
            end = end + 4 if end >= 0 else -1
        if end < 0:
            # Not located (a chunked request pipelined right behind a body in one read).
            self._body = None
            self._refuse(400, "request body could not be framed")
            return
        # Chunked (Content-Length 0), or the Content-Length body of an upgrade not made.
        length = self._body_length
        decoder = self._parser = LengthBody(self, length) if length else ChunkedBody(self)
        try:
            decoder.feed_data(data[end:])
        except httptools.HttpParserError as exc:
            self._refuse(*self._refusal(exc))

    def _start_after(self, data: bytes, phase: int, first: int, upto: int) -> int:
        """Where in ``data`` the request after ``batch[first:upto]`` (the requests this read
        completed) begins, the read having begun in ``phase``; -1 if that is not known.

        After a read that began inside a head, the head ends at the first CRLF CRLF of
        the last bytes of the previous read and this one (llhttp accepts no other line
        ending); after one that began inside a Content-Length body, where that body ends
        (``_entry_left``). A head that began earlier and did not end in this read: where
        it ends (the caller knows it is its own).
        """
        batch = self._batch
        position = 0
        if phase == HEAD:  # the first request of this read began in the previous one
            tail = self._head_tail
            head_end = (tail + data).find(b"\r\n\r\n")
            position = head_end + 4 - len(tail) if head_end >= 0 else -1
            if position >= 0 and upto > first:
                position = _after_body(batch[first], position)
                first += 1
        elif phase == BODY:  # a Content-Length body ended in this read, then requests
            position = self._entry_left
            if not self.streaming:
                first += 1  # that request was completed (and batched) in this read
        return _request_start(data, batch[:upto], first, position) if position >= 0 else -1

    def _refusal(self, exc: BaseException) -> tuple[int, str]:
        """The status and reason of a request llhttp (or a callback) refused."""
        if self._reject_status:
            return self._reject_status, self._reject_reason
        reason = str(exc)
        if reason == "Pause on PRI/Upgrade":  # HTTP/2's connection preface (prior knowledge)
            return 505, "HTTP/2 is not supported"
        return 400, reason

    def after_body(self, rest: bytes) -> None:
        """A body framed by chunked.py ended (inside its feed): llhttp takes what follows."""
        self._feed_fresh(rest)

    def _partial_head(self, data: bytes) -> None:
        """The read ended inside a request head: bound what the parser may be buffering.

        Counted are whole reads that were nothing but head bytes (the head began in an
        earlier read: on_url stamps it with the read's clock reading), so a field that
        trickles in can never grow past ``max_raw_head`` plus one read.
        """
        self._head_tail = data[-3:]  # where a chunked request's head end may begin
        if self._head_since == self._now:
            self._raw_head = 0
            return
        self._raw_head += len(data)
        if self._raw_head > self.limits.max_raw_head:
            self._refuse(431, "request header fields too large")

    def eof_received(self) -> None:
        # The peer half-closed: answer what is complete (the connection closes once the
        # replies are written); a partial request can never complete now.
        self._phase = IDLE
        self._client_eof = True
        if self._asgi_call is not None:
            self._asgi_call.client_eof()
        stream = self._stream
        if stream is not None:
            self._stream = None
            self._broken = True
            if not stream.discarding:
                self._body_error = (400, "request body incomplete")
                stream.fail(RequestBodyError(400, "request body incomplete"))

    def stop_requested(self) -> None:
        """The connection is draining: every response from now on is final (``Connection:
        close``), and the connection closes after it.

        An idle keep-alive connection is not closed here: its client may have sent the
        next request already, and closing would answer it with a FIN. It is answered
        instead -- telling the client to go elsewhere -- or, if nothing comes, closed by
        the core once quiet (:mod:`netcore.reactor.drain`).
        """
        self._stopping = True
        self._special = True

    tells_client_on_stop = True  # every response after stop_requested says Connection: close

    def is_idle(self) -> bool:
        return not self._outstanding and not self._batch and self._phase == IDLE

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        self.connection.cancel_deadline()
        stream = self._stream
        if stream is not None:
            self._stream = None
            stream.fail(RequestBodyError(0, "the client closed the connection"))
        if self._asgi_call is not None:
            self._asgi_call.client_gone()
        output = self._output
        call, output.suspended = output.suspended, None
        if call is not None:
            call.close_app()

    def resume_writing(self) -> None:
        """Output drained: a stream suspended on the I/O thread produces more."""
        if self._asgi_call is not None:
            self._asgi_call.writable()  # an ASGI send() waits for this
            return
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
        url = self._url
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
            self._request = (parser.get_method(), url, "1.1", headers, b"",
                             KEEP_ALIVE_11, None)
            if url[0] != 47:  # not "/...": see _check_target
                self._check_target()
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
                self._reject_head(400, "unsupported or repeated Transfer-Encoding")
            if version == "1.0":
                self._reject_head(400, "Transfer-Encoding in an HTTP/1.0 request")
        if length > limits.max_body_size:
            self._reject_head(413, "request body too large")
        if keep_alive:  # during a drain, the last of each batch is made final (_final_batch)
            mode = KEEP_ALIVE_11 if version == "1.1" else KEEP_ALIVE_10
        else:
            mode = CLOSE_MODE
        self._request = (parser.get_method(), self._url, version, headers, b"", mode, None)
        if self._url[0] != 47:
            self._check_target()
        if length or transfer_encodings:
            self._body_size = 0
            self._body_length = length
            self._phase = BODY
            self._body_since = self._now
            if self.streaming:
                self._start_stream(expect and version == "1.1")
            else:
                self._body = []
                if expect and version == "1.1":
                    if self._outstanding or self._batch:
                        self._continue_owed = True  # after the responses still owed, in order
                        self._special = True
                    else:
                        self.connection.write(CONTINUE)
            if transfer_encodings or parser.should_upgrade():
                # RFC 9112's chunk grammar, not llhttp's stricter one: chunked.py decodes
                # the body; stopping llhttp here is how it hands over (_take_over). So
                # for the body of an Upgrade not made (a WebSocket handshake has no
                # body), which llhttp would not frame at all (chunked.py says why).
                self._takeover = True
                raise _TakeOver
        # Without a body on_message_complete follows at once: the phase may stay HEAD.

    def _check_target(self) -> None:
        """A request target that is not origin-form (``/path?query``), checked at its head.

        What an app could not make sense of is refused here, in order, as any bad
        request is (the responses before it still go out): ``*`` is OPTIONS's alone
        (RFC 9112 3.2.4), CONNECT's authority-form asks for a tunnel, which an origin
        server does not make (501), and an absolute-form target must be a URL with a
        scheme and a host that httptools can take apart (it is parsed again when the app
        asks for the path). Origin-form, every common request, costs one byte's test.
        """
        method, url = self._request[0], self._request[1]
        if method == b"CONNECT":
            self._reject(501, "CONNECT is not supported")
        if url == b"*":
            if method != b"OPTIONS":
                self._reject(400, "the target '*' is for OPTIONS only")
            return
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            parsed = None
        if parsed is None or not parsed.schema or not parsed.host:
            self._reject(400, "invalid request target")

    def _start_stream(self, expect: bool) -> None:
        """Hand the request to the app now; its body follows through a StreamedBody."""
        stream = self.body_stream(self.connection, self.limits.body_buffer_size, expect, self._body_resumed,
                                  self._send_continue)
        stream.length = self._body_length
        self._stream = self._body = stream
        self._special = True  # job_done must see whether the app left the body unread
        method, url, version, headers, _, mode, _ = self._request
        self._batch.append((method, url, version, headers, stream, mode, None))

    def _body_resumed(self) -> None:
        """The app consumed a full buffer (I/O thread): read again; the pause was not the client's."""
        self._body_since = _monotonic()
        if not self.connection.closed:
            self.connection.resume_reading()

    def _send_continue(self) -> None:
        """The app's first read of a body the client holds back (I/O thread): 100 Continue."""
        if not self.connection.closed and not self._broken:
            self.connection.write(CONTINUE)

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
        self._body_size += len(body)
        self._body_since = self._now
        if self._body_size > self.limits.max_body_size:
            self._reject(413, "request body too large")
        sink = self._body
        if type(sink) is list:
            sink.append(body)
            if self._body_size > self.limits.body_buffer_size:
                self._body = SpooledBody(sink)  # past the threshold: on to disk
            return
        sink.feed(body)
        if sink is self._stream and sink.dropped > DRAIN_LIMIT:
            self._reject(0, "unread request body too long to drain")

    def on_message_complete(self) -> None:
        body = self._body
        if body is None:
            self._batch.append(self._request)
        else:
            self._body = None
            self._continue_owed = False
            if body is self._stream:
                # Streamed: the request is with the app already; its reader sees the end.
                self._stream = None
                body.finish()
                self._phase = IDLE
                return
            if type(body) is list:
                body = body[0] if len(body) == 1 else b"".join(body)
            else:
                body = body.finish()
            method, url, version, headers, _, mode, _ = self._request
            self._batch.append((method, url, version, headers, body, mode, None))
        self._phase = IDLE

    def _reject(self, status: int, reason: str) -> None:
        self._reject_status = status
        self._reject_reason = reason
        raise _Reject(reason)

    def _reject_head(self, status: int, reason: str) -> None:
        """Refuse a request whose head is complete: its method and target go with the
        refusal, so the access log says which request it was (a 413 on an announced
        length was logged with neither)."""
        self._refused_head = (self._parser.get_method(), self._url)
        self._reject(status, reason)

    def _refuse(self, status: int, reason: str) -> None:
        """Queue an error response (after the responses still owed) and stop parsing."""
        stream = self._stream
        if stream is not None:
            # The request is with the app already: its reads fail and job_done answers
            # (or, if the app has answered already, there is nothing left to say).
            self._stream = None
            self._broken = True
            self._phase = IDLE
            if stream.discarding or not status:
                self.connection.close()
            else:
                self._body_error = (status, reason)
                stream.fail(RequestBodyError(status, reason))
            return
        head, self._refused_head = self._refused_head, None
        self._batch.append(refused(status, reason, *(head or ())))
        self._broken = True
        self._phase = IDLE

    # -- batches -------------------------------------------------------------------------
    def _handle(self, batch: list[tuple]) -> bytes | None:
        """The handler ``submit`` runs: answer a batch, on whatever thread it is given."""
        output = self._output
        if self._stopping:
            _final_batch(batch)  # parsed before the stop, answered after it (a pool)
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
        # A last request whose body is still arriving: the responses before it go out
        # before its app runs, which may wait for that body (and whose first read may
        # send a 100 Continue): a complete response never waits for a later request.
        streamed = len(batch) - 1 if type(batch[-1][4]) is StreamedBody else -1
        for index, request in enumerate(batch):
            if index == streamed and output.parts:
                output.flush()
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
        # A response that kept the connection alive (built before a stop was requested,
        # on a pool thread) is not followed by a close: the client may send on at once.
        # The next one is final, or the drain closes the connection once quiet.
        if self._state != DONE or self._body_error is not None:
            # A final response: nothing read after it is answered (it may wait in the
            # connection already, under a pool).
            self._batch.clear()
            self._broken = True
            connection.discard_waiting()
            if self._body_error is not None and self._state == GONE and not outstanding:
                connection.write(error_response(*self._body_error))  # the app gave up reading
                if self.limits.access is not None:
                    self._log_refusal(*self._body_error)
            connection.close()
            return
        if outstanding:
            return
        stream = self._stream
        if stream is not None:
            # The app answered before its body ended. Drain a short rest to keep the
            # connection; close if the client waits for a 100 Continue never sent (it
            # is about to send what nobody reads) or the rest is long.
            if stream.left_unread_closes():
                self._stream = None
                self._broken = True
                connection.close()
                return
            if stream.discard():
                connection.resume_reading()
        if self._upgrade_to is not None:
            self._switch()
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
        stream = self._stream
        if stream is not None and stream.paused:
            return _monotonic() + self.limits.body_timeout  # the app is slow, not the client
        return self._body_since + self.limits.body_timeout

    def _schedule(self) -> None:
        if self._broken or self._gone:
            return
        self._armed = True
        self.connection.set_deadline(self._deadline(), self._on_deadline)

    def _on_deadline(self) -> None:
        self._armed = False
        connection = self.connection
        if connection.closed or self._broken or (self._outstanding and self._stream is None):
            return  # a busy connection is re-armed when its batch finishes
        if self._deadline() > _monotonic():
            self._schedule()
            return
        if self._phase == IDLE:
            connection.close()  # keep-alive idle timeout: a quiet close
            return
        if self._stream is not None:
            self._refuse(408, "request body timeout")  # the app waiting for it learns, then 408
            return
        self._broken = True
        connection.write(error_response(408, "request timeout"))
        connection.close()
        if self.limits.access is not None:
            self._log_refusal(408, "request timeout")

    def _log_refusal(self, status: int, message: str) -> None:
        """An access record for a response the server made outside any request's handler."""
        method, url, version = self._request[:3] if self._request else (b"", b"", "1.1")
        self.limits.access.record((method, url, version, ()), status, error_body_length(status, message), 0.0,
                                  accesslog.peer_address(self.connection.peer))


def _wants_websocket(request: tuple) -> bool:
    """A GET without a body asking for ``Upgrade: websocket`` with ``Connection: upgrade``."""
    if request[0] != b"GET" or request[4] != b"" or request[6]:
        return False
    upgrade = connection = False
    for name, value in request[3]:
        lower = name.lower()
        if lower == b"upgrade":
            upgrade = upgrade or any(t.strip() == b"websocket" for t in value.lower().split(b","))
        elif lower == b"connection":
            connection = connection or any(t.strip() == b"upgrade" for t in value.lower().split(b","))
    return upgrade and connection


def _hello_handler(limits: Limits, figures: HttpFigures | None = None
                   ) -> Callable[[HttpProtocol, list], bytes | None]:
    """The built-in app as the batch handler itself: prebuilt responses, no WSGI layer.

    It replaces ``HttpProtocol._handle`` (same contract) so that a batch costs one call
    and a lookup per request: this is the path the uvicorn/nginx comparison measures.
    """
    cache = HelloTable()
    access_log = limits.access_log
    access = limits.access
    # Metrics on: a response is one count of its class, ``next(tally)``, a C call (no
    # duration: metrics.py says why); off, the test of ``counting`` is all they cost here.
    counting = figures is not None
    by_class = figures.by_class if counting else ()
    ok, missing = (by_class[2], by_class[4]) if counting else (None, None)
    count = next

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
                if counting:
                    count(by_class[error[0] // 100])
            else:
                found = (method == b"GET" or method == b"HEAD") and (url == b"/" or url[:2] == b"/?")
                data = table[found, mode, method == b"HEAD"]
                state = CLOSE if mode == CLOSE_MODE else DONE
                if counting:
                    count(ok if found else missing)
        else:
            out = []
            state = DONE
            for request in batch:
                method, url, _, _, _, mode, error = request
                if error:
                    out.append(error_response(*error))
                    state = CLOSE
                    if counting:
                        count(by_class[error[0] // 100])
                    if access is not None:
                        access.record(request, error[0], error_body_length(*error), 0.0,
                                      accesslog.peer_address(protocol.connection.peer))
                    break
                found = (method == b"GET" or method == b"HEAD") and (url == b"/" or url[:2] == b"/?")
                response = table[found, mode, method == b"HEAD"]
                out.append(response)
                if counting:
                    count(ok if found else missing)
                if access is not None:  # the request itself: its Referer and User-Agent too
                    access.record(request, 200 if found else 404,
                                  0 if method == b"HEAD" else len(_HELLO_BODY if found else _NOT_FOUND_BODY),
                                  now, accesslog.peer_address(protocol.connection.peer))
                if mode == CLOSE_MODE:
                    state = CLOSE
                    break
            data = out[0] if len(out) == 1 else b"".join(out)
        protocol._state = state
        return data

    return handle
