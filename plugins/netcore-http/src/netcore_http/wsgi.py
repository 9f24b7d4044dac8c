"""Hosting a WSGI application (PEP 3333) on the http protocol.

:class:`WsgiHost` turns one parsed request into an environ, calls the app and produces
the response into a :class:`~netcore_http.output.ResponseOutput`, the one object it talks
to: it neither knows nor asks which thread it runs on (see ``output.py``). What PEP 3333
asks of a server and where it is done here:

* headers are sent with the first non-empty body string (or at the end), so an app may
  still call ``start_response`` again with ``exc_info`` until then;
* no block is held back ("Buffering and Streaming"): a list or tuple is collected (its
  blocks all exist already), but each block of any other iterable (a generator) and
  each ``write()`` goes to the connection as it comes, since the app may wait before
  the next;
* the response is framed by the server: the app's Content-Length is enforced (a short
  body closes the connection), a one-item list gets a Content-Length, anything else is
  chunked on HTTP/1.1 and close-delimited on HTTP/1.0; HEAD, 204 and 304 carry no
  body, and a 204 no Content-Length (RFC 9110 8.6);
* ``close()`` of the app's iterable is called exactly once, whatever happened: the
  response finished, the app failed, or the client vanished;
* an app error before the headers went out is a 500; after, the connection closes so
  the client sees a truncated response rather than a wrong one. A status or header
  containing CR or LF is refused by ``start_response`` (a 500), never sent, and so is
  a 1xx status: it is not a final response, and a client would wait for one forever.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import time
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import httptools
import structlog

from netcore_http.access import peer_address
from netcore_http.body import BodyFlow
from netcore_http.proxy import TrustedProxies, apply_forwarded, mount
from netcore_http.request import (
    CLOSE,
    CLOSE_MODE,
    DONE,
    GONE,
    KEEP_ALIVE_10,
    MODE,
    STREAM_FLUSH,
    SUSPENDED,
    ClientGone,
    Limits,
)
from netcore_http.responses import DATE, SERVER, error_body_length, error_response

if TYPE_CHECKING:
    from netcore_http.output import ResponseOutput

log = structlog.get_logger("netcore.http")

_monotonic = time.monotonic

#: Hop-by-hop fields an app must not set (PEP 3333); Connection is honoured, not sent.
HOP_BY_HOP = frozenset(("keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade"))
_SERVER_LINE = b"Server: " + SERVER + b"\r\n"
_NO_BODY_STATUS = frozenset((204, 304))
#: Header name (bytes) -> environ key; names with '_' map to None (dropped: "X_Foo" must
#: not be able to pose as "X-Foo", the ambiguity nginx and gunicorn also refuse).
_KEYS: dict[bytes, str | None] = {}


def _environ_key(name: bytes) -> str | None:
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        text = name.decode("latin-1").upper()
        if "_" in text:
            key = None
        elif text in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            key = text.replace("-", "_")
        else:
            key = "HTTP_" + text.replace("-", "_")
        if len(_KEYS) < 4096:  # bounded: clients choose the names
            _KEYS[name] = key
    return key


class ErrorStream:
    """``wsgi.errors``: what the app writes there becomes ``http.app_error_output`` events.

    One event per *message*, not per line: a traceback or a logging record written here
    (Flask's default handler writes each record, traceback included, then flushes) must
    stay one event, readable as a whole. Writes collect per thread -- requests on other
    threads never interleave into it -- and leave as one event at ``flush()``, when the
    request ends, or past :attr:`MAX_PENDING` characters.
    """

    MAX_PENDING = 65536

    def __init__(self) -> None:
        self._local = threading.local()
        #: Something was written and not yet logged, on some thread (a cheap hint read
        #: once per request: most apps never write here).
        self.dirty = False

    def write(self, text: str) -> int:
        if type(text) is not str:
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        local = self._local
        parts = getattr(local, "parts", None)
        if parts is None:
            parts = local.parts = []
            local.size = 0
        parts.append(text)
        local.size += len(text)
        self.dirty = True
        if local.size > self.MAX_PENDING:
            self.flush()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log what this thread wrote since the last flush as one event."""
        local = self._local
        parts = getattr(local, "parts", None)
        if not parts:
            return
        local.parts = []
        local.size = 0
        message = "".join(parts).rstrip("\n")
        if message:
            log.warning("http.app_error_output", message=message)


class FileWrapper:
    """``wsgi.file_wrapper``: iterates ``blksize`` blocks; the server may ``sendfile`` it."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Any:
        read = self.filelike.read
        size = self.blksize
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def fileno(self) -> int | None:
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None


#: (status, *headers) as the app passed them -> what start_response makes of them
#: (see :func:`_check_start`). Most apps send the same few header lists again and again:
#: a hit costs a tuple and a dict lookup instead of validating and encoding every field.
#: Bounded (apps may vary headers per response); cleared when full.
_STARTS: dict[tuple, tuple] = {}
_STARTS_MAX = 512
#: ``Content-Length: N\r\n`` lines already formatted, by N (bounded the same way).
_LENGTH_LINES: dict[int, bytes] = {}


def _check_start(status: Any, headers: list) -> tuple:
    """Validate a status and header list; (status, code, encoded head prefix, length, has_date, closes).

    The prefix is the status line and the app's fields, ready to send: PEP 3333 headers
    are latin-1 text, and a field that does not encode fails here, in the app's call.
    """
    if type(status) is not str or len(status) < 4 or status[3] != " " or not status[:3].isdigit():
        raise ValueError(f"WSGI status must be a str like '200 OK', not {status!r}")
    if "\r" in status or "\n" in status:
        raise ValueError("WSGI status contains CR or LF")
    code = int(status[:3])
    if code < 200:
        # Interim (1xx): sent as the answer, it leaves the client waiting for the real one.
        raise ValueError(f"WSGI status {status!r} is not a final status (1xx is interim)")
    length = None
    has_date = False
    closes = False
    lines = ["HTTP/1.1 ", status, "\r\n"]
    for name, value in headers:
        if type(name) is not str or type(value) is not str:
            raise TypeError(f"WSGI header names and values must be str: {name!r}: {value!r}")
        if not name or "\r" in value or "\n" in value or "\0" in value or ":" in name or " " in name \
                or "\r" in name or "\n" in name:
            raise ValueError(f"WSGI header {name!r} contains a forbidden character")
        lower = name.lower()
        if lower == "content-length":
            length = int(value)
            if length < 0:
                raise ValueError("negative Content-Length")
            if code == 204:
                length = None
                continue  # RFC 9110 8.6: never in a 204 (a 304 may carry it: the 200's length)
        elif lower == "date":
            has_date = True
        elif lower == "connection":
            if "close" in value.lower():
                closes = True
            continue  # the server decides what Connection says
        elif lower in HOP_BY_HOP:
            raise ValueError(f"hop-by-hop header {name!r} is the server's business (PEP 3333)")
        lines += (name, ": ", value, "\r\n")
    prefix = "".join(lines).encode("latin-1") + _SERVER_LINE
    return status, code, prefix, length, has_date, closes


def _length_line(length: int) -> bytes:
    line = _LENGTH_LINES.get(length)
    if line is None:
        line = b"Content-Length: %d\r\n" % length
        if len(_LENGTH_LINES) >= _STARTS_MAX:
            _LENGTH_LINES.clear()
        _LENGTH_LINES[length] = line
    return line


class Call:
    """One request's trip through the app: start_response, write, framing, close.

    One is made per request: ``__init__`` sets what the common path reads, and what only
    streamed or unusual responses change starts as a class default.
    """

    result: Any = None
    iterator: Any = None
    code = 0
    prefix = b""  # the status line, the app's fields and the Server line, encoded
    length: int | None = None  # the app's Content-Length
    remaining = 0
    chunked = False
    has_date = False
    closed = False
    sent = 0
    #: When the app was called (metrics on): the start of the request-duration figure.
    started = 0.0
    peer = ""  # REMOTE_ADDR, kept for the access log

    def __init__(self, output: ResponseOutput, request: tuple) -> None:
        self.output = output
        self.request = request
        self.status: str | None = None
        self.headers_sent = False
        self.known_length: int | None = None
        self.no_body = request[0] == b"HEAD"
        self.closes = request[MODE] == CLOSE_MODE

    # -- what the app calls ----------------------------------------------------------------
    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        try:
            key = (status, *headers)
            entry = _STARTS.get(key)
        except TypeError:  # unhashable: a list of lists, say -- checked, not cached
            key = None
            entry = None
        if entry is None:
            entry = _check_start(status, headers)
            if key is not None:
                if len(_STARTS) >= _STARTS_MAX:
                    _STARTS.clear()
                _STARTS[key] = entry
        self.status, self.code, self.prefix, self.length, self.has_date, closes = entry
        if closes:
            self.closes = True
        return self.write

    def write(self, data: bytes) -> None:
        """The deprecated ``write()`` callable: sent (or queued) before it returns."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        piece = self.frame(data)
        if piece:
            self.output.stream(piece)  # on the I/O thread a stream cannot stop inside write()

    # -- framing -----------------------------------------------------------------------------
    def frame(self, chunk: bytes) -> bytes:
        if type(chunk) is not bytes:
            if isinstance(chunk, (bytearray, memoryview)):
                chunk = bytes(chunk)
            else:
                raise TypeError(f"WSGI body strings must be bytes, not {type(chunk).__name__}")
        if not self.headers_sent:
            if not chunk:
                return b""
            return self.head() + self.body(chunk)
        return self.body(chunk)

    def body(self, chunk: bytes) -> bytes:
        if self.no_body or not chunk:
            return b""
        if self.chunked:
            self.sent += len(chunk)
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        if self.length is not None:
            remaining = self.remaining
            if len(chunk) > remaining:
                chunk = chunk[:remaining]  # more than announced: never send it
                self.closes = True
            self.remaining = remaining - len(chunk)
        self.sent += len(chunk)
        return chunk

    def finish(self) -> bytes:
        if not self.headers_sent:
            if self.status is None:
                raise AssertionError("the app returned without calling start_response()")
            self.known_length = 0
            head = self.head()
            if self.remaining and not self.no_body:
                self.closes = True  # a length announced and no body at all: only a close ends it
            return head
        if self.chunked and not self.no_body:
            return b"0\r\n\r\n"
        if self.length is not None and self.remaining and not self.no_body:
            self.closes = True  # shorter than announced: only a close tells the client
        return b""

    def head(self) -> bytes:
        if self.status is None:
            raise AssertionError("the app sent a body before calling start_response()")
        code = self.code
        request = self.request
        lines = [self.prefix]
        if not self.has_date:
            now = _monotonic()
            lines.append(DATE._line if now < DATE.until else DATE.line(now))
        if code < 200 or code in _NO_BODY_STATUS:
            self.no_body = True
            self.length = None
        elif self.length is not None:
            self.remaining = self.length
        elif self.known_length is not None:
            lines.append(_length_line(self.known_length))
        elif request[2] == "1.1":
            if not self.no_body:
                self.chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
        elif not self.no_body:
            self.closes = True  # HTTP/1.0 and no length: the end of the body is the close
        body = request[4]
        if type(body) is not bytes and not self.closes and isinstance(body, BodyFlow) and body.left_unread_closes():
            # The request's body is not all in and will not be drained: the connection
            # closes after this response, which says so (RFC 9112 9.6).
            self.closes = True
        if self.closes:
            lines.append(b"Connection: close\r\n\r\n")
        elif request[MODE] == KEEP_ALIVE_10:
            lines.append(b"Connection: keep-alive\r\n\r\n")
        else:
            lines.append(b"\r\n")
        self.headers_sent = True
        return b"".join(lines)

    # -- ending ------------------------------------------------------------------------------
    def close_body(self) -> None:
        """Release a spooled body's temporary file (a streamed body holds nothing)."""
        body = self.request[4]
        if type(body) is not bytes:
            body.close()

    def close_app(self) -> None:
        """Call the iterable's ``close()`` once (PEP 3333), whatever happened."""
        if self.closed:
            return
        self.closed = True
        self.close_body()
        close = getattr(self.result, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                log.error("http.app_close_failed", exc_info=exc)
                self.output.count_error()

    def fail(self, exc: BaseException) -> int:
        # No target, no header: request data stays out of the log unless the access log
        # is turned on (a query string may carry a token). The traceback has no locals.
        log.error("http.app_failed", method=self.request[0].decode("latin-1"), headers_sent=self.headers_sent,
                  exc_info=exc)
        self.output.count_error()
        if not self.headers_sent:
            self.output.append(error_response(500, "internal server error", head=self.request[0] == b"HEAD"))
        return CLOSE


class WsgiHost:
    """The app and what every environ shares; ``respond`` is the protocol's responder."""

    def __init__(self, app: Any, limits: Limits, *, multithread: bool, multiprocess: bool,
                 figures: Any = None) -> None:
        self.app = app
        self.limits = limits
        #: The HTTP metrics (``netcore_http.metrics.HttpFigures``), or None when off.
        self.figures = figures
        self.log_access = limits.access_log
        #: Where access records go (``access.py``); None when the access log is off.
        self.access = limits.access
        # Where a response ends, one test covers both the access log and the metrics.
        self.access_log = limits.access_log or figures is not None
        self.errors = ErrorStream()
        self.trusted = TrustedProxies(limits.forwarded_allow_ips)
        self.root_path = limits.root_path
        self.constant = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": self.errors,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            # Every wsgi.input here ends at the end of the body (EOF), chunked or not.
            "wsgi.input_terminated": True,
        }

    def base_environ(self, output: ResponseOutput) -> dict:
        """What every request of one connection shares (built at its first request)."""
        environ = dict(self.constant)
        connection = output.connection
        try:
            local = connection.sock.getsockname()
        except OSError:
            local = None
        if isinstance(local, tuple):
            environ["SERVER_NAME"] = str(local[0])
            environ["SERVER_PORT"] = str(local[1])
        else:
            environ["SERVER_NAME"] = "localhost"
            environ["SERVER_PORT"] = ""
        peer = connection.peer
        if isinstance(peer, tuple) and len(peer) >= 2:
            environ["REMOTE_ADDR"] = str(peer[0])
            environ["REMOTE_PORT"] = str(peer[1])
        else:
            environ["REMOTE_ADDR"] = ""
        output.trusted = environ["REMOTE_ADDR"] in self.trusted
        tls = getattr(connection, "tls", None)  # set by the TLS layer beneath (docs/tls.md)
        if tls is not None:
            environ["wsgi.url_scheme"] = "https"
            environ.update(tls.environ())
        output.environ_base = environ
        return environ

    def environ(self, output: ResponseOutput, request: tuple) -> dict:
        method, url, version, headers, body, _, _ = request
        line = _LINES.get((method, url, version)) or _request_line(method, url, version)
        environ = (output.environ_base or self.base_environ(output)) | line
        environ["wsgi.input"] = BytesIO(body) if type(body) is bytes else body
        for name, value in headers:
            key = _KEYS.get(name) or _environ_key(name)
            if key is None:
                continue
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value.decode("latin-1")
            else:
                environ[key] = value.decode("latin-1")
        if body and "CONTENT_LENGTH" not in environ:
            # A chunked body read in full: its length is known (a streamed one's is not,
            # and wsgi.input_terminated says to read to EOF).
            if type(body) is bytes:
                environ["CONTENT_LENGTH"] = str(len(body))
            elif hasattr(body, "seek"):
                environ["CONTENT_LENGTH"] = str(body.seek(0, 2))
                body.seek(0)
        if output.trusted and ("HTTP_X_FORWARDED_FOR" in environ or "HTTP_FORWARDED" in environ
                               or "HTTP_X_FORWARDED_PROTO" in environ):
            apply_forwarded(environ, self.trusted)
        if self.root_path:
            mount(environ, self.root_path)
        return environ

    def respond(self, output: ResponseOutput, request: tuple) -> int:
        if request[6]:
            output.append(error_response(*request[6]))
            if self.figures is not None:
                self.figures.response(request[6][0], _monotonic())
            if self.log_access:
                self.access.record(request, request[6][0], error_body_length(*request[6]), 0.0,
                                   peer_address(output.connection.peer))
            return CLOSE
        call = Call(output, request)
        environ = self.environ(output, request)
        if self.access_log:
            call.started = _monotonic()
            call.peer = environ["REMOTE_ADDR"]
        try:
            result = self.app(environ, call.start_response)
        except ClientGone:  # the body could not be read to its end, or the client left
            call.close_app()
            return GONE
        except Exception as exc:
            call.close_body()
            if self.figures is not None:
                self.figures.response(500, call.started)
            if self.errors.dirty:
                self.errors.flush()  # what the app wrote before it failed, first
            state = call.fail(exc)
            if self.log_access:
                self._record_failure(call)
            return state
        call.result = result
        if type(result) is list and len(result) == 1 and type(result[0]) is bytes:
            # One string: its length is known, no chunked framing needed (PEP 3333 allows it).
            body = result[0]
            length = call.length
            if length is None:
                call.known_length = len(body)
            if len(body) < STREAM_FLUSH and call.status is not None and not call.headers_sent:
                # The common app, short: head and body go out as one piece, with no
                # iterator, no framing per chunk and no close() to call (a list has none).
                # Anything else takes pump(), which handles every case.
                call.closed = True
                if type(request[4]) is not bytes:
                    call.close_body()
                if length is not None and len(body) != length and not call.no_body:
                    code = call.code
                    if code >= 200 and code not in _NO_BODY_STATUS:
                        call.closes = True  # not what was announced: only a close can end it
                        body = body[:length]
                data = call.head()
                if body and not call.no_body:
                    data += body
                    call.sent = len(body)
                output.parts.append(data)  # output.append without the call: once per request
                if self.errors.dirty:
                    self.errors.flush()
                if self.access_log:
                    self._access(output, call)
                return CLOSE if call.closes else DONE
        elif type(result) is FileWrapper and call.length is None:
            call.known_length = _file_length(result)
        return self.pump(output, call)

    # -- producing a body -----------------------------------------------------------------
    def pump(self, output: ResponseOutput, call: Call) -> int:
        """Produce ``call``'s body until it ends or (I/O thread only) output must wait."""
        try:
            iterator = call.iterator
            if iterator is None:
                result = call.result
                if type(result) is FileWrapper:
                    state = self._sendfile(output, call, result)
                    if state is not None:
                        return state
                iterator = call.iterator = iter(result)
            frame = call.frame
            # A list or tuple has all its blocks already: they are collected. Any other
            # iterable may produce them over time (an event stream waits between events),
            # and PEP 3333 forbids holding one back: each goes to the connection now.
            emit = output.emit if isinstance(call.result, (list, tuple)) else output.stream
            for chunk in iterator:
                data = frame(chunk)
                if data and not emit(data):
                    output.suspended = call
                    return SUSPENDED
            data = call.finish()
            if data:
                output.append(data)
        except ClientGone:
            call.close_app()
            return GONE
        except Exception as exc:
            if self.errors.dirty:
                self.errors.flush()
            state = call.fail(exc)
            call.close_app()
            if self.figures is not None:
                self.figures.response(500, call.started)  # as the access log records it
            if self.log_access:
                self._record_failure(call)
            return state
        call.close_app()
        if self.errors.dirty:
            self.errors.flush()
        if self.access_log:
            self._access(output, call)
        return CLOSE if call.closes else DONE

    def _sendfile(self, output: ResponseOutput, call: Call, wrapper: FileWrapper) -> int | None:
        """Send a file-backed body with ``sendfile`` when its length is known; None: iterate.

        The connection sends what it can directly (``connection.sendfile``: where the
        socket belongs to this thread and nothing is queued before it), and the rest is
        read and streamed the ordinary way, from where sendfile stopped.
        """
        fd = wrapper.fileno()
        available = _file_length(wrapper)
        if fd is None or available is None or call.no_body:
            return None
        offset = wrapper.filelike.tell()
        total = available if call.length is None else min(call.length, available)
        output.emit(call.head())
        output.flush()
        sent = output.sendfile(fd, offset, total)
        call.sent = sent
        if call.length is not None:
            call.remaining = call.length - sent
        wrapper.filelike.seek(offset + sent)
        if sent < total:
            call.iterator = iter(wrapper)
            return None
        call.iterator = iter(())
        data = call.finish()
        if data:
            output.append(data)
        call.close_app()
        if self.access_log:
            self._access(output, call)
        return CLOSE if call.closes else DONE

    def _record_failure(self, call: Call) -> None:
        """The app failed: a 500 if nothing was sent yet, else the truncated response."""
        if call.headers_sent:
            self.access.record(call.request, call.code, call.sent, call.started, call.peer)
        else:
            self.access.record(call.request, 500, 0 if call.no_body else error_body_length(500, "internal server error"),
                               call.started, call.peer)

    def _access(self, output: ResponseOutput, call: Call) -> None:
        """A response is complete: count it (metrics on) and log it (access log on)."""
        if self.figures is not None:
            self.figures.response(call.code, call.started)
        if not self.log_access:
            return
        self.access.record(call.request, call.code, call.sent, call.started, call.peer)


#: (method, target, version) -> the environ entries the request line makes: clients
#: send the same few request lines again and again, and merging a prepared dict costs
#: less than decoding and storing five values. Bounded (clients choose the targets);
#: cleared when full.
_LINES: dict[tuple[bytes, bytes, str], dict[str, str]] = {}
_LINES_MAX = 1024


def _request_line(method: bytes, url: bytes, version: str) -> dict[str, str]:
    if url[:1] == b"/":
        # A fragment has no place in a request target (RFC 9112 3.2); one sent anyway is
        # left out of the path and query, as httptools.parse_url does for absolute-form.
        path, _, query = (url.partition(b"#")[0] if b"#" in url else url).partition(b"?")
    elif url == b"*":
        path, query = b"*", b""
    else:  # absolute-form (a proxy request): the path and query of the URL
        parsed = httptools.parse_url(url)
        path, query = parsed.path or b"/", parsed.query or b""
    if b"%" in path:
        path = unquote_to_bytes(path)
    line = {
        "REQUEST_METHOD": method.decode("latin-1"),
        "PATH_INFO": path.decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": url.decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/" + version,
    }
    if len(url) <= 1024:
        if len(_LINES) >= _LINES_MAX:
            _LINES.clear()
        _LINES[method, url, version] = line
    return line


def _file_length(wrapper: FileWrapper) -> int | None:
    """Bytes left in a wrapped regular file (its Content-Length), or None if unknowable."""
    fd = wrapper.fileno()
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - wrapper.filelike.tell())
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None

