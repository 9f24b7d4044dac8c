"""ASGI lifespan per asyncio loop, failing startups, and the combinations that cannot host ASGI."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal

import pytest
from http_testing import Datagrams, read_response, read_until_close, require_scheme, scheme_args, server_env
from netcore.testing.clients import TIMEOUT, connect
from netcore.testing.server_process import ServerProcess, child_pids, run_netcore
from test_asgi import ASGI_SCHEMES, start_asgi


@pytest.fixture
def udp():
    datagrams = Datagrams()
    yield datagrams
    datagrams.close()


def get(server, target: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
    conn.request("GET", target)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def count(udp: Datagrams, prefix: str) -> int:
    return sum(message.startswith(prefix) for message in udp.seen)


@contextlib.contextmanager
def serving(scheme: str, *args: str):
    """A server of ``scheme`` (``args`` after the scheme's own) that must then stop cleanly."""
    require_scheme(scheme)
    server = ServerProcess(*scheme_args(scheme), *args, env=server_env()).start()
    try:
        yield server
    except BaseException:
        server.stop()
        raise
    assert server.stop() == 0, server.describe()


def serve_once(scheme: str, app: str, *extra: str) -> tuple[int, list[str]]:
    """Run ``netcore serve`` that is expected to exit by itself: (status, stderr lines)."""
    require_scheme(scheme)
    done = run_netcore("serve", *scheme_args(scheme), "--app", app, "--bind", "127.0.0.1:0", *extra,
                       env=server_env(), timeout=60)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


# -- startup and shutdown on every loop ---------------------------------------------------------
#: The lifespan tests run on the default loop (uvloop where installed): the one users get,
#: and the one whose deferred stop() once cut the app's shutdown short (the host now stops
#: it once). test_either_asyncio_loop_serves covers asyncio's own.
LOOP = ()


@pytest.mark.parametrize("scheme", ASGI_SCHEMES)
def test_startup_runs_on_every_loop_before_it_serves_and_shutdown_after_the_drain(scheme, udp):
    server = start_asgi(scheme, "epoll-et", *LOOP, env={"ASGI_TEST_PORT": str(udp.port)})
    loops = 1 if scheme == "inline" else 2
    udp.wait_for(lambda m: count(udp, "startup") >= loops)
    pids = {int(m.split()[1]) for m in udp.seen if m.startswith("startup")}
    if scheme == "prefork":
        assert pids == set(child_pids(server.pid)), "one startup in each worker process"
    else:
        assert pids == {server.pid}, "the loops of one process each ran the startup"
    status, body = get(server, "/scope")
    assert status == 200 and json.loads(body)["state"] == "hello from startup"
    assert server.stop() == 0, server.describe()
    udp.wait_for(lambda m: count(udp, "shutdown") >= loops)
    assert count(udp, "startup") == loops and count(udp, "shutdown") == loops
    assert not server.events_named("asyncio_host.stop_failed"), server.events_named("asyncio_host.stop_failed")
    assert not server.events_named("lifespan.shutdown_failed")


def test_a_starlette_lifespan_state_reaches_its_requests(udp):
    server = start_asgi("multi-reactor", "epoll-lt", *LOOP, app="asgi_apps:starlette_with_lifespan",
                        env={"ASGI_TEST_PORT": str(udp.port)})
    udp.wait_for(lambda m: count(udp, "startup") >= 2)
    status, body = get(server, "/starlette/json")
    assert status == 200 and json.loads(body)["greeting"] == "from a Starlette lifespan"
    assert server.stop() == 0, server.describe()
    udp.wait_for(lambda m: count(udp, "shutdown") >= 2)


# -- failing startups -----------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["inline", "multi-reactor", "prefork"])
@pytest.mark.parametrize(("app", "message"), [
    ("asgi_apps:failing_startup", "ConnectionRefusedError: no database"),
    ("asgi_apps:raising_startup", "ValueError: startup raised"),
])
def test_a_failing_startup_exits_2_with_the_apps_message_on_one_line(scheme, app, message):
    status, lines = serve_once(scheme, app)
    errors = [line for line in lines if line.startswith("netcore: error:")]
    assert status == 2, lines
    assert errors == [f"netcore: error: the app's lifespan startup failed: {message}"], lines
    assert not any("Traceback" in line for line in lines), lines


def test_a_prefork_worker_whose_startup_fails_exits_with_boot_error():
    require_scheme("prefork")
    server = ServerProcess(*scheme_args("prefork"), "--app", "asgi_apps:failing_startup", env=server_env()).start()
    try:
        failed = server.wait_event("lifespan.startup_failed", 20)
        assert failed["message"] == "ConnectionRefusedError: no database"
        exited = server.wait_event("worker.exited", 20)
        assert exited["exit_code"] == 3, exited
    finally:
        server.stop()


def test_a_prefork_worker_that_fails_after_others_served_is_backed_off_not_fatal(tmp_path):
    """Only the first workers' refusal ends the server: once one has served, a replacement
    whose start-up fails (the database went away) is restarted with back-off, as any worker
    that cannot start."""
    require_scheme("prefork")
    flag = tmp_path / "fail-from-now-on"
    server = ServerProcess(*scheme_args("prefork"), "--workers", "1", "--app", "asgi_apps:startup_fails_when_flagged",
                           env={**server_env(), "ASGI_FAIL_FLAG": str(flag)}).start()
    try:
        assert get(server, "/")[0] == 200
        flag.write_text("now")
        os.kill(child_pids(server.pid)[0], signal.SIGKILL)
        server.wait_event("worker.restart_delayed", 20)
        assert server.proc.poll() is None, "a refusal after the server served must not end it"
    finally:
        server.stop()


def test_an_app_without_lifespan_is_served_as_uvicorn_auto_does():
    with serving("inline", "--app", "asgi_apps:no_lifespan") as server:
        server.wait_event("lifespan.unsupported")
        assert get(server, "/") == (200, b"no lifespan needed")


def test_lifespan_on_refuses_an_app_without_it():
    status, lines = serve_once("inline", "asgi_apps:no_lifespan", "--lifespan", "on")
    assert status == 2 and lines[-1].startswith("netcore: error: the app's lifespan startup failed: "), lines


def test_lifespan_off_never_calls_the_lifespan_scope():
    with serving("inline", "--app", "asgi_apps:failing_startup", "--lifespan", "off") as server:
        assert get(server, "/") == (200, b"never")


def test_an_asgi2_class_is_served_through_an_asgi3_wrapper():
    with serving("inline", "--app", "asgi_apps:Asgi2App") as server:
        assert get(server, "/") == (200, b"asgi2")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_either_asyncio_loop_serves(loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with serving("inline", "--app", "asgi_apps:app", "--asyncio-loop", loop) as server:
        assert get(server, "/") == (200, b"Hello, ASGI!")


# -- what cannot host an ASGI app --------------------------------------------------------------
@pytest.mark.parametrize("interface", ["auto", "asgi"])
@pytest.mark.parametrize(("scheme", "extra", "setting"), [
    ("pool", (), "dispatch"),
    ("multi-reactor-pool", ("--threads", "4"), "dispatch"),
    ("threading", (), "dispatch"),
    ("prefork-blocking", (), "dispatch"),
    ("inline", ("--poller", "select"), "poller"),
    ("inline", ("--poller", "poll"), "poller"),
])
def test_combinations_that_cannot_host_asgi_fail_at_start_in_one_line(interface, scheme, extra, setting):
    status, lines = serve_once(scheme, "asgi_apps:app", "--interface", interface, *extra)
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("netcore: error:"), lines
    assert f"setting '{setting}'" in lines[0] and "allowed for ASGI" in lines[0], lines


def test_multi_reactor_pool_without_threads_hosts_asgi():
    with serving("multi-reactor-pool", "--app", "asgi_apps:app", "--threads", "0", "--workers", "2") as server:
        assert get(server, "/") == (200, b"Hello, ASGI!")


# -- bodies the server refuses or times out ----------------------------------------------------
def test_a_stalled_body_is_a_408_when_the_app_gives_up_reading():
    with serving("inline", "--app", "asgi_apps:app", "--body-timeout", "0.5") as server:
        with connect(server.address) as sock:
            sock.sendall(b"POST /starlette/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"a\":")
            data = read_until_close(sock)
        assert data.startswith(b"HTTP/1.1 408"), data[:100]
        assert not server.events_named("http.app_failed"), "the app's ClientDisconnect is not an app error"


def test_expect_100_continue_is_answered_at_the_apps_first_receive():
    with serving("inline", "--app", "asgi_apps:app") as server:
        with connect(server.address) as sock, sock.makefile("rb") as stream:
            sock.sendall(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
            sock.sendall(b"hello")
            status, _, body = read_response(stream)
            assert status == 200 and json.loads(body)["size"] == 5
            # An app that answers without reading spares the client the upload: no 100.
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            status, headers, body = read_response(stream)
            assert (status, body) == (200, b"Hello, ASGI!")

