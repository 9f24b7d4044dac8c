"""The metrics listener: ``GET /metrics``, ``/livez`` and ``/readyz`` on a port of its own.

Two ways to serve the same three paths, chosen by the server for its scheme:

* **On a thread of its own** (:meth:`MetricsListener.start`), the standard library's
  ``http.server`` (one short-lived thread per request, HTTP/1.0, close after the
  answer): for every scheme that has threads anyway (pools, multi-reactor, the blocking
  schemes) and for the process schemes' master, whose workers do the serving. There a
  reactor busy with a slow handler must still answer its health check (a balancer that
  cannot reach ``/livez`` takes the instance out), and a master has only a small
  supervision loop.
* **On the server's own loop** (:meth:`MetricsListener.serve_on`) where that loop is the
  process's only thread (inline, a loop in one thread). A thread is not free there even
  asleep: once a process has two, glibc takes its multi-thread paths on every call --
  each socket call becomes a cancellation point, malloc takes its arena lock -- and an
  idle thread measured +2.4% server CPU per HTTP hello request (5.93 -> 6.07 µs, ten
  alternating rounds), more than the whole budget of the metrics. On the loop a scrape
  costs its own rendering (about a millisecond) and a handler that stalls the loop
  stalls the health check with it -- which is then the truth about the instance.

Under the process schemes the master runs it; workers forked from the master close
their copy of its socket at once (:meth:`MetricsListener.forget`), so the port is the
master's alone and dies with it. The thread holds no lock a forked child could
inherit half-taken: it never logs, and the figures it reads are plain attributes.
"""

from __future__ import annotations

import email.utils
import errno
import http.server
import socket
from typing import Any, Callable

from netcore.errors import SettingError
from netcore.reactor.poller import EVENT_READ, EVENT_WRITE
from netcore.reactor.threads import start_thread

#: What ``metrics_bind`` accepts, for the one-line error.
ALLOWED = "HOST:PORT or [IPv6]:PORT (port 0-65535; 0 picks a free one), or empty: off"


def parse_metrics_bind(value: str) -> tuple[int, str, int]:
    """``(family, host, port)`` of a ``metrics_bind`` value; SettingError names the setting."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise SettingError("metrics_bind", value, ALLOWED)
    family = socket.AF_INET
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    elif ":" in host:
        raise SettingError("metrics_bind", value, ALLOWED)
    try:
        socket.inet_pton(family, host)
    except OSError:
        if family == socket.AF_INET6 or not host.replace("-", "").replace(".", "").isalnum():
            raise SettingError("metrics_bind", value, ALLOWED) from None
    return family, host, int(port_text)


class MetricsListener:
    """Serves the three paths until :meth:`close`: on a thread (:meth:`start`) or on a
    netcore loop (:meth:`serve_on`). The port is bound at construction, so a bad address
    fails at start either way."""

    def __init__(self, bind: str, render: Callable[[str | None], tuple[bytes, str]],
                 ready: Callable[[], bool]) -> None:
        family, host, port = parse_metrics_bind(bind)
        self.render, self.ready = render, ready
        handler = type("MetricsHandler", (_Handler,), {"render": staticmethod(render), "ready": staticmethod(ready)})
        server_class = type("MetricsServer", (http.server.ThreadingHTTPServer,), {"address_family": family})
        try:
            self.httpd = server_class((host, port), handler)
        except OSError as exc:
            raise SettingError("metrics_bind", bind, f"an address this host can listen on ({exc.strerror})") from None
        self.httpd.daemon_threads = True
        bound = self.httpd.server_address
        self.address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        self._thread: Any = None
        self._on_loop: LoopResponder | None = None

    @property
    def serving(self) -> bool:
        return self._thread is not None or self._on_loop is not None

    def start(self) -> None:
        self._thread = start_thread(self.httpd.serve_forever, 0.2, name="netcore-metrics")

    def serve_on(self, loop: Any) -> None:
        """Serve from ``loop`` (a netcore :class:`~netcore.reactor.loop.EventLoop`), on its thread."""
        self._on_loop = LoopResponder(self.httpd.socket, loop, self.render, self.ready)

    def close(self) -> None:
        """Stop serving and release the port (in the process that started it)."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        if self._on_loop is not None:
            self._on_loop.close()
            self._on_loop = None
        self.httpd.server_close()

    def forget(self) -> None:
        """In a forked child: close the inherited socket; the thread is the parent's."""
        self._thread = None
        self._on_loop = None
        self.httpd.socket.close()


def answer(method: str, target: str, accept: str | None, render: Callable[[str | None], tuple[bytes, str]],
           ready: Callable[[], bool]) -> tuple[int, bytes, str]:
    """``(status, body, content type)`` of one request; both ways of serving answer alike."""
    if method not in ("GET", "HEAD"):
        return 501, b"only GET and HEAD\n", _TEXT
    path = target.partition("?")[0]
    if path == "/metrics":
        data, content_type = render(accept)
        return 200, data, content_type
    if path == "/livez":
        return 200, b"ok\n", _TEXT
    if path == "/readyz":
        return (200, b"ready\n", _TEXT) if ready() else (503, b"stopping\n", _TEXT)
    return 404, b"not found: /metrics, /livez, /readyz\n", _TEXT


_TEXT = "text/plain; charset=utf-8"


class LoopResponder:
    """The listener's socket served from a netcore loop: accept, read one request head,
    answer, close (HTTP/1.0, as the thread's ``http.server`` does).

    Bounded like the thread's: a head larger than :attr:`MAX_HEAD` is answered 431, a
    client that has not sent its head (or read its answer) within :attr:`TIMEOUT`
    seconds is closed. An accept error such as EMFILE pauses accepting for a second
    (the pending connection stays in the backlog) instead of spinning on a
    level-triggered poller.
    """

    MAX_HEAD = 8192
    TIMEOUT = 10.0

    def __init__(self, sock: socket.socket, loop: Any, render: Callable[[str | None], tuple[bytes, str]],
                 ready: Callable[[], bool]) -> None:
        self.sock, self.loop, self.render, self.ready = sock, loop, render, ready
        self.exchanges: set[_Exchange] = set()
        self.closed = False
        sock.setblocking(False)
        loop.register(sock.fileno(), EVENT_READ, self._on_accept)

    def _on_accept(self, _mask: int) -> None:
        while not self.closed:  # to EAGAIN: the loop's poller may be edge-triggered
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # that one client gave up already
                self.loop.unregister(self.sock.fileno())
                self.loop.call_later(1.0, self._resume)
                return
            self.exchanges.add(_Exchange(self, client))

    def _resume(self) -> None:
        if not self.closed:
            self.loop.register(self.sock.fileno(), EVENT_READ, self._on_accept)
            self._on_accept(EVENT_READ)

    def close(self) -> None:
        """Stop accepting and close every open exchange (the listening socket is the
        listener's to close)."""
        self.closed = True
        _forget(self.loop, self.sock.fileno())
        for exchange in list(self.exchanges):
            exchange.close()


def _forget(loop: Any, fd: int) -> None:
    """Unregister ``fd``; a loop that has ended (its poller closed) or never had it: nothing to do."""
    try:
        loop.unregister(fd)
    except (OSError, KeyError, ValueError):
        pass


class _Exchange:
    """One client of :class:`LoopResponder`: its request head in, its answer out."""

    __slots__ = ("owner", "sock", "fd", "head", "out", "timer", "closed")

    def __init__(self, owner: LoopResponder, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.owner, self.sock, self.fd = owner, sock, sock.fileno()
        self.head = b""
        self.out = b""
        self.closed = False
        self.timer = owner.loop.call_later(owner.TIMEOUT, self.close)
        owner.loop.register(self.fd, EVENT_READ, self._on_event)

    def _on_event(self, _mask: int) -> None:
        if self.out:
            self._write()
            return
        while not self.closed:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not data:
                self.close()  # gone before its head ended: nobody to answer
                return
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if (end if end >= 0 else len(self.head)) > self.owner.MAX_HEAD:
                self._answer(431, b"request head too large\n", _TEXT, True)
                return
            if end >= 0:
                self._respond(self.head[:end])
                return

    def _respond(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._answer(400, b"bad request line\n", _TEXT, True)
            return
        method, target = parts[0], parts[1]
        accept = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        status, body, content_type = answer(method, target, accept, self.owner.render, self.owner.ready)
        self._answer(status, body, content_type, method != "HEAD")

    def _answer(self, status: int, body: bytes, content_type: str, with_body: bool) -> None:
        reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("",))[0]
        head = (f"HTTP/1.0 {status} {reason}\r\nServer: netcore-metrics\r\n"
                f"Date: {email.utils.formatdate(usegmt=True)}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n\r\n").encode("latin-1")
        self.out = head + body if with_body else head
        self.owner.loop.modify(self.fd, EVENT_WRITE)
        self._write()

    def _write(self) -> None:
        while self.out and not self.closed:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return  # the loop says when there is room
            except OSError:
                break
            self.out = self.out[sent:]
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.owner.exchanges.discard(self)
        _forget(self.owner.loop, self.fd)
        self.sock.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    render: Callable[[str | None], tuple[bytes, str]]
    ready: Callable[[], bool]
    #: A client that connects and sends nothing holds a thread this long at most.
    timeout = 10
    server_version = "netcore-metrics"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        status, data, content_type = answer(self.command, self.path, self.headers.get("Accept"), self.render,
                                            self.ready)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silent: a scrape every few seconds is not news, and the thread must not log (see module)."""

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent, as :meth:`log_message`."""
