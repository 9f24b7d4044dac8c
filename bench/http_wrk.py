#!/usr/bin/env python3
"""HTTP hello benchmark: netcore's http protocol against uvicorn, waitress, gunicorn and nginx.

wrk (keep-alive, one thread) drives each server in turn over loopback; the server is
pinned to one CPU and wrk to the other (taskset). Servers alternate within a round
(A B C ... A B C ...), so that a noisy neighbour hurts every server alike, and the figures
to compare are ratios within the same run. Reported per connection count: requests/s,
p99 latency, and the server's CPU time per request (every process of the server,
threads and workers included, read from /proc around the measured window).

    python3 bench/http_wrk.py                          # 3 rounds, 64 and 256 connections, 5 s
    python3 bench/http_wrk.py --rounds 5 --duration 10 --json out.json
    python3 bench/http_wrk.py --servers netcore-hello,uvicorn

Talks to 127.0.0.1 only and only ever signals processes it started itself. The WSGI and
ASGI hello apps and nginx's configuration are written to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
START_TIMEOUT_S = 20.0

WSGI_HELLO = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
'''
ASGI_HELLO = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})
'''
NGINX_CONF = '''
worker_processes 1;
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    server {{
        listen {host}:{port};
        default_type text/plain;
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
'''

#: label -> (argv template, needs); {port} {dir} {py} are filled in.
SERVERS = {
    "netcore-hello": ["{netcore}", "serve", "--protocol", "http", "--dispatch", "inline", "--bind", "{host}:{port}",
                      "--log-format", "json"],
    "netcore-wsgi-inline": ["{netcore}", "serve", "--protocol", "http", "--dispatch", "inline", "--app",
                            "wsgi_hello:app", "--bind", "{host}:{port}", "--log-format", "json"],
    "netcore-wsgi-pool": ["{netcore}", "serve", "--protocol", "http", "--dispatch", "pool", "--threads", "4", "--app",
                          "wsgi_hello:app", "--bind", "{host}:{port}", "--log-format", "json"],
    "uvicorn": ["{py}", "-m", "uvicorn", "--app-dir", "{dir}", "asgi_hello:app", "--http", "httptools", "--loop",
                "uvloop", "--host", "{host}", "--port", "{port}", "--no-access-log", "--log-level", "warning"],
    "waitress": ["{py}", "-m", "waitress", "--threads=4", "--listen={host}:{port}", "wsgi_hello:app"],
    "gunicorn-sync": ["{py}", "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", "{host}:{port}", "--chdir", "{dir}",
                      "--log-level", "warning", "wsgi_hello:app"],
    "gunicorn-gthread": ["{py}", "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "8", "-b",
                         "{host}:{port}", "--chdir", "{dir}", "--log-level", "warning", "wsgi_hello:app"],
    "nginx": ["{nginx}", "-p", "{dir}", "-c", "{dir}/nginx-{port}.conf"],
}

#: (server, peer, target ratio of requests/s) — the issue's targets.
TARGETS = (("netcore-hello", "uvicorn", 2.5), ("netcore-wsgi-inline", "waitress", 4.0),
           ("netcore-wsgi-inline", "gunicorn-gthread", 8.0))


CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


# -- /proc and CPUs (self-contained: the shared bench package is being reorganised) ----------
def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime) in clock ticks, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()  # comm may contain spaces and ')'
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_cpu_ticks(root: int) -> int:
    """CPU ticks of ``root`` and every descendant (workers, threads included)."""
    stats = {int(n): st for n in os.listdir("/proc") if n.isdigit() and (st := _stat(int(n))) is not None}
    if root not in stats:
        raise BenchError(f"server process {root} is gone")
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            total += stats[pid][1]
            todo.extend(children.get(pid, ()))
    return total


def choose_pinning() -> tuple[tuple[int, int] | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        return None, "no pinning (fewer than 2 CPUs or no taskset): server and wrk share CPUs"
    pin = (cpus[0], cpus[1])
    return pin, f"server pinned to CPU {pin[0]}, wrk to CPU {pin[1]} (taskset)"


def machine_info(pin_note: str) -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.lower().startswith("model name")), "?")
    return {"cpu_model": model, "nproc": os.cpu_count(), "kernel": os.uname().release,
            "python": sys.version.split()[0], "pinning": pin_note, "loadavg_at_start": os.getloadavg()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, errfile: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"exited with {proc.returncode}: {errfile.read_text(errors='replace')[-500:]}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"not listening within {START_TIMEOUT_S:.0f} s")


def start_server(label: str, workdir: Path, cpu: int | None, tools: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    if label == "nginx":
        (workdir / f"nginx-{port}.conf").write_text(NGINX_CONF.format(dir=workdir, host=HOST, port=port))
    argv = [part.format(port=port, dir=workdir, host=HOST, **tools) for part in SERVERS[label]]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    env = dict(os.environ, PYTHONPATH=str(workdir) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    errfile = workdir / f"{label}-{port}.stderr"
    with open(errfile, "wb") as err:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    try:
        wait_listening(port, proc, errfile)
    except BaseException:
        stop_server(proc)
        raise
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created: workers of a server that lingered
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


_LAT = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_REQS = re.compile(r"^\s*(\d+) requests in", re.M)
_ERRS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")


def run_wrk(port: int, connections: int, duration: float, cpu: int | None) -> dict:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", f"http://{HOST}:{port}/"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {(out.stderr or out.stdout).strip()[-300:]}")
    rps, reqs, lat = _RPS.search(out.stdout), _REQS.search(out.stdout), _LAT.search(out.stdout)
    if not (rps and reqs and lat):
        raise BenchError(f"cannot parse wrk output: {out.stdout[-300:]}")
    scale = {"us": 1, "ms": 1e3, "s": 1e6}[lat.group(2)]
    errors = [m.group(0) for m in _ERRS.finditer(out.stdout)]
    return {"rps": float(rps.group(1)), "requests": int(reqs.group(1)), "p99_us": float(lat.group(1)) * scale,
            "errors": errors}


def measure(label, workdir, pin, tools, conn_counts, args) -> dict:
    proc, port = start_server(label, workdir, pin[0] if pin else None, tools)
    results = {}
    try:
        for connections in conn_counts:
            run_wrk(port, connections, args.warmup, pin[1] if pin else None)  # warm-up, not counted
            c0 = tree_cpu_ticks(proc.pid)
            res = run_wrk(port, connections, args.duration, pin[1] if pin else None)
            c1 = tree_cpu_ticks(proc.pid)
            res["cpu_us_per_req"] = (c1 - c0) / CLK_TCK * 1e6 / max(1, res["requests"])
            results[connections] = res
    finally:
        stop_server(proc)
    return results


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("# wrk not found: trying 'apt-get install -y wrk'", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
    if not shutil.which("wrk"):
        raise SystemExit("http_wrk.py: wrk is required (Debian package 'wrk')")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each run (default 1)")
    ap.add_argument("--connections", default="64,256", help="comma-separated (default 64,256)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset of: " + ", ".join(SERVERS))
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    ensure_wrk()
    labels = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(labels) - set(SERVERS)
    if unknown:
        ap.error(f"unknown servers: {', '.join(sorted(unknown))}")
    conn_counts = [int(c) for c in args.connections.split(",")]
    tools = {"py": sys.executable, "netcore": shutil.which("netcore") or "netcore",
             "nginx": shutil.which("nginx") or "/usr/sbin/nginx"}
    pin, pin_note = choose_pinning()
    machine = machine_info(pin_note)
    print(f"# {machine['cpu_model']}, {machine['nproc']} CPU, Linux {machine['kernel']}, "
          f"Python {machine['python']}; {pin_note}", file=sys.stderr)
    print(f"# wrk -t1 keep-alive, {args.connections} connections, {args.duration:g} s measured after "
          f"{args.warmup:g} s warm-up, {args.rounds} rounds, servers alternating", file=sys.stderr)
    runs: dict[str, list[dict]] = {label: [] for label in labels}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="netcore-http-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "wsgi_hello.py").write_text(WSGI_HELLO)
        (workdir / "asgi_hello.py").write_text(ASGI_HELLO)
        for rnd in range(1, args.rounds + 1):
            for label in labels:
                if label in failures:
                    continue
                try:
                    res = measure(label, workdir, pin, tools, conn_counts, args)
                except BenchError as exc:
                    failures[label] = str(exc)
                    print(f"# {label}: FAILED: {exc}", file=sys.stderr)
                    continue
                runs[label].append(res)
                figures = "  ".join(f"c{c}: {r['rps']:,.0f} req/s p99 {r['p99_us']:.0f} us "
                                    f"{r['cpu_us_per_req']:.1f} us CPU/req" for c, r in res.items())
                print(f"# round {rnd} {label}: {figures}", file=sys.stderr)
    table = summarize(runs, conn_counts, failures)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "args": vars(args), "runs": runs,
                                               "failures": failures}, indent=2, default=str))
    return 0


def summarize(runs: dict[str, list[dict]], conn_counts: list[int], failures: dict[str, str]) -> str:
    lines = []
    for c in conn_counts:
        med = {label: {k: statistics.median(r[c][k] for r in rs) for k in ("rps", "p99_us", "cpu_us_per_req")}
               for label, rs in runs.items() if rs}
        lo_hi = {label: (min(r[c]["rps"] for r in rs), max(r[c]["rps"] for r in rs)) for label, rs in runs.items() if rs}
        base = med.get("uvicorn", {}).get("rps")
        lines.append(f"\n{c} connections (median of rounds; min-max)")
        lines.append("| server | req/s | p99 µs | server CPU µs/req | req/s vs uvicorn |")
        lines.append("|---|---:|---:|---:|---:|")
        for label, m in med.items():
            lo, hi = lo_hi[label]
            ratio = f"{m['rps'] / base:.2f}x" if base else "-"
            lines.append(f"| {label} | {m['rps']:,.0f} ({lo:,.0f}-{hi:,.0f}) | {m['p99_us']:.0f} | "
                         f"{m['cpu_us_per_req']:.1f} | {ratio} |")
        for server, peer, target in TARGETS:
            if server in med and peer in med:
                ratio = med[server]["rps"] / med[peer]["rps"]
                verdict = "met" if ratio >= target else "MISSED"
                lines.append(f"target {server} >= {target:g}x {peer}: {ratio:.2f}x ({verdict})")
    for label, why in failures.items():
        lines.append(f"not measured: {label}: {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
