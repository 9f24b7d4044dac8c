"""``netcore bench --plot``: charts rendered from small synthetic results, checked as a reader
would look at them — a legend for every colour, no text outside the figure, a log axis
where values span decades, the unit of the protocol, and the herd's own figure.

No benchmark runs here: the rows have the shape ``netcore_bench.results.summarize``
gives them. Skipped without matplotlib (``pip install 'netcore-bench[plot]'``).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install 'netcore-bench[plot]'")

from netcore_bench import plot  # noqa: E402
from netcore_bench.presets import Plan  # noqa: E402

MACHINE = {"cpu_model": "Test CPU", "nproc": 2, "kernel": "6.1", "python": "3.11.7"}


def row(case: str, metrics: dict[str, float], server: str = "netcore", flags: tuple[str, ...] = (),
        spread: float = 0.1, **params: Any) -> dict[str, Any]:
    return {"case": case, "server": server, "params": params, "status": "ok", "flags": list(flags),
            "metrics": {name: {"median": v, "min": v * (1 - spread), "max": v * (1 + spread)}
                        for name, v in metrics.items()}}


def texts_inside(fig) -> list[str]:
    """The texts that stick out of the figure (clipped in the PNG)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    # Tick labels of ticks outside an axis's limits exist but are not drawn.
    undrawn = set()
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo <= tick.get_loc() <= hi:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    outside = []
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if not text.get_visible() or not text.get_text().strip() or id(text) in undrawn:
            continue
        ext = text.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.x1 > box.x1 + 1 or ext.y0 < box.y0 - 1 or ext.y1 > box.y1 + 1:
            outside.append(text.get_text())
    return outside


def legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def render(tmp_path, plan: Plan, rows: list[dict[str, Any]]):
    """Write the PNG (as --plot does) and return the figure for inspection."""
    path = tmp_path / f"{plan.name}.png"
    plot.write(str(path), plan, rows, MACHINE)
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width > 300 and height > 200
    return plot.figure(plan, rows, MACHINE)


def test_dispatch_slow_rows_on_a_log_axis_with_legend_and_nothing_clipped(tmp_path):
    plan = Plan("dispatch", "Every dispatch scheme, fast handler and 1 ms blocking handler, a long title that "
                "must wrap rather than run off the figure", [], [], plot=("messages_per_s", "messages per second"))
    rows = []
    for handler, scale in (("fast", 1.0), ("slow 1 ms", 0.004)):
        for scheme, rate in (("iterative", 30000), ("thread-per-connection-with-a-long-name", 50000),
                             ("multi-reactor-pool", 130000)):
            rows.append(row(f"{scheme} {handler}", {"messages_per_s": rate * scale, "server_cpu_us_per_msg": 12.0},
                            flags=("generator_saturated",) if rate == 130000 and handler == "fast" else (),
                            handler=handler, scheme=scheme, protocol="echo"))
    fig = render(tmp_path, plan, rows)
    rate_axis, cpu_axis = fig.axes[:2]
    assert rate_axis.get_yscale() == "log" and "log scale" in rate_axis.get_ylabel()
    assert cpu_axis.get_yscale() == "linear"
    assert "higher is better" in rate_axis.get_ylabel() and "per message" in cpu_axis.get_ylabel()
    legend = " | ".join(legend_texts(fig))
    assert "load generator saturated" in legend and "netcore" in legend and "min-max" in legend
    assert texts_inside(fig) == []
    assert rate_axis.get_xticklabels()[0].get_text() == "iterative fast"


def test_http_rows_are_per_request_and_peers_in_the_legend(tmp_path):
    plan = Plan("http", "HTTP hello, wrk -t1 keep-alive", [], [], plot=("messages_per_s", "requests per second"))
    rows = [row("netcore inline", {"messages_per_s": 20000, "server_cpu_us_per_msg": 40}, protocol="http"),
            row("uvicorn", {"messages_per_s": 9000, "server_cpu_us_per_msg": 90}, server="uvicorn")]
    fig = render(tmp_path, plan, rows)
    labels = [ax.get_ylabel() for ax in fig.axes[:2]]
    assert "requests per second" in labels[0]
    assert "server CPU µs per request" in labels[1] and "message" not in " ".join(labels)
    assert "peer server" in legend_texts(fig) and "load generator saturated" not in " ".join(legend_texts(fig))
    assert texts_inside(fig) == []


def test_herd_plots_context_switches_per_connection_per_worker_count(tmp_path):
    plan = Plan("herd", "Thundering herd: short connections against prefork workers", [], [],
                plot=("accept_eagain_per_conn", "wasted wake-ups per accepted connection"))
    # The figures docs/benchmarks.md quotes: shared's switches grow with the workers, the cures stay ~2.
    switches = {"shared": {2: 1.8, 4: 2.9, 8: 4.0}, "mutex": {2: 2.0, 4: 2.0, 8: 2.1},
                "exclusive": {2: 1.9, 4: 2.0, 8: 2.0}, "reuseport": {2: 2.0, 4: 1.9, 8: 2.0}}
    rows = [row(f"prefork x{n} {acc}", {"context_switches_per_conn": by_n[n], "accept_eagain_per_conn": 0.0005,
                                        "accept_wakeups_per_conn": by_n[n] / 2},
                dispatch="prefork", acceptor=acc, workers=n, protocol="echo")
            for n in (2, 4, 8) for acc, by_n in switches.items()]
    fig = render(tmp_path, plan, rows)
    axis = fig.axes[0]
    assert "context switches" in axis.get_ylabel() and "per accepted connection" in axis.get_ylabel()
    assert "workers" in axis.get_xlabel()
    assert [int(t) for t in axis.get_xticks()] == [2, 4, 8]
    lines = {bars.get_label(): bars.lines[0] for bars in axis.containers}  # errorbar: (data line, caps, bars)
    assert set(lines) == set(switches)
    assert list(lines["shared"].get_ydata()) == [1.8, 2.9, 4.0]
    assert list(lines["shared"].get_xdata()) == [2, 4, 8]
    assert set(legend_texts(fig)) >= set(switches)
    assert texts_inside(fig) == []


def test_without_context_switches_the_herd_falls_back_to_bars(tmp_path):
    plan = Plan("herd", "Thundering herd", [], [], plot=("accept_eagain_per_conn", "wasted wake-ups per accepted connection"))
    rows = [row("prefork x2 shared", {"accept_eagain_per_conn": 0.01}, acceptor="shared", workers=2)]
    fig = render(tmp_path, plan, rows)
    assert "wasted wake-ups" in fig.axes[0].get_ylabel()
