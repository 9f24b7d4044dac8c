"""``--plot FILE.png``: one bar per case (median, min-max whiskers) of the preset's key
metric, and the server CPU per message where the preset has it. matplotlib is the optional
``plot`` extra (``pip install 'netcore-bench[plot]'``), imported here only."""

from __future__ import annotations

from typing import Any

from netcore_bench.presets import Plan
from netcore_bench.results import BETTER


class PlotUnavailable(Exception):
    pass


def write(path: str, plan: Plan, rows: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(f"--plot needs matplotlib: pip install 'netcore-bench[plot]' ({exc})") from None
    metrics = [plan.plot]
    if plan.plot[0] != "server_cpu_us_per_msg" and any("server_cpu_us_per_msg" in r["metrics"] for r in rows):
        metrics.append(("server_cpu_us_per_msg", "server CPU µs per message"))
    ok = [r for r in rows if r["status"] == "ok"]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 0.55 * len(ok) + 2), 3.2 * len(metrics)),
                             squeeze=False)
    for ax, (name, label) in zip(axes[:, 0], metrics):
        have = [r for r in ok if name in r["metrics"]]
        med = [r["metrics"][name]["median"] for r in have]
        lo = [m - r["metrics"][name]["min"] for m, r in zip(med, have)]
        hi = [r["metrics"][name]["max"] - m for m, r in zip(med, have)]
        colors = ["tab:orange" if "generator_saturated" in r["flags"] else
                  "tab:gray" if r["server"] != "netcore" else "tab:blue" for r in have]
        ax.bar(range(len(have)), med, yerr=[lo, hi], capsize=3, color=colors)
        ax.set_xticks(range(len(have)), [r["case"] for r in have], rotation=35, ha="right", fontsize=8)
        better = BETTER.get(name)
        ax.set_ylabel(f"{label}\n({better} is better)" if better else label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(f"{plan.title}\n{machine.get('cpu_model')}, {machine.get('nproc')} CPU, "
                         f"Linux {machine.get('kernel')}, Python {machine.get('python')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
