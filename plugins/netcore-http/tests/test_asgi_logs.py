"""ASGI responses in the access log and the metrics: the same records WSGI responses get."""

from __future__ import annotations

import re
import urllib.request

import pytest
from http_testing import raw_exchange, require_scheme, scheme_args, server_env
from netcore.testing.clients import TIMEOUT
from netcore.testing.server_process import ServerProcess
from test_asgi_lifespan import get


@pytest.mark.parametrize("scheme", ["inline", "multi-reactor"])
def test_every_asgi_response_is_one_access_record(scheme):
    require_scheme(scheme)
    args = [*scheme_args(scheme), "--app", "asgi_apps:app", "--access-log"]
    with ServerProcess(*args, env=server_env()) as server:
        assert get(server, "/?a=1")[0] == 200
        assert get(server, "/stream?n=3&size=10")[0] == 200
        assert get(server, "/fail")[0] == 500
        assert get(server, "/starlette/items/5")[0] == 200
        assert raw_exchange(server.address, b"GET / HTTP/1.1\r\n\r\n")[0] == 400  # no Host: the server's own
        records = server.wait_events("http.access", 5)
    seen = [(r["method"], r["target"], r["status"], r["bytes"]) for r in records]
    # As a set, not in order: under multi-reactor each connection may land on another
    # thread, and a record is written after its response left, so a quick next request
    # on another thread can be logged first.
    assert sorted(seen) == sorted([
        ("GET", "/?a=1", 200, 12), ("GET", "/stream?n=3&size=10", 200, 30),
        ("GET", "/fail", 500, len("internal server error\n")), ("GET", "/starlette/items/5", 200, len(b'{"id":5,"q":null}')),
        ("", "", 400, len("missing Host header\n"))])
    assert all(r["peer"] == "127.0.0.1" and r["duration"] >= 0 for r in records)


def test_asgi_responses_are_counted_in_the_metrics():
    pytest.importorskip("prometheus_client")
    require_scheme("inline")
    args = [*scheme_args("inline"), "--app", "asgi_apps:app", "--metrics-bind", "127.0.0.1:0"]
    with ServerProcess(*args, env=server_env()) as server:
        for target in ("/", "/", "/fail", "/missing"):
            get(server, target)
        host, port = server.started["metrics"].rsplit(":", 1)
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=TIMEOUT) as response:
            text = response.read().decode()
    counts = dict(re.findall(r'^netcore_http_responses_total\{class="(\dxx)"\} (\S+)$', text, re.M))
    assert float(counts["2xx"]) == 2 and float(counts["5xx"]) == 1 and float(counts["4xx"]) == 1
    assert re.search(r"^netcore_http_request_duration_seconds_count 4(\.0)?$", text, re.M), text
