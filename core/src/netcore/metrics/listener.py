"""The metrics listener: ``GET /metrics``, ``/livez`` and ``/readyz`` on a port of its own.

Why a thread of its own, and not a connection on the server's loop: the same responder
must work under every scheme -- the blocking ones have no loop, the process schemes'
master has only a small supervision loop, and a reactor worker busy with a slow
handler must still answer its health check (a balancer that cannot reach ``/livez``
takes the instance out). A scrape is a few per minute; a thread costs nothing on the
per-event path, which never sees it. The responder is the standard library's
``http.server`` (one short-lived thread per request, HTTP/1.0, close after the
answer): three fixed paths need no more.

Under the process schemes the master runs it; workers forked from the master close
their copy of its socket at once (:meth:`MetricsListener.forget`), so the port is the
master's alone and dies with it. The thread holds no lock a forked child could
inherit half-taken: it never logs, and the figures it reads are plain attributes.
"""

from __future__ import annotations

import http.server
import socket
from typing import Any, Callable

from netcore.errors import SettingError
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
    """Serves the three paths on a thread until :meth:`close`."""

    def __init__(self, bind: str, render: Callable[[str | None], tuple[bytes, str]],
                 ready: Callable[[], bool]) -> None:
        family, host, port = parse_metrics_bind(bind)
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

    def start(self) -> None:
        self._thread = start_thread(self.httpd.serve_forever, 0.2, name="netcore-metrics")

    def close(self) -> None:
        """Stop serving and release the port (in the process that started it)."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()

    def forget(self) -> None:
        """In a forked child: close the inherited socket; the thread is the parent's."""
        self._thread = None
        self.httpd.socket.close()


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
        path = self.path.partition("?")[0]
        if path == "/metrics":
            data, content_type = self.render(self.headers.get("Accept"))
            self._send(200, data, content_type, body)
        elif path == "/livez":
            self._send(200, b"ok\n", "text/plain; charset=utf-8", body)
        elif path == "/readyz":
            if self.ready():
                self._send(200, b"ready\n", "text/plain; charset=utf-8", body)
            else:
                self._send(503, b"stopping\n", "text/plain; charset=utf-8", body)
        else:
            self._send(404, b"not found: /metrics, /livez, /readyz\n", "text/plain; charset=utf-8", body)

    def _send(self, status: int, data: bytes, content_type: str, body: bool) -> None:
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
