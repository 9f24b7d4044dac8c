"""Bytes the server sends on its own: status lines, the Date header, error responses.

Everything constant is built once at import. The ``Date`` header changes once a second,
so it is formatted at most once a second (per process) and shared by every response of
that second: formatting it per request costs more than the rest of a hello response.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

#: ``200`` -> ``b"200 OK"`` for every status the stdlib knows.
STATUS_LINES = {int(s): f"{int(s)} {s.phrase}".encode("latin-1") for s in HTTPStatus}

SERVER = b"netcore"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class DateCache:
    """``Date: ...`` for the current second; recomputed at most once a second.

    Shared by the threads of one process. A race between two threads refreshing it at
    the turn of a second is harmless: both compute the same text and a tuple assignment
    is atomic.
    """

    __slots__ = ("_cached", "until", "_line")

    def __init__(self) -> None:
        self._cached = (-1, b"")
        self.until = -1.0
        self._line = b""

    def header(self, now: float | None = None) -> bytes:
        """The full header line without CRLF: ``b"Date: Tue, 15 Nov 1994 08:12:31 GMT"``."""
        second = int(time.time() if now is None else now)
        cached = self._cached
        if cached[0] != second:
            cached = (second, b"Date: " + formatdate(second, usegmt=True).encode("ascii"))
            self._cached = cached
        return cached[1]

    def line(self, monotonic_now: float) -> bytes:
        """The header line with its CRLF, for a ``time.monotonic()`` reading the caller has.

        No clock call while the reading is before the end of the cached second (mapped
        from wall to monotonic time at each refresh, so a wall-clock step shows within a
        second): the protocol already reads the monotonic clock once per read.
        """
        if monotonic_now < self.until:
            return self._line
        wall = time.time()
        mono = time.monotonic()
        self._line = self.header(wall) + b"\r\n"  # the line before the bound: other threads
        self.until = mono + (int(wall) + 1 - wall)
        return self._line


DATE = DateCache()


def error_body_length(status: int, message: str = "") -> int:
    """The body size of ``error_response(status, message)`` (for the access log)."""
    line = STATUS_LINES.get(status) or f"{status} Error".encode("latin-1")
    return len(message or line.decode("latin-1")) + 1


def error_response(status: int, message: str = "", *, head: bool = False) -> bytes:
    """A complete plain-text error response that closes the connection."""
    line = STATUS_LINES.get(status) or f"{status} Error".encode("latin-1")
    body = (message or line.decode("latin-1")).encode("latin-1", "replace") + b"\n"
    head_bytes = (
        b"HTTP/1.1 " + line + b"\r\nServer: " + SERVER + b"\r\n" + DATE.header() + b"\r\n"
        b"Content-Type: text/plain; charset=latin-1\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    return head_bytes if head else head_bytes + body
