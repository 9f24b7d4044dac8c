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


def recv_until_eof(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Everything the peer sends until it closes (a reset ends it too), within ``timeout``
    seconds in all: a server that never closes fails the test instead of hanging it."""
    got = b""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"no EOF within {timeout}s; got {got[-200:]!r}"
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


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


class Client:
    """A blocking client that keeps count: every request sent must get its reply.

    ``send(data, requests=n)`` counts ``n`` requests; each read of one reply
    (:meth:`read_exactly`, :meth:`read_line`, or a protocol's own reader built on them)
    is followed by :meth:`answered`. An EOF while replies are owed fails with the count
    (``EOF after 37 of 100 replies``) instead of returning short data, so a server that
    drops a connection with work in flight cannot pass as a short reply. Every read has a
    deadline (``timeout`` seconds from the call), so a silent server fails the test.
    """

    def __init__(self, address: tuple[str, int], *, rcvbuf: int | None = None, sndbuf: int | None = None,
                 timeout: float = TIMEOUT) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if rcvbuf:  # before connect(): the window scale is agreed in the handshake
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.timeout = timeout
        self.buffer = bytearray()
        self.sent = 0
        self.received = 0
        #: Largest single recv(); a slow reader lowers it.
        self.chunk = 1 << 20

    # -- counting ----------------------------------------------------------------------------
    def send(self, data: bytes, requests: int = 1) -> None:
        self.sock.sendall(data)
        self.sent += requests

    def answered(self, replies: int = 1) -> None:
        self.received += replies
        assert self.received <= self.sent, f"{self.received} replies to {self.sent} requests"

    @property
    def owed(self) -> int:
        return self.sent - self.received

    def assert_all_answered(self) -> None:
        assert self.received == self.sent, f"{self.received} replies to {self.sent} requests"

    # -- reading -----------------------------------------------------------------------------
    def fill(self, deadline: float) -> None:
        """One ``recv`` (at most :attr:`chunk` bytes) into :attr:`buffer`; fails on EOF, a
        reset or the deadline. A timeout shorter than the deadline just returns."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no reply within {self.timeout}s: {self.received} of {self.sent} replies, "
                                 f"{len(self.buffer)} bytes of a partial one")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(self.chunk)
        except TimeoutError:
            chunk = None
        except ConnectionResetError as exc:
            raise AssertionError(f"connection reset after {self.received} of {self.sent} replies") from exc
        if chunk is None:
            return
        if not chunk:
            raise AssertionError(f"EOF after {self.received} of {self.sent} replies "
                                 f"({len(self.buffer)} bytes of a partial one: {bytes(self.buffer[:80])!r})")
        self.buffer += chunk

    def read_exactly(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        while len(self.buffer) < n:
            self.fill(deadline)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_line(self, limit: int = 1 << 16) -> bytes:
        """Up to and including the next ``\\n``."""
        deadline = time.monotonic() + self.timeout
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                return self.read_exactly(end + 1)
            assert len(self.buffer) <= limit, f"no newline in {len(self.buffer)} bytes"
            self.fill(deadline)

    def read_eof(self, timeout: float | None = None) -> None:
        """Fail unless the peer closes next, with nothing before the FIN (a reset fails too)."""
        assert not self.buffer, f"{len(self.buffer)} unexpected bytes before EOF: {bytes(self.buffer[:80])!r}"
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            extra = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"the server did not close within {self.sock.gettimeout()}s") from None
        except ConnectionResetError:
            raise AssertionError("connection reset instead of a clean EOF") from None
        assert extra == b"", f"{len(extra)} unexpected bytes instead of EOF: {extra[:80]!r}"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
