"""Behind a proxy: Forwarded / X-Forwarded-* believed from trusted peers only, and root_path."""

from __future__ import annotations

import http.client
import json

import pytest
from http_testing import start
from netcore.testing.clients import TIMEOUT


def echo(address, target: str = "/echo", headers: dict | None = None) -> dict:
    conn = http.client.HTTPConnection(*address, timeout=TIMEOUT)
    conn.request("GET", target, headers=headers or {})
    response = conn.getresponse()
    assert response.status == 200
    info = json.loads(response.read())
    conn.close()
    return info


@pytest.fixture(scope="module", params=["inline", "pool"])
def trusting(request):
    """The default forwarded_allow_ips: the test connects from 127.0.0.1, a trusted proxy."""
    proc = start(request.param, "--app", "http_apps:app")
    yield proc
    assert proc.stop() == 0


def test_x_forwarded_for_and_proto_from_a_trusted_peer(trusting):
    info = echo(trusting.address, headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https"})
    # From the right: 127.0.0.1 is a trusted proxy, 203.0.113.7 the client.
    assert info["remote_addr"] == "203.0.113.7" and info["url_scheme"] == "https"


def test_forwarded_wins_and_handles_ipv6_with_port(trusting):
    info = echo(trusting.address, headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https;by=127.0.0.1',
                                           "X-Forwarded-For": "198.51.100.1"})
    assert info["remote_addr"] == "2001:db8::1" and info["url_scheme"] == "https"


def test_without_proxy_fields_the_peer_is_the_client(trusting):
    info = echo(trusting.address)
    assert info["remote_addr"] == "127.0.0.1" and info["url_scheme"] == "http"
    assert echo(trusting.address, headers={"X-Forwarded-Proto": "gopher"})["url_scheme"] == "http"


def test_an_untrusted_peer_gets_plain_headers_only():
    server = start("inline", "--app", "http_apps:app", "--forwarded-allow-ips", "10.9.8.7,192.0.2.0/24")
    try:
        info = echo(server.address, headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                                             "Forwarded": "for=198.51.100.9;proto=https"})
    finally:
        assert server.stop() == 0
    assert info["remote_addr"] == "127.0.0.1" and info["url_scheme"] == "http"
    assert info["headers"]["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"


def test_trusting_everyone_takes_the_leftmost_address():
    server = start("inline", "--app", "http_apps:app", "--forwarded-allow-ips", "*")
    try:
        info = echo(server.address, headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2, 10.0.0.3"})
    finally:
        assert server.stop() == 0
    assert info["remote_addr"] == "203.0.113.7"


def test_root_path_is_script_name_and_leaves_path_info():
    server = start("inline", "--app", "http_apps:app", "--root-path", "/api/")
    try:
        kept = echo(server.address, "/api/echo?q=1")  # the proxy passed the prefix on
        stripped = echo(server.address, "/echo")  # the proxy took it off
    finally:
        assert server.stop() == 0
    assert (kept["script_name"], kept["path"], kept["query"]) == ("/api", "/echo", "q=1")
    assert (stripped["script_name"], stripped["path"]) == ("/api", "/echo")
