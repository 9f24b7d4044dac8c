"""The ASGI TLS extension in the scope, with client certificates; PROXY and Forwarded clients.

Certificates are made for the test (netcore.testing.certs), never committed.
"""

from __future__ import annotations

import json
import socket
import ssl

import pytest
from http_testing import read_response, require_scheme, scheme_args, server_env
from netcore.testing.clients import TIMEOUT
from netcore.testing.server_process import ServerProcess

pytest.importorskip("cryptography")
from netcore.testing import certs  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_test_pki(tmp_path_factory.mktemp("pki"))


def scope_over(sock: socket.socket, target: bytes = b"/scope", headers: bytes = b"") -> dict:
    sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n")
    with sock.makefile("rb") as stream:
        status, _, body = read_response(stream)
    assert status == 200, body
    return json.loads(body)


@pytest.mark.parametrize("scheme", ["inline", "prefork"])
def test_tls_connections_get_the_tls_extension_and_https(pki, scheme):
    require_scheme(scheme)
    args = [*scheme_args(scheme), "--app", "asgi_apps:app", "--certfile", str(pki.server_cert),
            "--keyfile", str(pki.server_key), "--cert-reqs", "optional", "--ca-certs", str(pki.ca_cert)]
    with ServerProcess(*args, env=server_env()) as server:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        raw = socket.create_connection(server.address, timeout=TIMEOUT)
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            version = sock.version()
            info = scope_over(sock)
    assert info["scheme"] == "https"
    tls = info["extensions"]["tls"]
    assert tls["server_cert"] is None
    assert tls["tls_version"] == {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303}[version]
    assert isinstance(tls["cipher_suite"], int) and 0 < tls["cipher_suite"] <= 0xFFFF
    assert len(tls["client_cert_chain"]) == 1 and tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE")
    assert tls["client_cert_name"] == "CN=alice,O=netcore tests" and tls["client_cert_error"] is None


def test_a_trusted_proxy_sets_client_and_scheme_and_root_path_prefixes_path():
    require_scheme("inline")
    args = [*scheme_args("inline"), "--app", "asgi_apps:app", "--root-path", "/mount"]
    with ServerProcess(*args, env=server_env()) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            info = scope_over(sock, b"/scope/x", b"X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"
                                                 b"X-Forwarded-Proto: https\r\n")
        assert info["client"] == ["203.0.113.7", 0] and info["scheme"] == "https"
        assert info["root_path"] == "/mount" and info["path"] == "/mount/scope/x"
        assert info["raw_path"] == "/mount/scope/x"
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            info = scope_over(sock, b"/mount/scope/y")  # the proxy passed the prefix on: kept once
        assert info["path"] == "/mount/scope/y" and info["client"][0] == "127.0.0.1"
    args = [*scheme_args("inline"), "--app", "asgi_apps:app", "--forwarded-allow-ips", "192.0.2.1"]
    with ServerProcess(*args, env=server_env()) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            info = scope_over(sock, b"/scope", b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n")
        assert info["client"][0] == "127.0.0.1" and info["scheme"] == "http", "an untrusted peer chooses nothing"


def test_proxy_protocol_client_is_the_original_one():
    require_scheme("inline")
    args = [*scheme_args("inline"), "--app", "asgi_apps:app", "--proxy-protocol", "v1"]
    with ServerProcess(*args, env=server_env()) as server:
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            sock.sendall(b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 80\r\n")
            info = scope_over(sock)
    assert info["client"] == ["198.51.100.9", 40000]
