"""What the server owes the client in a response, whatever the app asks for.

The apps are defined here and served by real ``netcore serve`` processes (the server
imports this module: the tests put this directory on its PYTHONPATH):

* a streamed WSGI body reaches the client block by block, as the app yields it or
  passes it to ``write()`` (PEP 3333, "Buffering and Streaming"), under ``inline``
  (produced on the I/O thread) and ``pool`` (on a handler thread);
* a 1xx status as the final response is an app error: the client gets a 500;
* a URL fragment sent in an origin-form target is no part of the path or query;
* a 204 carries no Content-Length, a 304 keeps the app's;
* an ASGI header given as str is refused with an error that says why.

An app that must wait for the test waits on a ``threading.Event`` that a UDP datagram
from the test sets: the test sends it only once it has seen what it waits for, and
every wait on either side is bounded.
"""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import parse_qs

import pytest
from http_testing import raw_exchange, read_response, start
from netcore.testing.clients import TIMEOUT, connect, recv_until_eof

WSGI_APP = "test_http_response_rules:wsgi_app"
ASGI_APP = "test_http_response_rules:asgi_app"
#: How long an app waits for the test's go-ahead, and how long the test waits for the
#: first block: a block held back until the app goes on arrives after the first bound,
#: so well after the second.
GATE_WAIT = 15.0
FIRST_BLOCK_WAIT = 5.0
#: In the query string of the requests whose failure is logged: it must not reach the log.
SECRET = "SECRET-token-7731"


# -- the apps (run in the server process) --------------------------------------------------
class Gate:
    """A ``threading.Event`` set by one datagram to :attr:`port`, or never (bounded)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(GATE_WAIT)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        try:
            self.sock.recv(16)
        except OSError:
            return
        finally:
            self.sock.close()
        self.event.set()

    def wait(self) -> bytes:
        return b"released\n" if self.event.wait(GATE_WAIT) else b"timed out\n"


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/gated-generator":
        # The first block names the gate: the test can open it only once it has that block.
        gate = Gate()
        start_response("200 OK", [("Content-Type", "text/plain")])

        def blocks():
            yield b"gate %d\n" % gate.port
            yield gate.wait()

        return blocks()
    if path == "/gated-write":
        gate = Gate()
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"gate %d\n" % gate.port)
        return [gate.wait()]
    if path == "/status":
        start_response(query["status"], [("Content-Type", "text/plain")])
        return [b""]
    if path == "/no-content":
        start_response(query["status"], [("Content-Length", "5"), ("X-Kept", "yes")])
        body = [b"hello"]
        return iter(body) if query.get("form") == "iterator" else body
    if path == "/vary-list":  # not the one-string path: several strings, each header checked again
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"b"]
    data = json.dumps({"path": environ["PATH_INFO"], "query": environ["QUERY_STRING"],
                       "raw_uri": environ["RAW_URI"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/status":
        await send({"type": "http.response.start", "status": int(query["status"]), "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/no-content":
        await send({"type": "http.response.start", "status": int(query["status"]),
                    "headers": [(b"content-length", b"5"), (b"x-kept", b"yes")]})
        await send({"type": "http.response.body", "body": b"hello"})
        return
    if path == "/str-headers":
        await send({"type": "http.response.start", "status": 200, "headers": [("x-made-by", "a str")]})
        await send({"type": "http.response.body", "body": b"never sent"})
        return
    data = json.dumps({"path": scope["path"], "raw_path": scope["raw_path"].decode("latin-1"),
                       "query": scope["query_string"].decode("latin-1")}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


# -- servers -------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["inline", "pool"])
def wsgi_server(request):
    server = start(request.param, "--app", WSGI_APP)
    yield server
    assert server.stop() == 0, server.describe()


@pytest.fixture(scope="module")
def asgi_server():
    server = start("inline", "--app", ASGI_APP)
    yield server
    assert server.stop() == 0, server.describe()


def get(target: bytes, *fields: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def exchange(sock, stream, payload: bytes) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(payload)
    return read_response(stream)


def app_failures(server) -> int:
    return len(server.events_named("http.app_failed"))


def next_failure(server, before: int) -> dict:
    """The ``http.app_failed`` event after the first ``before`` (the servers are the
    module's and its tests run one after another: the next such event is the test's)."""
    return server.wait_events("http.app_failed", before + 1)[-1]


def error_text(event: dict) -> str:
    return " ".join(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in event.get("exception", []))


def assert_no_secret(server) -> None:
    everything = "\n".join([json.dumps(event) for event in server.events] + server.other_lines)
    assert SECRET not in everything, "request data reached the log"


# -- no block of a streamed WSGI body is held back -----------------------------------------
@pytest.mark.parametrize("form", ["generator", "write"])
def test_each_streamed_block_reaches_the_client_before_the_app_goes_on(wsgi_server, form):
    with connect(wsgi_server.address, timeout=FIRST_BLOCK_WAIT) as sock, sock.makefile("rb") as stream:
        sock.sendall(get(b"/gated-" + form.encode()))
        try:
            assert stream.readline(1000).startswith(b"HTTP/1.1 200 ")
            head = []
            while (line := stream.readline(1000)) not in (b"\r\n", b""):
                head.append(line.lower())
                assert len(head) < 20, head
            assert b"transfer-encoding: chunked\r\n" in head, head
            size = int(stream.readline(100), 16)
            block = stream.read(size)
            assert stream.readline(100) == b"\r\n"
        except TimeoutError:
            pytest.fail(f"the first block did not arrive within {FIRST_BLOCK_WAIT}s while the app waited")
        assert block.startswith(b"gate "), block
        # Only now may the app go on.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as go:
            go.sendto(b"go", ("127.0.0.1", int(block.split()[1])))
        sock.settimeout(TIMEOUT)
        size = int(stream.readline(100), 16)
        assert stream.read(size) == b"released\n"
        assert stream.readline(100) == b"\r\n" and stream.readline(100) == b"0\r\n" and stream.readline(100) == b"\r\n"
        # The connection is still in sync, and a list is framed as before.
        status, headers, body = exchange(sock, stream, get(b"/vary-list"))
        assert (status, body) == (200, b"ab"), (status, headers, body)


# -- a 1xx is not a final response ---------------------------------------------------------
@pytest.mark.parametrize("status", ["100 Continue", "101 Switching Protocols", "103 Early Hints", "199 Odd"])
def test_a_wsgi_app_answering_1xx_gets_a_500(wsgi_server, status):
    target = b"/status?status=" + status.replace(" ", "+").encode() + b"&token=" + SECRET.encode()
    before = app_failures(wsgi_server)
    code, headers, body, closed = raw_exchange(wsgi_server.address, get(target))
    assert (code, body) == (500, b"internal server error\n"), (code, headers, body)
    assert headers.get("connection") == "close" and closed
    event = next_failure(wsgi_server, before)
    assert "is not a final status (1xx is interim)" in error_text(event), event
    assert_no_secret(wsgi_server)


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_an_asgi_app_answering_1xx_gets_a_500(asgi_server, status):
    target = b"/status?status=%d&token=%b" % (status, SECRET.encode())
    # Pipelined behind it: nothing may be read as the answer to a switched protocol.
    before = app_failures(asgi_server)
    code, headers, body, closed = raw_exchange(asgi_server.address, get(target) + get(b"/after"))
    assert (code, body) == (500, b"internal server error\n"), (code, headers, body)
    assert headers.get("connection") == "close" and closed
    event = next_failure(asgi_server, before)
    assert "(1xx is interim)" in error_text(event), event
    assert_no_secret(asgi_server)


# -- the fragment --------------------------------------------------------------------------
TARGETS = [
    # (target, path, query) -- origin-form with a fragment, then absolute-form, which
    # httptools.parse_url has always split the same way.
    (b"/a?x=1#frag", "/a", "x=1"),
    (b"/a#frag", "/a", ""),
    (b"/a%20b#frag?not=query", "/a b", ""),
    (b"/a?x=%20#f#g", "/a", "x=%20"),
    (b"/#", "/", ""),
    (b"http://example.com:8080/a?x=1#frag", "/a", "x=1"),
]


@pytest.mark.parametrize(("target", "path", "query"), TARGETS)
def test_wsgi_path_and_query_leave_the_fragment_out(wsgi_server, target, path, query):
    with connect(wsgi_server.address) as sock, sock.makefile("rb") as stream:
        for _ in range(2):  # the second time from the request-line cache
            status, _, body = exchange(sock, stream, get(target))
            assert status == 200
            assert json.loads(body) == {"path": path, "query": query, "raw_uri": target.decode()}


@pytest.mark.parametrize(("target", "path", "query"), TARGETS)
def test_asgi_path_and_query_leave_the_fragment_out(asgi_server, target, path, query):
    raw_path = {"/a b": "/a%20b"}.get(path, path)
    with connect(asgi_server.address) as sock, sock.makefile("rb") as stream:
        for _ in range(2):  # the second time from the target cache
            status, _, body = exchange(sock, stream, get(target))
            assert status == 200
            assert json.loads(body) == {"path": path, "raw_path": raw_path, "query": query}


# -- no Content-Length in a 204 ------------------------------------------------------------
@pytest.mark.parametrize("form", ["list", "iterator"])
def test_a_wsgi_204_drops_the_apps_content_length_and_a_304_keeps_it(wsgi_server, form):
    _assert_204_without_and_304_with_length(
        wsgi_server, get(b"/no-content?status=204+No+Content&form=" + form.encode())
        + get(b"/no-content?status=304+Not+Modified&form=" + form.encode()), b"X-Kept", b"Content-Length")


def test_an_asgi_204_drops_the_apps_content_length_and_a_304_keeps_it(asgi_server):
    _assert_204_without_and_304_with_length(
        asgi_server, get(b"/no-content?status=204") + get(b"/no-content?status=304"), b"x-kept", b"content-length")


def _assert_204_without_and_304_with_length(server, requests: bytes, kept: bytes, length: bytes) -> None:
    """``requests`` (a 204 then a 304, each with the app's Content-Length: 5 and X-Kept),
    then one more: the 204 has no length and no body, the 304 keeps the app's length
    without a body, and the request after both is answered. Header names as the app's
    interface spells them (WSGI's as given, ASGI's lower case)."""
    with connect(server.address) as sock:
        sock.sendall(requests + get(b"/after", b"Connection: close"))
        data = recv_until_eof(sock)
    no_content, not_modified, last = data.split(b"HTTP/1.1 ")[1:]
    assert no_content.startswith(b"204 ") and b"\r\n" + kept + b": yes\r\n" in no_content
    assert b"content-length" not in no_content.lower() and b"transfer-encoding" not in no_content.lower()
    assert no_content.endswith(b"\r\n\r\n")  # no body
    assert not_modified.startswith(b"304 ") and b"\r\n" + length + b": 5\r\n" in not_modified
    assert not_modified.endswith(b"\r\n\r\n")
    assert last.startswith(b"200 ") and b'"path": "/after"' in last


# -- ASGI headers given as str -------------------------------------------------------------
def test_asgi_headers_as_str_are_an_app_error_that_says_so(asgi_server):
    before = app_failures(asgi_server)
    code, headers, body, closed = raw_exchange(asgi_server.address, get(b"/str-headers?token=" + SECRET.encode()))
    assert (code, body) == (500, b"internal server error\n"), (code, headers, body)
    assert headers.get("connection") == "close" and closed
    event = next_failure(asgi_server, before)
    assert "TypeError: ASGI header names and values must be bytes, not str and str" in error_text(event), event
    assert_no_secret(asgi_server)
