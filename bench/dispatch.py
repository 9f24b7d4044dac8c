#!/usr/bin/env python3
"""Every dispatch scheme under a fast and a slow handler: what each one costs and buys.

Runs ``bench/echo.py`` twice — plain echo (the fast handler) and echo with a handler that
blocks for ``--delay`` seconds (``--set echo_delay``, 1 ms by default) — with one row per
dispatch scheme, and prints one table: messages/s, p99 latency and server CPU per
message, with ratios against ``inline`` (scheme 5) measured in the same run.

    python3 bench/dispatch.py                        # all schemes, 3 rounds each
    python3 bench/dispatch.py --schemes inline,pool,multi-reactor --rounds 5 --json out.json

What to read in it: under the fast handler, ``pool`` and ``thread`` pay a hand-off per
message (queue, thread switch, loop wake-up), ``multi-reactor`` with one I/O loop
should cost about what ``inline`` does; under the slow handler, ``inline`` and
``iterative`` serve one request per ``--delay`` in total, while the schemes with
handler threads overlap them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: (label, extra netcore arguments). Thread counts as in the issue: a pool of 8.
SCHEMES = {
    "iterative": ["--dispatch", "iterative"],
    "threading": ["--dispatch", "threading"],
    "prethread-blocking": ["--dispatch", "prethread-blocking", "--workers", "8"],
    "inline": ["--dispatch", "inline"],
    "thread": ["--dispatch", "thread", "--threads", "8"],
    "thread-per-connection": ["--dispatch", "thread-per-connection"],
    "pool": ["--dispatch", "pool", "--threads", "8"],
    "multi-reactor": ["--dispatch", "multi-reactor", "--workers", "1"],
    "multi-reactor-2": ["--dispatch", "multi-reactor", "--workers", "2"],
    "multi-reactor-pool": ["--dispatch", "multi-reactor-pool", "--workers", "1", "--threads", "8"],
}


def run_echo(rows: list[str], extra: list[str], args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "echo.json"
        cmd = [sys.executable, str(BENCH / "echo.py"), "--servers", "netcore", "--rounds", str(args.rounds),
               "--duration", str(args.duration), "--connections", str(args.connections), "--json", str(out)]
        for label in rows:
            cmd += ["--netcore", " ".join(SCHEMES[label] + extra)]
        subprocess.run(cmd, check=False, stdout=sys.stderr)
        return json.loads(out.read_text())


def label_of(cmd: list[str]) -> str:
    for label, scheme_args in SCHEMES.items():
        if all(a in cmd for a in scheme_args) and cmd[cmd.index("--dispatch") + 1] == scheme_args[1]:
            if "--workers" in scheme_args and cmd[cmd.index("--workers") + 1] != scheme_args[scheme_args.index("--workers") + 1]:
                continue
            return label
    return " ".join(cmd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated labels: " + ", ".join(SCHEMES))
    parser.add_argument("--delay", type=float, default=0.001, help="slow handler's blocking time, seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", help="write both runs' raw results here")
    args = parser.parse_args()
    rows = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = [r for r in rows if r not in SCHEMES]
    if unknown:
        parser.error(f"unknown scheme label(s): {', '.join(unknown)}")
    results = {
        "fast": run_echo(rows, [], args),
        f"slow ({args.delay * 1000:g} ms handler)": run_echo(rows, ["--set", f"echo_delay={args.delay}"], args),
    }
    print(f"\n{'scheme':<22} {'handler':<22} {'msgs/s':>10} {'vs inline':>9} {'p99 us':>8} {'CPU us/msg':>10} {'vs inline':>9}")
    for mode, data in results.items():
        summary = {label_of(s["cmd"]): s for s in data["summary"]}
        base = summary.get("inline")
        for label in rows:
            s = summary.get(label)
            if s is None or not s.get("ok_runs"):
                print(f"{label:<22} {mode:<22} {'failed':>10}")
                continue
            rate = s["messages_per_s"]["median"]
            cpu = s["server_cpu_us_per_msg"]["median"]
            rate_ratio = f"{rate / base['messages_per_s']['median']:.2f}x" if base and base.get("ok_runs") else "-"
            cpu_ratio = f"{cpu / base['server_cpu_us_per_msg']['median']:.2f}x" if base and base.get("ok_runs") else "-"
            print(f"{label:<22} {mode:<22} {rate:>10,.0f} {rate_ratio:>9} {s['p99_us']['median']:>8,.0f} "
                  f"{cpu:>10.2f} {cpu_ratio:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
