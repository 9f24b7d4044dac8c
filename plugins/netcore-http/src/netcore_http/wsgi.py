"""Hosting a WSGI application (PEP 3333) on the http protocol.

:class:`WsgiHost` turns one parsed request into an environ, calls the app and produces
the response through the protocol's ``emit``/``flush``, which know whether the call runs
on the I/O thread or on a handler thread (see ``protocol.py``). What PEP 3333 asks of a
server and where it is done here:

* headers are sent with the first non-empty body string (or at the end), so an app may
  still call ``start_response`` again with ``exc_info`` until then;
* the response is framed by the server: the app's Content-Length is enforced (a short
  body closes the connection), a one-item list gets a Content-Length, anything else is
  chunked on HTTP/1.1 and close-delimited on HTTP/1.0; HEAD, 1xx, 204 and 304 carry no
  body;
* ``close()`` of the app's iterable is called exactly once, whatever happened: the
  response finished, the app failed, or the client vanished;
* an app error before the headers went out is a 500; after, the connection closes so
  the client sees a truncated response rather than a wrong one. A status or header
  containing CR or LF is refused by ``start_response`` (a 500), never sent.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import httptools
import structlog

from netcore_http.protocol import CLOSE, CLOSE_MODE, DONE, GONE, KEEP_ALIVE_10, SUSPENDED, ClientGone
from netcore_http.responses import DATE, SERVER, error_response

if TYPE_CHECKING:
    from netcore_http.protocol import HttpProtocol, Limits, Request

log = structlog.get_logger("netcore.http")

#: Hop-by-hop fields an app must not set (PEP 3333); Connection is honoured, not sent.
HOP_BY_HOP = frozenset(("keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade"))
_SERVER_LINE = "Server: " + SERVER.decode() + "\r\n"
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
    """``wsgi.errors``: what the app writes there becomes ``http.app_error_output`` log events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial = ""

    def write(self, text: str) -> int:
        with self._lock:
            text = self._partial + text
            *lines, self._partial = text.split("\n")
        for line in lines:
            log.warning("http.app_error_output", message=line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            log.warning("http.app_error_output", message=partial)


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


class Call:
    """One request's trip through the app: start_response, write, framing, close."""

    __slots__ = ("protocol", "request", "result", "iterator", "status", "code", "headers", "length",
                 "remaining", "headers_sent", "chunked", "no_body", "closes", "has_date", "closed",
                 "known_length", "sent")

    def __init__(self, protocol: HttpProtocol, request: Request) -> None:
        self.protocol = protocol
        self.request = request
        self.result: Any = None
        self.iterator: Any = None
        self.status: str | None = None
        self.code = 0
        self.headers: list = []
        self.length: int | None = None  # the app's Content-Length
        self.remaining = 0
        self.headers_sent = False
        self.chunked = False
        self.no_body = request.method == b"HEAD"
        self.closes = request.mode == CLOSE_MODE
        self.has_date = False
        self.closed = False
        self.known_length: int | None = None
        self.sent = 0

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
        if type(status) is not str or len(status) < 4 or status[3] != " " or not status[:3].isdigit():
            raise ValueError(f"WSGI status must be a str like '200 OK', not {status!r}")
        if "\r" in status or "\n" in status:
            raise ValueError("WSGI status contains CR or LF")
        length = None
        has_date = False
        closes = self.request.mode == CLOSE_MODE
        kept = []
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
            elif lower == "date":
                has_date = True
            elif lower == "connection":
                if "close" in value.lower():
                    closes = True
                continue  # the server decides what Connection says
            elif lower in HOP_BY_HOP:
                raise ValueError(f"hop-by-hop header {name!r} is the server's business (PEP 3333)")
            kept.append((name, value))
        self.status = status
        self.code = int(status[:3])
        self.headers = kept
        self.length = length
        self.has_date = has_date
        self.closes = closes
        return self.write

    def write(self, data: bytes) -> None:
        """The deprecated ``write()`` callable: sent (or queued) before it returns."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        piece = self.frame(data)
        if piece:
            self.protocol.emit(piece)  # on the I/O thread a stream cannot stop inside write()

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
            return self.head()
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
        lines = ["HTTP/1.1 ", self.status, "\r\n"]
        for name, value in self.headers:
            lines += (name, ": ", value, "\r\n")
        if not self.has_date:
            lines.append(DATE.header().decode("ascii"))
            lines.append("\r\n")
        lines.append(_SERVER_LINE)
        if code < 200 or code in _NO_BODY_STATUS:
            self.no_body = True
            self.length = None
        elif self.length is not None:
            self.remaining = self.length
        elif self.known_length is not None:
            lines.append(f"Content-Length: {self.known_length}\r\n")
        elif request.version == "1.1":
            if not self.no_body:
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
        elif not self.no_body:
            self.closes = True  # HTTP/1.0 and no length: the end of the body is the close
        if self.closes:
            lines.append("Connection: close\r\n")
        elif request.mode == KEEP_ALIVE_10:
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")  # PEP 3333: headers are latin-1 text
        self.headers_sent = True
        return head

    # -- ending ------------------------------------------------------------------------------
    def close_app(self) -> None:
        """Call the iterable's ``close()`` once (PEP 3333), whatever happened."""
        if self.closed:
            return
        self.closed = True
        close = getattr(self.result, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                log.error("http.app_close_failed", exc_info=exc)
                self.protocol.count_error()

    def fail(self, exc: BaseException) -> int:
        log.error("http.app_failed", method=self.request.method.decode("latin-1"),
                  target=self.request.url.decode("latin-1"), headers_sent=self.headers_sent, exc_info=exc)
        self.protocol.count_error()
        if not self.headers_sent:
            self.protocol._out.append(error_response(500, "internal server error",
                                                     head=self.request.method == b"HEAD"))
        return CLOSE


def pump(protocol: HttpProtocol, call: Call) -> int:
    """Produce ``call``'s body until it ends or (I/O thread only) output must wait."""
    try:
        iterator = call.iterator
        if iterator is None:
            result = call.result
            if type(result) is FileWrapper and not protocol._threaded:
                state = _sendfile(protocol, call, result)
                if state is not None:
                    return state
            iterator = call.iterator = iter(result)
        frame = call.frame
        emit = protocol.emit
        for chunk in iterator:
            data = frame(chunk)
            if data and not emit(data):
                protocol._stream = call
                return SUSPENDED
        data = call.finish()
        if data:
            protocol._out.append(data)
    except ClientGone:
        call.close_app()
        return GONE
    except Exception as exc:
        state = call.fail(exc)
        call.close_app()
        return state
    call.close_app()
    if protocol.limits.access_log:
        _access(protocol, call)
    return CLOSE if call.closes else DONE


def _sendfile(protocol: HttpProtocol, call: Call, wrapper: FileWrapper) -> int | None:
    """Send a file-backed body with ``sendfile`` when its length is known; None: iterate.

    Only for output produced on the I/O thread, and only while nothing else is queued on
    the connection: the kernel then copies file to socket without the bytes passing
    through Python. When the socket is full (a reactor's non-blocking socket), the rest
    is read and streamed the ordinary way, from where sendfile stopped.
    """
    fd = wrapper.fileno()
    available = _file_length(wrapper)
    if fd is None or available is None or call.no_body:
        return None
    offset = wrapper.filelike.tell()
    total = available if call.length is None else min(call.length, available)
    head = call.head()
    protocol.emit(head)
    protocol.flush()
    connection = protocol.connection
    sock = connection.sock
    sent = 0
    if connection.output_size == 0:
        try:
            while sent < total:
                n = os.sendfile(sock.fileno(), fd, offset + sent, total - sent)
                if n == 0:
                    break
                sent += n
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            connection.abort(exc)
            raise ClientGone from None
        connection.bytes_sent += sent
    call.sent = sent
    if call.length is not None:
        call.remaining = call.length - sent
    wrapper.filelike.seek(offset + sent)
    if sent >= total:
        call.iterator = iter(())
    else:
        call.iterator = iter(wrapper)
    return None if sent < total else _finish_after_sendfile(protocol, call)


def _finish_after_sendfile(protocol: HttpProtocol, call: Call) -> int:
    data = call.finish()
    if data:
        protocol._out.append(data)
    call.close_app()
    if protocol.limits.access_log:
        _access(protocol, call)
    return CLOSE if call.closes else DONE


def _access(protocol: HttpProtocol, call: Call) -> None:
    request = call.request
    log.info("http.access", method=request.method.decode("latin-1"), target=request.url.decode("latin-1"),
             version=request.version, status=call.code, bytes=call.sent,
             peer=_peer_text(protocol.connection.peer))


def _peer_text(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "-")


class WsgiHost:
    """The app and what every environ shares; ``respond`` is the protocol's responder."""

    def __init__(self, app: Any, limits: Limits, *, multithread: bool, multiprocess: bool) -> None:
        self.app = app
        self.limits = limits
        self.errors = ErrorStream()
        self.constant = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": self.errors,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }

    def base_environ(self, protocol: HttpProtocol) -> dict:
        """What every request of one connection shares (built at its first request)."""
        environ = dict(self.constant)
        connection = protocol.connection
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
        protocol._environ_base = environ
        return environ

    def environ(self, protocol: HttpProtocol, request: Request) -> dict:
        base = protocol._environ_base or self.base_environ(protocol)
        environ = base.copy()
        url = request.url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
        elif url == b"*":
            path, query = b"*", b""
        else:  # absolute-form (a proxy request): the path and query of the URL
            parsed = httptools.parse_url(url)
            path, query = parsed.path or b"/", parsed.query or b""
        if b"%" in path:
            path = unquote_to_bytes(path)
        environ["REQUEST_METHOD"] = request.method.decode("latin-1")
        environ["PATH_INFO"] = path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["RAW_URI"] = url.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.version
        body = request.body
        environ["wsgi.input"] = io.BytesIO(body)
        for name, value in request.headers:
            key = _KEYS.get(name) or _environ_key(name)
            if key is None:
                continue
            text = value.decode("latin-1")
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + text
            else:
                environ[key] = text
        if body and "CONTENT_LENGTH" not in environ:
            environ["CONTENT_LENGTH"] = str(len(body))  # a chunked body, read in full
        return environ

    def respond(self, protocol: HttpProtocol, request: Request) -> int:
        if request.error:
            protocol._out.append(error_response(request.error, request.message))
            return CLOSE
        call = Call(protocol, request)
        try:
            environ = self.environ(protocol, request)
            result = self.app(environ, call.start_response)
        except Exception as exc:
            return call.fail(exc)
        call.result = result
        if type(result) is list and len(result) == 1 and call.length is None:
            # One string: its length is known, no chunked framing needed (PEP 3333 allows it).
            first = result[0]
            if type(first) is bytes:
                call.known_length = len(first)
        elif type(result) is FileWrapper and call.length is None:
            call.known_length = _file_length(result)
        return pump(protocol, call)


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

