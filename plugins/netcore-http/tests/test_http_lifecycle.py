"""Timeouts, graceful stop, the blocking schemes, configuration errors and the access log."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time

import pytest
from http_testing import Datagrams, read_response, read_until_close, require_scheme, server_env, start
from netcore.testing.clients import TIMEOUT, connect


def test_idle_keep_alive_connection_is_closed_after_the_timeout():
    server = start("inline", "--keepalive-timeout", "0.5")
    try:
        with connect(server.address) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            data = read_until_close(sock)  # the server's close ends this read
        assert data.endswith(b"Hello, World!")
        assert time.monotonic() - started < TIMEOUT
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("scheme", ["inline", "pool"])
def test_stalled_body_gets_408(scheme):
    server = start(scheme, "--app", "http_apps:app", "--body-timeout", "0.5")
    try:
        with connect(server.address) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            data = read_until_close(sock)
        assert data.startswith(b"HTTP/1.1 408"), data[:80]
    finally:
        assert server.stop() == 0


def test_graceful_stop_closes_idle_connections_and_finishes_in_flight_requests():
    server = start("pool", "--app", "http_apps:app")
    udp = Datagrams()
    try:
        idle = connect(server.address)
        idle.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        with idle.makefile("rb") as stream:
            assert read_response(stream)[0] == 200
        busy = connect(server.address)
        busy.sendall(b"GET /wait?tag=stop&port=%d HTTP/1.1\r\nHost: x\r\n\r\n" % udp.port)
        gate_port = int(udp.wait_for(lambda m: m.startswith("waiting stop")).split()[2])
        server.proc.terminate()
        assert read_until_close(idle) == b"", "an idle keep-alive connection closes at once"
        udp.sock.sendto(b"go", ("127.0.0.1", gate_port))  # let the in-flight request finish
        with busy.makefile("rb") as stream:
            status, headers, body = read_response(stream)
        assert status == 200 and body == b"finished after the stop"
        assert headers.get("connection") == "close" or read_until_close(busy) == b""
        assert server.stop() == 0
        idle.close()
        busy.close()
    finally:
        udp.close()


@pytest.mark.parametrize("scheme", ["threading", "iterative"])
def test_blocking_schemes_serve_wsgi_and_hello(scheme):
    require_scheme(scheme)
    server = start(scheme, "--app", "http_apps:app")
    try:
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        for i in range(3):
            conn.request("POST", f"/echo?i={i}", body=b"x" * i)
            response = conn.getresponse()
            assert response.status == 200 and b'"body": "%s"' % (b"x" * i) in response.read()
        conn.request("GET", "/stream?count=200&size=1000")
        assert len(conn.getresponse().read()) == 200_000
        conn.close()
        with connect(server.address) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
            assert read_until_close(sock).startswith(b"HTTP/1.1 400")
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("args,fragment", [
    (["--app", "no_such_module_anywhere:app"], "'app'"),
    (["--app", "just-a-name"], "'app'"),
    (["--max-body-size", "-1"], "'max_body_size'"),
    (["--header-timeout", "0"], "'header_timeout'"),
])
def test_invalid_configuration_fails_at_start_naming_the_setting(args, fragment):
    result = subprocess.run([sys.executable, "-m", "netcore", "serve", "--protocol", "http", "--bind", "127.0.0.1:0",
                             *args], capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 2, result
    assert fragment in result.stderr and "Traceback" not in result.stderr


def _env():
    import os

    return dict(os.environ, **server_env())


def test_access_log_is_off_by_default_and_on_with_the_flag():
    for flag, expected in (([], 0), (["--access-log", "true"], 2)):
        server = start("inline", "--app", "http_apps:app", *flag)
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        for target in ("/echo", "/nowhere"):
            conn.request("GET", target)
            conn.getresponse().read()
        conn.close()
        assert server.stop() == 0
        events = server.events_named("http.access")
        assert len(events) == expected, events
        if expected:
            assert [e["status"] for e in events] == [200, 404] and events[0]["target"] == "/echo"
