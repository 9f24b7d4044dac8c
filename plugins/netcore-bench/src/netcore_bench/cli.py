"""Options of ``netcore bench`` and the loop over rounds (cases alternate, and each round
starts one case later: A B C, B C A, C A B).

``netcore bench [PRESET] [options]``; without a preset, the command-line matrix. A
configuration that is not installed, or a server that fails, is a row that says so; the
bench itself exits 2 only for bad options and 1 when nothing at all could be measured.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from netcore_bench import display as display_mod
from netcore_bench import generators, machine, registry, results, runner
from netcore_bench import tls as tls_mod
from netcore_bench.presets import PRESETS, Plan
from netcore_bench.schema import SCHEMA_VERSION, validate


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"netcore bench: error: {message} (see 'netcore bench --help')", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="netcore bench", description=__doc__.split("\n\n")[0],
                epilog="presets: " + ", ".join(PRESETS) + ". Example: netcore bench idle --rounds 3 --json idle.json "
                       "--plot idle.png. Two result files, row by row against their noise: "
                       "netcore bench compare A.json B.json")
    p.add_argument("preset", nargs="?", default="default", choices=list(PRESETS), metavar="PRESET",
                   help="scenario: " + ", ".join(PRESETS) + " (default: the command-line matrix)")
    p.add_argument("--poller", help="all | a,b,... (default matrix: all)")
    p.add_argument("--dispatch", help="all | a,b,... (default: inline; the dispatch preset: every scheme)")
    p.add_argument("--protocol", help="a,b,... (default echo; protocols without a generator adapter are skipped)")
    p.add_argument("--acceptor", help="all | a,b,... (default: the server's)")
    p.add_argument("--workers", help="N,M,... (default: the server's; herd: 2,4,8)")
    p.add_argument("--connections", help="active connections, N,M,... (default 64)")
    p.add_argument("--size", help="message bytes, N,M,... (default 64; edge: 65536)")
    p.add_argument("--idle", help="idle connections held open besides the active ones, N,M,... (idle: 0,1000,10000)")
    p.add_argument("--backlog", help="backlog preset: listen backlogs, N,M,... (default 8 and the server's default)")
    p.add_argument("--duration", type=float, help="measured seconds per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run, not counted (default 1)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; cases alternate, each round starting one case later: A B C, B C A, ... (default 3)")
    p.add_argument("--peers", help="reference servers where installed ('' for none): asyncio,uvloop (echo; "
                   "default matrix: both), uvicorn,waitress,gunicorn-sync,gunicorn-gthread,nginx (http; "
                   "http preset: all; handshake preset: uvicorn,nginx), redis-server (resp; resp preset: it); "
                   "other presets: none")
    p.add_argument("--pipeline", help="resp preset: redis-benchmark -P values, N,M,... (default 1,16)")
    p.add_argument("--requests", type=int, help="resp preset: redis-benchmark -n per run (default 200000)")
    p.add_argument("--tests", help="resp preset: redis-benchmark tests, a,b,... (default "
                   "ping_inline,ping_mbulk,set,get)")
    p.add_argument("--tls", action="store_true",
                   help="every row over TLS: a test CA and server certificate made for this run, the same "
                        "certificate for netcore and the peers; echo is then driven by a Python TLS client "
                        "(it can limit msgs/s: read CPU per message)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to every netcore server")
    p.add_argument("--json", metavar="FILE", help="write every raw figure and the machine description")
    p.add_argument("--plot", metavar="FILE.png", help="write a chart (needs matplotlib)")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.add_argument("--list", action="store_true", help="print the cases and exit")
    p.add_argument("--rebuild", action="store_true", help="recompile the C load generator")
    p.add_argument("--gen-saturated", type=float, default=runner.GEN_SATURATED_PERCENT, metavar="PERCENT",
                   help="flag rows whose generator used more than this share of its CPU (default %(default)g)")
    return p


def make_plan(args: argparse.Namespace, installed: registry.Installed,
              tls_files: tls_mod.TLSFiles | None = None) -> Plan:
    opts: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    opts["serve_args"] = [x for kv in args.set for x in ("--set", kv)]
    if args.preset != "default" and args.peers is None:
        opts.pop("peers", None)
    plan = PRESETS[args.preset](opts, installed)
    if args.preset != "default" and args.peers and not plan.peers_included:
        from netcore_bench.cases import peer_case
        for load in dict.fromkeys(c.load for c in plan.cases):
            for peer in args.peers.split(","):
                if peer.strip():
                    plan.cases.append(peer_case(peer.strip(), "echo", load, key=f"{peer.strip()} [{load.label()}]"))
    for case in plan.cases:
        if not case.skip and generators.for_protocol(case.protocol) is None:
            case.skip = f"no load generator adapter for protocol {case.protocol!r} yet"
    if tls_files is not None:
        tls_mod.apply(plan, tls_files)
    return plan


def _generators(plan: Plan, args: argparse.Namespace, disp,
                tls_files: tls_mod.TLSFiles | None = None) -> dict[str, generators.Generator]:
    """One load generator per protocol still to run; a missing or unbuildable one skips
    that protocol's rows with the reason (wrk absent: the http rows say so, echo runs)."""
    gens: dict[str, generators.Generator] = {}
    for protocol in dict.fromkeys(c.protocol for c in plan.cases if not c.skip):
        cls = generators.for_protocol(protocol, tls=tls_files is not None)
        assert cls is not None  # make_plan skipped protocols without an adapter
        gen = cls(rebuild=args.rebuild, tls=tls_files) if issubclass(cls, generators.EchoClient) else cls(tls_files)
        why = gen.unavailable()
        if why is None:
            try:
                gen.prepare(disp.note)
            except Exception as exc:  # a compile failure is every row's reason, not a traceback
                why = str(exc)
        if why is not None:
            for case in plan.cases:
                if case.protocol == protocol:
                    case.skip = case.skip or f"load generator {gen.name} unavailable: {why}"
            continue
        gens[protocol] = gen
    return gens


def main(argv: Sequence[str] | None = None, plugin_args: Sequence[str] = ()) -> int:
    """``netcore bench ARGS``: the target :mod:`netcore_bench.plugin` gives the host's CLI.

    ``plugin_args`` are the ``-p`` options given before ``bench``; the bench loads no
    plugin itself but hands them to every ``netcore`` process it starts (and to
    ``netcore plugins --json``, which says what those processes will find).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:  # no preset is called that: a file comparison, not a run
        from netcore_bench.compare import main as compare_main

        return compare_main(argv[1:])
    args = parser().parse_args(argv)
    if args.rounds < 1:
        parser().error("--rounds must be at least 1")
    if args.duration is not None and not 0 < args.duration <= 3600:
        parser().error("--duration must be in (0, 3600]")
    if args.requests is not None and args.requests < 1:
        parser().error("--requests must be at least 1")
    try:
        for option in ("pipeline", "connections", "size", "workers", "idle", "backlog"):
            for value in (getattr(args, option) or "").split(","):
                if value.strip() and int(value) < (0 if option in ("idle",) else 1):
                    parser().error(f"--{option}: {value.strip()} is below the minimum")
    except ValueError as exc:
        parser().error(f"a count option is not an integer: {exc}")
    if args.tls and (why := tls_mod.unavailable()):
        parser().error(f"--tls: {why}")
    tls_files = tls_mod.make_files() if args.tls else None
    try:
        return _run(args, argv, plugin_args, tls_files)
    finally:
        if tls_files is not None:
            tls_files.remove()


def _run(args: argparse.Namespace, argv: list[str], plugin_args: Sequence[str],
         tls_files: tls_mod.TLSFiles | None) -> int:
    installed = registry.query(tuple(plugin_args))
    plan = make_plan(args, installed, tls_files)
    if args.list:
        for case in plan.cases:
            print(f"{case.key}: {' '.join(case.command())} <- {case.load.label()}"
                  + (f"  [skipped: {case.skip}]" if case.skip else ""))
        return 0
    server_cpu, generator_cpu, pin_note = machine.pinning()
    disp = display_mod.choose(plan, args.rounds, args.plain)
    warnings: list[str] = []
    if installed.error:
        warnings.append(installed.error)
    gens = _generators(plan, args, disp, tls_files)
    desc = machine.describe(pin_note)
    ctx = runner.Context(generators=gens, server_cpu=server_cpu, generator_cpu=generator_cpu,
                         gen_saturated_percent=args.gen_saturated, extra_plugin_args=tuple(plugin_args))
    runs: list[dict[str, Any]] = []
    interrupted = False

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    todo = [c for c in plan.cases if not c.skip]
    disp.note(f"{desc['cpu_model']}, {desc['nproc']} CPU, Linux {desc['kernel']}, Python {desc['python']}; {pin_note}; "
              f"load average at start {desc['loadavg_at_start'][0]:.2f} (other work on these CPUs skews "
              "absolute figures: compare rows of one run)")
    try:
        with disp:
            disp.start(len(todo) * args.rounds)
            failed: set[str] = set()
            for rnd in range(1, args.rounds + 1):
                # Each round starts one case later: a case that always ran first (after a
                # pause, or right after the same neighbour) showed a position bias of 1-2%
                # (netcore bench overhead: options that cost nothing per message measured
                # +1-2% in second and third place).
                shift = (rnd - 1) % len(todo) if todo else 0
                for case in todo[shift:] + todo[:shift]:
                    if case.key in failed:  # a failing configuration is not retried
                        continue
                    disp.run_started(case.key, rnd, args.rounds)
                    run = runner.run_once(case, rnd, ctx)
                    runs.append(run)
                    if not run["ok"]:
                        failed.add(case.key)
                    disp.run_finished(run, results.summarize(plan.cases, runs, pending=True))
    except KeyboardInterrupt:
        interrupted = True
        disp.note("interrupted: reporting the runs done so far")
    finally:
        signal.signal(signal.SIGTERM, old)
    rows = results.summarize(plan.cases, runs)
    disp.final(plan, rows, args.rounds)
    saturated = [r["case"] for r in rows if "generator_saturated" in r["flags"]]
    if saturated:
        warnings.append(f"load generator above {args.gen_saturated:g}% CPU for: {', '.join(saturated)} -- it may "
                        "have limited their msgs/s and latency (CPU per message stays comparable)")
    if server_cpu is None:
        warnings.append(pin_note)
    for w in warnings:
        disp.note(f"WARNING: {w}")
    doc = {"schema_version": SCHEMA_VERSION, "preset": plan.name, "title": plan.title, "claim": plan.claim,
           "command": ["netcore", *plugin_args, "bench", *argv],
           "machine": desc,
           "config": {"rounds": args.rounds, "generator": ",".join(g.name for g in gens.values()) or "none",
                      "server_cpu": server_cpu, "tls": tls_files is not None,
                      "generator_cpu": generator_cpu, "gen_saturated_percent": args.gen_saturated},
           "cases": [c.as_dict() for c in plan.cases], "runs": runs, "rows": rows, "warnings": warnings,
           "targets": results.check_targets(plan.targets, rows), "interrupted": interrupted}
    problems = validate(doc)
    if problems:  # a bug of the bench, not of the user: say so loudly but keep the data
        disp.note("WARNING: result document does not match its schema: " + "; ".join(problems[:5]))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        disp.note(f"raw figures written to {args.json}")
    if args.plot:
        from netcore_bench import plot
        try:
            plot.write(args.plot, plan, rows, desc)
            disp.note(f"chart written to {args.plot}")
        except plot.PlotUnavailable as exc:
            disp.note(f"WARNING: {exc}")
    if interrupted:
        return 130
    return 0 if any(r["ok"] for r in runs) or not todo else 1
