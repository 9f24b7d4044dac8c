"""The built-in app (no ``--app``): ``GET /`` answers ``Hello, World!``, anything else 404.

Not a WSGI app: it is the protocol's fast path, and what the benchmark compares with
uvicorn and nginx. Responses differ only in the Date line and the Connection header, so
all of them are prebuilt once a second.
"""

from __future__ import annotations

import time

from netcore_http.responses import DATE, SERVER

_HELLO_BODY = b"Hello, World!"
_NOT_FOUND_BODY = b"Not Found\n"


#: How the Connection header is chosen (the request tuple's ``mode``): HTTP/1.1
#: keep-alive says nothing, closing says ``close``, HTTP/1.0 keep-alive must say so.
CONNECTION_HEADERS = (b"\r\n", b"\r\nConnection: close\r\n", b"\r\nConnection: keep-alive\r\n")


def _build(date: bytes) -> dict[tuple[bool, int, bool], bytes]:
    """(found, connection mode, head) -> response bytes, for one Date line."""
    table = {}
    for found in (True, False):
        status, body = (b"200 OK", _HELLO_BODY) if found else (b"404 Not Found", _NOT_FOUND_BODY)
        for mode, connection in enumerate(CONNECTION_HEADERS):
            for head in (True, False):
                response = (
                    b"HTTP/1.1 " + status + b"\r\nServer: " + SERVER + b"\r\n" + date
                    + b"\r\nContent-Type: text/plain\r\nContent-Length: " + str(len(body)).encode()
                    + connection + b"\r\n"
                )
                table[found, mode, head] = response if head else response + body
    return table


class HelloTable:
    """The prebuilt responses of the current second.

    :meth:`current` takes a ``time.monotonic()`` reading the caller already has (the
    protocol reads the clock once per read): while it is before the end of the second
    the table was built in, the table is returned without another clock call. The end is
    mapped from wall to monotonic time at each rebuild, so a wall-clock step shows in
    the Date line within a second.
    """

    __slots__ = ("until", "table", "_date")

    def __init__(self) -> None:
        self.until = -1.0
        self.table: dict = {}
        self._date = b""

    def current(self, now: float) -> dict[tuple[bool, int, bool], bytes]:
        if now < self.until:
            return self.table
        return self._refresh()

    def _refresh(self) -> dict[tuple[bool, int, bool], bytes]:
        wall = time.time()
        mono = time.monotonic()
        date = DATE.header(wall)
        if date is not self._date:
            self.table = _build(date)  # the table before the bound: readers on other threads
            self._date = date
        self.until = mono + (int(wall) + 1 - wall)
        return self.table
