"""A tested deployment: Debian's HAProxy in front of three netcore instances, on loopback.

HAProxy is started by the test with the configuration docs/deployment.md shows (made by
:func:`haproxy_config`), health-checking each instance's ``/readyz`` on its metrics
port and speaking ``send-proxy-v2`` to it, so the app sees the client's own address.
The three instances run three different schemes (``inline``, ``pool``, ``prefork``;
for RESP, which keeps its data in one process, ``multi-reactor`` instead of
``prefork``): the balancer cannot tell them apart, and neither may the results.

* HTTP mode: a rolling restart -- each instance in turn sent TERM (its ``/readyz``
  fails at once, it stops accepting, finishes what it has) and replaced on the same
  ports -- under constant keep-alive load, with every request sent and every response
  received counted (a refused connect is not a request; an EOF after a request is a
  loss). HAProxy re-sends what an instance refused or closed unanswered
  (``retry-on``, ``option redispatch``): that is the balancer's half of the bargain.
* One instance SIGKILLed under load: what the clients saw is printed and bounded.
* TCP mode, RESP: the same rolling restart, where a balancer cannot re-send a command
  (it does not know where one ends): each instance is first set to ``drain`` on
  HAProxy's runtime API, and TERMed once HAProxy has no session left on it.

Skipped, with the reason, where ``haproxy`` is not installed (CI installs it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
import types

import pytest
from deployment_testing import (
    CLIENT_ADDRESS,
    PROXY,
    RESP_SCHEMES,
    SCHEMES,
    Instance,
    assert_all_from_the_app,
    free_port,
)
from http_load import HttpLoad, assert_no_loss
from metrics_testing import get, until

HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")
DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "deployment.md"

def haproxy_config(mode: str, frontend_port: int, instances: list, admin_socket: str, proxy: bool = PROXY) -> str:
    """The configuration docs/deployment.md shows, for these instances."""
    proxy_option = " send-proxy-v2" if proxy else ""
    servers = "\n".join(f"    server {i.name} 127.0.0.1:{i.port} check port {i.metrics_port}{proxy_option}"
                        for i in instances)
    retry = ("    retry-on all-retryable-errors\n    http-reuse safe\n" if mode == "http" else "")
    return f"""global
    stats socket {admin_socket} level admin
    maxconn 2000

defaults
    mode {mode}
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 3
    option redispatch 1
{retry}
frontend front
    bind 127.0.0.1:{frontend_port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 100ms fall 1 rise 2
{servers}
"""


class HAProxy:
    def __init__(self, tmp_path, mode: str, instances: list[Instance]) -> None:
        self.port = free_port()
        self.admin = str(tmp_path / "haproxy.sock")
        self.config = tmp_path / "haproxy.cfg"
        self.config.write_text(haproxy_config(mode, self.port, instances, self.admin))
        self.instances = instances
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> HAProxy:
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.config)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        until(lambda: os.path.exists(self.admin) or self.proc.poll() is not None, what="haproxy's admin socket")
        assert self.proc.poll() is None, self.proc.stdout.read()
        self.wait_status({i.name: "UP" for i in self.instances})
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(self.admin)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend's servers: name -> row (status, scur, ...)."""
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "instances" and row["svname"] not in ("BACKEND", "FRONTEND")}

    def retries(self) -> dict[str, int]:
        """What HAProxy did for the clients: requests re-sent (wretr) and sent elsewhere (wredis)."""
        rows = self.servers().values()
        return {key: sum(int(row[key] or 0) for row in rows) for key in ("wretr", "wredis", "eresp", "econ")}

    def wait_status(self, wanted: dict[str, str], timeout: float = 15.0) -> None:
        def reached():
            rows = self.servers()
            return all(rows[name]["status"].startswith(status) for name, status in wanted.items())
        until(reached, timeout, what=f"haproxy sees {wanted} ({self.servers() if self.proc else ''})")


@contextlib.contextmanager
def deployment(tmp_path, mode: str, *args: str, schemes: tuple[str, ...] = SCHEMES):
    instances = [Instance(f"n{index}", dispatch, *args) for index, dispatch in enumerate(schemes)]
    try:
        for instance in instances:
            instance.start()
        with HAProxy(tmp_path, mode, instances) as haproxy:
            yield haproxy, instances
    finally:
        for instance in instances:
            instance.kill()


def http_whoami(address: tuple[str, int], source: str = CLIENT_ADDRESS) -> tuple[str, int]:
    with socket.create_connection(address, timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    addr, pid = body.decode().split()
    return addr, int(pid)


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_the_haproxy_configuration_in_the_docs_is_the_tested_one(mode):
    instances = [types.SimpleNamespace(name=f"n{i}", port=8001 + i, metrics_port=9101 + i) for i in range(3)]
    assert haproxy_config(mode, 80, instances, "/run/haproxy/admin.sock", proxy=True) in DOC.read_text()


# -- HTTP ----------------------------------------------------------------------------------------


@needs_haproxy
def test_the_app_sees_the_clients_address_through_haproxy(tmp_path):
    if not PROXY:
        pytest.skip("PROXY protocol (proxy_protocol) is not in this tree yet: the app would see haproxy's address")
    with deployment(tmp_path, "http", "--protocol", "http", "--app", "deployment_apps:whoami") as (haproxy, instances):
        seen = [http_whoami(haproxy.address) for _ in range(6)]
        assert {addr for addr, _ in seen} == {CLIENT_ADDRESS}, seen
        assert len({pid for _, pid in seen}) >= 2, f"round robin reached one instance only: {seen}"


@needs_haproxy
def test_a_rolling_restart_through_haproxy_loses_no_request(tmp_path):
    with deployment(tmp_path, "http", "--protocol", "http", "--app", "deployment_apps:whoami") as (haproxy, instances):
        with HttpLoad(haproxy.address, connections=6) as load:
            load.wait_for(200)
            for instance in instances:
                old_pid = instance.server.pid
                assert instance.stop(signal.SIGTERM) == 0
                haproxy.wait_status({instance.name: "DOWN"})
                load.wait_for(100)  # the others carry the load alone
                instance.start()
                assert instance.server.pid != old_pid
                haproxy.wait_status({instance.name: "UP"})
                load.wait_for(100)
            load.stop()
        print(f"rolling restart through haproxy: {load.counts}, lost {len(load.lost)}; haproxy {haproxy.retries()}")
        assert_no_loss(load)
        assert_all_from_the_app(load.bodies)
        pids = {int(body.split()[1]) for body in load.bodies}
        assert {i.server.pid for i in instances if i.dispatch != "prefork"} <= pids


@needs_haproxy
def test_an_instance_killed_under_load_is_taken_out(tmp_path):
    with deployment(tmp_path, "http", "--protocol", "http", "--app", "deployment_apps:whoami") as (haproxy, instances):
        victim = instances[0]
        with HttpLoad(haproxy.address, connections=6) as load:
            load.wait_for(200)
            before = dict(load.counts)
            os.kill(victim.server.pid, signal.SIGKILL)
            haproxy.wait_status({victim.name: "DOWN"})
            # After the check took it out, the clients go on as before.
            deadline = time.monotonic() + 30
            goal = load.counts["received"] + 300
            while load.counts["received"] < goal and time.monotonic() < deadline:
                load.done.wait(0.05)
            load.stop()
        print(f"SIGKILL under load: before {before}, after {load.counts}, lost {len(load.lost)}: {load.lost[:3]}; "
              f"haproxy {haproxy.retries()}; error pages {sum(not b[:1].isdigit() for b in load.bodies)}")
        assert load.counts["received"] >= goal, load.counts
        # At most the requests that were inside the killed process (one per client connection).
        assert len(load.lost) <= 6, load.lost


# -- RESP, TCP mode -------------------------------------------------------------------------------


class RespLoad(HttpLoad):
    """Threads that each connect, send three PINGs, read three PONGs, close -- counted as
    :class:`HttpLoad` counts (a refused connect is not a command; EOF after one is a loss)."""

    PING = b"*1\r\n$4\r\nPING\r\n"

    def __init__(self, address: tuple[str, int], clients: int = 4) -> None:
        super().__init__(address, connections=clients)

    def _run(self, index: int) -> None:
        while not self.done.is_set():
            try:
                sock = socket.create_connection(self.address, timeout=30)
            except ConnectionRefusedError:
                self._count("refused")
                self.done.wait(0.01)
                continue
            with sock:
                for _ in range(3):
                    try:
                        sock.sendall(self.PING)
                    except OSError as exc:
                        self._count("sent")
                        self.lost.append(f"client {index}: send failed: {exc!r}")
                        break
                    self._count("sent")
                    reply = b""
                    try:
                        while not reply.endswith(b"\r\n"):
                            chunk = sock.recv(64)
                            if not chunk:
                                raise EOFError("EOF after a sent PING")
                            reply += chunk
                    except (OSError, EOFError) as exc:
                        self.lost.append(f"client {index}: no reply: {exc!r}")
                        break
                    assert reply == b"+PONG\r\n", reply
                    self._count("received")


def read_resp_reply(sock: socket.socket) -> bytes:
    """One simple-string, error or bulk reply (what CLIENT LIST answers), whole."""
    reply = b""
    while True:
        if b"\r\n" in reply:
            line, _, rest = reply.partition(b"\r\n")
            if not line.startswith(b"$"):
                return reply
            if len(rest) >= int(line[1:]) + 2:
                return reply
        chunk = sock.recv(65536)
        assert chunk, f"EOF after {reply!r}"
        reply += chunk


@needs_haproxy
def test_resp_through_haproxy_in_tcp_mode_restarts_without_a_lost_command(tmp_path):
    with deployment(tmp_path, "tcp", "--protocol", "resp", schemes=RESP_SCHEMES) as (haproxy, instances):
        if shutil.which("redis-cli"):
            cli = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(haproxy.port), "PING"],
                                 capture_output=True, text=True, timeout=10)
            assert cli.stdout.strip() == "PONG", cli
        if PROXY:  # CLIENT LIST names the client's own address, not haproxy's
            with socket.create_connection(haproxy.address, timeout=10, source_address=(CLIENT_ADDRESS, 0)) as sock:
                sock.sendall(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
                reply = read_resp_reply(sock)
                # Until resp has CLIENT LIST (the PROXY protocol work), an error.
                if not reply.startswith(b"-"):
                    assert f"addr={CLIENT_ADDRESS}:{sock.getsockname()[1]}".encode() in reply, reply
        with RespLoad(haproxy.address) as load:
            load.wait_for(200)
            for instance in instances:
                haproxy.command(f"set server instances/{instance.name} state drain")
                name = instance.name
                until(lambda: haproxy.servers()[name]["scur"] == "0", what="no session left")  # noqa: B023
                assert instance.stop(signal.SIGTERM) == 0
                load.wait_for(50)
                instance.start()
                haproxy.command(f"set server instances/{instance.name} state ready")
                haproxy.wait_status({instance.name: "UP"})
                load.wait_for(50)
            load.stop()
        print(f"RESP rolling restart through haproxy (tcp): {load.counts}, lost {len(load.lost)}")
        assert not load.lost, f"{len(load.lost)} lost of {load.counts['sent']}: {load.lost[:5]}"
        assert load.counts["sent"] == load.counts["received"], load.counts


@needs_haproxy
def test_readyz_is_what_haproxy_checks(tmp_path):
    """A TERMed instance answers 503 on /readyz while it drains, and HAProxy marks it DOWN."""
    with deployment(tmp_path, "http", "--protocol", "http", "--app", "deployment_apps:slow") as (haproxy, instances):
        instance = instances[1]
        answers: list = []

        def slow_request():
            with socket.create_connection(haproxy.address, timeout=20) as sock:
                sock.sendall(b"GET /?2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                answers.append(data)

        # Round robin: enough slow requests that the chosen instance has one in flight.
        threads = [threading.Thread(target=slow_request) for _ in range(3)]
        for thread in threads:
            thread.start()
        metrics = f"127.0.0.1:{instance.metrics_port}"
        until(lambda: get(metrics, "/metrics")[1].count(b"netcore_connections_active 1.0"), what="in flight")
        instance.server.proc.send_signal(signal.SIGTERM)
        until(lambda: get(metrics, "/readyz")[0] == 503, what="503 while draining")
        haproxy.wait_status({instance.name: "DOWN"})
        for thread in threads:
            thread.join(20)
        assert len(answers) == 3 and all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
        assert instance.stop() == 0
