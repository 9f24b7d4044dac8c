"""The PROXY protocol header in the accept path, under every kind of scheme, with real sockets.

A test client plays the balancer: it writes a v1 or v2 header (``netcore.reactor.proxy_protocol``'s
builders, checked against the specification by the parser's own tests) and then a request;
the app (``tls_apps:environ``) answers with the ``REMOTE_ADDR`` it saw. HAProxy itself, with
``send-proxy-v2``, is driven by tests/test_deployment_haproxy.py.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time

import pytest
from layer_testing import COMBOS, IDS, pick
from netcore.reactor.proxy_protocol import build_v1, build_v2
from netcore.testing.server_process import ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))
APP_ENV = {"PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
TIMEOUT = 20.0
CLIENT = ("203.0.113.7", 56324)
CLIENT6 = ("2001:db8::7", 4242)
BALANCER_FRONT = ("192.0.2.1", 443)
APP = ("--protocol", "http", "--app", "tls_apps:environ")



def ask(address, prefix: bytes, *, split: bool = False) -> dict:
    """Send ``prefix`` then one GET; the app's JSON answer."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        request = b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        if split:  # the header in pieces, as a slow balancer might write it
            for i in range(len(prefix)):
                sock.sendall(prefix[i:i + 1])
                time.sleep(0.001)
            sock.sendall(request)
        else:
            sock.sendall(prefix + request)
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    return json.loads(body)


def read_all(sock) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_the_app_sees_the_original_client(combo):
    with ServerProcess("--proxy-protocol", "any", *APP, *combo, env=APP_ENV) as server:
        assert ask(server.address, build_v1(CLIENT, BALANCER_FRONT))["REMOTE_ADDR"] == CLIENT[0]
        seen = ask(server.address, build_v2(CLIENT6, ("2001:db8::1", 443)))
        assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == (CLIENT6[0], str(CLIENT6[1]))
        assert ask(server.address, build_v2(CLIENT, BALANCER_FRONT), split=True)["REMOTE_ADDR"] == CLIENT[0]
        assert ask(server.address, build_v2(None))["REMOTE_ADDR"] == "127.0.0.1"  # LOCAL: a health check
        assert ask(server.address, b"")["REMOTE_ADDR"] == "127.0.0.1"  # any: no header, served as itself
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0


@pytest.mark.parametrize("combo", pick("epoll-lt", "epoll-et", "threading", "prefork-blocking"),
                         ids=["epoll-lt", "epoll-et", "threading", "prefork-blocking"])
def test_a_missing_malformed_or_slow_header_closes_only_that_connection(combo):
    with ServerProcess("--proxy-protocol", "v2", "--proxy-timeout", "0.5", *APP, *combo, env=APP_ENV) as server:
        bad = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                        # missing
               build_v1(CLIENT, BALANCER_FRONT),                            # the wrong version
               build_v2(CLIENT, BALANCER_FRONT)[:13] + b"\x99" + bytes(20)]   # malformed
        for prefix in bad:
            with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
                sock.sendall(prefix)
                assert read_all(sock) == b""
        slow = socket.create_connection(server.address, timeout=TIMEOUT)
        slow.sendall(build_v2(CLIENT, BALANCER_FRONT)[:10])
        started = time.monotonic()
        assert read_all(slow) == b""
        assert 0.4 < time.monotonic() - started < 5
        slow.close()
        assert ask(server.address, build_v2(CLIENT, BALANCER_FRONT))["REMOTE_ADDR"] == CLIENT[0]
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 4
        assert server.events_named("proxy.refused")


def test_only_allowed_networks_may_send_a_header():
    # Loopback is not allowed here: a required header from it is refused...
    with ServerProcess("--proxy-protocol", "v1", "--proxy-allow-from", "10.0.0.0/8", *APP, env=APP_ENV) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            sock.sendall(build_v1(CLIENT, BALANCER_FRONT) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_all(sock) == b""
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 1
    # ...and under any its header is not believed: the bytes reach HTTP, which refuses them.
    with ServerProcess("--proxy-protocol", "any", "--proxy-allow-from", "10.0.0.0/8", *APP, env=APP_ENV) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            sock.sendall(build_v1(CLIENT, BALANCER_FRONT) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not read_all(sock).startswith(b"HTTP/1.1 200")
        assert ask(server.address, b"")["REMOTE_ADDR"] == "127.0.0.1"
        assert server.stop() == 0


@pytest.mark.parametrize("combo", pick("epoll-et", "prefork", "threading"), ids=["epoll-et", "prefork", "threading"])
def test_proxy_header_then_tls(tmp_path, combo):
    pytest.importorskip("cryptography", reason="the TLS tests make their certificates with cryptography")
    from netcore.testing.certs import make_test_pki

    pki = make_test_pki(tmp_path)
    with ServerProcess("--proxy-protocol", "v2", "--certfile", str(pki.server_cert), "--keyfile",
                       str(pki.server_key), *APP, *combo, env=APP_ENV) as server:
        raw = socket.create_connection(server.address, timeout=TIMEOUT)
        raw.sendall(build_v2(CLIENT, BALANCER_FRONT))
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            seen = json.loads(read_all(sock).partition(b"\r\n\r\n")[2])
        assert seen["REMOTE_ADDR"] == CLIENT[0] and seen["wsgi.url_scheme"] == "https"
        assert server.stop() == 0


def test_echo_behind_a_proxy_header_gets_only_the_payload():
    with ServerProcess("--proxy-protocol", "v1") as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            sock.sendall(build_v1(CLIENT, BALANCER_FRONT) + b"payload\n")
            assert sock.recv(100) == b"payload\n"
        assert server.stop() == 0
