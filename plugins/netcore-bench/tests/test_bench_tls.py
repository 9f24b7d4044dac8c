"""``netcore bench --tls`` end to end: one round, one second, tiny loads.

Real servers over TLS on a certificate the bench makes for the run (netcore, the asyncio
and uvloop echo peers, uvicorn, gunicorn, nginx, redis-server), the real wrk and
redis-benchmark over TLS and the Python TLS echo client. They check that every row really
ran over TLS on the run's certificate and that what cannot is skipped with the reason —
never speed. Each test skips, saying why, when a tool, a peer or ``cryptography`` is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from netcore_bench import registry
from netcore_bench import tls as tls_mod
from netcore_bench.peers import PEERS
from netcore_bench.schema import validate

TINY = ["--rounds", "1", "--duration", "1", "--warmup", "0", "--plain", "--tls"]

pytestmark = pytest.mark.skipif(tls_mod.unavailable() is not None, reason=str(tls_mod.unavailable()))


@pytest.fixture(scope="module")
def installed():
    return registry.query()


def need(installed, protocol: str, tool: str | None = None) -> None:
    if installed.missing("protocol", protocol):
        pytest.skip(f"protocol plugin {protocol!r} not installed: {installed.missing('protocol', protocol)}")
    if tool and not shutil.which(tool):
        pytest.skip(f"{tool} not installed (Debian: apt-get install {'wrk' if tool == 'wrk' else 'redis-tools'})")


def bench(tmp_path, *args, timeout=240):
    out = tmp_path / "result.json"
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the run's certificates go here, and must be gone after
    res = subprocess.run([sys.executable, "-m", "netcore", "bench", *args, "--json", str(out)], capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    doc = json.loads(out.read_text()) if out.exists() else None
    return res, doc


def rows(doc):
    return {r["case"]: r for r in doc["rows"]}


def certfile_of(doc, key: str) -> str:
    args = next(c for c in doc["cases"] if c["key"] == key)["args"]
    return args[args.index("--certfile") + 1]


def assert_certificates_removed(tmp_path: Path) -> None:
    left = [p for p in tmp_path.glob("netcore-bench-tls-*")]
    assert left == [], f"the run's keys were left behind: {left}"


def test_echo_over_tls_against_uvloop_with_the_python_tls_client(installed, tmp_path):
    need(installed, "echo")
    peers = "asyncio,uvloop" if not PEERS["uvloop"].unavailable() else "asyncio"
    res, doc = bench(tmp_path, "--poller", "epoll-lt", "--connections", "4", "--peers", peers, *TINY)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    assert doc["config"]["tls"] is True and doc["config"]["generator"] == "tls_echo_client"
    by = rows(doc)
    for key in ["epoll-lt inline echo", *peers.split(",")]:
        row = by[key]
        assert row["status"] == "ok", row["reason"]
        assert row["metrics"]["server_cpu_us_per_msg"]["min"] > 0
        run = next(r for r in doc["runs"] if r["case"] == key)
        cmd = run["generator"]["command"]
        # the Python TLS client, checking the server against the run's CA
        assert cmd[1:3] == ["-m", "netcore_bench.tls_echo_client"] and "--cacert" in cmd
        figures = run["generator"]["figures"]
        assert figures["tls"] is True and figures["errors"] == 0 and figures["messages"] > 0
    # netcore and the peers were given the same certificate
    assert certfile_of(doc, "epoll-lt inline echo") == certfile_of(doc, "asyncio")
    assert "over TLS" in doc["title"]
    assert_certificates_removed(tmp_path)


def test_http_over_tls_every_peer_on_the_same_certificate_and_the_cpu_targets(installed, tmp_path):
    need(installed, "http", "wrk")
    res, doc = bench(tmp_path, "http", "--connections", "4", "--peers", "uvicorn,gunicorn-sync,nginx,waitress",
                     *TINY)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    by = rows(doc)
    cert = certfile_of(doc, "netcore hello 4c")
    for label in ("netcore hello 4c", "netcore WSGI inline 4c", "netcore WSGI pool 4c"):
        assert by[label]["status"] == "ok", by[label]["reason"]
        run = next(r for r in doc["runs"] if r["case"] == label)
        assert run["generator"]["command"][-1].startswith("https://127.0.0.1:")
        assert run["generator"]["figures"]["errors"] == 0
    # waitress has no TLS: a skipped row that says so, never a plaintext row in a TLS table
    assert by["waitress 4c"]["status"] == "skipped" and "no TLS" in by["waitress 4c"]["reason"]
    for peer in ("uvicorn", "gunicorn-sync", "nginx"):
        row = by[f"{peer} 4c"]
        if PEERS[peer].unavailable():
            assert row["status"] == "skipped"
            continue
        assert row["status"] == "ok", row["reason"]
        assert certfile_of(doc, f"{peer} 4c") == cert
    # over TLS the targets are CPU per request (the TLS targets), not requests/s
    targets = {t["peer"]: t for t in doc["targets"]}
    assert set(targets) <= {"netcore hello 4c"} and {t["metric"] for t in doc["targets"]} == {"server_cpu_us_per_msg"}
    minimums = sorted(t["minimum"] for t in doc["targets"])
    assert minimums == sorted(m for p, m in (("nginx", 1 / 1.5), ("uvicorn", 1.0)) if not PEERS[p].unavailable())
    assert_certificates_removed(tmp_path)


def test_handshake_preset_a_connection_per_request(installed, tmp_path):
    need(installed, "http", "wrk")
    res, doc = bench(tmp_path, "handshake", "--connections", "2", "--peers", "nginx", *TINY)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    by = rows(doc)
    keys = ["netcore hello inline 2c"] + ([] if PEERS["nginx"].unavailable() else ["nginx 2c"])
    for key in keys:
        row = by[key]
        assert row["status"] == "ok", row["reason"]
        run = next(r for r in doc["runs"] if r["case"] == key)
        cmd = run["generator"]["command"]
        assert cmd[cmd.index("-H") + 1] == "Connection: close" and cmd[-1].startswith("https://")
        assert run["generator"]["figures"]["messages"] > 0 and run["generator"]["figures"]["errors"] == 0
    # each request was its own connection: netcore accepted about as many as it answered
    run = next(r for r in doc["runs"] if r["case"] == "netcore hello inline 2c")
    stats = run["server"]["stats"]
    assert stats["connections_accepted"] >= run["generator"]["figures"]["messages"]
    assert "resumed" in doc["claim"]


def test_resp_over_tls_with_redis_benchmark_tls(installed, tmp_path):
    need(installed, "resp", "redis-benchmark")
    if not tls_mod.links_openssl("redis-benchmark"):
        pytest.skip("redis-benchmark here has no TLS")
    res, doc = bench(tmp_path, "resp", "--requests", "2000", "--pipeline", "1", "--tests", "get",
                     "--connections", "4", "--peers", "redis-server", *TINY)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    by = rows(doc)
    keys = ["netcore inline -P1 get"] + ([] if PEERS["redis-server"].unavailable() else ["redis-server -P1 get"])
    for key in keys:
        row = by[key]
        if key.startswith("redis-server") and (why := tls_mod.peer_unavailable("redis-server")):
            assert row["status"] == "skipped" and why in row["reason"]
            continue
        assert row["status"] == "ok", row["reason"]
        run = next(r for r in doc["runs"] if r["case"] == key)
        cmd = run["generator"]["command"]
        assert "--tls" in cmd and cmd[cmd.index("--cacert") + 1].endswith("ca.pem")
        assert run["generator"]["figures"]["messages"] == 2000


def test_the_peers_really_serve_the_runs_certificate(pki):
    """The launcher's peers and the echo peer over TLS, checked with a verifying client."""
    from netcore.testing.server_process import ServerProcess

    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    peers = [p for p in ("asyncio", "uvicorn", "nginx", "redis-server")
             if not PEERS[p].unavailable() and not tls_mod.peer_unavailable(p)]
    for name in peers:
        spec = PEERS[name]
        server = ServerProcess(*spec.args, "--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key),
                               executable=[sys.executable, "-m", spec.module])
        with server:
            host, port = server.address
            with ctx.wrap_socket(socket.create_connection((host, port), timeout=10),
                                 server_hostname=host) as s:
                request = {"echo": b"ping\n", "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                           "resp": b"PING\r\n"}[spec.protocols[0]]
                s.sendall(request)
                assert s.recv(100), name
                der = s.getpeercert(binary_form=True)
        assert der == ssl.PEM_cert_to_DER_cert(pki.server_cert.read_text()), name


def _tls_client(pki, port: int, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netcore_bench.tls_echo_client", "--port", str(port),
                           "--cacert", str(pki.ca_cert), "-w", "0", "-d", "0.5", *extra],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from netcore.testing.certs import make_test_pki

    return make_test_pki(tmp_path_factory.mktemp("pki"))


def test_the_tls_client_waits_for_a_server_that_takes_one_connection_at_a_time(pki):
    """iterative serves one connection until it closes: the other slot's handshake waits,
    as the C client's connect waits in the backlog, and the run is not a failure."""
    from netcore.testing.server_process import ServerProcess

    with ServerProcess("--dispatch", "iterative", "--certfile", str(pki.server_cert),
                       "--keyfile", str(pki.server_key)) as server:
        res = _tls_client(pki, server.address[1], "-c", "2")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["messages"] > 0 and out["errors"] == 0 and res.stderr.split() == ["warm", "done"]


def test_the_tls_client_counts_a_connection_the_server_drops_as_a_failure(pki):
    """A server that answers once and closes: EOF with a message outstanding fails the run."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve_once() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as conn:
            data = conn.recv(64)
            conn.sendall(data)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        res = _tls_client(pki, listener.getsockname()[1], "-c", "1", "-s", "16")
    finally:
        listener.close()
        thread.join(10)
    assert res.returncode == 1, (res.stdout, res.stderr)
    out = json.loads(res.stdout)
    assert out["errors"] == 1 and "connection lost" in out["last_connect_error"], out
