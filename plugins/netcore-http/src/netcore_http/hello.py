"""The built-in app (no ``--app``): ``GET /`` answers ``Hello, World!``, anything else 404.

Not a WSGI app: it is the protocol's fast path, and what the benchmark compares with
uvicorn and nginx. Responses differ only in the Date line and the Connection header, so
all of them are prebuilt once a second.
"""

from __future__ import annotations

from netcore_http.responses import DATE, SERVER

_HELLO_BODY = b"Hello, World!"
_NOT_FOUND_BODY = b"Not Found\n"


#: How the Connection header is chosen (see ``Request.connection_mode``): HTTP/1.1
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


class HelloResponses:
    """Prebuilt responses of the current second."""

    __slots__ = ("_date", "_table")

    def __init__(self) -> None:
        self._date = b""
        self._table: dict = {}

    def table(self) -> dict[tuple[bool, int, bool], bytes]:
        date = DATE.header()
        if date is not self._date:
            self._table = _build(date)
            self._date = date
        return self._table


class HelloTable:
    """The table of the current second, for callers that check the second themselves."""

    __slots__ = ("second", "table", "_responses")

    def __init__(self) -> None:
        self._responses = HelloResponses()
        self.second = -1
        self.table: dict = {}

    def refresh(self, second: int) -> dict:
        self.table = self._responses.table()
        self.second = second
        return self.table
