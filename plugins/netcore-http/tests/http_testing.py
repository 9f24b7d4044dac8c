"""Servers and raw-socket helpers for the http tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from netcore.testing.clients import TIMEOUT, connect
from netcore.testing.server_process import ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))
#: The schemes the HTTP suites run under; prefork is parametrized and skipped only when not installed.
SCHEMES = ("inline", "pool", "multi-reactor", "prefork")
APP = "http_apps:app"


def installed_dispatchers() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "netcore", "plugins", "--json"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return {entry["name"] for entry in json.loads(out)["families"].get("dispatch", [])
            if entry.get("available", True)}


_INSTALLED: set[str] | None = None


def require_scheme(scheme: str) -> None:
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = installed_dispatchers()
    if scheme not in _INSTALLED:
        pytest.skip(f"dispatch {scheme!r} is not listed by 'netcore plugins --json'")


def scheme_args(scheme: str) -> list[str]:
    args = ["--protocol", "http", "--dispatch", scheme]
    if scheme in ("pool", "multi-reactor-pool"):
        args += ["--threads", "4"]
    if scheme in ("multi-reactor", "prefork", "prethread-blocking"):
        args += ["--workers", "2"]
    return args


def server_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": HERE + (os.pathsep + path if path else "")}


def start(scheme: str, *extra: str) -> ServerProcess:
    require_scheme(scheme)
    return ServerProcess(*scheme_args(scheme), *extra, env=server_env()).start()


def read_until_close(sock: socket.socket, limit: int = 1 << 26) -> bytes:
    parts, size = [], 0
    while size < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def read_response(stream) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock.makefile("rb")``: sized by Content-Length, chunked, or until close."""
    line = stream.readline(65537)
    if not line:
        raise ConnectionError("closed before a response")
    status = int(line.split()[1])
    headers = {}
    while True:
        line = stream.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, headers, stream.read(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(stream.readline(100).split(b";")[0], 16)
            if not size:
                stream.readline(100)
                return status, headers, body
            body += stream.read(size)
            stream.readline(100)
    return status, headers, stream.read()


def raw_exchange(address, payload: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``payload``; return the first response and whether the server then closed."""
    with connect(address) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        status, headers, body = read_response(stream)
        try:
            closed = stream.read() == b""
        except ConnectionResetError:
            closed = True
    return status, headers, body, closed


class Datagrams:
    """A UDP socket the test apps report to (``port=`` in the query string)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []

    def wait_for(self, predicate, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        for message in self.seen:
            if predicate(message):
                return message
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching datagram within {timeout}s; seen {self.seen[-5:]}"
            self.sock.settimeout(remaining)
            message = self.sock.recv(4096).decode()
            self.seen.append(message)
            if predicate(message):
                return message

    def quiet_for(self, seconds: float) -> list[str]:
        """Collect datagrams until none arrived for ``seconds`` (bounded by 60 s overall)."""
        got = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.sock.settimeout(seconds)
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                return got
            self.seen.append(message)
            got.append(message)
        raise AssertionError("datagrams never stopped")

    def close(self) -> None:
        self.sock.close()
