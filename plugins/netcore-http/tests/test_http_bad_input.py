"""Malformed and oversized requests: each gets its status and a close, and others are still served.

One server per scheme runs the whole table while a keep-alive http.client connection,
opened before the first bad request, makes a request after each one. Bad bodies go to an
app that reads them: where bodies are streamed (pool) the app has the request before
its body is known to be bad, and the error shows where the app reads.
"""

from __future__ import annotations

import http.client
import time

import pytest
from http_testing import raw_exchange, read_response, read_until_close, start
from netcore.testing.clients import TIMEOUT, connect

H = b"Host: x\r\n"
LIMITS = ("--max-request-line", "1000", "--max-header-count", "20", "--max-header-field", "500",
          "--max-header-bytes", "4000", "--max-body-size", "10000")

CASES = {
    "repeated content-length": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    "conflicting content-length": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400),
    "content-length list": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1, 1\r\n\r\nx", 400),
    "content-length with transfer-encoding": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "unknown transfer-encoding": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    "gzip then chunked": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    "repeated transfer-encoding": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "transfer-encoding in HTTP/1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad chunk size": (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "chunk size overflow": (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n", 400),
    "bad chunk extension": (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1;\x01\r\nx\r\n0\r\n\r\n", 400),
    "bare LF": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "bare CR": (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\n" + H + b"X: y\r\n z\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "control character in value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n", 400),
    "NUL in value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    "control character in target": (b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "invalid version": (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 400),
    "garbage version": (b"GET / HTTP/x.1\r\n" + H + b"\r\n", 400),
    "unsupported major version": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "missing Host on 1.1": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "repeated Host": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "invalid method": (b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "request target too long (414)": (b"GET /" + b"a" * 1200 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "too many header fields (431)": (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: y\r\n" % i for i in range(30)) + b"\r\n", 431),
    "header field too large (431)": (b"GET / HTTP/1.1\r\n" + H + b"X: " + b"y" * 600 + b"\r\n\r\n", 431),
    "header bytes too many (431)": (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 300) for i in range(15)) + b"\r\n", 431),
    "content-length too large (413)": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10001\r\n\r\n", 413),
    "chunked body too large (413)": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + (b"1000\r\n" + b"z" * 4096 + b"\r\n") * 3, 413),
}


@pytest.fixture(scope="module", params=["inline", "pool"])
def server(request):
    proc = start(request.param, "--app", "http_apps:app", *LIMITS)
    yield proc
    assert proc.stop() == 0


def test_every_bad_request_gets_its_status_and_a_close_while_others_are_served(server):
    host, port = server.address
    bystander = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    bystander.request("GET", "/echo")
    bystander.getresponse().read()
    failures = []
    for name, (payload, expected) in CASES.items():
        status, headers, _body, closed = raw_exchange(server.address, payload)
        if status != expected or headers.get("connection") != "close" or not closed:
            failures.append((name, status, headers.get("connection"), closed))
        bystander.request("GET", f"/echo?after={name.replace(' ', '-')}")
        response = bystander.getresponse()
        assert response.status == 200, name
        response.read()
    assert not failures, failures
    bystander.close()


def test_bad_request_after_good_pipelined_ones_answers_those_first(server):
    with connect(server.address) as sock:
        sock.sendall(b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
        with sock.makefile("rb") as stream:
            statuses = [read_response(stream)[0] for _ in range(3)]
            assert statuses == [200, 200, 400]
            assert stream.read() == b""


def test_unread_body_is_never_parsed_as_the_next_request(server):
    smuggled = b"GET /echo?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(server.address) as sock:
        sock.sendall(b"POST /unread HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     b"GET /echo?next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (len(smuggled), smuggled))
        with sock.makefile("rb") as stream:
            first = read_response(stream)
            second = read_response(stream)
    assert first[2] == b"did not read the body"
    assert b"next" in second[2] and b"smuggled" not in second[2]


def test_oversized_header_trickled_in_is_refused_before_it_is_complete(server):
    # A single endless header line: no field ever completes, so only the raw-bytes bound
    # can stop it -- the server must answer 431 and close, not buffer forever.
    with connect(server.address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 1 << 20:
                sock.sendall(b"a" * 4096)
                sent += 4096
        except (BrokenPipeError, ConnectionResetError):
            pass
        with sock.makefile("rb") as stream:
            status = read_response(stream)[0]
    assert status == 431


def test_slowloris_meets_the_header_deadline():
    server = start("inline", "--header-timeout", "1", "--keepalive-timeout", "30")
    try:
        host, port = server.address
        started = time.monotonic()
        with connect(server.address) as sock:
            response = b""
            # Trickle one byte at a time, each well inside any per-read timeout: only an
            # absolute deadline ends this. Bounded: 200 bytes of a head that never ends.
            for byte in (b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200):
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sock.settimeout(0.1)
                try:
                    response = sock.recv(4096)
                except TimeoutError:
                    continue
                finally:
                    sock.settimeout(TIMEOUT)
                break
            if not response:
                response = read_until_close(sock)
        assert response.startswith(b"HTTP/1.1 408"), response[:100]
        assert time.monotonic() - started < 20
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"Hello, World!"
        conn.close()
    finally:
        assert server.stop() == 0
