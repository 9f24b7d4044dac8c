"""``netcore bench`` end to end: real servers, the real C generator, tiny windows.

These check the bench's plumbing (rows, rounds, failures, the JSON document), never
speed: every run is half a second and no figure is compared with a threshold except
that work was measured at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from netcore_bench import build
from netcore_bench.schema import SCHEMA, validate

TINY = ["--rounds", "2", "--duration", "0.5", "--warmup", "0.2", "--plain"]


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    env = dict(os.environ)
    env["NETCORE_BENCH_CACHE"] = str(tmp_path_factory.mktemp("bench-cache"))
    return env


def bench(env, tmp_path, *args, timeout=120):
    out = tmp_path / "result.json"
    res = subprocess.run([sys.executable, "-m", "netcore", "bench", *args, "--json", str(out)], env=env,
                         capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    doc = json.loads(out.read_text()) if out.exists() else None
    return res, doc


def rows(doc):
    return {r["case"]: r for r in doc["rows"]}


def test_tiny_matrix_end_to_end(bench_env, tmp_path):
    res, doc = bench(bench_env, tmp_path, "--poller", "epoll-lt", "--peers", "asyncio", *TINY)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    by = rows(doc)
    nc, peer = by["epoll-lt inline echo"], by["asyncio"]
    for row in (nc, peer):
        assert row["status"] == "ok" and row["ok_runs"] == 2
        m = row["metrics"]["server_cpu_us_per_msg"]
        assert m["min"] <= m["median"] <= m["max"] and len(m["values"]) == 2 and m["min"] > 0
        assert row["metrics"]["messages_per_s"]["median"] > 0
    # the ratio is computed against the peer measured in the same run
    assert nc["baseline"] == "asyncio"
    expect = nc["metrics"]["server_cpu_us_per_msg"]["median"] / peer["metrics"]["server_cpu_us_per_msg"]["median"]
    assert nc["ratios"]["server_cpu_us_per_msg"] == pytest.approx(expect)
    # rounds alternate the cases, each round starting one later: A B, B A
    assert [(r["case"], r["round"]) for r in doc["runs"]] == [
        ("epoll-lt inline echo", 1), ("asyncio", 1), ("asyncio", 2), ("epoll-lt inline echo", 2)]
    # netcore's server.stopped stats were collected after TERM
    run = doc["runs"][0]
    assert run["server"]["exit_status"] == 0 and run["server"]["stats"]["connections_accepted"] >= 64
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["kernel"]
    # the table went to stdout, one line per run to stderr
    assert "epoll-lt inline echo" in res.stdout and "asyncio" in res.stdout
    assert res.stderr.count("round ") >= 4


def test_json_matches_the_written_schema_with_jsonschema_too(bench_env, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    res, doc = bench(bench_env, tmp_path, "--poller", "poll", "--peers", "", "--rounds", "1", "--duration", "0.3",
                     "--warmup", "0.1", "--plain")
    assert res.returncode == 0, res.stderr
    jsonschema.validate(doc, SCHEMA)
    broken = dict(doc, rows=[dict(doc["rows"][0], status="fine")])
    assert any("status" in p for p in validate(broken))
    assert any("missing 'machine'" in p for p in validate({k: v for k, v in doc.items() if k != "machine"}))


def test_a_server_that_fails_to_start_is_a_failed_row(bench_env, tmp_path):
    # echo_delay must be >= 0: every netcore server exits at start with status 2.
    res, doc = bench(bench_env, tmp_path, "--poller", "epoll-lt", "--dispatch", "inline,no-such-scheme",
                     "--peers", "asyncio", "--set", "echo_delay=-1", *TINY)
    assert res.returncode == 0, res.stderr  # the peer was measured
    assert validate(doc) == []
    by = rows(doc)
    failed = by["epoll-lt inline echo"]
    assert failed["status"] == "failed" and "did not start" in failed["reason"]
    assert "echo_delay" in failed["reason"]
    assert failed["runs"] == 1  # not retried in round 2
    missing = by["epoll-lt no-such-scheme echo"]
    assert missing["status"] == "skipped" and "not installed" in missing["reason"]
    assert by["asyncio"]["status"] == "ok"
    assert "FAILED" in res.stdout and "not measured:" in res.stdout


def test_nothing_measured_exits_1(bench_env, tmp_path):
    res, doc = bench(bench_env, tmp_path, "--poller", "epoll-lt", "--peers", "", "--set", "echo_delay=-1",
                     "--rounds", "1", "--duration", "0.3", "--plain")
    assert res.returncode == 1
    assert doc["rows"][0]["status"] == "failed"


def test_generator_cpu_is_measured_and_a_saturated_generator_is_flagged(bench_env, tmp_path):
    res, doc = bench(bench_env, tmp_path, "--poller", "epoll-lt", "--peers", "", "--gen-saturated", "0",
                     "--rounds", "1", "--duration", "0.5", "--warmup", "0.1", "--plain")
    assert res.returncode == 0, res.stderr
    row = doc["rows"][0]
    assert row["metrics"]["gen_cpu_percent"]["median"] > 0
    assert "generator_saturated" in row["flags"]
    assert "GEN-SATURATED" in res.stdout and "load generator above 0%" in res.stderr


def test_select_stops_at_its_fd_limit_and_says_so(bench_env):
    res = subprocess.run([sys.executable, "-m", "netcore", "bench", "idle", "--poller", "select,epoll-lt",
                          "--idle", "0,2000", "--list"], env=bench_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = {line.split(":")[0]: line for line in res.stdout.splitlines()}
    assert "FD_SETSIZE" in lines["select +2000 idle"] and "skipped" in lines["select +2000 idle"]
    assert "skipped" not in lines["select +0 idle"] and "skipped" not in lines["epoll-lt +2000 idle"]
    assert "--max-connections" in lines["epoll-lt +2000 idle"]


def test_idle_connections_are_held_and_memory_per_idle_connection_derived(bench_env, tmp_path):
    res, doc = bench(bench_env, tmp_path, "idle", "--poller", "epoll-lt", "--idle", "0,300", "--rounds", "1",
                     "--duration", "0.5", "--warmup", "0.2", "--plain")
    assert res.returncode == 0, res.stderr
    by = rows(doc)
    with_idle = by["epoll-lt +300 idle"]
    assert with_idle["status"] == "ok" and with_idle["baseline"] == "epoll-lt +0 idle"
    assert "rss_per_idle_conn_bytes" in with_idle["derived"]
    run = next(r for r in doc["runs"] if r["case"] == "epoll-lt +300 idle")
    assert run["generator"]["figures"]["idle"] == 300
    assert run["server"]["stats"]["connections_accepted"] >= 364


def test_herd_reports_not_installed_until_prefork_lands_then_measures(bench_env, tmp_path):
    res, doc = bench(bench_env, tmp_path, "herd", "--workers", "2", "--acceptor", "shared,reuseport",
                     "--rounds", "1", "--duration", "0.5", "--warmup", "0.2", "--plain")
    assert validate(doc) == []
    for row in doc["rows"]:
        if row["status"] == "skipped":
            assert "not installed" in row["reason"]
        else:
            assert row["status"] == "ok", row["reason"]
            assert row["metrics"]["connections_per_s"]["median"] > 0
            assert "accept_eagain_per_conn" in row["metrics"] and "worker_balance" in row["metrics"]
            assert row["metrics"]["context_switches_per_conn"]["median"] > 0


def test_the_c_generator_ships_as_package_data_and_builds_outside_the_tree(bench_env, monkeypatch):
    assert b"int main" in build.source_text()
    monkeypatch.setenv("NETCORE_BENCH_CACHE", bench_env["NETCORE_BENCH_CACHE"])
    path = build.echo_client()
    assert path.is_file() and os.access(path, os.X_OK)
    assert str(path).startswith(bench_env["NETCORE_BENCH_CACHE"])
    res = subprocess.run([str(path), "--port", "1", "--host", "10.0.0.1"], capture_output=True, text=True, timeout=10)
    assert res.returncode == 2 and "loopback" in res.stderr


def test_other_commands_do_not_import_the_harness():
    """Every ``netcore`` run loads the bench's plugin module (to learn the command), and only it.

    ``netcore config`` goes through the same start-up as ``netcore serve``: plugins loaded,
    commands collected. The harness behind the lazy target must stay unimported.
    """
    code = ("import sys, netcore.cli\n"
            "assert netcore.cli.main(['config']) == 0\n"
            "assert 'netcore_bench.plugin' in sys.modules, 'the plugin was not loaded at all'\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('netcore_bench') and m != 'netcore_bench.plugin'\n"
            "                and m != 'netcore_bench')\n"
            "sys.exit(f'imported: {loaded}' if loaded else 0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr


def test_overhead_preset_measures_metrics_and_proxy_against_off_in_one_run(bench_env, tmp_path):
    res, doc = bench(bench_env, tmp_path, "overhead", "--protocol", "echo", *TINY)
    assert res.returncode == 0, res.stderr
    assert validate(doc) == []
    by = rows(doc)
    assert set(by) == {"echo off", "echo metrics on", "echo proxy-protocol any"}
    assert all(row["status"] == "ok" and row["baseline"] == "echo off" for row in by.values())
    serve = {case["key"]: case["args"] for case in doc["cases"]}
    assert "--metrics-bind" in serve["echo metrics on"] and "--metrics-bind" not in serve["echo off"]
    assert serve["echo proxy-protocol any"][serve["echo proxy-protocol any"].index("--proxy-protocol") + 1] == "any"
    targets = {(t["case"], t["peer"], round(t["minimum"], 3)) for t in doc["targets"]}
    assert targets == {("echo off", "echo metrics on", 0.98), ("echo off", "echo proxy-protocol any", 0.99)}
    assert all(t["status"] in ("met", "missed") for t in doc["targets"])
