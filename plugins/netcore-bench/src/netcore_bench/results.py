"""From runs to rows: medians and spreads over rounds, ratios against a baseline case.

Every figure in a row is the median over the rounds that succeeded, with min, max and
the spread ((max - min) / median); ratios are medians over the baseline's medians,
measured in the same run (rounds alternate the cases), which is what stays comparable on
a shared, noisy machine.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from netcore_bench.cases import Case

#: Metrics whose ratio to the baseline case is computed.
RATIO_METRICS = ("server_cpu_us_per_msg", "messages_per_s", "server_cpu_us_per_conn", "poll_calls_per_msg",
                 "syscalls_per_msg", "p99_us")


#: Which way is better, per metric (a ratio column inherits its metric's): the tables say
#: it under each header, because "vs" columns mix CPU ratios (lower is better) with
#: throughput ratios (higher is better) and a reader should not have to guess which.
#: Metrics absent here (server and generator CPU %) describe the load, not a result.
BETTER = {
    "messages_per_s": "higher", "connections_per_s": "higher",
    "server_cpu_us_per_msg": "lower", "server_cpu_us_per_conn": "lower",
    "p50_us": "lower", "p99_us": "lower", "poll_calls_per_msg": "lower", "reads_per_msg": "lower",
    "syscalls_per_msg": "lower", "accept_eagain_per_conn": "lower", "accept_wakeups_per_conn": "lower",
    "context_switches_per_conn": "lower", "worker_balance": "lower", "rss_kib": "lower",
    "rss_per_idle_conn_bytes": "lower", "delayed_1s": "lower", "connect_errors": "lower",
    "connect_p50_ms": "lower", "connect_p99_ms": "lower", "connect_max_ms": "lower",
}


@dataclass(frozen=True)
class Column:
    header: str
    #: "m:NAME" median (min-max) of a metric, "v:NAME" median only, "r:NAME" ratio to the
    #: baseline, "d:NAME" a derived figure, "p:NAME" a case parameter, "label", "load", "ok", "flags"
    source: str
    fmt: str = ".2f"

    @property
    def better(self) -> str | None:
        """``"lower"``, ``"higher"`` or None (a parameter, or a figure that describes the load)."""
        kind, _, name = self.source.partition(":")
        return BETTER.get(name) if kind in ("m", "v", "r", "d") else None

    @property
    def title(self) -> str:
        """The header with its direction on a second line: ``CPU/req vs uvicorn`` / ``(lower is better)``."""
        return f"{self.header}\n({self.better} is better)" if self.better else self.header


def spread(values: list[float]) -> dict[str, Any]:
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0, "values": list(values)}


def summarize(cases: list[Case], runs: list[dict[str, Any]], pending: bool = False) -> list[dict[str, Any]]:
    """One row per case. ``pending``: the bench is still running, so a case with no run yet
    is ``"pending"`` (the live table), not ``"failed"`` as it is once the bench has ended."""
    rows: list[dict[str, Any]] = []
    for case in cases:
        mine = [r for r in runs if r["case"] == case.key]
        good = [r for r in mine if r["ok"]]
        row: dict[str, Any] = {"case": case.key, "server": case.server, "params": dict(case.params),
                               "load": case.load.as_dict(), "baseline": case.baseline, "runs": len(mine),
                               "ok_runs": len(good), "metrics": {}, "ratios": {}, "derived": {}, "flags": [],
                               "status": "ok", "reason": None}
        if case.skip:
            row["status"], row["reason"] = "skipped", case.skip
        elif pending and not mine:
            row["status"], row["reason"] = "pending", "not run yet"
        elif not good:
            row["status"] = "failed"
            row["reason"] = next((r["error"] for r in mine if r["error"]), "not run (interrupted)")
        else:
            names = sorted({name for r in good for name in r["metrics"]})
            for name in names:
                values = [r["metrics"][name] for r in good if name in r["metrics"]]
                if values:
                    row["metrics"][name] = spread(values)
            row["flags"] = sorted({f for r in mine for f in r["flags"]})
            errors = [r["error"] for r in mine if r["error"]]
            if errors:
                row["flags"].append("some_rounds_failed")
                row["reason"] = errors[0]
        rows.append(row)
    by_key = {row["case"]: row for row in rows}
    for case, row in zip(cases, rows):
        base = by_key.get(case.baseline or "")
        if row["status"] != "ok" or base is None or base["status"] != "ok":
            continue
        for name in RATIO_METRICS:
            a, b = row["metrics"].get(name), base["metrics"].get(name)
            if a and b and b["median"]:
                row["ratios"][name] = a["median"] / b["median"]
        idle = case.load.idle - (by_key[case.baseline]["load"]["idle"] if case.baseline else 0)
        if idle > 0 and "rss_kib" in row["metrics"] and "rss_kib" in base["metrics"]:
            grown = row["metrics"]["rss_kib"]["median"] - base["metrics"]["rss_kib"]["median"]
            row["derived"]["rss_per_idle_conn_bytes"] = grown * 1024.0 / idle
    return rows


@dataclass(frozen=True)
class Target:
    """A claim checked against the table: ``case``'s ``metric`` at least ``minimum`` x ``peer``'s."""

    label: str
    case: str
    peer: str
    minimum: float
    metric: str = "messages_per_s"


def check_targets(targets: list[Target], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with the ratio of medians from this run: met, missed, or not measured."""
    by_key = {row["case"]: row for row in rows}
    out = []
    for t in targets:
        a, b = by_key.get(t.case), by_key.get(t.peer)
        ma = a["metrics"].get(t.metric) if a and a["status"] == "ok" else None
        mb = b["metrics"].get(t.metric) if b and b["status"] == "ok" else None
        ratio = ma["median"] / mb["median"] if ma and mb and mb["median"] else None
        status = "not measured" if ratio is None else "met" if ratio >= t.minimum else "missed"
        out.append({"label": t.label, "case": t.case, "peer": t.peer, "metric": t.metric, "minimum": t.minimum,
                    "ratio": ratio, "status": status})
    return out


def target_lines(checked: list[dict[str, Any]]) -> list[str]:
    lines = []
    for t in checked:
        got = "-" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        lines.append(f"{t['label']}: {got} (target >= {t['minimum']:g}x): {t['status'].upper()}")
    return lines


def cell(row: dict[str, Any], col: Column, rounds: int) -> str:
    kind, _, name = col.source.partition(":")
    if col.source == "label":
        return row["case"]
    if col.source == "ok":
        return f"{row['ok_runs']}/{rounds}"
    if col.source == "flags":
        return ",".join(f.replace("generator_saturated", "GEN-SATURATED") for f in row["flags"]) or ""
    if kind == "p":
        value = row["params"].get(name)
        return "" if value is None else str(value)
    if row["status"] != "ok":
        return "-"
    if kind in ("m", "v"):
        m = row["metrics"].get(name)
        if m is None:
            return "-"
        if kind == "v":
            return format(m["median"], col.fmt)
        return f"{format(m['median'], col.fmt)} ({format(m['min'], col.fmt)}-{format(m['max'], col.fmt)})"
    if kind == "r":
        value = row["ratios"].get(name)
        return "-" if value is None else f"{value:.2f}x"
    if kind == "d":
        value = row["derived"].get(name)
        return "-" if value is None else format(value, col.fmt)
    return "?"


def table(rows: list[dict[str, Any]], columns: list[Column], rounds: int) -> tuple[list[str], list[list[str]]]:
    body = []
    for row in rows:
        cells = [cell(row, col, rounds) for col in columns]
        if row["status"] != "ok":  # in the first figure's column, so parameters stay readable
            first = next((i for i, c in enumerate(columns) if c.source[:2] in ("m:", "v:", "r:", "d:")), 1)
            # "pending" in lower case: not yet run is not a verdict, unlike FAILED and SKIPPED
            cells[first] = "pending" if row["status"] == "pending" else row["status"].upper()
        body.append(cells)
    return [c.title for c in columns], body


def plain_table(headers: list[str], body: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned figures; a header may span lines (``\\n``)."""
    split = [h.split("\n") for h in headers]
    depth = max((len(h) for h in split), default=1)
    widths = [max([len(x) for x in h] + [len(b[i]) for b in body]) for i, h in enumerate(split)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    head = [line([h[d] if d < len(h) else "" for h in split]) for d in range(depth)]
    return "\n".join(head + ["  ".join("-" * w for w in widths)] + [line(b) for b in body])


def not_measured(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        if row["status"] != "ok":
            out.append(f"{row['case']}: {row['status']}: {row['reason']}")
        elif row["reason"]:
            out.append(f"{row['case']}: some rounds failed: {row['reason']}")
    return out
