#!/usr/bin/env python3
"""Echo benchmark: netcore vs asyncio vs uvloop (ping-pong over loopback).

Each server runs as its own process (pinned to one CPU when there are >= 2),
the C load generator bench/loadgen/echo_client.c runs pinned to another CPU.
The figure to compare is the server's CPU time per message, read from
/proc/PID/stat around the measured window.  See bench/README.md.

    python3 bench/echo.py                       # 3 rounds, 64 conns, 64 B, 5 s
    python3 bench/echo.py --netcore "--poller epoll-et" --json out.json

Stdlib only (uvloop optional, for the uvloop peer).  Talks to 127.0.0.1 only
and only ever signals processes it started itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import selectors
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
LOADGEN_SRC = BENCH_DIR / "loadgen" / "echo_client.c"
BUILD_DIR = BENCH_DIR / ".build"
LOADGEN_BIN = BUILD_DIR / "echo_client"
PEER_SCRIPT = BENCH_DIR / "peers" / "asyncio_echo.py"

HOST = "127.0.0.1"
NETCORE_BASE_ARGS = [
    "serve",
    "--poller", "epoll-lt",
    "--dispatch", "inline",
    "--protocol", "echo",
    "--bind", f"{HOST}:0",
    "--log-format", "json",
]  # fmt: skip
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
GEN_CPU_WARN_PERCENT = 90.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
_RUN_IDS = itertools.count(1)


class BenchError(Exception):
    """A failure of one server/run, reported as a failed row."""


# --------------------------------------------------------------------------- build


def find_compiler() -> str:
    for cand in (os.environ.get("CC"), "cc", "gcc"):
        if cand and shutil.which(cand):
            return cand
    raise SystemExit("echo.py: no C compiler found (tried $CC, cc, gcc)")


def build_loadgen(force: bool = False) -> Path:
    """Compile the C generator into bench/.build/ if missing or out of date."""
    if (
        not force
        and LOADGEN_BIN.exists()
        and LOADGEN_BIN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime
    ):
        return LOADGEN_BIN
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    cc = find_compiler()
    tmp = LOADGEN_BIN.with_name(f"{LOADGEN_BIN.name}.{os.getpid()}.tmp")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-o", str(tmp), str(LOADGEN_SRC)]
    print(f"# compiling load generator: {shlex.join(cmd)}", file=sys.stderr)
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"echo.py: compiling the load generator failed:\n{res.stderr}")
    if res.stderr.strip():
        print(res.stderr, file=sys.stderr, end="")
    os.replace(tmp, LOADGEN_BIN)
    return LOADGEN_BIN


# --------------------------------------------------------------------------- /proc


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime) of pid in clock ticks, None if gone.

    cutime/cstime are included so that CPU of descendants that exit and are
    reaped during the window is not lost (it moves from the child's own entry
    to the parent's c* fields; the sum stays continuous).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and ')': split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    # rest[0] = state (field 3) -> field N is rest[N - 3]
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, utime + stime + cutime + cstime


def tree_cpu_ticks(root: int) -> int:
    """CPU ticks (user+sys, all threads) of root and all its descendants."""
    stats: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    if root not in stats:
        raise BenchError(f"server process {root} is gone")
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, [root], set()
    while todo:  # bounded: each pid visited once
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


# --------------------------------------------------------------------------- processes


@dataclass
class ServerSpec:
    label: str
    kind: str  # "netcore" | "asyncio" | "uvloop"
    cmd: list[str]
    skip_reason: str | None = None


@dataclass
class RunResult:
    server: str
    round: int
    ok: bool
    error: str | None = None
    gen: dict[str, Any] = field(default_factory=dict)
    server_cpu_s: float | None = None
    server_window_s: float | None = None
    server_cpu_us_per_msg: float | None = None
    server_cpu_percent: float | None = None


class LineReader:
    """Read lines from a pipe with a deadline (no unbounded blocking)."""

    def __init__(self, stream) -> None:
        self.fd = stream.fileno()
        os.set_blocking(self.fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)
        self.buf = b""
        self.eof = False
        self.seen: list[str] = []  # every line, kept for error messages

    def readline(self, deadline: float) -> str | None:
        """Next line (without newline), or None on EOF / deadline."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                text = line.decode(errors="replace")
                if len(self.seen) < 200:
                    self.seen.append(text)
                return text
            if self.eof:
                if self.buf:
                    text, self.buf = self.buf.decode(errors="replace"), b""
                    self.seen.append(text)
                    return text
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.sel.select(timeout=left):
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.eof = True
                self.buf += chunk

    def close(self) -> None:
        self.sel.close()


def tail(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


class ServerProc:
    """A server process we started; stderr goes to a file we poll."""

    def __init__(self, spec: ServerSpec, cpu: int | None, workdir: Path, tag: str) -> None:
        self.spec = spec
        self.errfile = workdir / f"{tag}.stderr"
        cmd = list(spec.cmd)
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> int:
        with open(self.errfile, "wb") as err:
            try:
                self.proc = subprocess.Popen(
                    self.cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,  # own process group: cleanup + no stray Ctrl-C
                )
            except FileNotFoundError as exc:
                raise BenchError(f"command not found: {exc.filename or self.cmd[0]}") from None
            except PermissionError as exc:
                raise BenchError(f"cannot execute {self.cmd[0]}: {exc}") from None
        deadline = time.monotonic() + START_TIMEOUT_S
        pos = 0
        partial = b""
        while time.monotonic() < deadline:  # bounded by the deadline
            with open(self.errfile, "rb") as f:
                f.seek(pos)
                chunk = f.read()
            pos += len(chunk)
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for raw in lines:
                port = self._parse_started(raw)
                if port is not None:
                    self.port = port
                    return port
            rc = self.proc.poll()
            if rc is not None:
                msg = f"exited with status {rc} before server.started"
                if rc == 127 and self.cmd[0] == "taskset":
                    msg = f"command not found (taskset exit 127): {self.spec.cmd[0]}"
                t = tail(self.errfile)
                raise BenchError(msg + (f"; stderr tail:\n{t}" if t else ""))
            time.sleep(0.02)
        t = tail(self.errfile)
        raise BenchError(
            f"no server.started within {START_TIMEOUT_S:.0f} s" + (f"; stderr tail:\n{t}" if t else "")
        )

    @staticmethod
    def _parse_started(raw: bytes) -> int | None:
        raw = raw.strip()
        if not raw.startswith(b"{"):
            return None
        try:
            obj = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("event") != "server.started":
            return None
        addrs = obj.get("addresses") or []
        if isinstance(addrs, str):
            addrs = [addrs]
        for a in addrs:
            host, _, port = str(a).rpartition(":")
            if host.strip("[]") == HOST and port.isdigit():
                return int(port)
        raise BenchError(f"server.started has no {HOST} address: {addrs!r}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, wait; SIGKILL the process group we created if it lingers."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"# {self.spec.label}: did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM, killing",
                      file=sys.stderr)  # fmt: skip
            except ProcessLookupError:
                pass
        # Kill whatever is left in the session/process group we started
        # (e.g. worker processes of a server that ignored SIGTERM).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        return p.returncode


def run_one(
    spec: ServerSpec, rnd: int, args: argparse.Namespace, pin: tuple[int, int] | None, workdir: Path
) -> RunResult:
    res = RunResult(server=spec.label, round=rnd, ok=False)
    tag = f"{spec.kind}-round{rnd}-{next(_RUN_IDS)}"
    srv = ServerProc(spec, pin[0] if pin else None, workdir, tag)
    gen: subprocess.Popen | None = None
    reader: LineReader | None = None
    try:
        port = srv.start()
        gen_cmd = [
            str(LOADGEN_BIN),
            "--host", HOST,
            "--port", str(port),
            "--connections", str(args.connections),
            "--size", str(args.size),
            "--warmup", str(args.warmup),
            "--duration", str(args.duration),
        ]  # fmt: skip
        if pin:
            gen_cmd = ["taskset", "-c", str(pin[1]), *gen_cmd]
        gen = subprocess.Popen(gen_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        reader = LineReader(gen.stderr)

        def wait_for(word: str, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while True:  # bounded: readline returns None at the deadline / EOF
                line = reader.readline(deadline)
                if line is None:
                    break
                if line.strip() == word:
                    return
            gen_msgs = "; ".join(s for s in reader.seen if s.strip() not in ("warm", "done"))
            try:
                rc = gen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                rc = None
            if rc:
                raise BenchError(f"load generator failed (rc={rc}): {gen_msgs}")
            raise BenchError(f"load generator: no '{word}' line (rc={rc}) {gen_msgs}".strip())

        # Connecting may take a moment for many connections; warm-up follows.
        wait_for("warm", args.warmup + 30.0)
        t0, c0 = time.monotonic(), tree_cpu_ticks(srv.pid)
        wait_for("done", args.duration + 30.0)
        t1, c1 = time.monotonic(), tree_cpu_ticks(srv.pid)
        try:
            out, _ = gen.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise BenchError("load generator did not exit after 'done'") from None
        # remaining stderr (error messages) after 'done'
        while reader.readline(time.monotonic() + 1.0) is not None:
            pass
        gen_msgs = "; ".join(s for s in reader.seen if s.strip() not in ("warm", "done"))
        try:
            res.gen = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BenchError(f"load generator printed no JSON (rc={gen.returncode}) {gen_msgs}") from None
        if gen.returncode != 0 or res.gen.get("errors"):
            raise BenchError(f"load generator failed (rc={gen.returncode}, errors={res.gen.get('errors')}): {gen_msgs}")
        msgs = int(res.gen["messages"])
        if msgs <= 0:
            raise BenchError("no messages completed in the measured window")
        res.server_cpu_s = (c1 - c0) / CLK_TCK
        res.server_window_s = t1 - t0
        res.server_cpu_us_per_msg = res.server_cpu_s * 1e6 / msgs
        res.server_cpu_percent = 100.0 * res.server_cpu_s / res.server_window_s if res.server_window_s > 0 else None
        if not srv.alive():
            raise BenchError(f"server exited during the run (status {srv.proc.returncode})")
        res.ok = True
    except BenchError as exc:
        res.error = str(exc)
    finally:
        if gen is not None:
            if gen.poll() is None:
                gen.kill()
            try:
                gen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for s in (gen.stdout, gen.stderr):
                if s:
                    s.close()
        if reader is not None:
            reader.close()
        rc = srv.stop()
        if res.ok and rc not in (0, -signal.SIGTERM, None):
            # Clean stop expected; keep the figures but say so.
            res.error = f"server exit status {rc} after SIGTERM"
    return res


# --------------------------------------------------------------------------- setup


def choose_pinning() -> tuple[tuple[int, int] | None, str]:
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = list(range(os.cpu_count() or 1))
    if len(cpus) < 2:
        return None, f"only {len(cpus)} CPU available: no pinning (server and generator share the CPU)"
    if not shutil.which("taskset"):
        return None, "taskset not found (util-linux): no pinning"
    pin = (0, 1) if {0, 1} <= set(cpus) else (cpus[0], cpus[1])
    return pin, f"server pinned to CPU {pin[0]}, load generator to CPU {pin[1]} (taskset)"


def merge_netcore_args(base: list[str], extra: list[str]) -> list[str]:
    """Apply `extra` options over `base`: an option already in base gets its
    value replaced (so "--poller epoll-et" overrides the default poller);
    anything else is appended."""
    out = list(base)
    i = 0
    while i < len(extra):
        tok = extra[i]
        if tok.startswith("--") and "=" in tok:
            opt, val = tok.split("=", 1)
            i += 1
        elif tok.startswith("--") and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            opt, val = tok, extra[i + 1]
            i += 2
        else:
            out.append(tok)
            i += 1
            continue
        if opt in out:
            j = out.index(opt)
            if j + 1 < len(out):
                out[j + 1] = val
                continue
        out += [opt, val]
    return out


def uvloop_available() -> tuple[bool, str]:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError as exc:
        return False, str(exc)
    return True, getattr(uvloop, "__version__", "?")


def machine_info(pin_note: str) -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ok, uv = uvloop_available()
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "affinity_cpus": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "uvloop": uv if ok else None,
        "clk_tck": CLK_TCK,
        "pinning": pin_note,
        "loadavg_at_start": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------- report


def _spread(vals: list[float]) -> tuple[float, float, float]:
    return statistics.median(vals), min(vals), max(vals)


def summarize(specs: list[ServerSpec], results: list[RunResult]) -> list[dict[str, Any]]:
    rows = []
    for spec in specs:
        runs = [r for r in results if r.server == spec.label]
        good = [r for r in runs if r.ok]
        row: dict[str, Any] = {"server": spec.label, "kind": spec.kind, "cmd": spec.cmd, "runs": len(runs), "ok_runs": len(good)}
        if spec.skip_reason:
            row["failed"] = spec.skip_reason
            row["skipped"] = True
        elif not good:
            row["failed"] = next((r.error for r in runs if r.error), "no runs")
        else:
            errs = [r.error for r in runs if r.error]
            if errs:
                row["notes"] = errs
            for key, vals in (
                ("messages_per_s", [r.gen["messages_per_s"] for r in good]),
                ("p50_us", [r.gen["p50_us"] for r in good]),
                ("p99_us", [r.gen["p99_us"] for r in good]),
                ("server_cpu_us_per_msg", [r.server_cpu_us_per_msg for r in good]),
                ("server_cpu_percent", [r.server_cpu_percent for r in good]),
                ("gen_cpu_percent", [r.gen["cpu_percent"] for r in good]),
            ):
                med, lo, hi = _spread(vals)
                row[key] = {"median": med, "min": lo, "max": hi}
        rows.append(row)
    # ratio of CPU/msg vs uvloop (or asyncio if uvloop missing/failed)
    base = next((r for r in rows if r["kind"] == "uvloop" and "failed" not in r), None)
    base = base or next((r for r in rows if r["kind"] == "asyncio" and "failed" not in r), None)
    for r in rows:
        if base and "failed" not in r:
            r["cpu_per_msg_vs"] = base["kind"]
            r["cpu_per_msg_ratio"] = r["server_cpu_us_per_msg"]["median"] / base["server_cpu_us_per_msg"]["median"]
    return rows


def format_table(rows: list[dict[str, Any]], rounds: int) -> str:
    base_kind = next((r["cpu_per_msg_vs"] for r in rows if "cpu_per_msg_vs" in r), "baseline")

    def ms(d: dict[str, float], fmt: str) -> str:
        return f"{format(d['median'], fmt)} ({format(d['min'], fmt)}-{format(d['max'], fmt)})"

    headers = [
        "server",
        "msgs/s (min-max)",
        "p99 us (min-max)",
        "srv CPU us/msg (min-max)",
        f"CPU/msg vs {base_kind}",
        "srv CPU%",
        "gen CPU% (max)",
        "ok",
    ]
    body: list[list[str]] = []
    failed: list[str] = []
    for r in rows:
        if "failed" in r:
            what = "SKIPPED" if r.get("skipped") else "FAILED"
            body.append([r["server"], what, "-", "-", "-", "-", "-", f"{r['ok_runs']}/{rounds}"])
            failed.append(f"  {r['server']} ({what.lower()}): {r['failed']}")
            continue
        g = r["gen_cpu_percent"]
        body.append(
            [
                r["server"],
                ms(r["messages_per_s"], ",.0f"),
                ms(r["p99_us"], ".0f"),
                ms(r["server_cpu_us_per_msg"], ".2f"),
                f"{r['cpu_per_msg_ratio']:.2f}x" if "cpu_per_msg_ratio" in r else "-",
                f"{r['server_cpu_percent']['median']:.0f}",
                f"{g['median']:.0f} ({g['max']:.0f})",
                f"{r['ok_runs']}/{rounds}",
            ]
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    if failed:
        lines.append("")
        lines.append("not measured:")
        lines.extend(failed)
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    # "--netcore --poller=epoll-et" would look like an option to argparse:
    # glue the value that follows --netcore / --netcore-cmd onto it.
    fixed: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in ("--netcore", "--netcore-cmd") and i + 1 < len(argv):
            fixed.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            fixed.append(argv[i])
            i += 1

    ap = argparse.ArgumentParser(
        description="Ping-pong echo benchmark: netcore vs asyncio vs uvloop (server CPU per message).",
        epilog='Example: python3 bench/echo.py --rounds 5 --netcore "--poller epoll-et" --json out.json',
    )

    def positive_int(s: str) -> int:
        v = int(s)
        if v < 1:
            raise argparse.ArgumentTypeError("must be >= 1")
        return v

    def nonneg_float(s: str) -> float:
        v = float(s)
        if not 0 <= v <= 3600:
            raise argparse.ArgumentTypeError("must be in 0..3600")
        return v

    ap.add_argument("--connections", type=positive_int, default=64, help="concurrent connections (default 64)")
    ap.add_argument("--size", type=positive_int, default=64, help="message size in bytes (default 64)")
    ap.add_argument("--duration", type=nonneg_float, default=5.0, help="measured seconds per run (default 5)")
    ap.add_argument("--warmup", type=nonneg_float, default=1.0, help="warm-up seconds per run, not counted (default 1)")
    ap.add_argument("--rounds", type=positive_int, default=3, help="rounds; servers alternate A B C A B C (default 3)")
    ap.add_argument("--json", metavar="FILE", help="write all raw figures and the machine description here")
    ap.add_argument("--netcore-cmd", default="netcore", help="netcore command (shell-style string, default 'netcore')")
    ap.add_argument(
        "--netcore",
        action="append",
        default=[],
        metavar="ARGS",
        help="extra netcore configuration, its own row, e.g. --netcore '--poller epoll-et' "
        "(options override the defaults of the same name); repeatable",
    )
    ap.add_argument(
        "--servers",
        default="netcore,asyncio,uvloop",
        help="comma-separated kinds to run (default netcore,asyncio,uvloop)",
    )
    ap.add_argument("--rebuild", action="store_true", help="recompile the load generator")
    args = ap.parse_args(fixed)
    if args.duration <= 0:
        ap.error("--duration must be > 0")
    kinds = {k.strip() for k in args.servers.split(",") if k.strip()}
    unknown = kinds - {"netcore", "asyncio", "uvloop"}
    if unknown:
        ap.error(f"unknown --servers kinds: {', '.join(sorted(unknown))}")
    args.kinds = kinds
    return args


def build_specs(args: argparse.Namespace) -> list[ServerSpec]:
    specs: list[ServerSpec] = []
    if "netcore" in args.kinds:
        base_cmd = shlex.split(args.netcore_cmd)
        if not base_cmd:
            raise SystemExit("echo.py: --netcore-cmd is empty")
        specs.append(ServerSpec("netcore", "netcore", base_cmd + NETCORE_BASE_ARGS))
        for extra in args.netcore:
            extra_args = shlex.split(extra)
            specs.append(
                ServerSpec(f"netcore {shlex.join(extra_args)}", "netcore", base_cmd + merge_netcore_args(NETCORE_BASE_ARGS, extra_args))
            )
        if not shutil.which(base_cmd[0]):
            for s in specs:
                s.skip_reason = f"command not found: {base_cmd[0]}"
    peer = [sys.executable, str(PEER_SCRIPT), "--port", "0", "--loop"]
    if "asyncio" in args.kinds:
        specs.append(ServerSpec("asyncio", "asyncio", peer + ["asyncio"]))
    if "uvloop" in args.kinds:
        ok, info = uvloop_available()
        specs.append(ServerSpec("uvloop", "uvloop", peer + ["uvloop"], None if ok else f"uvloop not importable ({info}); pip install uvloop"))
    return specs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_sigterm(signum, frame):  # same cleanup path as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    build_loadgen(force=args.rebuild)
    pin, pin_note = choose_pinning()
    specs = build_specs(args)
    machine = machine_info(pin_note)

    print(f"# {machine['cpu_model']}, {machine['nproc']} CPU, Linux {machine['kernel']}, Python {machine['python']}", file=sys.stderr)
    print(f"# {pin_note}", file=sys.stderr)
    print(
        f"# {args.connections} connections x {args.size} B ping-pong, warm-up {args.warmup:g} s, "
        f"measured {args.duration:g} s, {args.rounds} rounds",
        file=sys.stderr,
    )
    for s in specs:
        if s.skip_reason:
            print(f"# skipping {s.label}: {s.skip_reason}", file=sys.stderr)

    results: list[RunResult] = []
    failed_labels: set[str] = set()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="netcore-bench-") as tmp:
        workdir = Path(tmp)
        try:
            for rnd in range(1, args.rounds + 1):
                for spec in specs:
                    if spec.skip_reason or spec.label in failed_labels:
                        continue
                    print(f"# round {rnd}/{args.rounds}: {spec.label} ...", file=sys.stderr, end="", flush=True)
                    r = run_one(spec, rnd, args, pin, workdir)
                    results.append(r)
                    if r.ok:
                        print(
                            f" {r.gen['messages_per_s']:,.0f} msg/s, p99 {r.gen['p99_us']:.0f} us, "
                            f"server {r.server_cpu_us_per_msg:.2f} us/msg ({r.server_cpu_percent:.0f}% CPU), "
                            f"generator {r.gen['cpu_percent']:.0f}% CPU",
                            file=sys.stderr,
                        )
                    else:
                        print(f" FAILED: {r.error}", file=sys.stderr)
                        failed_labels.add(spec.label)  # a failing server is not retried
        except KeyboardInterrupt:
            interrupted = True
            print("\n# interrupted: reporting the runs done so far", file=sys.stderr)

    rows = summarize(specs, results)
    print(format_table(rows, args.rounds))
    gen_max = max((r.gen.get("cpu_percent", 0.0) for r in results if r.ok), default=0.0)
    warnings = []
    if gen_max > GEN_CPU_WARN_PERCENT:
        warnings.append(
            f"load generator reached {gen_max:.0f}% CPU (> {GEN_CPU_WARN_PERCENT:.0f}%): it may have been the "
            "bottleneck for that server; its msgs/s and latency understate it (CPU/msg stays comparable, though a "
            "server that is not saturated batches less and may show a slightly higher CPU/msg)"
        )
    if pin is None:
        warnings.append(f"no CPU pinning: {pin_note}")
    for w in warnings:
        print(f"WARNING: {w}")

    if args.json:
        doc = {
            "benchmark": "echo ping-pong",
            "machine": machine,
            "config": {
                "connections": args.connections,
                "size": args.size,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "netcore_cmd": args.netcore_cmd,
                "netcore_extra": args.netcore,
                "pinning": list(pin) if pin else None,
            },
            "servers": [{"label": s.label, "kind": s.kind, "cmd": s.cmd, "skipped": s.skip_reason} for s in specs],
            "runs": [r.__dict__ for r in results],
            "summary": rows,
            "warnings": warnings,
            "interrupted": interrupted,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"# raw figures written to {args.json}", file=sys.stderr)
    if interrupted:
        return 130
    ok_any = any(r.ok for r in results)
    return 0 if ok_any else 1


if __name__ == "__main__":
    sys.exit(main())
