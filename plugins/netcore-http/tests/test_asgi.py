"""ASGI apps on the http protocol, under every scheme that hosts them, with real clients.

One real ``netcore serve --app asgi_apps:app`` per (scheme, poller): inline,
multi-reactor and prefork, each on epoll-lt and epoll-et. The app is a raw ASGI 3
callable routing to a Starlette and a FastAPI app (asgi_apps.py); clients are
http.client, raw sockets, curl and httpx.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from http_testing import Datagrams, read_response, read_until_close, require_scheme, scheme_args, server_env
from netcore.testing.clients import TIMEOUT, connect
from netcore.testing.server_process import ServerProcess, child_pids

CURL = shutil.which("curl")
ASGI_SCHEMES = ("inline", "multi-reactor", "prefork")
POLLERS = ("epoll-lt", "epoll-et")
COMBINATIONS = [pytest.param((scheme, poller), id=f"{poller}-{scheme}") for scheme in ASGI_SCHEMES
                for poller in POLLERS]


def start_asgi(scheme: str, poller: str, *extra: str, app: str = "asgi_apps:app",
               env: dict[str, str] | None = None) -> ServerProcess:
    require_scheme(scheme)
    proc = ServerProcess(*scheme_args(scheme), "--poller", poller, "--app", app, *extra,
                         env={**server_env(), **(env or {})}).start()
    proc.scheme = scheme
    if scheme == "prefork":
        proc.wait_events("worker.started", 2)
    return proc


@pytest.fixture(scope="module")
def udp():
    datagrams = Datagrams()
    yield datagrams
    datagrams.close()


@pytest.fixture(scope="module", params=COMBINATIONS)
def server(request, udp):
    scheme, poller = request.param
    proc = start_asgi(scheme, poller, env={"ASGI_TEST_PORT": str(udp.port)})
    # Every loop ran the app's startup before serving (2 loops under multi-reactor and prefork).
    loops = 1 if scheme == "inline" else 2
    udp.wait_for(lambda m: sum(x.startswith("startup") for x in udp.seen) >= loops)
    yield proc
    assert proc.stop() == 0, proc.describe()
    udp.seen.clear()  # the lifespan's shutdown is test_asgi_lifespan.py's
    failures = [e for e in proc.events if e.get("event") in ("connection.protocol_failed", "loop.handler_failed",
                                                              "loop.callback_failed", "http.asgi_batch_failed",
                                                              "asyncio_host.task_failed_at_exit")]
    assert not failures, failures


def client(server) -> http.client.HTTPConnection:
    host, port = server.address
    return http.client.HTTPConnection(host, port, timeout=TIMEOUT)


def get(conn, target: str, method: str = "GET", body=None, headers=None) -> tuple[int, dict, bytes]:
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def server_pids(server) -> list[int]:
    """The processes that run the app: the server itself, or its prefork workers."""
    return child_pids(server.pid) if server.scheme == "prefork" else [server.pid]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# -- the scope -----------------------------------------------------------------------------------
def test_http_scope_has_every_key_the_spec_names(server):
    conn = client(server)
    conn.connect()
    local_port = conn.sock.getsockname()[1]
    status, headers, body = get(conn, "/scope/caf%C3%A9?a=1&b=%20x", headers={"X-Custom": "v1", "X-Custom-Two": "A"})
    assert status == 200, body
    info = json.loads(body)
    assert info["type"] == "http" and info["http_version"] == "1.1" and info["method"] == "GET"
    assert info["scheme"] == "http" and info["root_path"] == ""
    assert info["path"] == "/scope/café" and info["raw_path"] == "/scope/caf%C3%A9"
    assert info["query_string"] == "a=1&b=%20x"
    assert ["x-custom", "v1"] in info["headers"] and ["x-custom-two", "A"] in info["headers"]
    assert all(name == name.lower() for name, _ in info["headers"])
    assert info["client"] == ["127.0.0.1", local_port]
    assert info["server"] == ["127.0.0.1", server.address[1]]
    assert info["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert info["state"] == "hello from startup", "lifespan state reaches every request"
    assert info["extensions"] == {}, "no TLS here, and no trailers offered"
    conn.close()


def test_many_requests_on_one_keep_alive_connection(server):
    conn = client(server)
    for _ in range(50):
        status, headers, body = get(conn, "/")
        assert (status, body) == (200, b"Hello, ASGI!")
        assert headers["content-length"] == str(len(body)) and "connection" not in headers
    conn.close()


def test_head_has_no_body_and_http10_is_answered(server):
    status, headers, body, closed = _raw(server, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b"" and closed
    status, headers, body, closed = _raw(server, b"GET / HTTP/1.0\r\n\r\n")
    assert (status, body) == (200, b"Hello, ASGI!") and closed


def _raw(server, payload: bytes):
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        status, headers, body = read_response(stream)
        if payload.startswith(b"HEAD"):
            body = b""
        closed = read_until_close(sock) == b""
    return status, headers, body, closed


# -- Starlette and FastAPI ---------------------------------------------------------------------
def test_starlette_json_path_params_body_and_stream(server):
    conn = client(server)
    status, _, body = get(conn, "/starlette/json")
    assert status == 200 and json.loads(body) == {"framework": "starlette", "greeting": "hello from startup"}
    status, _, body = get(conn, "/starlette/items/42?q=x")
    assert json.loads(body) == {"id": 42, "q": "x"}
    status, _, body = get(conn, "/starlette/echo", "POST", json.dumps({"a": [1, 2]}),
                          {"Content-Type": "application/json"})
    assert json.loads(body) == {"got": {"a": [1, 2]}}
    status, headers, body = get(conn, "/starlette/stream?n=50")
    assert headers.get("transfer-encoding") == "chunked" and body == b"".join(b"%d\n" % i for i in range(50))
    conn.close()


def test_fastapi_json_path_params_and_validated_body(server):
    httpx = pytest.importorskip("httpx")
    base = f"http://{server.address[0]}:{server.address[1]}"
    with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
        assert http.get("/fastapi/json").json() == {"framework": "fastapi", "greeting": "hello from startup"}
        assert http.get("/fastapi/items/7", params={"q": "z"}).json() == {"id": 7, "q": "z"}
        created = http.post("/fastapi/items", json={"name": "pen", "price": 1.5})
        assert created.status_code == 200 and created.json() == {"name": "pen", "price": 1.5, "total": 3.0}
        invalid = http.post("/fastapi/items", json={"name": "pen"})
        assert invalid.status_code == 422
        assert http.get("/fastapi/missing").status_code == 404


# -- bodies ----------------------------------------------------------------------------------------
def test_64_mib_upload_is_streamed_to_the_app_in_bounded_memory(server):
    size = 64 << 20
    block = os.urandom(1 << 20)
    expected = hashlib.sha256(block * 64).hexdigest()
    pids = server_pids(server)
    before = {pid: rss_kib(pid) for pid in pids}
    conn = client(server)
    conn.putrequest("POST", "/hash")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    for _ in range(64):
        conn.send(block)
    response = conn.getresponse()
    info = json.loads(response.read())
    conn.close()
    assert response.status == 200 and info["size"] == size and info["sha256"] == expected
    assert info["messages"] > 64, "the body arrives in pieces, as it is received"
    assert info["largest"] <= (512 << 10) + (256 << 10), "at most body_buffer_size (+ one read) at a time"
    growth = max(rss_kib(pid) - before[pid] for pid in pids)
    assert growth < 24 << 10, f"RSS grew by {growth} KiB for a 64 MiB upload"


def test_chunked_upload_with_curl(server, tmp_path):
    if CURL is None:
        pytest.skip("curl is not installed")
    data = os.urandom(3 << 20)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    out = subprocess.run([CURL, "-sS", "--fail", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{path}",
                          f"http://{server.address[0]}:{server.address[1]}/hash"],
                         capture_output=True, timeout=60, check=True).stdout
    info = json.loads(out)
    assert info["size"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()


def test_streamed_response_to_a_slow_reader_stays_in_bounded_memory(server):
    pids = server_pids(server)
    before = {pid: rss_kib(pid) for pid in pids}
    with connect(server.address, bufsize=65536) as sock:
        sock.sendall(b"GET /stream?n=512&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # not reading: the app must wait in send(), not buffer 32 MiB (pacing only)
        growth = max(rss_kib(pid) - before[pid] for pid in pids)
        with sock.makefile("rb") as stream:
            status, headers, chunks = read_chunked_head_and_chunks(stream)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert len(chunks) == 512 and all(len(c) == 65536 for c in chunks)
    assert [c.split(b":")[0] for c in chunks] == [b"%d" % i for i in range(512)]
    assert growth < 16 << 10, f"RSS grew by {growth} KiB while the client did not read"


def read_chunked_head_and_chunks(stream) -> tuple[int, dict, list[bytes]]:
    """A chunked response: status, headers and each chunk as it was framed."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    chunks = []
    while size := int(stream.readline(100).split(b";")[0], 16):
        chunks.append(stream.read(size))
        assert stream.readline(100) == b"\r\n"
    assert stream.readline(100) == b"\r\n"
    return status, headers, chunks


def test_curl_reads_a_streamed_response(server):
    if CURL is None:
        pytest.skip("curl is not installed")
    out = subprocess.run([CURL, "-sS", "--fail", f"http://{server.address[0]}:{server.address[1]}/stream?n=300&size=100"],
                         capture_output=True, timeout=60, check=True).stdout
    assert len(out) == 300 * 100 and out.startswith(b"0:")


# -- order, concurrency, errors, disconnects --------------------------------------------------------
def test_pipelined_requests_are_answered_in_order(server):
    # Earlier requests sleep longer: a server that answered in completion order would reverse them.
    count = 12
    payload = b"".join(b"GET /sleep?ms=%d&tag=%d HTTP/1.1\r\nHost: x\r\n\r\n" % ((count - i) * 10, i)
                       for i in range(count))
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        bodies = [read_response(stream)[2] for _ in range(count)]
    assert bodies == [b"slept %d" % i for i in range(count)]


def test_pipelined_requests_with_bodies_each_get_their_own_body(server):
    bodies = [os.urandom(n) for n in (10, 70_000, 0, 3)]
    payload = b"".join(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(b), b)
                       for b in bodies)
    payload += b"POST /hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        answers = [json.loads(read_response(stream)[2]) for _ in range(len(bodies) + 1)]
    assert [a["sha256"] for a in answers] == [hashlib.sha256(b).hexdigest() for b in [*bodies, b"hello"]]


def test_a_body_the_app_does_not_read_is_drained_or_the_connection_closed(server):
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
                     + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(stream)[2] == b"Hello, ASGI!"
        assert read_response(stream)[2] == b"Hello, ASGI!", "a short unread body is drained: keep-alive holds"
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n" + b"x" * 100_000)
        status, headers, body = read_response(stream)
        assert (status, body) == (200, b"Hello, ASGI!")
        assert read_until_close(sock) == b"", "a long unread body is not read: the connection closes"


def test_an_awaiting_app_does_not_block_other_clients(server, udp):
    slow = connect(server.address)
    slow.sendall(b"GET /sleep?ms=1500&tag=slow&port=%d HTTP/1.1\r\nHost: x\r\n\r\n" % udp.port)
    udp.wait_for(lambda m: m == "sleeping slow")
    started = time.monotonic()
    conn = client(server)
    for _ in range(20):
        assert get(conn, "/")[0] == 200
    elapsed = time.monotonic() - started
    conn.close()
    with slow.makefile("rb") as stream:
        assert read_response(stream)[2] == b"slept slow"
    slow.close()
    assert elapsed < 1.0, f"20 requests took {elapsed:.2f}s beside a sleeping one"


def test_the_server_frames_what_the_app_sends(server):
    with connect(server.address) as sock:
        sock.sendall(b"GET /framing?case=short HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(sock)  # 5 of 10 bytes: only a close can end it
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n12345")
    with connect(server.address) as sock:
        sock.sendall(b"GET /framing?case=long HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(sock)
    assert data.endswith(b"\r\n\r\n123"), "never more than the declared length"
    with connect(server.address) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET /framing?case=204 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream.readline().startswith(b"HTTP/1.1 204")
        while stream.readline() != b"\r\n":
            pass
        assert read_response(stream)[2] == b"Hello, ASGI!", "a 204 has no body: the next response follows"
    status, headers, body, closed = _raw(server, b"GET /framing?case=hop HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (200, b"ok") and closed
    assert headers["content-length"] == "2" and "transfer-encoding" not in headers and headers["connection"] == "close"
    status, headers, body, _ = _raw(server, b"HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and "transfer-encoding" not in headers


def test_app_exception_is_a_500_logged_without_request_data(server):
    conn = client(server)
    status, headers, body = get(conn, "/fail?token=SECRET-TOKEN-123", headers={"X-Secret": "SECRET-HEADER-456"})
    assert status == 500 and headers["connection"] == "close"
    conn.close()
    event = server.wait_event("http.app_failed")
    assert event["level"] == "error" and "the app fails before its response" in json.dumps(event)
    text = json.dumps(server.events)
    assert "SECRET-TOKEN-123" not in text and "SECRET-HEADER-456" not in text


def test_app_returning_without_a_response_is_a_500(server):
    conn = client(server)
    status, _, _ = get(conn, "/nothing")
    assert status == 500
    conn.close()


def test_failure_after_the_response_started_closes_the_connection(server):
    with connect(server.address) as sock:
        sock.sendall(b"GET /fail-after HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200") and b"partial" in data
    assert not data.endswith(b"0\r\n\r\n"), "a truncated response must not look complete"


def test_receive_sees_http_disconnect_when_the_client_closes_mid_stream(server, udp):
    sock = connect(server.address)
    sock.sendall(b"GET /disconnect?port=%d HTTP/1.1\r\nHost: x\r\n\r\n" % udp.port)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    udp.wait_for(lambda m: m == "streaming")
    sock.close()
    udp.wait_for(lambda m: m == "received http.disconnect")


def test_many_clients_at_once(server):
    errors: list[str] = []

    def run() -> None:
        try:
            conn = client(server)
            for i in range(20):
                status, _, body = get(conn, f"/sleep?ms=5&tag={i}")
                assert (status, body) == (200, b"slept %d" % i)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads), errors


def test_each_request_has_a_context_of_its_own_and_closed_connections_leave_no_task(server):
    # What one request sets in a context variable is not seen by the next on the same
    # connection (each batch's task runs in a copy of the connection's context).
    conn = client(server)
    for i in range(5):
        status, _, body = get(conn, f"/context?tag=t{i}")
        assert status == 200 and json.loads(body)["seen"] is None, body
    conn.close()
    if server.scheme != "inline":
        return  # the task count below is one loop's: another loop may answer the next request
    probe = client(server)
    baseline = json.loads(get(probe, "/context")[2])["tasks"]
    many = [client(server) for _ in range(30)]
    for other in many:
        assert get(other, "/")[0] == 200
    for other in many:
        other.close()
    deadline = time.monotonic() + 5
    while (tasks := json.loads(get(probe, "/context")[2])["tasks"]) > baseline and time.monotonic() < deadline:
        time.sleep(0.02)  # the server learns of each close from its FIN, in its own time
    assert tasks <= baseline, f"{tasks} tasks after 30 connections closed, {baseline} before"
    probe.close()
