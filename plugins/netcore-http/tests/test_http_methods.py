"""Every token is a method (RFC 9110 9.1): extension methods reach the app, whatever llhttp knows.

What is refused for smuggling reasons stays refused: test_http_bad_input.py runs the
whole table, an invalid method included, under the same server build.
"""

from __future__ import annotations

import json

import pytest
from http_testing import raw_exchange, read_response, start
from netcore.testing.clients import connect

H = b"Host: x\r\n"


@pytest.fixture(scope="module", params=["inline", "pool"])
def server(request):
    proc = start(request.param, "--app", "http_apps:app")
    yield proc
    assert proc.stop() == 0


@pytest.mark.parametrize("method", [b"BREW", b"PROPFIND", b"MKWORKSPACE", b"X-INTERNAL.SYNC", b"M-SEARCH"])
def test_a_token_method_reaches_the_app(server, method):
    status, _, body, _ = raw_exchange(server.address, method + b" /echo HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert status == 200
    assert json.loads(body)["method"] == method.decode()


def test_an_extension_method_with_a_body(server):
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"BREW /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello")
        status, _, body = read_response(stream)
        info = json.loads(body)
        assert status == 200 and info["method"] == "BREW" and info["body"] == "hello"


def test_extension_methods_pipelined_after_others_in_one_read(server):
    payload = (b"GET /echo?n=1 HTTP/1.1\r\n" + H + b"\r\n"
               + b"POST /echo?n=2 HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
               + b"BREW /echo?n=3 HTTP/1.1\r\n" + H + b"\r\n"
               + b"PURGE /echo?n=4 HTTP/1.1\r\n" + H + b"\r\n"
               + b"FROB /echo?n=5 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        seen = []
        for _ in range(5):
            status, _, body = read_response(stream)
            assert status == 200
            info = json.loads(body)
            seen.append((info["method"], info["query"]))
        assert stream.read() == b""
    assert seen == [("GET", "n=1"), ("POST", "n=2"), ("BREW", "n=3"), ("PURGE", "n=4"), ("FROB", "n=5")]


@pytest.mark.parametrize("line", [b"brew /echo HTTP/1.1", b"G@T /echo HTTP/1.1", b"B(R)EW /echo HTTP/1.1",
                                  b"ABCDEFGHIJKLMNOPQRSTU /echo HTTP/1.1"])
def test_what_is_not_an_acceptable_method_is_still_refused(server, line):
    status, headers, _, closed = raw_exchange(server.address, line + b"\r\n" + H + b"\r\n")
    assert status == 400 and headers.get("connection") == "close" and closed
