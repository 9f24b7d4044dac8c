"""Progress and tables: rich (live progress, styled table) on a terminal, plain lines otherwise.

rich is a dependency of netcore-bench, so a terminal gets the live display by default;
when stdout is not a terminal (or with ``--plain``, or should rich be missing anyway) the
bench prints one plain line per run on stderr and the table on stdout, which is what logs
and CI want.
"""

from __future__ import annotations

import sys
from typing import Any

from netcore_bench import results
from netcore_bench.presets import Plan


def run_line(run: dict[str, Any]) -> str:
    if not run["ok"]:
        return f"FAILED: {run['error']}"
    m = run["metrics"]
    parts = [f"{m['messages_per_s']:,.0f} msg/s", f"p99 {m['p99_us']:,.0f} µs"]
    if "server_cpu_us_per_msg" in m:
        parts.append(f"server {m['server_cpu_us_per_msg']:.2f} µs/msg ({m['server_cpu_percent']:.0f}% CPU)")
    for name, fmt in (("accept_eagain_per_conn", "wasted wake-ups/conn {:.3f}"), ("delayed_1s", "delayed {:.0f}"),
                      ("poll_calls_per_msg", "poll calls/msg {:.2f}")):
        if name in m:
            parts.append(fmt.format(m[name]))
    parts.append(f"generator {m['gen_cpu_percent']:.0f}% CPU")
    if run["flags"]:
        parts.append("[" + ",".join(run["flags"]) + "]")
    return ", ".join(parts)


class PlainDisplay:
    def __init__(self, out=None, err=None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def note(self, text: str) -> None:
        print(f"# {text}", file=self.err, flush=True)

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def start(self, total: int) -> None:
        self.total, self.done = total, 0

    def run_started(self, case_key: str, rnd: int, rounds: int) -> None:
        self.done += 1
        print(f"# [{self.done}/{self.total}] round {rnd}/{rounds}: {case_key} ...", end="", file=self.err, flush=True)

    def run_finished(self, run: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> None:
        print(" " + run_line(run), file=self.err, flush=True)

    def final(self, plan: Plan, rows: list[dict[str, Any]], rounds: int) -> None:
        headers, body = results.table(rows, plan.columns, rounds)
        print(f"\n{plan.title}", file=self.out)
        print(results.plain_table(headers, body), file=self.out)
        checked = results.check_targets(plan.targets, rows)
        if checked:
            print("\ntargets (ratios of medians from this run):", file=self.out)
            for line in results.target_lines(checked):
                print(f"  {line}", file=self.out)
        missing = results.not_measured(rows)
        if missing:
            print("\nnot measured:", file=self.out)
            for line in missing:
                print(f"  {line}", file=self.out)
        self.out.flush()


#: Row styles of the live table: red is for a verdict (a server failed), never for a row
#: whose turn has not come yet.
ROW_STYLES = {"failed": "red", "skipped": "dim", "pending": "dim italic"}


class RichDisplay(PlainDisplay):
    """A progress bar and the table so far, refreshed after every run."""

    def __init__(self, plan: Plan, rounds: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=False)
        self.plan, self.rounds = plan, rounds
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
        self.task = None
        self.live = None
        self.rows: list[dict[str, Any]] = []

    def note(self, text: str) -> None:
        self.console.print(f"[dim]# {text}[/dim]")

    def _render(self):
        from rich.console import Group
        return Group(self._table(self.rows), self.progress) if self.rows else self.progress

    def _table(self, rows: list[dict[str, Any]]):
        from rich.table import Table
        headers, body = results.table(rows, self.plan.columns, self.rounds)
        table = Table(title=self.plan.title, header_style="bold")
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row, cells in zip(rows, body):
            style = ROW_STYLES.get(row["status"]) or ("yellow" if "generator_saturated" in row["flags"] else None)
            table.add_row(*cells, style=style)
        return table

    def __enter__(self) -> RichDisplay:
        from rich.live import Live
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("starting", total=total)
        # Every row from the start, each "pending" until its first run: the table's shape
        # (and what is still to come) is visible before the first result.
        self.rows = results.summarize(self.plan.cases, [], pending=True)
        if self.live is not None:
            self.live.update(self._render())

    def run_started(self, case_key: str, rnd: int, rounds: int) -> None:
        self.progress.update(self.task, description=f"round {rnd}/{rounds}: {case_key}")

    def run_finished(self, run: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> None:
        self.progress.advance(self.task)
        self.rows = rows or self.rows
        self.live.update(self._render())

    def final(self, plan: Plan, rows: list[dict[str, Any]], rounds: int) -> None:
        self.console.print(self._table(rows))
        for line in results.target_lines(results.check_targets(plan.targets, rows)):
            self.console.print(f"target {line}")
        for line in results.not_measured(rows):
            self.console.print(f"[dim]not measured: {line}[/dim]")


def choose(plan: Plan, rounds: int, plain: bool):
    if not plain and sys.stdout.isatty():
        try:
            import rich  # noqa: F401
        except ImportError:
            pass
        else:
            return RichDisplay(plan, rounds)
    return PlainDisplay()
