"""Run one case once: start the server, drive it, sample /proc around the window, stop it.

Every failure of a server or of the generator becomes a failed run with a reason; the
runner never lets one configuration crash the bench. Servers are real ``netcore serve``
processes started through :class:`netcore.testing.ServerProcess` (peers accept the same
command line), pinned to one CPU, with the generator pinned to another.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from netcore.testing.server_process import ServerFailed, ServerProcess

from netcore_bench import procfs
from netcore_bench.cases import Case
from netcore_bench.generators import Generator

HOST = "127.0.0.1"
#: Generator CPU above this share of its own CPU: the row is flagged; the generator may
#: have been what limited throughput and latency.
GEN_SATURATED_PERCENT = 90.0
WINDOW_SLACK_S = 60.0


class RunFailed(Exception):
    """One run of one case failed; the message is the reason shown in its row."""


@dataclass
class Context:
    #: protocol -> the load generator that drives it
    generators: dict[str, Generator]
    server_cpu: int | None
    generator_cpu: int | None
    gen_saturated_percent: float = GEN_SATURATED_PERCENT
    extra_plugin_args: tuple[str, ...] = ()


def _short(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Lines:
    """Lines from a pipe with a deadline, so waiting for "warm"/"done" is bounded."""

    def __init__(self, stream) -> None:
        self.fd = stream.fileno()
        os.set_blocking(self.fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)
        self.buf = b""
        self.eof = False
        self.seen: list[str] = []

    def wait_for(self, word: str, deadline: float) -> bool:
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text == word:
                    return True
                if len(self.seen) < 50:
                    self.seen.append(text)
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                return False
            if self.sel.select(timeout=left):
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                self.eof = not chunk
                self.buf += chunk

    def close(self) -> None:
        self.sel.close()


def run_once(case: Case, rnd: int, ctx: Context) -> dict[str, Any]:
    run: dict[str, Any] = {"case": case.key, "round": rnd, "ok": False, "error": None, "flags": [],
                           "generator": {}, "server": {}, "metrics": {}, "started_at": time.time()}
    server = ServerProcess(*ctx.extra_plugin_args, *case.args, executable=case.command_prefix(),
                           preexec_fn=procfs.child_setup(ctx.server_cpu))
    gen = None
    lines = None
    try:
        try:
            server.start()
        except (ServerFailed, OSError) as exc:
            raise RunFailed(f"server did not start: {_short(str(exc))}") from None
        host, port = server.address
        generator = ctx.generators[case.protocol]
        load = case.load
        if (warm := generator.warmup_command(load, host, port)) is not None:
            run["generator"]["warmup_command"] = warm
            _warm_up(warm, generator.time_limit(load), ctx.generator_cpu)
        pids = procfs.process_tree(server.pid)
        rss_start = procfs.tree_rss_kib(pids)
        cmd = generator.command(load, host, port)
        run["generator"]["command"] = cmd
        gen_cpu0 = os.times()
        gen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=procfs.child_setup(ctx.generator_cpu))
        if generator.marks_window:
            lines = _Lines(gen.stderr)
            if not lines.wait_for("warm", time.monotonic() + load.warmup + WINDOW_SLACK_S):
                raise RunFailed(_gen_failure(gen, lines, "no 'warm' line"))
        pids = procfs.process_tree(server.pid)  # prefork/forking children exist by now
        t0, cpu0, sys0 = time.monotonic(), procfs.tree_cpu_seconds(pids), procfs.tree_syscalls(pids)
        csw0 = procfs.tree_context_switches(pids)
        if generator.marks_window:
            if not lines.wait_for("done", time.monotonic() + load.duration + WINDOW_SLACK_S):
                raise RunFailed(_gen_failure(gen, lines, "no 'done' line"))
        else:
            # Output up to a pipe's capacity (64 KiB; wrk and redis-benchmark print a few
            # hundred bytes) cannot block the tool before it exits.
            try:
                gen.wait(generator.time_limit(load))
            except subprocess.TimeoutExpired:
                raise RunFailed(f"the load generator did not finish within {generator.time_limit(load):.0f} s") \
                    from None
        pids = list(dict.fromkeys(pids + procfs.process_tree(server.pid)))
        t1, cpu1, sys1 = time.monotonic(), procfs.tree_cpu_seconds(pids), procfs.tree_syscalls(pids)
        csw1 = procfs.tree_context_switches(pids)
        rss_done = procfs.tree_rss_kib(pids)
        try:
            out, err = gen.communicate(timeout=WINDOW_SLACK_S)
        except subprocess.TimeoutExpired:
            raise RunFailed("the load generator did not exit after its window") from None
        gen_cpu1 = os.times()
        try:
            figures = generator.parse(out.decode(errors="replace"), load)
        except ValueError as exc:
            raise RunFailed(_gen_failure(gen, lines, str(exc), err)) from None
        if figures.get("cpu_percent") is None:
            used = max(0.0, gen_cpu1.children_user + gen_cpu1.children_system
                            - gen_cpu0.children_user - gen_cpu0.children_system)
            figures["cpu_percent"] = 100.0 * used / max(t1 - t0, 1e-9)
        run["generator"]["figures"] = figures
        if gen.returncode != 0 or figures.get("errors"):
            raise RunFailed(_gen_failure(gen, lines, f"exit status {gen.returncode}, errors={figures.get('errors')}",
                                         err))
        if server.proc.poll() is not None:
            raise RunFailed(f"server exited during the run (status {server.proc.returncode})")
        run["server"].update({"cpu_seconds": cpu1 - cpu0, "window_seconds": t1 - t0, "pids": len(pids),
                              "syscalls": None if sys0 is None or sys1 is None else sys1 - sys0,
                              "rss_kib_start": rss_start, "rss_kib_done": rss_done,
                              "voluntary_context_switches": csw1 - csw0})
        run["ok"] = True
    except RunFailed as exc:
        run["error"] = str(exc)
    finally:
        if gen is not None:
            if gen.poll() is None:
                gen.kill()
            try:
                gen.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (gen.stdout, gen.stderr):
                if stream:
                    stream.close()
        if lines is not None:
            lines.close()
        _stop(server, run)
    if run["ok"]:
        run["metrics"] = metrics(case, run)
        # A burst lasts milliseconds: its generator CPU share says nothing about saturation.
        if case.load.mode != "burst" and run["metrics"].get("gen_cpu_percent", 0.0) > ctx.gen_saturated_percent:
            run["flags"].append("generator_saturated")
    return run


def _warm_up(cmd: list[str], limit: float, cpu: int | None) -> None:
    """Run the generator's warm-up (pinned like the real run); its figures are not kept."""
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=limit,
                             preexec_fn=procfs.child_setup(cpu))
    except subprocess.TimeoutExpired:
        raise RunFailed(f"the load generator's warm-up did not finish within {limit:.0f} s") from None
    except OSError as exc:
        raise RunFailed(f"the load generator's warm-up could not start: {exc}") from None
    if res.returncode != 0:
        said = (res.stderr or res.stdout).decode(errors="replace")
        raise RunFailed(_short(f"the load generator's warm-up failed (rc={res.returncode}): {said}"))


def _gen_failure(gen, lines, what: str, err: bytes = b"") -> str:
    if gen.poll() is None:
        try:
            gen.wait(1)
        except subprocess.TimeoutExpired:
            pass
    said = "; ".join((lines.seen if lines else []) + err.decode(errors="replace").splitlines()[-5:])
    return _short(f"load generator failed: {what} (rc={gen.returncode}) {said}")


def _stop(server: ServerProcess, run: dict[str, Any]) -> None:
    """TERM, then read the stats of ``server.stopped`` (netcore's; peers send none)."""
    if server.proc is None:
        return
    try:
        rc = server.stop(signal.SIGTERM, timeout=30)
    except ServerFailed as exc:
        run["flags"].append("server_killed")
        run["server"]["stop_error"] = _short(str(exc), 300)
        server._close_pipes()
        return
    run["server"]["exit_status"] = rc
    stopped = server.events_named("server.stopped")
    if stopped and isinstance(stopped[-1].get("stats"), dict):
        run["server"]["stats"] = stopped[-1]["stats"]
    if run["ok"] and rc not in (0, -signal.SIGTERM):
        run["flags"].append("unclean_exit")
    server._close_pipes()


def metrics(case: Case, run: dict[str, Any]) -> dict[str, float]:
    """The figures a row shows, from the raw ones; every ratio's inputs stay in the run."""
    g = run["generator"]["figures"]
    s = run["server"]
    msgs = int(g.get("messages", 0))
    m: dict[str, float] = {
        "messages_per_s": float(g.get("messages_per_s", 0.0)),
        "p50_us": float(g.get("p50_us", 0.0)),
        "p99_us": float(g.get("p99_us", 0.0)),
        "gen_cpu_percent": float(g.get("cpu_percent") or 0.0),
        "server_cpu_percent": 100.0 * s["cpu_seconds"] / max(s["window_seconds"], 1e-9),
        "rss_kib": float(s["rss_kib_done"]),
    }
    if msgs > 0:
        m["server_cpu_us_per_msg"] = s["cpu_seconds"] * 1e6 / msgs
        if s.get("syscalls"):  # 0 = the kernel does not count socket calls in /proc/PID/io
            m["syscalls_per_msg"] = s["syscalls"] / msgs
    conns = int(g.get("connections_done", 0))
    if case.load.mode == "reconnect" and conns > 0:
        m["connections_per_s"] = conns / max(float(g.get("seconds", 0.0)), 1e-9)
        m["server_cpu_us_per_conn"] = s["cpu_seconds"] * 1e6 / conns
        m["context_switches_per_conn"] = s["voluntary_context_switches"] / conns
    if case.load.mode == "burst":
        m["connects"] = float(case.load.connections)
        m["delayed_1s"] = float(g.get("delayed_1s", 0))
        m["connect_errors"] = float(g.get("connect_errors", 0)) + float(g.get("unfinished", 0))
        m["connect_p50_ms"] = m["p50_us"] / 1000.0
        m["connect_p99_ms"] = m["p99_us"] / 1000.0
        m["connect_max_ms"] = float(g.get("max_us", 0.0)) / 1000.0
    stats = s.get("stats")
    if stats and case.protocol == "echo":
        # Whole-run counters (warm-up included): divide by whole-run messages, which for
        # echo are the bytes received over the message size.
        total_msgs = stats.get("bytes_received", 0) / max(case.load.size, 1)
        if total_msgs and "poll_calls" in stats:
            m["poll_calls_per_msg"] = stats["poll_calls"] / total_msgs
        if total_msgs and stats.get("requests"):
            # an echo "request" is one recv() that returned data: reads per message
            m["reads_per_msg"] = stats["requests"] / total_msgs
        accepted = stats.get("connections_accepted", 0)
        if accepted:
            m["accept_eagain_per_conn"] = stats.get("accept_eagain", 0) / accepted
            m["accept_wakeups_per_conn"] = stats.get("accept_wakeups", 0) / accepted
        workers = [w.get("connections_accepted", 0) for w in stats.get("workers", [])]
        if len(workers) > 1 and sum(workers):
            m["worker_balance"] = max(workers) / (sum(workers) / len(workers))
    return m
