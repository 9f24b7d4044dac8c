"""The HTTP plugin's vocabulary: a parsed request, its connection mode, the outcome of
answering it, and the limits. One small module that the framing (``protocol.py``), the
WSGI host (``wsgi.py``) and the built-in app import, so that neither imports the other.
"""

from __future__ import annotations

from typing import Any

from netcore.protocol import ConnectionClosed

#: What answering a batch left to do: keep the connection, close it after this
#: response, wait for the output to drain (a stream suspended on the I/O thread), or
#: nothing at all because the client is gone.
DONE, CLOSE, SUSPENDED, GONE = range(4)

#: Parser phases: between requests, inside a request head, inside a body.
IDLE, HEAD, BODY = range(3)

#: Connection modes (which Connection header a response carries): HTTP/1.1 keep-alive
#: says nothing, closing says ``close``, HTTP/1.0 keep-alive must say ``keep-alive``.
KEEP_ALIVE_11, CLOSE_MODE, KEEP_ALIVE_10 = range(3)

#: A parsed request is a plain tuple -- building one costs a fraction of an object's
#: ``__init__`` call, and this happens for every request:
#: ``(method, url, version, headers, body, mode, error)``, ``error`` None or, for a
#: refused request, ``(status, message)``.
METHOD, URL, VERSION, HEADERS, BODY, MODE, ERROR = range(7)

#: Streamed output is handed to the connection in pieces of about this size.
STREAM_FLUSH = 64 * 1024

#: The connection closed while a response was being produced.
ClientGone = ConnectionClosed


def refused(status: int, message: str, method: bytes = b"", target: bytes = b"") -> tuple:
    """The request tuple of a request the server refuses itself (answered, then closed);
    its method and target where its head was read whole."""
    return (method, target, "1.1", [], b"", CLOSE_MODE, (status, message))


class Limits:
    """The settings the protocol reads, resolved once at start."""

    def __init__(self, config: Any) -> None:
        get = config.get
        self.max_request_line = get("max_request_line", 8190)
        self.max_header_count = get("max_header_count", 100)
        self.max_header_field = get("max_header_field", 8190)
        self.max_header_bytes = get("max_header_bytes", 65536)
        self.max_body_size = get("max_body_size", 1 << 30)
        self.body_buffer_size = get("body_buffer_size", 512 << 10)
        self.root_path = (get("root_path", "") or "").rstrip("/")
        self.forwarded_allow_ips = get("forwarded_allow_ips", "127.0.0.1")
        self.header_timeout = get("header_timeout", 10.0)
        self.body_timeout = get("body_timeout", 30.0)
        self.keepalive_timeout = get("keepalive_timeout", 5.0)
        # A file to log to turns the access log on, as gunicorn's --access-logfile does.
        self.access_log = get("access_log", False) or bool(get("access_log_file", ""))
        #: The AccessLog (set by the protocol at start when the access log is on).
        self.access: Any = None
        # A head can never honestly be longer than this; bytes beyond it are refused
        # even before the parser reports a complete field (bounds its buffering).
        self.max_raw_head = self.max_request_line + self.max_header_bytes + 4096
