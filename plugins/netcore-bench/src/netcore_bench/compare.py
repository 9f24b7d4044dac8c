"""``netcore bench compare A.json B.json``: two result files, row by row, against their noise.

A change is worth believing only when it is larger than what the same code does from
one round to the next. Each file already holds every round's figure for every row, so
the comparison needs no new run: for each row both files measured, and each key metric,
it prints the ratio of medians B/A and the range the rounds allow (B's lowest over A's
highest, B's highest over A's lowest). A ``*`` marks a row whose range excludes 1 --
every round of B beat, or lost to, every round of A -- with which way is better for that
metric. With fewer than two rounds on either side the noise is unknown and nothing is
marked. Ratios from different machines mix machine and code; the comparison says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from netcore_bench.results import BETTER, plain_table
from netcore_bench.schema import SCHEMA_VERSION

#: Metrics compared when both rows have them, in this order (``--metric`` picks others).
KEY_METRICS = ("messages_per_s", "connections_per_s", "server_cpu_us_per_msg", "server_cpu_us_per_conn", "p99_us",
               "accept_eagain_per_conn", "poll_calls_per_msg", "delayed_1s", "connect_p99_ms")

LABELS = {"messages_per_s": "msgs/s", "connections_per_s": "conns/s", "server_cpu_us_per_msg": "srv CPU µs/msg",
          "server_cpu_us_per_conn": "srv CPU µs/conn", "p99_us": "p99 µs", "p50_us": "p50 µs",
          "accept_eagain_per_conn": "wasted wake-ups/conn", "poll_calls_per_msg": "poll calls/msg",
          "delayed_1s": "delayed >= 0.9 s", "connect_p99_ms": "connect p99 ms"}

#: Presets whose messages are requests: their labels say "req", as their tables do.
REQUEST_PRESETS = ("http", "resp")


class CompareError(Exception):
    """A file that cannot be compared (missing, not JSON, not a bench result)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"netcore bench compare: error: {message} (see 'netcore bench compare --help')", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="netcore bench compare", description="Compare two 'netcore bench --json' result files, row by row, "
                "against the noise of their rounds.",
                epilog="Example: netcore bench idle --json before.json; (change something); "
                       "netcore bench idle --json after.json; netcore bench compare before.json after.json")
    p.add_argument("a", metavar="A.json", help="the reference result (netcore bench ... --json A.json)")
    p.add_argument("b", metavar="B.json", help="the result compared with it; ratios are B/A")
    p.add_argument("--metric", action="append", metavar="NAME",
                   help="compare this metric (repeatable; default: " + ", ".join(KEY_METRICS) + ", where present)")
    return p


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise CompareError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CompareError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise CompareError(f"{path}: not a 'netcore bench --json' result (no rows)")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise CompareError(f"{path}: schema_version {doc.get('schema_version')!r}, this bench reads {SCHEMA_VERSION}")
    return doc


def compare_metric(a: dict[str, Any], b: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """B/A for one metric of one row: ratio, range, whether it exceeds the noise, verdict."""
    ma, mb = a["metrics"].get(metric), b["metrics"].get(metric)
    if not ma or not mb or not ma["median"] or not ma["min"] or not ma["max"]:
        return None
    ratio = mb["median"] / ma["median"]
    low, high = mb["min"] / ma["max"], mb["max"] / ma["min"]
    judged = len(ma["values"]) >= 2 and len(mb["values"]) >= 2
    beyond = judged and (high < 1.0 or low > 1.0)
    better = BETTER.get(metric)
    if not judged:
        verdict = "noise unknown (fewer than 2 rounds)"
    elif not beyond:
        verdict = "within noise"
    elif better is None:
        verdict = "differs"
    else:
        verdict = "B better" if (ratio > 1.0) == (better == "higher") else "B worse"
    return {"metric": metric, "a": ma["median"], "b": mb["median"], "ratio": ratio, "low": low, "high": high,
            "beyond_noise": beyond, "verdict": verdict, "better": better}


def compare(doc_a: dict[str, Any], doc_b: dict[str, Any], metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """Every row both documents measured, each metric compared; plus what could not be."""
    rows_a = {r["case"]: r for r in doc_a["rows"]}
    rows_b = {r["case"]: r for r in doc_b["rows"]}
    out: dict[str, Any] = {"rows": [], "not_compared": [], "warnings": []}
    if doc_a.get("preset") != doc_b.get("preset"):
        out["warnings"].append(f"different presets (A {doc_a.get('preset')}, B {doc_b.get('preset')}): only rows "
                               "with the same name are compared")
    ma, mb = doc_a.get("machine", {}), doc_b.get("machine", {})
    if (ma.get("cpu_model"), ma.get("nproc")) != (mb.get("cpu_model"), mb.get("nproc")):
        out["warnings"].append(f"different machines (A {ma.get('cpu_model')} x{ma.get('nproc')}, "
                               f"B {mb.get('cpu_model')} x{mb.get('nproc')}): the ratios mix machine and code")
    for key in [*rows_a, *(k for k in rows_b if k not in rows_a)]:
        a, b = rows_a.get(key), rows_b.get(key)
        if a is None or b is None:
            out["not_compared"].append(f"{key}: only in {'B' if a is None else 'A'}")
            continue
        if a["status"] != "ok" or b["status"] != "ok":
            out["not_compared"].append(f"{key}: A {a['status']}, B {b['status']}")
            continue
        names = list(metrics) if metrics else [m for m in KEY_METRICS if m in a["metrics"] and m in b["metrics"]]
        for metric in names:
            result = compare_metric(a, b, metric)
            if result is not None:
                out["rows"].append({"case": key, **result})
    return out


def _describe(path: str, doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    load = (m.get("loadavg_at_start") or [None])[0]
    return (f"{path}: preset {doc.get('preset')}, {doc.get('config', {}).get('rounds', '?')} rounds, "
            f"{m.get('cpu_model', '?')}, {m.get('nproc', '?')} CPU"
            + (f", load average {load:.2f} at start" if isinstance(load, (int, float)) else ""))


def _label(metric: str, preset: str | None) -> str:
    label = LABELS.get(metric, metric)
    if preset in REQUEST_PRESETS:
        label = label.replace("msgs/s", "req/s").replace("/msg", "/req")
    better = BETTER.get(metric)
    return f"{label} ({better} is better)" if better else label


def render(result: dict[str, Any], preset: str | None) -> str:
    headers = ["case", "metric", "A", "B", "B/A", "range (rounds)", ""]
    body = [[r["case"], _label(r["metric"], preset), f"{r['a']:,.2f}", f"{r['b']:,.2f}", f"{r['ratio']:.3f}x",
             f"{r['low']:.3f}-{r['high']:.3f}", ("* " if r["beyond_noise"] else "  ") + r["verdict"]]
            for r in result["rows"]]
    lines = [plain_table(headers, body)] if body else ["no row was measured in both files"]
    if result["not_compared"]:
        lines += ["", "not compared:"] + [f"  {line}" for line in result["not_compared"]]
    marked = sum(r["beyond_noise"] for r in result["rows"])
    lines += ["", f"{marked} of {len(result['rows'])} comparisons differ by more than the noise "
                  "(* : B's range of rounds does not overlap A's)"]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        doc_a, doc_b = load(args.a), load(args.b)
    except CompareError as exc:
        print(f"netcore bench compare: error: {exc}", file=sys.stderr)
        return 2
    result = compare(doc_a, doc_b, args.metric)
    print(f"A = {_describe(args.a, doc_a)}")
    print(f"B = {_describe(args.b, doc_b)}")
    print("B/A: ratio of the medians; range: B's lowest round over A's highest to B's highest over A's lowest\n")
    for warning in result["warnings"]:
        print(f"WARNING: {warning}")
    print(render(result, doc_a.get("preset") if doc_a.get("preset") == doc_b.get("preset") else None))
    return 0
