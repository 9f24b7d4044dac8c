"""The request shapes the per-request fast paths single out, answered exactly as the slow paths would.

The protocol infers HTTP/1.1 from llhttp's keep-alive verdict when a request has no
Connection field, caches the environ entries of a request line, the checked form of
an app's status and headers, and answers a one-string app body in one piece. Each test
here sends what those shortcuts must tell apart -- versions with and without a
Connection field, varying request lines and headers on one connection, bodies that do
not match their announced length -- to a real ``netcore serve`` (inline, where the
response is produced on the I/O thread, and pool, where it is produced elsewhere).
"""

from __future__ import annotations

import http.client
import json
import re

import pytest
from http_testing import APP, read_response, read_until_close, start
from netcore.testing.clients import TIMEOUT, connect

DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


@pytest.fixture(scope="module", params=["inline", "pool"])
def wsgi_server(request):
    server = start(request.param, "--app", APP)
    yield server
    assert server.stop() == 0, server.describe()


@pytest.fixture(scope="module")
def hello_server():
    server = start("inline")
    yield server
    assert server.stop() == 0, server.describe()


def exchange(sock, stream, payload: bytes):
    sock.sendall(payload)
    return read_response(stream)


@pytest.mark.parametrize("which", ["hello", "wsgi"])
def test_version_and_connection_field_decide_keep_alive(which, hello_server, wsgi_server):
    server = hello_server if which == "hello" else wsgi_server
    target = b"/" if which == "hello" else b"/echo"
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        # HTTP/1.0 asking for keep-alive: kept, and told so.
        status, headers, _ = exchange(sock, stream, b"GET " + target + b" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert status == 200 and headers.get("connection") == "keep-alive"
        # HTTP/1.1 naming keep-alive explicitly: kept, nothing to say.
        status, headers, _ = exchange(sock, stream,
                                      b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        assert status == 200 and "connection" not in headers
        # Plain HTTP/1.1 (the inferred version): kept.
        status, headers, _ = exchange(sock, stream, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and "connection" not in headers
        # HTTP/1.1 closing: answered, then closed.
        status, headers, _ = exchange(sock, stream,
                                      b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200 and headers.get("connection") == "close"
        assert stream.read() == b""


@pytest.mark.parametrize("version, status", [(b"2.0", 505), (b"0.9", 400)])
def test_other_versions_asking_for_keep_alive_are_refused(version, status, hello_server, wsgi_server):
    # llhttp keeps these alive when asked to: only the version check tells them from 1.1.
    for server in (hello_server, wsgi_server):
        with connect(server.address) as sock, sock.makefile("rb") as stream:
            got, headers, _ = exchange(sock, stream,
                                       b"GET / HTTP/" + version + b"\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            assert got == status and headers.get("connection") == "close"
            assert stream.read() == b""


def test_http10_without_host_is_served_and_1_1_without_host_refused(hello_server, wsgi_server):
    for server in (hello_server, wsgi_server):
        with connect(server.address) as sock, sock.makefile("rb") as stream:
            assert exchange(sock, stream, b"GET / HTTP/1.0\r\n\r\n")[0] in (200, 404)
        with connect(server.address) as sock, sock.makefile("rb") as stream:
            status, headers, _ = exchange(sock, stream, b"GET / HTTP/1.1\r\n\r\n")
            assert status == 400 and headers.get("connection") == "close"


def test_request_lines_varying_on_one_connection_reach_the_app_exactly(wsgi_server):
    lines = [
        (b"GET", b"/echo?x=1", b"1.1"), (b"POST", b"/echo?x=1", b"1.1"), (b"GET", b"/echo?x=2", b"1.1"),
        (b"GET", b"/echo?x=1", b"1.0"), (b"DELETE", b"/ec%68o", b"1.1"), (b"GET", b"/echo?x=1", b"1.1"),
    ]
    with connect(wsgi_server.address) as sock, sock.makefile("rb") as stream:
        for round_ in range(2):  # the second round meets every line again (cached)
            for method, target, version in lines:
                payload = method + b" " + target + b" HTTP/" + version + b"\r\nHost: x\r\n"
                if version == b"1.0":
                    payload += b"Connection: keep-alive\r\n"
                if method == b"POST":
                    payload += b"Content-Length: 4\r\n\r\nbody"
                else:
                    payload += b"\r\n"
                status, _, body = exchange(sock, stream, payload)
                assert status == 200, (round_, method, target, body)
                info = json.loads(body)
                assert info["method"] == method.decode()
                assert info["path"] == "/echo"
                assert info["query"] == target.partition(b"?")[2].decode()
                assert info["protocol"] == "HTTP/" + version.decode()
                assert info["body"] == ("body" if method == b"POST" else "")


def test_headers_varying_per_response_are_never_mixed_up(wsgi_server):
    conn = http.client.HTTPConnection(*wsgi_server.address, timeout=TIMEOUT)
    for n in ["1", "22", "1", "333", "22", "1"]:
        conn.request("GET", "/vary?n=" + n)
        response = conn.getresponse()
        assert response.read() == n.encode()
        assert response.getheader("X-N") == n and response.getheader("Content-Length") == str(len(n))
        assert response.getheader("Content-Type") == "text/plain"
        assert DATE.fullmatch(response.getheader("Date") or ""), response.getheader("Date")
    conn.close()


@pytest.mark.parametrize("target, body", [(b"/short-length", b"abc"), (b"/announced-no-body", b"")])
def test_body_shorter_than_its_content_length_ends_with_a_close(target, body, wsgi_server):
    # The client cannot tell where such a response ends but by the close; a kept
    # connection would make it take the next response for the rest of this one.
    with connect(wsgi_server.address) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(sock)  # a server that kept the connection would time this out
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == body, data
    assert b"HTTP/1.1" not in rest, "the pipelined request must not be answered after a short body"


def test_hello_and_wsgi_responses_carry_a_date(hello_server, wsgi_server):
    for server, target in ((hello_server, "/"), (wsgi_server, "/echo")):
        conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
        conn.request("GET", target)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        assert DATE.fullmatch(response.getheader("Date") or ""), response.getheader("Date")
        conn.close()
