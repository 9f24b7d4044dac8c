"""``netcore bench http`` and ``netcore bench resp`` end to end, in seconds.

Real servers (netcore through netcore.testing's ServerProcess, the real uvicorn, nginx,
gunicorn, redis-server through the peer launcher), the real wrk and redis-benchmark,
tiny windows. They check the plumbing — rows, ratios against the peer of the same run,
targets, the process-tree CPU sum, skipped and failed rows, the JSON schema — never
speed: no figure is compared with a threshold except that work was measured at all.
Each test is skipped, saying why, when its tool or protocol plugin is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from netcore_bench import registry
from netcore_bench.generators import Load, Wrk
from netcore_bench.peers import PEERS
from netcore_bench.schema import validate

HTTP_NETCORE_ROWS = ("netcore hello", "netcore WSGI inline", "netcore WSGI pool", "netcore ASGI inline",
                     "netcore FastAPI inline")


@pytest.fixture(scope="module")
def installed():
    return registry.query()


def need(installed, protocol: str, tool: str) -> None:
    if installed.missing("protocol", protocol):
        pytest.skip(f"protocol plugin {protocol!r} not installed: {installed.missing('protocol', protocol)}")
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed (Debian: apt-get install {'wrk' if tool == 'wrk' else 'redis-tools'})")


def bench(tmp_path, *args, env=None, timeout=240):
    out = tmp_path / "result.json"
    res = subprocess.run([sys.executable, "-m", "netcore", "bench", *args, "--plain", "--json", str(out)],
                         capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                         env=env)
    doc = json.loads(out.read_text()) if out.exists() else None
    return res, doc


def by_case(doc):
    return {r["case"]: r for r in doc["rows"]}


def test_http_preset_against_uvicorn_end_to_end(installed, tmp_path):
    need(installed, "http", "wrk")
    res, doc = bench(tmp_path, "http", "--connections", "4", "--duration", "1", "--warmup", "0", "--rounds", "2",
                     "--peers", "uvicorn,no-such-peer")
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    rows = by_case(doc)
    for label in HTTP_NETCORE_ROWS:
        row = rows[f"{label} 4c"]
        assert row["status"] == "ok", row["reason"]
        assert row["ok_runs"] == 2
        for metric in ("messages_per_s", "server_cpu_us_per_msg", "p50_us", "p99_us"):
            assert row["metrics"][metric]["min"] > 0, metric
        assert "gen_cpu_percent" in row["metrics"]
    # the WSGI rows really host the app the WSGI peers run
    case = next(c for c in doc["cases"] if c["key"] == "netcore WSGI pool 4c")
    assert "--app" in case["args"] and "netcore_bench.peers.wsgi_hello:app" in case["args"]
    assert case["args"][case["args"].index("--dispatch") + 1] == "pool"
    # ... and the ASGI row the raw callable uvicorn runs
    case = next(c for c in doc["cases"] if c["key"] == "netcore ASGI inline 4c")
    assert "netcore_bench.peers.asgi_hello:app" in case["args"]
    # every run was wrk, pinned like the echo generator, reading wrk's own output
    run = next(r for r in doc["runs"] if r["case"] == "netcore hello 4c")
    assert run["generator"]["command"][0] == "wrk" and "--latency" in run["generator"]["command"]
    assert run["generator"]["figures"]["errors"] == 0 and "Requests/sec" in run["generator"]["figures"]["stdout"]
    assert run["server"]["exit_status"] == 0  # netcore stopped on TERM, as after an echo run
    # rounds alternate the servers, the second starting one later: A B C D, B C D A
    order = [r["case"] for r in doc["runs"]]
    half = len(order) // 2
    # the netcore rows, and uvicorn where it is installed (tox's unit env has it)
    servers = len(HTTP_NETCORE_ROWS) + (1 if importlib.util.find_spec("uvicorn") else 0)
    assert order[half:] == order[1:half] + order[:1] and len(set(order[:half])) == half == servers
    unknown = rows["no-such-peer 4c"]
    assert unknown["status"] == "skipped" and "unknown peer" in unknown["reason"]
    if PEERS["uvicorn"].unavailable():
        assert rows["uvicorn 4c"]["status"] == "skipped"
        return
    uv, hello = rows["uvicorn 4c"], rows["netcore hello 4c"]
    assert uv["status"] == "ok", uv["reason"]
    assert hello["baseline"] == "uvicorn 4c"
    expect = hello["metrics"]["messages_per_s"]["median"] / uv["metrics"]["messages_per_s"]["median"]
    assert hello["ratios"]["messages_per_s"] == pytest.approx(expect)
    target = next(t for t in doc["targets"] if t["case"] == "netcore hello 4c" and t["peer"] == "uvicorn 4c")
    assert target["minimum"] == 2.5 and target["ratio"] == pytest.approx(expect)
    assert target["status"] == ("met" if expect >= 2.5 else "missed")
    assert "targets (ratios of medians from this run)" in res.stdout


def test_http_peers_with_a_master_and_a_worker_are_summed_over_every_process(installed, tmp_path):
    need(installed, "http", "wrk")
    peers = [p for p in ("nginx", "gunicorn-gthread") if not PEERS[p].unavailable()]
    if not peers:
        pytest.skip("neither nginx nor gunicorn is installed")
    res, doc = bench(tmp_path, "http", "--connections", "4", "--duration", "1", "--warmup", "0", "--rounds", "1",
                     "--peers", ",".join(peers))
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    rows = by_case(doc)
    for peer in peers:
        row = rows[f"{peer} 4c"]
        assert row["status"] == "ok", row["reason"]
        assert row["metrics"]["server_cpu_us_per_msg"]["min"] > 0
        run = next(r for r in doc["runs"] if r["case"] == f"{peer} 4c")
        # the launcher, the master and the worker: all in the CPU sum
        assert run["server"]["pids"] >= 3, run["server"]
        assert run["server"]["exit_status"] == 0  # the launcher stopped its peer on TERM


def test_resp_preset_against_redis_server_end_to_end(installed, tmp_path):
    need(installed, "resp", "redis-benchmark")
    res, doc = bench(tmp_path, "resp", "--requests", "3000", "--pipeline", "1,16", "--tests", "set,get",
                     "--rounds", "1", "--warmup", "0", "--peers", "redis-server")
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    rows = by_case(doc)
    for pipeline in (1, 16):
        for test in ("set", "get"):
            row = rows[f"netcore inline -P{pipeline} {test}"]
            assert row["status"] == "ok", row["reason"]
            assert row["metrics"]["messages_per_s"]["median"] > 0
            run = next(r for r in doc["runs"] if r["case"] == row["case"])
            cmd = run["generator"]["command"]
            assert cmd[0] == "redis-benchmark" and cmd[cmd.index("-P") + 1] == str(pipeline)
            assert cmd[cmd.index("-t") + 1] == test and cmd[cmd.index("-n") + 1] == "3000"
            assert run["generator"]["figures"]["test"] == test.upper()
            assert run["generator"]["figures"]["messages"] == 3000
    # GET reads a key that exists: the warm-up (here just the priming SET) wrote it
    get_run = next(r for r in doc["runs"] if r["case"] == "netcore inline -P1 get")
    warm = get_run["generator"]["warmup_command"]
    assert warm[warm.index("-t") + 1] == "set"
    if PEERS["redis-server"].unavailable():
        assert rows["redis-server -P1 get"]["status"] == "skipped"
        return
    peer = rows["redis-server -P16 get"]
    assert peer["status"] == "ok", peer["reason"]
    assert rows["netcore inline -P16 get"]["baseline"] == "redis-server -P16 get"
    assert "messages_per_s" in rows["netcore inline -P16 get"]["ratios"]
    targets = {(t["case"], t["minimum"]) for t in doc["targets"]}
    assert ("netcore inline -P1 set", 0.95) in targets and ("netcore inline -P16 get", 0.7) in targets
    assert all(t["status"] in ("met", "missed") for t in doc["targets"])


def test_a_netcore_http_server_that_fails_to_start_is_a_failed_row(installed, tmp_path):
    need(installed, "http", "wrk")
    # keepalive_timeout must be at least 0.01: every netcore server exits at start.
    res, doc = bench(tmp_path, "http", "--connections", "4", "--duration", "1", "--warmup", "0", "--rounds", "2",
                     "--peers", "", "--set", "keepalive_timeout=0")
    assert res.returncode == 1  # nothing at all was measured
    assert validate(doc) == []
    for row in doc["rows"]:
        assert row["status"] == "failed" and "keepalive_timeout" in row["reason"], row
        assert row["runs"] == 1  # not retried in round 2
    assert all(t["status"] == "not measured" for t in doc["targets"])


def test_a_missing_load_generator_skips_its_rows_with_the_reason(tmp_path):
    # A PATH without wrk and redis-benchmark (the servers are started by absolute path).
    env = dict(os.environ, PATH=str(tmp_path))
    res, doc = bench(tmp_path, "http", "--connections", "4", "--rounds", "1", "--peers", "", env=env)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    for row in doc["rows"]:
        assert row["status"] == "skipped"
        assert "load generator wrk unavailable: wrk not found on PATH" in row["reason"], row


def test_wrk_errors_fail_the_run_and_its_latency_units_are_read():
    # wrk 4.1's report for a server answering 404 and dropping connections.
    out = """Running 1s test @ http://127.0.0.1:1/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us    1.20ms  14.99ms   93.00%
  Latency Distribution
     50%  512.00us
     75%  900.00us
     90%    1.50ms
     99%    1.02s
  1200 requests in 1.00s, 150.00KB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 1200
Requests/sec:   1199.50
Transfer/sec:    150.00KB
"""
    figures = Wrk().parse(out, Load())
    assert figures["messages"] == 1200 and figures["messages_per_s"] == 1199.5
    assert figures["p50_us"] == 512.0 and figures["p90_us"] == 1500.0 and figures["p99_us"] == 1_020_000.0
    assert figures["errors"] == 1200 + 3 + 1
    with pytest.raises(ValueError, match="cannot read wrk"):
        Wrk().parse("wrk: connection refused\n", Load())
    assert Wrk().command(Load(connections=8, duration=0.4), "127.0.0.1", 80)[3] == "-d1s"  # whole seconds
