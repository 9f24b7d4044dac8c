"""The http protocol under every installed dispatch scheme, through ``ProtocolContract``.

Two servers per scheme family: the built-in hello app (the protocol's fast path, no
WSGI) and a WSGI app from ``http_apps`` (the WSGI host: a streamed 6 MiB body, an app
that raises). Responses carry a ``Date`` line, so they are parsed and compared as
``b"<status> <body>"``; the body is compared byte for byte.
"""

from __future__ import annotations

from http_testing import server_env
from netcore.testing.clients import Client
from netcore.testing.protocol_contract import ProtocolContract

#: The streamed body: 96 chunks of 64 KiB, more than the socket buffers on both sides hold.
CHUNKS, CHUNK = 96, 65536


def get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: contract", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(client: Client) -> bytes:
    """One response, framed by Content-Length or chunked, as ``b"<status> <body>"``."""
    status = int(client.read_line().split()[1])
    headers = {}
    while True:
        line = client.read_line()
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = client.read_exactly(int(headers["content-length"]))
    else:
        assert headers.get("transfer-encoding") == "chunked", f"response not framed: {headers}"
        parts = []
        while True:
            size = int(client.read_line().split(b";")[0], 16)
            if not size:
                assert client.read_line() == b"\r\n"
                break
            parts.append(client.read_exactly(size))
            assert client.read_exactly(2) == b"\r\n"
        body = b"".join(parts)
    return b"%d " % status + body


class TestHttpHelloContract(ProtocolContract):
    """The built-in app: ``GET /`` is Hello, World!, anything else a 404 (prebuilt)."""

    protocol = "http"

    def request(self, i):
        return get("/" if i % 2 == 0 else f"/missing/{i}")

    def reply(self, i):
        return b"200 Hello, World!" if i % 2 == 0 else b"404 Not Found\n"

    def read_reply(self, client, expected):
        return read_response(client)

    def closing_request(self):
        return get("/", "Connection: close"), b"200 Hello, World!"


class TestHttpWsgiContract(ProtocolContract):
    """A WSGI app (``http_apps``, wrapped in ``wsgiref.validate`` where it keeps the rules)."""

    protocol = "http"
    serve_args = ("--app", "http_apps:app")

    def server_env(self):
        return server_env()

    def request(self, i):
        return get(f"/vary?n={i}")

    def reply(self, i):
        return b"200 %d" % i

    def read_reply(self, client, expected):
        return read_response(client)

    def large_request(self):
        return get(f"/stream?count={CHUNKS}&size={CHUNK}"), b"200 " + (b"x" * (CHUNK - 1) + b"\n") * CHUNKS

    def closing_request(self):
        return get("/vary?n=last", "Connection: close"), b"200 last"

    def failing_request(self):
        # The app raises before start_response: a 500, then the server closes.
        return get("/fail-before"), b"500 internal server error\n"
