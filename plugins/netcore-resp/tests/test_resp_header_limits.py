"""A header announcing a huge array is refused at once, without freezing the other clients.

The fast path handed such a read to hiredis, which allocates the whole list when it reads
the header (``*2147483647``: gigabytes, and seconds of the loop to build and release it;
``*4294967295``: a MemoryError and a close without reply). These reads now go to the
reference parser, which checks the count first, and get Redis's own error.
"""

from __future__ import annotations

import socket
import time

import pytest
from netcore.testing.clients import recv_until_eof

PATIENCE = 10.0
#: Another client's PING may not wait longer than this while the header is refused.
PING_BOUND = 0.05

INVALID = b"-ERR Protocol error: invalid multibulk length\r\n"
#: (header, the reply before the close, whether redis-server answers it at once too). Redis
#: refuses a count above INT_MAX at once and waits for the elements of a smaller one;
#: netcore refuses any count above ``resp_max_multibulk`` (docs/resp.md).
HEADERS = [
    (b"*4294967295\r\n", INVALID, True),
    (b"*2147483648\r\n", INVALID, True),
    (b"*2147483647\r\n", INVALID, False),
    (b"*1000000000\r\n", INVALID, False),
    (b"*2\r\n*1000000000\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n", True),
    (b"*1\r\n>1000000000\r\n", b"-ERR Protocol error: expected '$', got '>'\r\n", True),
    (b"*1\r\n~2147483647\r\n", b"-ERR Protocol error: expected '$', got '~'\r\n", True),
    (b"*1\r\n$4\r\nPING\r\n*2\r\n*1000000000\r\n", b"+PONG\r\n-ERR Protocol error: expected '$', got '*'\r\n",
     True),
]


@pytest.mark.parametrize("header, expected, as_redis", HEADERS,
                         ids=[h.decode().replace("\r\n", " ").strip() for h, _, _ in HEADERS])
def test_a_huge_array_header_is_refused_at_once_with_redis_error(scheme_server, redis_server, header, expected,
                                                                 as_redis):
    if as_redis:
        with socket.create_connection(redis_server, timeout=PATIENCE) as sock:
            sock.sendall(header)
            assert recv_until_eof(sock, PATIENCE) == expected
    with socket.create_connection(scheme_server.address, timeout=PATIENCE) as other, \
            socket.create_connection(scheme_server.address, timeout=PATIENCE) as sender:
        other.sendall(b"PING\r\n")
        assert other.recv(16) == b"+PONG\r\n"
        sender.sendall(header)
        sender.setblocking(False)
        got, closed, worst, pings = b"", False, 0.0, 0
        deadline = time.monotonic() + PATIENCE
        # PINGs while the header is refused, and a few after: the freeze was in building
        # hiredis's list and again in releasing it.
        while (not closed or pings < 5) and time.monotonic() < deadline:
            started = time.monotonic()
            other.sendall(b"PING\r\n")
            assert other.recv(16) == b"+PONG\r\n"
            worst = max(worst, time.monotonic() - started)
            pings += 1
            if not closed:
                try:
                    chunk = sender.recv(65536)
                    got += chunk
                    closed = not chunk
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed = True
        assert closed, f"no close within {PATIENCE}s; got {got!r}"
    assert got == expected
    assert worst < PING_BOUND, f"another client's PING took {worst:.3f}s"
