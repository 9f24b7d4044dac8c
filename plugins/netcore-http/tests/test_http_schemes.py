"""The http protocol under inline, pool, multi-reactor and prefork, with clients written by others.

Each scheme gets one real ``netcore serve --protocol http --app http_apps:app`` process;
the apps are wrapped in ``wsgiref.validate``, so a PEP 3333 violation by the server
(a missing environ key, a wrong type, close() not called) fails the request.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess

import pytest
from http_testing import (
    APP,
    SCHEMES,
    Datagrams,
    read_until_close,
    require_scheme,
    scheme_args,
    server_env,
    start,
)
from netcore.testing.clients import TIMEOUT, connect
from netcore.testing.server_process import ServerProcess

CURL = shutil.which("curl")
#: The schemes whose apps run on handler threads: request bodies are streamed to them.
STREAMING = ("pool", "thread", "thread-per-connection", "multi-reactor-pool")


@pytest.fixture(scope="module", params=SCHEMES)
def server(request):
    scheme = request.param
    require_scheme(scheme)
    proc = ServerProcess(*scheme_args(scheme), "--app", APP, env=server_env()).start()
    proc.scheme = scheme
    yield proc
    proc.stop()
    assert proc.returncode == 0, proc.describe()
    # Nothing the apps did may have crashed the server's own machinery.
    failures = [e for e in proc.events if e.get("event") in ("connection.protocol_failed", "loop.handler_failed",
                                                              "connection.handler_failed")]
    assert not failures, failures


def client(server) -> http.client.HTTPConnection:
    host, port = server.address
    return http.client.HTTPConnection(host, port, timeout=TIMEOUT)


def get_json(conn, method="GET", target="/echo", body=None, headers=None):
    headers = headers or {}
    conn.request(method, target, body=body, headers=headers, encode_chunked="Transfer-Encoding" in headers)
    response = conn.getresponse()
    data = response.read()
    assert response.status == 200, (response.status, data)
    return json.loads(data)


# -- environ and the basics, http.client ---------------------------------------------------
def test_environ_is_complete_and_flags_follow_the_scheme(server):
    conn = client(server)
    info = get_json(conn, target="/echo?a=1&b=%20x", headers={"X-Custom": "v1"})
    assert info["method"] == "GET" and info["path"] == "/echo" and info["query"] == "a=1&b=%20x"
    assert info["protocol"] == "HTTP/1.1" and info["script_name"] == ""
    assert info["headers"]["HTTP_X_CUSTOM"] == "v1"
    assert info["server_port"] == str(server.address[1]) and info["remote_addr"] == "127.0.0.1"
    assert info["multithread"] is (server.scheme in ("pool", "multi-reactor"))
    assert info["multiprocess"] is (server.scheme == "prefork")
    assert info["run_once"] is False
    conn.close()


def test_path_info_is_percent_decoded_as_latin1(server):
    conn = client(server)
    info = get_json(conn, target="/ec%68o?q=%C3%A9")
    assert info["path"] == "/echo"
    # UTF-8 bytes of "é" in the path arrive as two latin-1 characters (PEP 3333).
    conn.request("GET", "/%C3%A9")
    response = conn.getresponse()
    response.read()
    assert response.status == 404
    conn.close()


def test_keep_alive_serves_many_requests_on_one_connection(server):
    conn = client(server)
    for i in range(20):
        info = get_json(conn, "POST", f"/echo?i={i}", body=b"body-%d" % i,
                        headers={"Content-Type": "text/plain"})
        assert info["body"] == f"body-{i}" and info["content_length"] == str(len(f"body-{i}"))
        assert info["content_type"] == "text/plain"
    assert conn.sock is not None, "the connection must have stayed open"
    conn.close()


def test_chunked_request_body(server):
    conn = client(server)
    info = get_json(conn, "POST", "/echo", body=iter([b"abc", b"", b"defgh", b"i" * 5000]),
                    headers={"Transfer-Encoding": "chunked"})
    assert info["body"] == "abcdefgh" + "i" * 5000
    # Read before the app runs, the length is known; streamed (handler threads), it is not
    # (wsgi.input_terminated: read to EOF).
    assert info["content_length"] == ("" if server.scheme in STREAMING else str(8 + 5000))
    conn.close()


def test_readline_is_bounded_by_the_body(server):
    conn = client(server)
    conn.request("POST", "/readline", body=b"one\ntwo\n")
    response = conn.getresponse()
    assert json.loads(response.read()) == ["one\n", "two\n", ""]
    conn.close()


def test_streamed_generator_is_chunked_and_write_callable_works(server):
    conn = client(server)
    conn.request("GET", "/stream?count=50&size=1000")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == (b"x" * 999 + b"\n") * 50
    conn.request("GET", "/write")
    response = conn.getresponse()
    assert response.read() == b"written then returned"
    conn.close()


def test_head_has_no_body_and_204_has_no_framing(server):
    conn = client(server)
    conn.request("HEAD", "/echo")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    conn.request("GET", "/empty")
    response = conn.getresponse()
    assert response.status == 204 and response.read() == b""
    assert response.getheader("Content-Length") is None and response.getheader("Transfer-Encoding") is None
    info = get_json(conn)  # the connection is still in sync
    assert info["path"] == "/echo"
    conn.close()


def test_http10_gets_a_close_delimited_or_sized_response(server):
    with connect(server.address) as sock:
        sock.sendall(b"GET /stream?count=3&size=4 HTTP/1.0\r\n\r\n")
        data = read_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert body == b"xxx\n" * 3
    with connect(server.address) as sock:
        sock.sendall(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.0\r\n\r\n")
        data = read_until_close(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 2 and b"Connection: keep-alive" in data


def test_exc_info_replaces_the_response_and_app_errors_are_500(server):
    conn = client(server)
    conn.request("GET", "/exc-info")
    response = conn.getresponse()
    assert response.status == 503 and response.read() == b"handled by the app"
    conn.request("GET", "/fail-before")
    response = conn.getresponse()
    assert response.status == 500
    response.read()
    conn.close()
    conn = client(server)
    conn.request("GET", "/bad-header")
    response = conn.getresponse()
    assert response.status == 500, "a CR/LF in a header value must never reach the wire"
    assert response.getheader("Set-Cookie") is None and b"never" not in response.read()
    conn.close()


def test_failure_after_headers_closes_the_connection(server):
    with connect(server.address) as sock:
        sock.sendall(b"GET /stream?count=10&size=100&fail_at=5 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200")
    assert not data.endswith(b"0\r\n\r\n"), "a failed stream must not look complete"


def test_file_wrapper_sends_the_file(server, tmp_path):
    payload = os.urandom(300_000)
    name = tmp_path / "payload.bin"
    name.write_bytes(payload)
    conn = client(server)
    conn.request("GET", f"/file?name={name}")
    response = conn.getresponse()
    assert response.getheader("Content-Length") == str(len(payload))
    assert response.read() == payload
    info = get_json(conn)
    assert info["path"] == "/echo"
    conn.close()


# -- curl -------------------------------------------------------------------------------
@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_post_with_expect_100_continue(server, tmp_path):
    body = tmp_path / "body.txt"
    body.write_bytes(b"k=" + b"v" * 5000)
    host, port = server.address
    out = subprocess.run([CURL, "-sS", "--max-time", "30", "-H", "Expect: 100-continue", "--expect100-timeout", "20",
                          "--data-binary", f"@{body}", f"http://{host}:{port}/echo", "-w", "\\n%{http_code}"],
                         capture_output=True, text=True, timeout=60)
    text, _, code = out.stdout.rpartition("\n")
    assert code == "200", out
    assert json.loads(text)["body"] == "k=" + "v" * 5000


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_keep_alive_several_urls(server):
    host, port = server.address
    urls = [f"http://{host}:{port}/echo?n={i}" for i in range(5)]
    out = subprocess.run([CURL, "-sS", "--max-time", "30", "-v", *urls], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('"method": "GET"') == 5
    assert "Re-using existing connection" in out.stderr or "Reusing existing connection" in out.stderr


# -- pipelining ---------------------------------------------------------------------------
PIPELINE = (b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /echo?n=3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            b"GET /echo?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


def test_pipelined_requests_split_at_every_offset(server):
    for offset in range(1, len(PIPELINE)):
        with connect(server.address) as sock:
            sock.sendall(PIPELINE[:offset])
            sock.sendall(PIPELINE[offset:])
            data = read_until_close(sock)
        assert data.count(b"HTTP/1.1 200 OK") == 4, (offset, data[:300])
        positions = [data.index(b'"query": "n=%d"' % n) for n in (1, 2, 3, 4)]
        assert positions == sorted(positions), f"responses out of order at offset {offset}"
        assert b'"body": "hello"' in data and b'"body": "abc"' in data


# -- flow control and vanished clients ----------------------------------------------------
def test_slow_reader_of_a_large_stream_keeps_memory_bounded(server):
    udp = Datagrams()
    count, size = 4096, 65536  # 256 MiB: far more than any buffer on the way
    try:
        with connect(server.address, bufsize=65536) as sock:
            sock.sendall(b"GET /stream?count=%d&size=%d&port=%d&tag=slow HTTP/1.1\r\nHost: x\r\n\r\n"
                         % (count, size, udp.port))
            udp.wait_for(lambda m: m.startswith("progress slow"))
            # Not reading: the app must stop producing once buffers are full.
            udp.quiet_for(1.5)
            produced = max(int(m.split()[2]) for m in udp.seen if m.startswith("progress slow"))
            assert produced * size < 64 << 20, f"the app produced {produced} chunks for a reader that read nothing"
            total = 0
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total >= count * size:
                    break
            assert total >= count * size
        udp.wait_for(lambda m: m == "closed slow")
    finally:
        udp.close()


def test_client_reset_mid_response_calls_close(server):
    udp = Datagrams()
    try:
        sock = connect(server.address, bufsize=16384)
        sock.sendall(b"GET /stream?count=100000&size=65536&port=%d&tag=reset HTTP/1.1\r\nHost: x\r\n\r\n" % udp.port)
        udp.wait_for(lambda m: m.startswith("progress reset"))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
        udp.wait_for(lambda m: m == "closed reset")
    finally:
        udp.close()
    conn = client(server)
    assert get_json(conn)["path"] == "/echo"  # and the server serves on
    conn.close()


# -- the factory form and the built-in app -------------------------------------------------
@pytest.mark.parametrize("scheme", ["inline", "pool"])
def test_factory_app_and_builtin_hello_with_curl(scheme, start_server):
    require_scheme(scheme)
    factory = start_server(*scheme_args(scheme), "--app", "http_apps:factory()", env=server_env())
    conn = client(factory)
    assert get_json(conn)["path"] == "/echo"
    conn.close()
    hello = start(scheme)
    try:
        host, port = hello.address
        if CURL is not None:
            out = subprocess.run([CURL, "-sS", "-i", "--max-time", "30", f"http://{host}:{port}/"], capture_output=True,
                                 text=True, timeout=60)
            assert out.stdout.startswith("HTTP/1.1 200 OK") and out.stdout.endswith("Hello, World!")
            assert "text/plain" in out.stdout and "Date: " in out.stdout
        conn = client(hello)
        conn.request("GET", "/elsewhere")
        response = conn.getresponse()
        assert response.status == 404
        response.read()
        conn.close()
    finally:
        assert hello.stop() == 0
