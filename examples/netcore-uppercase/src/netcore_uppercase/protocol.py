"""A line protocol: each line received comes back upper-cased.

The split every netcore protocol follows:

* **Framing** (:meth:`UppercaseProtocol.data_received`) runs on the connection's I/O
  thread. It cuts the byte stream into lines, keeping a partial line until the rest
  arrives, and hands each line to ``self.connection.submit(handler, line)``.
* **Handling** (:func:`upper`) runs wherever the dispatcher puts it: inline on the loop,
  in a new thread, in a pool. It takes a request and returns the reply bytes; the
  connection writes replies in the order the requests were submitted.

Nothing here knows which scheme, poller or acceptor is in use, so the same code runs
under all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from netcore.protocol import Protocol

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.reactor.connection import Connection

#: Built once: per-request formatting shows up at the microsecond scale.
ERR_TOO_LONG = b"ERR line too long\n"


def upper(line: bytes) -> bytes:
    """The handler: the reply to a line is the line upper-cased (newline included)."""
    return line.upper()


def too_long(_line: bytes) -> bytes:
    """The handler for a refused line. It goes through ``submit`` like any other reply,
    so that it is written after the replies to the lines before it, whatever the scheme."""
    return ERR_TOO_LONG


class UppercaseProtocol(Protocol):
    """One per connection. ``max_line`` comes from the ``uppercase_max_line`` setting."""

    def __init__(self, connection: Connection, max_line: int = 65536) -> None:
        super().__init__(connection)
        self.max_line = max_line
        #: Bytes of a line whose newline has not arrived yet (never contains ``\n``).
        self._partial = b""

    @classmethod
    def configure(cls, config: Config) -> Callable[[Connection], UppercaseProtocol]:
        # Runs once, when the server is assembled: read settings here, not per connection.
        return functools.partial(cls, max_line=config.uppercase_max_line)

    def data_received(self, data: bytes) -> None:
        submit = self.connection.submit
        limit = self.max_line
        start = 0
        search_from = 0
        if self._partial:
            # The partial line holds no newline: search only the new bytes.
            search_from = len(self._partial)
            data = self._partial + data
            self._partial = b""
        while True:
            end = data.find(b"\n", search_from)
            if end < 0:
                break
            if end - start > limit:
                self._refuse()
                return
            submit(upper, data[start:end + 1])
            start = search_from = end + 1
        if len(data) - start > limit:
            # Refuse as soon as the line is too long, rather than buffer it without bound.
            self._refuse()
            return
        self._partial = data[start:]

    def eof_received(self) -> None:
        # The peer half-closed. A last line without a newline is still a line; its reply is
        # written before the connection closes (the connection waits for replies owed).
        if self._partial:
            line, self._partial = self._partial, b""
            self.connection.submit(upper, line)

    def _refuse(self) -> None:
        self._partial = b""
        self.connection.submit(too_long, b"")
        # close() stops reading and closes once every reply owed is written: the error
        # line reaches the peer, then FIN.
        self.connection.close()
