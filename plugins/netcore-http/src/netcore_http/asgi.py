"""Hosting an ASGI 3 application on the http protocol: the ``http`` scope, receive and send.

The request is framed by the protocol on the reactor's thread, exactly as for WSGI; the
app's coroutine then runs as an asyncio task on that same thread (the reactor hosts the
asyncio loop: ``netcore.reactor.asyncio_host``), started through the connection
contract like any handler:

* ``submit(handler, batch)``: the handler starts one task for the batch and returns
  :data:`~netcore.protocol.LATER`; the task answers the batch's requests in order (the
  protocol is ``serial``, so later batches wait in the connection) and its end calls
  ``connection.job_finished``. On Python 3.12 and later the task starts eagerly: an app
  that never waits (a hello, a JSON answer from memory) finishes inside the handler
  and its response leaves with the handler's reply, as WSGI's does.
* ``receive()`` yields the body as it arrives (``http.request`` with ``more_body``), in
  bounded memory (:class:`~netcore_http.body.AsgiBody`: reading pauses while
  ``body_buffer_size`` bytes wait), then -- once the response is complete or the client
  has gone or half-closed -- ``http.disconnect``.
* ``send()`` frames the response as WSGI's :class:`~netcore_http.wsgi.Call` does (the same
  code: Content-Length when the length is known, else chunked on HTTP/1.1 and
  close-delimited on HTTP/1.0; no body for HEAD, 1xx, 204, 304; a body longer or
  shorter than its Content-Length closes the connection). The head waits for the first
  body message, so a one-message body gets a Content-Length. A ``more_body`` message
  is handed to the connection at once and ``await send()`` waits while the connection's
  output is above ``high_water`` (``connection.send`` returns False; the protocol's
  ``resume_writing`` ends the wait). After the client has gone it raises
  :class:`~netcore.protocol.ConnectionClosed` (an ``OSError``, as ASGI asks).
* An app that raises before its response went out gets a 500 (logged without request
  data, as WSGI's ``http.app_failed``); after, the connection is closed. An app that
  returns without a complete response: the same. The access log and metrics record
  each response through WSGI's own functions.

What is not supported: ASGI 2 apps other than classes (see ``hosting.as_asgi3``), the
``http.response.trailers``, ``http.response.push``, ``http.response.zerocopysend`` and
``http.response.pathsend`` extensions (none is offered in ``scope["extensions"]``),
HTTP/2.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
import time
from typing import Any, Callable
from urllib.parse import unquote_to_bytes

import httptools
import structlog
from netcore.errors import SettingError, UsageError
from netcore.protocol import LATER, ConnectionClosed

from netcore_http.access import peer_address
from netcore_http.body import AsgiBody, RequestBodyError
from netcore_http.hosting import as_asgi3, dispatch_problem, poller_problem
from netcore_http.lifespan import Lifespan
from netcore_http.proxy import TrustedProxies, apply_forwarded
from netcore_http.request import CLOSE, DONE, GONE, ClientGone, Limits
from netcore_http.responses import SERVER, STATUS_LINES, error_body_length, error_response
from netcore_http.waiting import settle
from netcore_http.wsgi import Call, WsgiHost

log = structlog.get_logger("netcore.http")

_monotonic = time.monotonic
_SERVER_LINE = b"Server: " + SERVER + b"\r\n"
#: RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_FORWARDING = {b"forwarded": "HTTP_FORWARDED", b"x-forwarded-for": "HTTP_X_FORWARDED_FOR",
               b"x-forwarded-proto": "HTTP_X_FORWARDED_PROTO"}
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


# -- the response head ---------------------------------------------------------------------
#: (status, *headers) -> what the head of such a response is (see :func:`_check_start`):
#: apps send the same few header lists again and again. Bounded; cleared when full.
_STARTS: dict[tuple, tuple] = {}
_STARTS_MAX = 512


def _check_start(status: Any, headers: Any) -> tuple:
    """Validate an ``http.response.start``; the same tuple as WSGI's ``_check_start``:
    (status, code, encoded head prefix, Content-Length, has Date, Connection: close)."""
    if type(status) is not int or not 200 <= status <= 599:
        # The ASGI spec allows 1xx here, but as the final answer an interim status leaves
        # the client waiting for the real one (or, 101, believing the protocol switched).
        raise ValueError(f"ASGI status must be an int from 200 to 599 (1xx is interim), not {status!r}")
    line = STATUS_LINES.get(status) or b"%d Unknown" % status
    parts = [b"HTTP/1.1 ", line, b"\r\n"]
    length = None
    has_date = has_server = closes = False
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:
            # bytes() of a str fails saying only "string argument without an encoding", and
            # of an int makes that many NUL bytes: say what the spec asks for instead.
            if not isinstance(name, (bytes, bytearray, memoryview)) \
                    or not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"ASGI header names and values must be bytes, not {type(name).__name__} "
                                f"and {type(value).__name__} (header {name!r})")
            name, value = bytes(name), bytes(value)
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"ASGI header {name!r} has a forbidden character in its name or value")
        lower = name.lower()
        if lower == b"content-length":
            length = int(value)
            if length < 0:
                raise ValueError("negative Content-Length")
            if status == 204:
                length = None
                continue  # RFC 9110 8.6: never in a 204 (a 304 may carry it: the 200's length)
        elif lower == b"date":
            has_date = True
        elif lower == b"server":
            has_server = True
        elif lower == b"connection":
            closes = closes or b"close" in value.lower()
            continue  # the server says what Connection is
        elif lower == b"transfer-encoding":
            continue  # the server frames the body (chunked when there is no length)
        parts += (name, b": ", value, b"\r\n")
    if not has_server:
        parts.append(_SERVER_LINE)
    return status, status, b"".join(parts), length, has_date, closes


def _start_entry(status: Any, headers: Any) -> tuple:
    try:
        key = (status, *headers)
        entry = _STARTS.get(key)
    except TypeError:  # headers as lists (unhashable): as tuples
        key = (status, *(tuple(header) for header in headers))
        entry = _STARTS.get(key)
    if entry is None:
        entry = _check_start(status, headers)
        if len(_STARTS) >= _STARTS_MAX:
            _STARTS.clear()
        _STARTS[key] = entry
    return entry


# -- the request target ----------------------------------------------------------------------
#: target -> (path, raw_path, query_string), bounded like WSGI's request-line cache.
_TARGETS: dict[bytes, tuple[str, bytes, bytes]] = {}
_TARGETS_MAX = 1024


def _target(url: bytes, root: str) -> tuple[str, bytes, bytes]:
    """``path`` (percent-decoded, UTF-8), ``raw_path`` and ``query_string`` of a target.

    ``root_path`` is put in front of a path that does not begin with it (the proxy took
    the prefix off, uvicorn's case); a path that begins with it is left alone (the proxy
    passed it on unchanged). Either way ``path`` is the full path, as ASGI 2.3 says.
    """
    if url[:1] == b"/":
        # A fragment has no place in a request target (RFC 9112 3.2); one sent anyway is
        # left out of the path and query, as httptools.parse_url does for absolute-form.
        raw, _, query = (url.partition(b"#")[0] if b"#" in url else url).partition(b"?")
    elif url == b"*":
        raw, query = b"*", b""
    else:  # absolute-form (a proxy request)
        parsed = httptools.parse_url(url)
        raw, query = parsed.path or b"/", parsed.query or b""
    path = (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8", "replace")
    if root and path != root and not path.startswith(root + "/"):
        path = root + path
        raw = root.encode("utf-8") + raw
    entry = (path, raw, query)
    if len(url) <= 1024:
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        _TARGETS[url] = entry
    return entry


# -- TLS -----------------------------------------------------------------------------------
_CIPHER_IDS: dict[str, int] | None = None


def _cipher_id(name: str | None) -> int | None:
    """The IANA number of an OpenSSL cipher name (ASGI's ``cipher_suite``), or None."""
    global _CIPHER_IDS
    if _CIPHER_IDS is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        _CIPHER_IDS = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
    return _CIPHER_IDS.get(name) if name else None


def tls_extension(tls: Any) -> dict:
    """The ASGI TLS extension's scope entry for a connection's ``TLSInfo``."""
    pem = tls.peer_cert_pem()
    return {
        "server_cert": None,
        "client_cert_chain": [pem] if pem else [],
        "client_cert_name": tls.peer_subject,
        # Only a verified certificate is ever accepted (docs/tls.md): no error to report.
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(tls.version or ""),
        "cipher_suite": _cipher_id(tls.cipher),
    }


# -- one request -----------------------------------------------------------------------------
def _disconnect() -> dict:
    return {"type": "http.disconnect"}


class AsgiCall(Call):
    """One request's trip through the app: ``receive``, ``send``, and the framing it inherits."""

    #: The last body message was sent; the client has gone; it half-closed; reading the
    #: body failed (the protocol answers that itself: 408, 413, 400).
    complete = False
    gone = False
    eof = False
    body_failed = False
    _body_done = False
    _writer: asyncio.Future | None = None
    _waiting: asyncio.Future | None = None

    def __init__(self, host: AsgiHost, protocol: Any, output: Any, request: tuple, last: bool) -> None:
        Call.__init__(self, output, request)
        self.host = host
        self.protocol = protocol
        #: The last request of its batch: its response is flushed when complete, and a
        #: stop requested meanwhile makes it the final one.
        self.last = last
        body = request[4]
        #: The body still arriving, or None: no body (one empty ``http.request`` is owed).
        self.stream = body if type(body) is AsgiBody else None

    # -- what the app calls --------------------------------------------------------------------
    async def receive(self) -> dict:
        if self.complete or self.gone:
            return _disconnect()
        if not self._body_done:
            stream = self.stream
            if stream is None:
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            try:
                data, more = await stream.read()
            except RequestBodyError:
                self.body_failed = True
                return _disconnect()
            if not more:
                self._body_done = True
            return {"type": "http.request", "body": data, "more_body": more}
        # Nothing more will arrive: wait for the client to go, or the response to end.
        # Several tasks may wait at once (Starlette listens for the disconnect while its
        # handler streams): one future, each waiting through a shield, so that cancelling
        # one waiter (anyio's cancel scopes do) does not cancel the others.
        while not (self.complete or self.gone or self.eof or self.protocol._client_eof):
            waiter = self._waiting
            if waiter is None or waiter.done():
                waiter = self._waiting = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)
        return _disconnect()

    async def send(self, message: dict) -> None:
        if self.gone:
            raise ClientGone("the client is gone")
        if self.body_failed and not self.headers_sent:
            # The server answers a body it refused (408, 413, 400) itself: what the app
            # sends after hearing http.disconnect goes nowhere, as to a client that left.
            return
        kind = message["type"]
        if kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("ASGI 'http.response.body' before 'http.response.start'")
            if self.complete:
                raise RuntimeError("ASGI 'http.response.body' after the response was complete")
            body = message.get("body", b"")
            output = self.output
            if message.get("more_body", False):
                data = self.frame(body)
                if data:
                    output.parts.append(data)
                    try:
                        writable = output.flush()
                    except ConnectionClosed:
                        self.client_gone()
                        raise
                    if not writable:
                        await self._writable()
                return
            if not self.headers_sent and self.length is None:
                self.known_length = len(body)
            data = self.frame(body) if body else b""
            end = self.finish()
            self.complete = True
            if data:
                output.parts.append(data)
            if end:
                output.parts.append(end)
            if self.host.access_log:
                # Counted before it leaves, as WSGI's are: a client that has its response
                # (and scrapes /metrics next) finds it counted.
                self.host._access(output, self)
            if self.last and output.parts:
                # Out now: an app may go on after its response (Starlette's background
                # tasks); the client must not wait for that.
                try:
                    output.flush()
                except ConnectionClosed:
                    self.client_gone()
            self._wake_receive()
            return
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("ASGI 'http.response.start' sent twice")
            if message.get("trailers"):
                raise RuntimeError("ASGI response trailers are not offered (no 'http.response.trailers' extension)")
            self.status, self.code, self.prefix, self.length, self.has_date, closes = _start_entry(
                message["status"], message.get("headers", ()))
            protocol = self.protocol
            if closes or (protocol._stopping and self.last and protocol._outstanding == 1):
                self.closes = True  # a stop arrived while the app ran: this response is the final one
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} for an http scope")

    async def _writable(self) -> None:
        waiter = self._writer = asyncio.get_running_loop().create_future()
        await waiter
        if self.gone:
            raise ClientGone("the client is gone")

    # -- what the protocol calls (same thread) ---------------------------------------------
    def writable(self) -> None:
        """Output drained below ``low_water``: a send waiting on flow control goes on."""
        writer, self._writer = self._writer, None
        settle(writer)

    def client_gone(self) -> None:
        """The connection closed: sends fail, ``receive()`` says ``http.disconnect``."""
        self.gone = True
        self.writable()
        self._wake_receive()

    def client_eof(self) -> None:
        """The client half-closed: it sends no more, so ``receive()`` says ``http.disconnect``
        once the body is read; a response the app still sends is written (the half-close
        contract: replies owed are delivered)."""
        self.eof = True
        self._wake_receive()

    def _wake_receive(self) -> None:
        waiter, self._waiting = self._waiting, None
        settle(waiter)

    def close_body(self) -> None:
        """Nothing to release: an ASGI body is never spooled."""


# -- the host --------------------------------------------------------------------------------
# The asyncio loop is passed in, never looked up: before Python 3.12,
# ``asyncio.get_running_loop()`` compares the loop's pid with ``getpid()`` on every call
# (to notice a fork), and glibc makes that a system call -- one per request, about
# 0.25 µs of an ASGI hello's 13 here.
if sys.version_info >= (3, 12):
    def _start_task(coro: Any, aloop: asyncio.AbstractEventLoop) -> asyncio.Task:
        # Eager: runs until its first real wait now, on this stack (no loop iteration).
        return asyncio.Task(coro, loop=aloop, eager_start=True)
else:
    def _start_task(coro: Any, aloop: asyncio.AbstractEventLoop) -> asyncio.Task:
        return aloop.create_task(coro)


class AsgiHost:
    """The app and what every scope shares; ``handle`` is the protocol's batch handler."""

    def __init__(self, app: Any, limits: Limits, server: Any, *, figures: Any = None) -> None:
        config = server.config
        concurrency = server.concurrency
        problem = dispatch_problem(config.dispatch, event_loop=concurrency.event_loop,
                                   handler_threads=concurrency.handler_threads) \
            or poller_problem(config.get("poller", ""), getattr(server, "poller_class", None))
        if problem:
            raise UsageError(f"the app is an ASGI app (setting 'interface' is {config.get('interface', 'auto')!r}): "
                             + problem)
        self.loop_kind = config.get("asyncio_loop", "auto")
        if self.loop_kind == "uvloop":
            try:
                import uvloop  # noqa: F401 - checked, not assumed
            except ImportError:
                raise SettingError("asyncio_loop", "uvloop", "auto or asyncio (uvloop is not installed here: "
                                   "pip install uvloop)") from None
        self.app = as_asgi3(app)
        self.server = server
        self.lifespan = config.get("lifespan", "auto")
        self.graceful_timeout = float(config.get("graceful_timeout", 30.0) or 30.0)
        self.limits = limits
        self.figures = figures
        self.log_access = limits.access_log
        self.access = limits.access
        # Where a response ends, one test covers both the access log and the metrics.
        self.access_log = limits.access_log or figures is not None
        self.trusted = TrustedProxies(limits.forwarded_allow_ips)
        self.root_path = limits.root_path
        #: netcore loop -> that loop's lifespan state (filled by the app's startup).
        self.states: dict[Any, dict] = {}
        try:
            from netcore_http import websocket
        except ImportError:  # not there yet: an upgrade request is answered as plain HTTP
            websocket = None
        self.websocket = websocket
        self.ws_options = websocket.WebSocketOptions.from_config(config) if websocket is not None else None

    # The access log and the metrics: WSGI's own functions, so both record alike.
    _access = WsgiHost._access
    _record_failure = WsgiHost._record_failure

    def protocol_attributes(self) -> dict[str, Any]:
        """What the per-server protocol class gets (see ``HttpProtocol.for_server``)."""
        return {"asgi": self, "streaming": True, "body_stream": AsgiBody, "_handle": self.handler(),
                "loop_host": staticmethod(self.loop_host)}

    # -- one asyncio loop per reactor ------------------------------------------------------------
    def loop_host(self, loop: Any) -> Any:
        """``Server.new_reactor_worker``'s call for each loop: its asyncio host and lifespan."""
        from netcore.reactor.asyncio_host import AsyncioHost

        host = AsyncioHost(self.loop_kind)
        state: dict = {}
        self.states[loop] = state
        if self.lifespan != "off":
            lifespan = Lifespan(self.app, self.lifespan, state, loop=loop, server=self.server,
                                shutdown_timeout=self.graceful_timeout)
            host.on_start.append(lifespan.startup)
            host.on_stop.append(lifespan.shutdown)
        return host

    # -- scopes ----------------------------------------------------------------------------------
    def base_scope(self, output: Any) -> tuple[dict, dict | None]:
        """What every scope of one connection shares (built at its first request)."""
        connection = output.connection
        try:
            local = connection.sock.getsockname()
        except (OSError, AttributeError):
            local = None
        if isinstance(local, tuple):
            server = (str(local[0]), int(local[1]))
        else:
            server = (str(local), None) if local else None  # a Unix socket: its path
        peer = connection.peer
        client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        output.trusted = client is not None and client[0] in self.trusted
        tls = getattr(connection, "tls", None)
        base: dict[str, Any] = {"type": "http", "scheme": "https" if tls is not None else "http",
                                "server": server, "client": client, "root_path": self.root_path}
        if tls is not None:
            base["extensions"] = {"tls": tls_extension(tls)}
        entry = (base, self.states.get(getattr(connection, "loop", None)))
        output.environ_base = entry
        return entry

    def scope(self, output: Any, request: tuple) -> dict:
        """The ``http`` scope of one request."""
        base, state = output.environ_base or self.base_scope(output)
        method, url, version, raw_headers = request[0], request[1], request[2], request[3]
        scope = base.copy()
        scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}
        scope["http_version"] = version
        scope["method"] = method.decode("ascii")
        scope["path"], scope["raw_path"], scope["query_string"] = (
            _TARGETS.get(url) or _target(url, self.root_path))
        scope["headers"] = headers = [(name.lower(), value) for name, value in raw_headers]
        scope["state"] = state.copy() if state else {}
        if output.trusted:
            self._forwarded(scope, headers)
        return scope

    def _forwarded(self, scope: dict, headers: list) -> None:
        """A trusted proxy's Forwarded / X-Forwarded-*: the client and scheme (proxy.py's rule)."""
        fields: dict[str, str] = {}
        for name, value in headers:
            key = _FORWARDING.get(name)
            if key is not None:
                text = value.decode("latin-1")
                fields[key] = fields[key] + "," + text if key in fields else text
        if not fields:
            return
        client = scope["client"]
        environ = {"REMOTE_ADDR": client[0] if client else "", "REMOTE_PORT": "", "wsgi.url_scheme": scope["scheme"],
                   **fields}
        apply_forwarded(environ, self.trusted)
        if "REMOTE_PORT" not in environ:  # the address came from the proxy: its port is unknown
            scope["client"] = (environ["REMOTE_ADDR"], 0)
        scope["scheme"] = environ["wsgi.url_scheme"]

    # -- answering ------------------------------------------------------------------------------
    def handler(self) -> Callable[[Any, list], Any]:
        """The batch handler ``submit`` runs (replaces ``HttpProtocol._handle``)."""
        from netcore_http.protocol import _final_batch

        run_batch = self.run_batch

        def handle(protocol: Any, batch: list) -> Any:
            if protocol._stopping:
                _final_batch(batch)  # parsed before the stop, answered after it
            protocol._asgi_later = False
            task = _start_task(run_batch(protocol, batch), protocol.connection.loop.asyncio_loop)
            if task.done():  # started eagerly and never waited: the reply is here
                return _reply(protocol, task)
            protocol._asgi_later = True  # the task ends the submission itself
            return LATER

        return handle

    async def run_batch(self, protocol: Any, batch: list) -> bytes:
        """Answer a batch's requests in order; the reply is what is left in the output.

        A task that had to wait ends the submission itself (``job_finished``), from its
        last step: no done-callback, which would cost one more loop iteration per batch.
        """
        output = protocol._output
        try:
            state = DONE
            last = len(batch) - 1
            for index, request in enumerate(batch):
                if index == last and index and output.parts and type(request[4]) is AsgiBody:
                    # Its body is still arriving and its app may wait for it: the
                    # responses before it go out first (and before the 100 Continue its
                    # first receive() may send), not when it is done.
                    try:
                        output.flush()
                    except ConnectionClosed:
                        state = GONE
                        break
                state = await self.respond(protocol, output, request, index == last)
                if state != DONE:
                    break
            protocol._state = state
            reply = output.take()
        except Exception as exc:  # a bug here, not in the app (respond answers the app's errors)
            log.error("http.asgi_batch_failed", exc_info=exc)
            connection = protocol.connection
            connection.count_error()
            connection.abort(exc)
            return b""
        if not protocol._asgi_later:
            return reply  # eager: the handler returns it
        connection = protocol.connection
        if not connection.closed:
            connection.job_finished(reply or None)
        return b""

    async def respond(self, protocol: Any, output: Any, request: tuple, last: bool) -> int:
        error = request[6]
        if error:  # refused by the server itself: as WSGI answers it
            output.append(error_response(*error))
            if self.figures is not None:
                self.figures.response(error[0], _monotonic())
            if self.log_access:
                self.access.record(request, error[0], error_body_length(*error), 0.0,
                                   _client_text(output, None))
            return CLOSE
        call = AsgiCall(self, protocol, output, request, last)
        scope = self.scope(output, request)
        if self.access_log:
            call.started = _monotonic()
            call.peer = _client_text(output, scope["client"])
        protocol._asgi_call = call
        try:
            await self.app(scope, call.receive, call.send)
        except Exception as exc:
            return self._failed(call, exc)
        finally:
            protocol._asgi_call = None
        if call.complete:
            return CLOSE if call.closes else DONE
        if call.gone or (call.body_failed and not call.headers_sent):
            return GONE  # nobody to answer, or the protocol answers the body's error
        return self._failed(call, RuntimeError("the ASGI app returned without a complete response"))

    def _failed(self, call: AsgiCall, exc: BaseException) -> int:
        """The app raised (or returned early): a 500 if nothing was sent, else a close."""
        if call.gone or (call.body_failed and not call.headers_sent):
            # What the app raised follows from the client's going (Starlette's
            # ClientDisconnect): not an app error.
            return GONE
        if self.figures is not None:
            self.figures.response(500, call.started)
        state = call.fail(exc)
        if self.log_access:
            self._record_failure(call)
        return state

    # -- upgrades ------------------------------------------------------------------------------
    def upgrade(self, protocol: Any, request: tuple, leftover: bytes) -> bool:
        """Hand a WebSocket upgrade to ``websocket.upgrade``; False: not available here."""
        websocket = self.websocket
        if websocket is None or not self.ws_options.enabled:  # ws = none: the plain request it also is
            return False
        scope = self.scope(protocol._output, request)
        for key in ("type", "method", "scheme"):
            del scope[key]
        websocket.upgrade(protocol.connection, self.app, scope, request[3], leftover, self.ws_options)
        return True


def _client_text(output: Any, client: Any) -> str:
    """The client's address as the access log shows it (REMOTE_ADDR's form): the scope's,
    or for a request the server refused itself, the connection's peer (as WSGI's)."""
    if client is None:
        return peer_address(output.connection.peer)
    return str(client[0])


def _reply(protocol: Any, task: asyncio.Task) -> Any:
    """The reply of a batch whose task finished inside the handler (eager start)."""
    return task.result() or None
