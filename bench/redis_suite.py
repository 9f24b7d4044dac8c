"""Redis's own tcl test suite against ``netcore serve --protocol resp`` and redis-server, in one run.

Redis's test suite has an external-server mode (``./runtest --host H --port P``) that
runs its units against a server it did not start. This script starts both servers on
free loopback ports, runs each unit against each (one ``runtest --single`` per unit and
server, so a unit that hangs or aborts costs only itself), and prints the passes per
unit and the ratio netcore/redis-server::

    python bench/redis_suite.py --redis-tree /path/to/redis-checkout
    python bench/redis_suite.py --redis-tree ... --units unit/protocol,unit/multi --json out.json

The suite is Redis's (BSD-licensed, but not ours): it is never copied into this
repository. Give a checkout of github.com/redis/redis (it needs ``runtest`` and
``tests/``) with ``--redis-tree`` or ``NETCORE_REDIS_TREE``; without one the script says
so and exits 0, so it can sit in a CI step that has no checkout. Needs ``tclsh`` (8.5+)
and ``redis-server`` (Debian: ``apt-get install tcl redis-server``).

The flags are those of the baseline in the resp issue: ``--singledb`` (the tests use one
database), ``--ignore-encoding`` (netcore has no ziplist/listpack encodings to report),
and the tags that need a server the suite controls (DEBUG, replication, persistence,
maxmemory) or gigabytes of memory are excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

UNITS = ["unit/protocol", "unit/keyspace", "unit/type/string", "unit/type/incr", "unit/type/list",
         "unit/type/hash", "unit/type/zset", "unit/expire", "unit/pubsub", "unit/multi", "unit/info-command",
         "unit/quit"]
FLAGS = ["--singledb", "--ignore-encoding", "--tags", "-needs:debug", "--tags", "-needs:config-maxmemory",
         "--tags", "-needs:repl", "--tags", "-needs:save", "--tags", "-large-memory"]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESULT = re.compile(r"^\[(ok|err|exception|ignore|skip)\]: ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until the server answers PING (bounded; a server that died is reported at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"no PONG on port {port} within {timeout:.0f}s")


def start_redis(binary: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--daemonize", "no"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, port


def start_netcore(extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "netcore", "serve", "--protocol", "resp", "--bind",
                             f"127.0.0.1:{port}", "--log-format", "json", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, port


def run_unit(tree: str, port: int, unit: str, timeout: float) -> dict:
    """One unit against the server on ``port``: counts of ok/err/exception, and the failed names."""
    cmd = ["./runtest", "--host", "127.0.0.1", "--port", str(port), *FLAGS, "--single", unit]
    try:
        done = subprocess.run(cmd, cwd=tree, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
        out, timed_out = done.stdout + done.stderr, False
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        timed_out = True
    counts = {"ok": 0, "err": 0, "exception": 0, "ignore": 0, "skip": 0}
    failed = []
    for line in _ANSI.sub("", out).splitlines():
        found = _RESULT.match(line)
        if found:
            counts[found.group(1)] += 1
            if found.group(1) in ("err", "exception"):
                failed.append(line[found.end():][:200])
    return {**counts, "timed_out": timed_out, "failed": failed}


def stop(proc: subprocess.Popen) -> None:
    """End a server this script started (by its own handle, never by name)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-tree", default=os.environ.get("NETCORE_REDIS_TREE"),
                        help="a checkout of the redis repository (runtest and tests/); env NETCORE_REDIS_TREE")
    parser.add_argument("--units", default=",".join(UNITS), help="comma-separated units (default: the units docs/resp.md reports)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per unit and server (default 600)")
    parser.add_argument("--netcore-args", default="--dispatch inline",
                        help="extra arguments for netcore serve (default: --dispatch inline)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if not args.redis_tree:
        print("redis_suite: no redis checkout given (--redis-tree or NETCORE_REDIS_TREE): nothing to run")
        return 0
    if not os.path.isfile(os.path.join(args.redis_tree, "runtest")):
        print(f"redis_suite: {args.redis_tree} has no runtest: not a redis checkout")
        return 2
    missing = [tool for tool in ("tclsh", "redis-server") if shutil.which(tool) is None]
    if missing:
        print(f"redis_suite: {', '.join(missing)} not installed (Debian: apt-get install tcl redis-server): skipped")
        return 0
    units = [unit for unit in args.units.split(",") if unit]
    redis_proc, redis_port = start_redis(shutil.which("redis-server"))
    netcore_proc, netcore_port = start_netcore(args.netcore_args.split())
    results: dict[str, dict] = {}
    try:
        for unit in units:
            theirs = run_unit(args.redis_tree, redis_port, unit, args.timeout)
            ours = run_unit(args.redis_tree, netcore_port, unit, args.timeout)
            results[unit] = {"redis": theirs, "netcore": ours}
            ratio = ours["ok"] / theirs["ok"] if theirs["ok"] else float("nan")
            note = " (timed out)" if ours["timed_out"] else (" (aborted)" if ours["exception"] else "")
            if theirs["exception"] or theirs["timed_out"]:
                # The suite is newer than the redis-server installed: a command it lacks ends
                # the unit early there, and netcore's passes beyond that point are not comparable.
                note += " (redis-server aborted: newer tests than it)"
            print(f"{unit:24} redis-server {theirs['ok']:4}  netcore {ours['ok']:4}  {ratio:6.1%}{note}", flush=True)
            if netcore_proc.poll() is not None:
                print("redis_suite: netcore exited; restarting it for the next unit")
                netcore_proc, netcore_port = start_netcore(args.netcore_args.split())
    finally:
        stop(netcore_proc)
        stop(redis_proc)
    total_theirs = sum(r["redis"]["ok"] for r in results.values())
    total_ours = sum(r["netcore"]["ok"] for r in results.values())
    print(f"{'total':24} redis-server {total_theirs:4}  netcore {total_ours:4}  "
          f"{(total_ours / total_theirs if total_theirs else float('nan')):6.1%}")
    # Each unit counted up to redis-server's passes: a unit where netcore passes more
    # (redis-server stopped early) cannot make up for another where it passes fewer.
    capped = sum(min(r["netcore"]["ok"], r["redis"]["ok"]) for r in results.values())
    print(f"{'total, capped per unit':24} redis-server {total_theirs:4}  netcore {capped:4}  "
          f"{(capped / total_theirs if total_theirs else float('nan')):6.1%}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
