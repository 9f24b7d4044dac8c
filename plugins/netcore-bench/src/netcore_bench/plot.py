"""``--plot FILE.png``: a chart a reader understands without the table beside it.

Most presets get one bar per case (median, min-max whiskers) of the preset's key metric,
and the server CPU per message (or per request, for the HTTP and RESP presets) where the
preset has it. Every colour is in a legend; the layout is matplotlib's constrained layout,
which makes room for rotated case names, axis labels and a two-line title instead of
clipping them; an axis whose values span more than two decades is logarithmic, so the
dispatch preset's slow-handler rows (hundreds of messages per second beside hundreds of
thousands) are bars, not blanks.

The herd preset gets the figure that shows the herd: per worker count, one line per
acceptor, of the server's voluntary context switches per accepted connection (every
worker woken for a connection it does not get sleeps again: one more switch each) and of
accept wake-ups per connection. Its "wasted wake-ups" (accepts that found the queue
empty) stay near zero even for the herd, because the woken workers mostly find the
connection already taken before they call accept: the switches are where the herd shows.

matplotlib is the optional ``plot`` extra (``pip install 'netcore-bench[plot]'``),
imported here only.
"""

from __future__ import annotations

import textwrap
from typing import Any

from netcore_bench.presets import Plan
from netcore_bench.results import BETTER


class PlotUnavailable(Exception):
    pass


NETCORE_COLOR, PEER_COLOR, SATURATED_COLOR = "tab:blue", "tab:gray", "tab:orange"
#: An axis whose positive values span more than this ratio is drawn on a log scale.
LOG_SPAN = 100.0
#: What one message is, per protocol: an HTTP or RESP round trip is a request.
UNITS = {"http": "request", "resp": "request"}
#: The herd figure's panels: metric, axis label.
HERD_PANELS = (
    ("context_switches_per_conn", "server context switches\nper accepted connection"),
    ("accept_wakeups_per_conn", "accept wake-ups\nper accepted connection"),
)


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(f"--plot needs matplotlib: pip install 'netcore-bench[plot]' ({exc})") from None
    return plt


def unit(plan: Plan, rows: list[dict[str, Any]]) -> str:
    """``"request"`` when every row speaks HTTP or RESP (the preset's name says so for peers)."""
    protocols = {r.get("params", {}).get("protocol") for r in rows} - {None}
    if plan.name in UNITS:
        return UNITS[plan.name]
    if protocols and all(p in UNITS for p in protocols):
        return UNITS[sorted(protocols)[0]]
    return "message"


def _per_unit(label: str, word: str) -> str:
    return label.replace("per message", f"per {word}").replace("messages per", f"{word}s per")


def _title(plan: Plan, machine: dict[str, Any], width: int) -> str:
    where = (f"{machine.get('cpu_model')}, {machine.get('nproc')} CPU, Linux {machine.get('kernel')}, "
             f"Python {machine.get('python')}")
    return "\n".join([textwrap.fill(plan.title, width), textwrap.fill(where, width)])


def _axis_label(label: str, name: str, log: bool) -> str:
    better = BETTER.get(name)
    notes = [f"{better} is better"] if better else []
    if log:
        notes.append("log scale")
    return f"{label}\n({', '.join(notes)})" if notes else label


def _wants_log(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) >= 2 and max(positive) / min(positive) > LOG_SPAN


def write(path: str, plan: Plan, rows: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    plt = _pyplot()
    fig = figure(plan, rows, machine)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def figure(plan: Plan, rows: list[dict[str, Any]], machine: dict[str, Any]):
    """The matplotlib figure :func:`write` saves (the caller closes it)."""
    plt = _pyplot()
    ok = [r for r in rows if r["status"] == "ok"]
    if plan.name == "herd" and any("context_switches_per_conn" in r["metrics"] for r in ok):
        return _herd(plt, plan, ok, machine)
    return _bars(plt, plan, ok, machine)


def _bars(plt, plan: Plan, ok: list[dict[str, Any]], machine: dict[str, Any]):
    from matplotlib.patches import Patch

    word = unit(plan, ok)
    metrics = [(plan.plot[0], _per_unit(plan.plot[1], word))]
    if plan.plot[0] != "server_cpu_us_per_msg" and any("server_cpu_us_per_msg" in r["metrics"] for r in ok):
        metrics.append(("server_cpu_us_per_msg", f"server CPU µs per {word}"))
    width = max(6.0, 0.55 * len(ok) + 2) + 3.5  # the legend sits to the right of the bars
    fig, axes = plt.subplots(len(metrics), 1, figsize=(width, 3.6 * len(metrics) + 0.8), squeeze=False,
                             constrained_layout=True)
    seen: set[str] = set()
    for ax, (name, label) in zip(axes[:, 0], metrics):
        have = [r for r in ok if name in r["metrics"]]
        med = [r["metrics"][name]["median"] for r in have]
        lo = [m - r["metrics"][name]["min"] for m, r in zip(med, have)]
        hi = [r["metrics"][name]["max"] - m for m, r in zip(med, have)]
        kinds = ["saturated" if "generator_saturated" in r["flags"] else
                 "peer" if r["server"] != "netcore" else "netcore" for r in have]
        seen.update(kinds)
        colors = [{"saturated": SATURATED_COLOR, "peer": PEER_COLOR, "netcore": NETCORE_COLOR}[k] for k in kinds]
        ax.bar(range(len(have)), med, yerr=[lo, hi], capsize=3, color=colors)
        ax.set_xticks(range(len(have)))
        ax.set_xticklabels([r["case"] for r in have], rotation=35, ha="right", fontsize=8)
        log = _wants_log([r["metrics"][name]["min"] for r in have] + med)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(_axis_label(label, name, log), fontsize=9)
        ax.grid(axis="y", alpha=0.3, which="both" if log else "major")
        _separate_groups(ax, have)
    legend = [Patch(color=NETCORE_COLOR, label="netcore")]
    if "peer" in seen:
        legend.append(Patch(color=PEER_COLOR, label="peer server"))
    if "saturated" in seen:
        legend.append(Patch(color=SATURATED_COLOR,
                            label="load generator saturated: the server may do more than shown"))
    legend.append(plt.Line2D([], [], color="black", marker="_", linestyle="none", markersize=10,
                             label="whiskers: min-max of the rounds, bar: median"))
    # Beside the top axis, not over its bars (constrained layout makes room for it).
    axes[0, 0].legend(handles=legend, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(_title(plan, machine, int(width * 11)), fontsize=9)
    return fig


def _separate_groups(ax, have: list[dict[str, Any]]) -> None:
    """A dotted line between groups of rows (the dispatch preset's fast and slow handlers)."""
    groups = [r.get("params", {}).get("handler") for r in have]
    for i in range(1, len(groups)):
        if groups[i] != groups[i - 1]:
            ax.axvline(i - 0.5, color="black", linestyle=":", linewidth=1)


def _herd(plt, plan: Plan, ok: list[dict[str, Any]], machine: dict[str, Any]):
    """Per worker count, one line per acceptor: the herd grows with the workers, its cures do not."""
    acceptors = list(dict.fromkeys(r["params"].get("acceptor") for r in ok))
    workers = sorted({int(r["params"]["workers"]) for r in ok if r["params"].get("workers") is not None})
    panels = [(name, label) for name, label in HERD_PANELS if any(name in r["metrics"] for r in ok)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False,
                             constrained_layout=True)
    for ax, (name, label) in zip(axes[0], panels):
        values: list[float] = []
        for acceptor in acceptors:
            points = sorted((int(r["params"]["workers"]), r["metrics"][name]) for r in ok
                            if r["params"].get("acceptor") == acceptor and name in r["metrics"]
                            and r["params"].get("workers") is not None)
            if not points:
                continue
            xs = [x for x, _ in points]
            med = [m["median"] for _, m in points]
            values += med
            err = [[v - m["min"] for v, (_, m) in zip(med, points)], [m["max"] - v for v, (_, m) in zip(med, points)]]
            style = {"linewidth": 2.5} if acceptor == "shared" else {}
            ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=acceptor, **style)
        ax.set_xticks(workers)
        ax.set_xlabel("workers (processes sharing the listener)", fontsize=9)
        log = _wants_log(values)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(_axis_label(label, name, log), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(title="acceptor", fontsize=8, title_fontsize=8)
    width = 5.2 * len(panels)
    fig.suptitle(_title(plan, machine, int(width * 11)) + "\nshared: every worker is woken for each connection; "
                 "mutex, exclusive, reuseport: one is", fontsize=9)
    return fig
