"""RFC 862 echo: the smallest protocol that still has requests and replies.

Each chunk a ``recv`` returns is one request. Under the inline scheme ``submit`` runs
:func:`echo` at once and writes the reply; under a pool it runs on a worker thread and
the connection puts replies back in order.
"""

from __future__ import annotations

from netcore.protocol import Protocol


def echo(request: bytes) -> bytes:
    """The handler: the reply is the request."""
    return request


class EchoProtocol(Protocol):
    def data_received(self, data: bytes) -> None:
        self.connection.submit(echo, data)
