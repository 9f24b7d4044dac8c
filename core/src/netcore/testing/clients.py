"""Plain blocking clients for tests of any plugin: connect, read exactly, round-trip.

Written the way a user's client would be (blocking sockets, a timeout on every call), so
that a test fails with a timeout instead of hanging when a server misbehaves.
"""

from __future__ import annotations

import socket
import threading
import time

#: Bound on every blocking call of these clients; only a broken server gets near it.
TIMEOUT = 30.0


def connect(address: tuple[str, int], *, bufsize: int | None = None, timeout: float = TIMEOUT) -> socket.socket:
    """A TCP connection to ``address``; ``bufsize`` shrinks both socket buffers (forces partial I/O)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    if bufsize:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    sock.settimeout(timeout)
    sock.connect(address)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only if the peer closed first."""
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def roundtrip(sock: socket.socket, payload: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send ``payload`` and read as many bytes back, sending and reading concurrently
    (a payload larger than both socket buffers would deadlock otherwise)."""
    errors: list[OSError] = []

    def send() -> None:
        try:
            sock.sendall(payload)
        except OSError as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    data = recv_exactly(sock, len(payload))
    sender.join(timeout)
    assert not errors, errors
    return data


def wait_until_served(address: tuple[str, int], payload: bytes = b"again", timeout: float = 10.0) -> None:
    """Connect and echo ``payload`` until a server answers it (after an overload it may
    refuse a few first); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with connect(address) as sock:
            sock.sendall(payload)
            try:
                if recv_exactly(sock, len(payload)) == payload:
                    return
            except ConnectionResetError:
                pass
        assert time.monotonic() < deadline, f"not served again within {timeout}s"
