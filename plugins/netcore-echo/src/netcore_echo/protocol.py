"""RFC 862 echo: the smallest protocol that still has requests and replies.

Each chunk a ``recv`` returns is one request. Under the inline scheme ``submit`` runs
the handler at once and writes the reply; under a pool it runs on a worker thread and
the connection puts replies back in order.

``echo_delay`` and ``echo_burn`` make the handler slow (blocking, or burning CPU) so that
tests and benchmarks can show what each scheme does with slow handlers: the essay's
argument for moving work off the I/O thread.
"""

from __future__ import annotations

import functools
import time

from netcore.protocol import Protocol


def echo(request: bytes) -> bytes:
    """The handler: the reply is the request."""
    return request


def slow_echo(request: bytes, *, delay: float, burn: float) -> bytes:
    """The handler with work: block for ``delay`` seconds, burn ``burn`` seconds of CPU."""
    if delay:
        time.sleep(delay)
    if burn:
        end = time.thread_time() + burn
        while time.thread_time() < end:
            pass
    return request


class EchoProtocol(Protocol):
    @classmethod
    def configure(cls, config):
        delay = config.get("echo_delay", 0.0)
        burn = config.get("echo_burn", 0.0)
        if not delay and not burn:
            return cls
        handler = functools.partial(slow_echo, delay=delay, burn=burn)

        class SlowEchoProtocol(cls):
            def data_received(self, data: bytes) -> None:
                self.connection.submit(handler, data)

        return SlowEchoProtocol

    def data_received(self, data: bytes) -> None:
        # ``echo`` as a global, not an attribute: this line runs once per message.
        self.connection.submit(echo, data)
