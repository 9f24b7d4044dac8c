"""Live metrics (``--metrics-bind``): ``/metrics``, ``/livez``, ``/readyz`` of real servers.

Every server is a real ``netcore serve``; every scrape is a real HTTP request, and the
exposition is parsed by prometheus-client's own parser, so a format error fails here
before a Prometheus server would reject it. Figures are polled (bounded): nothing
announces that a counter moved.
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import threading
import time
import urllib.request

import pytest
from metrics_testing import get, scrape, until
from netcore.testing.clients import Client, connect, recv_exactly
from netcore.testing.server_process import ServerProcess, child_pids, cpu_seconds, run_netcore

HERE = os.path.dirname(os.path.abspath(__file__))
APP_ENV = {"PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}

pytest.importorskip("prometheus_client", reason="the metrics need prometheus-client (a netcore-host dependency)")


def metrics_server(*args: str) -> ServerProcess:
    return ServerProcess("--metrics-bind", "127.0.0.1:0", *args, env=APP_ENV)


def http_get(address: tuple[str, int], path: str = "/", count: int = 1) -> list[int]:
    """``count`` requests on one keep-alive connection (http.client, default settings)."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        statuses = []
        for _ in range(count):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        return statuses
    finally:
        conn.close()


# -- the setting ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nonsense", "127.0.0.1:99999", "localhost", "::1:80", "[::1]:x"])
def test_a_bad_metrics_bind_fails_at_start_in_one_line(value):
    result = run_netcore("serve", "--bind", "127.0.0.1:0", "--metrics-bind", value)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "metrics_bind" in lines[0] and "HOST:PORT" in lines[0], result.stderr


def test_metrics_are_off_unless_asked_for():
    with ServerProcess() as server:
        assert "metrics" not in server.started
        server.stop()


def test_a_metrics_port_in_use_fails_at_start_in_one_line():
    with metrics_server() as first:
        taken = first.started["metrics"]
        result = run_netcore("serve", "--bind", "127.0.0.1:0", "--metrics-bind", taken)
        assert result.returncode == 2, result.stderr
        assert "metrics_bind" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        first.stop()


# -- in one process ------------------------------------------------------------------------


def test_echo_counters_are_live_while_a_connection_is_open():
    with metrics_server("--dispatch", "inline") as server:
        metrics = server.started["metrics"]
        for path, status in (("/livez", 200), ("/readyz", 200), ("/other", 404)):
            assert get(metrics, path)[0] == status, path
        before = scrape(metrics)
        assert before["_types"]["netcore_requests"] == "counter"
        assert before["_types"]["netcore_connections_active"] == "gauge"
        assert before["netcore_ready"] == 1 and before["netcore_workers"] == 1
        with Client(server.address) as client:
            for i in range(10):
                payload = b"line %d\n" % i
                client.send(payload)
                assert client.read_exactly(len(payload)) == payload
                client.answered()
            live = scrape(metrics)  # the connection is still open: its own slots count
            assert live["netcore_connections_accepted_total"] == 1
            assert live["netcore_connections_active"] == 1
            assert live["netcore_requests_total"] == 10
            sent = sum(len(b"line %d\n" % i) for i in range(10))
            assert live["netcore_received_bytes_total"] == sent
            assert live["netcore_sent_bytes_total"] == sent
            assert live["netcore_accept_wakeups_total"] >= 1
        after = until(lambda: (s := scrape(metrics))["netcore_connections_closed_total"] == 1 and s,
                      what="the close counted")
        assert after["netcore_connections_active"] == 0
        assert after["netcore_requests_total"] == 10  # moved from the connection to the worker, once
        assert server.stop() == 0


def test_the_built_in_app_counts_status_classes_and_no_duration():
    # Its answers are table lookups: no app whose time to measure (netcore_http/metrics.py).
    with metrics_server("--protocol", "http", "--dispatch", "pool") as server:
        assert http_get(server.address, "/", 7) == [200] * 7
        assert http_get(server.address, "/missing", 3) == [404] * 3
        s = until(lambda: (s := scrape(server.started["metrics"]))["netcore_requests_total"] == 10 and s)
        assert s["netcore_http_responses_total"] == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 3, "5xx": 0}
        assert s["netcore_http_request_duration_seconds_count"] == 0
        assert server.stop() == 0


def test_http_status_classes_and_the_duration_histogram_add_up():
    with metrics_server("--protocol", "http", "--dispatch", "pool", "--app", "deployment_apps:hello") as server:
        assert http_get(server.address, "/", 7) == [200] * 7
        assert http_get(server.address, "/missing", 3) == [404] * 3
        s = until(lambda: (s := scrape(server.started["metrics"]))["netcore_requests_total"] == 10 and s)
        classes = s["netcore_http_responses_total"]
        assert classes == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 3, "5xx": 0}
        buckets = s["netcore_http_request_duration_seconds_bucket"]
        assert buckets["+Inf"] == s["netcore_http_request_duration_seconds_count"] == 10
        values = [buckets[k] for k in sorted(buckets, key=lambda k: float(k))]
        assert values == sorted(values), "buckets are cumulative"
        assert 0 <= s["netcore_http_request_duration_seconds_sum"] < 10
        assert server.stop() == 0


def test_a_failing_wsgi_app_counts_as_5xx():
    with metrics_server("--protocol", "http", "--app", "deployment_apps:failing") as server:
        assert http_get(server.address, "/")[0] == 500
        s = until(lambda: (s := scrape(server.started["metrics"]))["netcore_http_responses_total"]["5xx"] == 1
                  and s)
        assert s["netcore_http_request_duration_seconds_count"] == 1
        assert server.stop() == 0


# -- under a master ---------------------------------------------------------------------------


def _listening_inode(address: str) -> str:
    port = int(address.rpartition(":")[2])
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":
                return fields[9]
    raise AssertionError(f"no listening socket on {address}")


def _holds_socket(pid: int, inode: str) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                return True
        except OSError:
            continue
    return False


@pytest.mark.parametrize("dispatch", ["prefork", "prefork-blocking"])
def test_the_master_adds_up_its_workers_and_counts_a_restart(dispatch):
    with metrics_server("--protocol", "http", "--dispatch", dispatch, "--workers", "2") as server:
        server.wait_events("worker.started", 2)
        metrics = server.started["metrics"]
        inode = _listening_inode(metrics)
        workers = child_pids(server.pid)
        assert len(workers) == 2
        assert _holds_socket(server.pid, inode)
        assert not any(_holds_socket(pid, inode) for pid in workers), "a worker holds the master's metrics port"
        for _ in range(4):
            assert http_get(server.address, "/", 5) == [200] * 5
        s = until(lambda: (s := scrape(metrics))["netcore_requests_total"] == 20 and s,
                  what="20 requests reported by the workers")
        assert s["netcore_workers"] == 2 and s["netcore_worker_restarts_total"] == 0
        assert s["netcore_http_responses_total"]["2xx"] == 20
        os.kill(workers[0], signal.SIGKILL)
        server.wait_events("worker.started", 3)
        s = until(lambda: (s := scrape(metrics))["netcore_worker_restarts_total"] == 1
                  and s["netcore_workers"] == 2 and s)
        # The killed worker's last report stays counted: no counter goes back.
        assert s["netcore_requests_total"] >= 20 and s["netcore_http_responses_total"]["2xx"] >= 20
        assert http_get(server.address, "/", 5) == [200] * 5
        until(lambda: scrape(metrics)["netcore_requests_total"] >= 25, what="requests after the restart")
        assert server.stop() == 0


# -- readiness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ["pool", "prefork"])
def test_readyz_fails_as_soon_as_a_graceful_stop_starts(dispatch, tmp_path):
    with metrics_server("--protocol", "http", "--dispatch", dispatch, "--workers", "1",
                        "--app", "deployment_apps:slow") as server:
        server.wait_event("worker.started")
        metrics = server.started["metrics"]
        # Under a master: ready once its first workers serve (when it tells systemd READY=1).
        until(lambda: get(metrics, "/readyz")[0] == 200, what="ready")
        mark = tmp_path / "in-app"
        answers: list = []
        request = threading.Thread(target=lambda: answers.append(http_get(server.address, f"/?3&{mark}")))
        request.start()
        until(mark.exists, what="the slow request in the app")
        server.proc.send_signal(signal.SIGTERM)
        status, body, _ = until(lambda: (r := get(metrics, "/readyz"))[0] == 503 and r, what="readyz 503")
        assert body == b"stopping\n"
        assert get(metrics, "/livez")[0] == 200  # alive, finishing its work
        assert scrape(metrics)["netcore_ready"] == 0
        request.join(15)
        assert answers == [[200]], "the request in flight is answered"
        assert server.stop() == 0


# -- served from the loop (one loop, one thread) ------------------------------------------------


def test_inline_serves_its_metrics_from_its_loop_and_starts_no_thread():
    """A second thread would tax every request (metrics/listener.py): inline has none."""
    with metrics_server("--protocol", "http", "--dispatch", "inline") as server:
        server.wait_event("worker.started")
        metrics = server.started["metrics"]
        assert get(metrics, "/livez")[0] == 200
        assert http_get(server.address, "/", 3) == [200, 200, 200]
        assert http_get(server.address, "/nothing") == [404]
        s = until(lambda: (s := scrape(metrics))["netcore_http_responses_total"]["2xx"] == 3 and s,
                  what="three 2xx counted")
        assert s["netcore_http_responses_total"]["4xx"] == 1 and s["netcore_ready"] == 1
        assert os.listdir(f"/proc/{server.proc.pid}/task") == [str(server.proc.pid)]
        assert server.stop() == 0


def test_inline_readyz_fails_while_its_loop_drains_a_request():
    with metrics_server("--protocol", "http", "--dispatch", "inline", "--graceful-timeout", "20") as server:
        server.wait_event("worker.started")
        metrics = server.started["metrics"]
        with socket.create_connection(server.address, timeout=10) as client:
            client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")  # half a body
            until(lambda: scrape(metrics)["netcore_received_bytes_total"] > 0, what="the head received")
            server.proc.send_signal(signal.SIGTERM)
            status, body, _ = until(lambda: (r := get(metrics, "/readyz"))[0] == 503 and r, what="readyz 503")
            assert body == b"stopping\n"
            assert get(metrics, "/livez")[0] == 200  # alive, finishing its work
            client.sendall(b"world")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                assert chunk, "closed before the response: a request lost"
                head += chunk
            assert head.startswith(b"HTTP/1.1 404 ")  # the built-in app answers POST / so
        assert server.proc.wait(20) == 0


def _raw(address: str, data: bytes) -> bytes:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_the_loop_served_listener_refuses_bad_requests_and_outlasts_a_silent_client():
    with metrics_server("--dispatch", "inline") as server:
        metrics = server.started["metrics"]
        host, _, port = metrics.rpartition(":")
        silent = socket.create_connection((host, int(port)), timeout=10)  # connects, sends nothing
        try:
            assert get(metrics, "/readyz", timeout=2)[0] == 200  # the silent one holds nobody up
            assert _raw(metrics, b"nonsense\r\n\r\n").startswith(b"HTTP/1.0 400 ")
            assert _raw(metrics, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(
                b"HTTP/1.0 501 ")
            assert _raw(metrics, b"GET /x HTTP/1.1\r\n" + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n").startswith(
                b"HTTP/1.0 431 ")
            head = _raw(metrics, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200 ") and head.endswith(b"\r\n\r\n")  # no body
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert length > 0
            assert scrape(metrics)["netcore_ready"] == 1
        finally:
            silent.close()
        assert server.stop() == 0


def test_the_loop_served_listener_waits_out_a_full_fd_table_without_spinning():
    """EMFILE on the metrics port pauses its accepting (a level-triggered poller would
    report the waiting client again at once, for ever); the scrape is answered once
    descriptors are free again."""
    limit = 48

    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with ServerProcess("--metrics-bind", "127.0.0.1:0", "--dispatch", "inline", "--protocol", "echo",
                       preexec_fn=lower_limit) as server:
        metrics = server.started["metrics"]
        held = []
        try:
            for _ in range(limit + 10):  # fill the server's fd table with served clients
                sock = connect(server.address, timeout=10)
                sock.sendall(b"ping")
                try:
                    answered = recv_exactly(sock, 4) == b"ping"
                except ConnectionResetError:  # refused: the table is full
                    answered = False
                if answered:
                    held.append(sock)
                else:
                    sock.close()
            assert len(held) < limit, "the table never filled"
            scraped: list = []
            scrape_thread = threading.Thread(target=lambda: scraped.append(get(metrics, "/livez", timeout=20)))
            scrape_thread.start()  # its connection waits in the metrics port's backlog
            before = cpu_seconds(server.pid)
            time.sleep(1.0)  # a measurement window, not synchronisation: CPU used while full
            assert cpu_seconds(server.pid) - before < 0.3
            assert not scraped
            for sock in held[:10]:
                sock.close()
            scrape_thread.join(20)
            assert scraped and scraped[0][0] == 200
        finally:
            for sock in held:
                sock.close()
        assert server.stop() == 0


# -- every kind of scheme --------------------------------------------------------------------


def _ping_connections(address, count: int) -> None:
    """``count`` connections one after another, each one echoed ping, counted as answered."""
    for _ in range(count):
        with Client(address) as client:
            client.send(b"ping\n")
            assert client.read_exactly(5) == b"ping\n"
            client.answered()


@pytest.mark.parametrize("dispatch", ["threading", "iterative", "multi-reactor", "forking", "prefork-blocking"])
def test_every_kind_of_scheme_reports_its_connections(dispatch):
    """Blocking threads, a loop per thread, a process per connection, blocking processes."""
    with metrics_server("--dispatch", dispatch, "--workers", "2") as server:
        server.wait_event("worker.started")
        metrics = server.started["metrics"]
        _ping_connections(server.address, 3)
        s = until(lambda: (s := scrape(metrics))["netcore_connections_closed_total"] == 3 and s,
                  what="three closed connections counted")
        assert s["netcore_connections_accepted_total"] == 3 and s["netcore_connections_active"] == 0
        assert s["netcore_requests_total"] == 3 and s["netcore_received_bytes_total"] == 15
        assert s["netcore_workers"] >= 1 and s["netcore_ready"] == 1
        assert server.stop() == 0


def test_the_metrics_listener_takes_an_ipv6_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    with ServerProcess("--metrics-bind", "[::1]:0") as server:
        metrics = server.started["metrics"]
        assert metrics.startswith("[::1]:")
        assert get(metrics, "/livez")[0] == 200
        assert scrape(metrics)["netcore_ready"] == 1
        assert server.stop() == 0


def test_openmetrics_is_served_when_the_scraper_asks_for_it():
    with metrics_server() as server:
        request = urllib.request.Request(f"http://{server.started['metrics']}/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")
        assert server.stop() == 0


@pytest.mark.parametrize("dispatch", ["multi-reactor", "multi-reactor-pool"])
def test_multi_reactor_accept_counters_are_live_at_scrape_time(dispatch):
    """The acceptor loop of multi-reactor counts wake-ups and EAGAINs outside any I/O
    loop's worker: a scrape while it serves shows them, and they are what
    ``server.stopped`` reports once it stops (no connection came in between)."""
    with metrics_server("--dispatch", dispatch, "--workers", "2") as server:
        server.wait_events("worker.started", 2)
        metrics = server.started["metrics"]
        _ping_connections(server.address, 20)
        s = until(lambda: (s := scrape(metrics))["netcore_connections_closed_total"] == 20 and s,
                  what="twenty closed connections counted")
        wakeups, eagain = s["netcore_accept_wakeups_total"], s["netcore_accept_eagain_total"]
        assert s["netcore_connections_accepted_total"] == 20
        assert 1 <= wakeups and eagain <= wakeups and wakeups - eagain <= 20, s
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
        assert (stats["accept_wakeups"], stats["accept_eagain"]) == (wakeups, eagain)
