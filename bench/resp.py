#!/usr/bin/env python3
"""RESP benchmark: netcore ``--protocol resp`` against redis-server, with redis-benchmark.

    python3 bench/resp.py                        # 3 rounds, -n 200000 -c 50, -P 1 and -P 16
    python3 bench/resp.py --rounds 5 --json resp.json
    python3 bench/resp.py --netcore "--dispatch multi-reactor --workers 2"   # an extra row

For each round, each pipeline depth and each server (the order alternates between rounds,
A B then B A, so that a slow patch of a shared machine hits both alike) a fresh server is
started pinned to CPU 0, and ``redis-benchmark -t <test> -n N -c C -P P --csv`` runs pinned
to CPU 1, once per test (ping_inline, ping_mbulk, set, get, in that order, so GET reads
what SET wrote). The server's CPU time (user + system, all threads, from /proc/PID/stat)
is read around each redis-benchmark run: server CPU per request is the figure that
stays comparable on a noisy machine; requests/s is reported with its ratio to
redis-server from the same run.

redis-server runs with ``--save '' --appendonly no`` on a free loopback port. Only
loopback addresses are used and only processes this script started are signalled.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
TESTS = ("ping_inline", "ping_mbulk", "set", "get")
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 15.0


class BenchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    """utime + stime (+ reaped children) of ``pid``, all threads, in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return sum(int(x) for x in fields[11:15])


def pinning() -> tuple[list[str], list[str], str]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        return [], [], "no pinning (needs 2 CPUs and taskset)"
    return (["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])],
            f"server pinned to CPU {cpus[0]}, redis-benchmark to CPU {cpus[1]}")


class Server:
    """One server process we started: netcore (port from its server.started event) or redis."""

    def __init__(self, label: str, kind: str, argv: list[str], pin: list[str], workdir: Path) -> None:
        self.label, self.kind, self.argv, self.pin, self.workdir = label, kind, argv, pin, workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        argv = list(self.argv)
        if self.kind == "redis":
            self.port = free_port()
            argv += ["--port", str(self.port)]
        err = open(self.workdir / f"{self.kind}.stderr", "wb")
        self.errpath = err.name
        self.proc = subprocess.Popen(self.pin + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err, start_new_session=True)
        err.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited with {self.proc.returncode}: {self.tail()}")
            if self.kind == "netcore" and not self.port:
                for line in Path(self.errpath).read_text(errors="replace").splitlines():
                    if '"server.started"' in line:
                        self.port = int(json.loads(line)["addresses"][0].rpartition(":")[2])
            if self.port and self.ping():
                return
            time.sleep(0.05)
        raise BenchError(f"{self.label} did not answer PING within {START_TIMEOUT:.0f}s: {self.tail()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16) == b"+PONG\r\n"
        except OSError:
            return False

    def tail(self) -> str:
        try:
            return " | ".join(Path(self.errpath).read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


def run_benchmark(server: Server, test: str, args: argparse.Namespace, pipeline: int, pin: list[str]) -> dict:
    cmd = pin + ["redis-benchmark", "-h", HOST, "-p", str(server.port), "-t", test, "-n", str(args.requests),
                 "-c", str(args.clients), "-P", str(pipeline), "--csv"]
    c0, t0 = cpu_ticks(server.proc.pid), time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    c1, t1 = cpu_ticks(server.proc.pid), time.monotonic()
    if res.returncode != 0:
        raise BenchError(f"redis-benchmark failed ({res.returncode}): {res.stderr.strip()[-300:]}")
    rows = [r for r in csv.reader(io.StringIO(res.stdout)) if r and r[0] != "test"]
    if not rows:
        raise BenchError(f"redis-benchmark printed no result: {res.stdout[-300:]} {res.stderr[-300:]}")
    cpu = (c1 - c0) / CLK_TCK
    return {"test": rows[0][0], "rps": float(rows[0][1]), "server_cpu_s": cpu, "wall_s": t1 - t0,
            "cpu_us_per_request": cpu * 1e6 / args.requests, "command": shlex.join(cmd)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", "-n", type=int, default=200_000)
    ap.add_argument("--clients", "-c", type=int, default=50)
    ap.add_argument("--pipelines", default="1,16", help="comma-separated -P values (default 1,16)")
    ap.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated, from {', '.join(TESTS)}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--netcore", action="append", default=[], metavar="ARGS",
                    help="an extra netcore row with these serve options (repeatable)")
    ap.add_argument("--json", metavar="FILE", help="write every run here")
    args = ap.parse_args(argv)
    for tool in ("redis-benchmark", "redis-server"):
        if not shutil.which(tool):
            print(f"resp.py: {tool} not found (Debian: apt-get install redis-server redis-tools)", file=sys.stderr)
            return 2
    pipelines = [int(p) for p in args.pipelines.split(",")]
    tests = [t for t in args.tests.split(",") if t]
    server_pin, client_pin, pin_note = pinning()
    base = [sys.executable, "-m", "netcore", "serve", "--protocol", "resp", "--poller", "epoll-lt",
            "--dispatch", "inline", "--bind", f"{HOST}:0", "--log-format", "json"]
    specs = [("netcore inline", "netcore", base)]
    for extra in args.netcore:
        specs.append((f"netcore {extra}", "netcore", base + shlex.split(extra)))
    specs.append(("redis-server", "redis", ["redis-server", "--bind", HOST, "--save", "", "--appendonly", "no",
                                            "--daemonize", "no"]))
    print(f"# {pin_note}; redis-benchmark -n {args.requests} -c {args.clients}, rounds alternate", file=sys.stderr)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="netcore-resp-bench-") as tmp:
        for rnd in range(args.rounds):
            order = specs if rnd % 2 == 0 else specs[::-1]
            for pipeline in pipelines:
                for label, kind, cmd in order:
                    server = Server(label, kind, cmd, server_pin, Path(tmp))
                    try:
                        server.start()
                        for test in tests:
                            r = run_benchmark(server, test, args, pipeline, client_pin)
                            r.update(server=label, pipeline=pipeline, round=rnd + 1)
                            runs.append(r)
                            print(f"# round {rnd + 1} -P {pipeline} {label:16} {r['test']:12} {r['rps']:>11,.0f} req/s "
                                  f"{r['cpu_us_per_request']:6.2f} us CPU/req", file=sys.stderr)
                    except BenchError as exc:
                        print(f"# round {rnd + 1} -P {pipeline} {label}: FAILED: {exc}", file=sys.stderr)
                        runs.append({"server": label, "pipeline": pipeline, "round": rnd + 1, "error": str(exc)})
                    finally:
                        server.stop()
    print(table(runs, [s[0] for s in specs]))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "pinning": pin_note, "requests": args.requests,
                                               "clients": args.clients}, indent=2) + "\n")
    return 0 if all("error" not in r for r in runs) else 1


def table(runs: list[dict], labels: list[str]) -> str:
    """Markdown: per test and depth, median req/s and CPU/request of each server, ratios to redis."""
    ok = [r for r in runs if "error" not in r]
    keys = sorted({(r["pipeline"], r["test"]) for r in ok}, key=lambda k: (k[0], TESTS.index(k[1].lower())
                                                                          if k[1].lower() in TESTS else 9))
    head = ["test", "-P"]
    for label in labels:
        head += [f"{label} req/s", f"{label} CPU µs/req"]
    head += [f"{label} req/s vs redis" for label in labels if label != "redis-server"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pipeline, test in keys:
        med = {}
        cells = [test, str(pipeline)]
        for label in labels:
            mine = [r for r in ok if r["server"] == label and r["pipeline"] == pipeline and r["test"] == test]
            if mine:
                med[label] = (statistics.median(r["rps"] for r in mine),
                              statistics.median(r["cpu_us_per_request"] for r in mine))
                cells += [f"{med[label][0]:,.0f}", f"{med[label][1]:.2f}"]
            else:
                cells += ["-", "-"]
        for label in labels:
            if label == "redis-server":
                continue
            if label in med and "redis-server" in med:
                cells.append(f"{med[label][0] / med['redis-server'][0]:.2f}x")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
