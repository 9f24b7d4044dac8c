"""A counting HTTP/1.1 load for restart tests: every request sent, every response read.

Keep-alive connections in threads; ``Connection: close`` in a response (the server's
way of saying "go elsewhere") is honoured by reconnecting; nothing is ever retried, so
a request the server loses is counted, separately from a refused connect (nothing was
sent). EOF or a reset after a sent request is a loss.
"""

from __future__ import annotations

import re
import socket
import threading
import time


class HttpLoad:
    """``connections`` keep-alive clients in threads, counting everything."""

    def __init__(self, address: tuple[str, int], connections: int = 8, path: str = "/") -> None:
        self.address = address
        self.request = (f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").encode()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"sent": 0, "received": 0, "told_to_close": 0, "refused": 0}
        #: Requests sent and never answered: EOF or reset after the request (the losses).
        self.lost: list[str] = []
        self.bodies: set[bytes] = set()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(connections)]

    def __enter__(self) -> HttpLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"

    def _count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def wait_for(self, responses: int, timeout: float = 30.0) -> None:
        goal = self.counts["received"] + responses
        deadline = time.monotonic() + timeout
        while self.counts["received"] < goal:
            assert time.monotonic() < deadline, f"load stalled: {self.counts} {self.lost[:3]}"
            assert not self.lost, self.lost[:3]
            self.done.wait(0.02)

    def _run(self, index: int) -> None:
        sock: socket.socket | None = None
        while not self.done.is_set():
            if sock is None:
                try:
                    sock = socket.create_connection(self.address, timeout=30)
                except ConnectionRefusedError:
                    self._count("refused")  # nothing sent: not a lost request
                    self.done.wait(0.01)
                    continue
                buffer = b""
                served = 0
            try:
                sock.sendall(self.request)
            except OSError as exc:
                # The request may be partly in the kernel: count it as sent and lost.
                self._count("sent")
                self.lost.append(f"client {index}: send failed: {exc!r}")
                sock.close()
                sock = None
                continue
            self._count("sent")
            try:
                head, body, buffer = read_response(sock, buffer)
            except (OSError, EOFError) as exc:
                self.lost.append(f"client {index}: no response to request {served + 1} of its connection: {exc!r}")
                sock.close()
                sock = None
                continue
            self._count("received")
            served += 1
            self.bodies.add(body)
            if b"\r\nconnection: close" in head.lower():
                self._count("told_to_close")
                sock.close()
                sock = None
        if sock is not None:
            sock.close()


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes, bytes]:
    """One response (head, body, what follows); EOFError if the peer closed first."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"EOF after {len(buffer)} bytes of a response")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("EOF inside a response body")
        rest += chunk
    return head, rest[:length], rest[length:]


def assert_no_loss(load: HttpLoad) -> None:
    assert not load.lost, f"{len(load.lost)} lost of {load.counts['sent']}: {load.lost[:5]}"
    assert load.counts["sent"] == load.counts["received"], load.counts
