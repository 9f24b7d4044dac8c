"""Where a response producer puts its bytes: the one object the WSGI host talks to.

A producer (the WSGI host, the built-in app) appends response pieces here; small ones
are collected and handed to the connection in one piece per batch (one ``send`` for
every response of a pipelined read), large ones are handed on as they reach
:data:`~netcore_http.request.STREAM_FLUSH`, and each block of a body produced over
time (a generator) as it comes (:meth:`ResponseOutput.stream`). Flow control is the
connection's (``connection.send``, see ``netcore.reactor.base``): on a handler thread
it waits while the peer is slow; on the I/O thread it returns False and the producer
suspends until ``resume_writing``. The producer never learns which of the two it is on.
"""

from __future__ import annotations

from typing import Any

from netcore_http.request import STREAM_FLUSH


class ResponseOutput:
    """The response bytes of one connection's current batch, and its stream state."""

    __slots__ = ("connection", "parts", "size", "suspended", "environ_base", "trusted")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.parts: list[bytes] = []
        self.size = 0
        #: The response whose body waits for the output to drain (I/O thread only).
        self.suspended: Any = None
        #: What every environ of this connection shares, built at its first request.
        self.environ_base: dict | None = None
        #: The peer is a trusted proxy (forwarded_allow_ips), decided with environ_base.
        self.trusted = False

    def append(self, data: bytes) -> None:
        """Add a piece that ends a response or is known to be small (no flush check)."""
        self.parts.append(data)

    def emit(self, data: bytes) -> bool:
        """Add a piece of a streamed body; False: the producer must stop for now."""
        self.parts.append(data)
        self.size += len(data)
        if self.size < STREAM_FLUSH:
            return True
        return self.flush()

    def stream(self, data: bytes) -> bool:
        """Hand a block of a body produced over time to the connection now, after what is
        collected before it; False: the producer must stop for now.

        PEP 3333 forbids holding a block back: the app may wait before its next one (an
        event stream, a progress report), and the client must have this one meanwhile.
        """
        parts = self.parts
        if parts:
            parts.append(data)
            data = b"".join(parts)
            parts.clear()
            self.size = 0
        return self.connection.send(data)

    def flush(self) -> bool:
        """Hand what is collected to the connection; False: output is above high water."""
        parts = self.parts
        data = b"".join(parts)
        parts.clear()
        self.size = 0
        return self.connection.send(data)

    def take(self) -> bytes:
        """What is collected, as one piece (the batch's reply); the collection restarts."""
        parts = self.parts
        if not parts:
            return b""
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.parts = []
        self.size = 0
        return data

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send file bytes directly where the connection can now; returns how many."""
        return self.connection.sendfile(fd, offset, count)

    def count_error(self) -> None:
        self.connection.count_error()
