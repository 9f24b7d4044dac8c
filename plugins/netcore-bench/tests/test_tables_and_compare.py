"""How results are read: the live table's pending rows, each column's direction, ``compare``.

No server runs here: rows come from :func:`netcore_bench.results.summarize` over run
records written out by hand, in the shape the runner produces, so each test pins one
reading rule (what "pending" looks like, which way is better, what counts as noise).
"""

from __future__ import annotations

import json

import pytest
from netcore import cli
from netcore_bench import compare, display, presets, results
from netcore_bench.cases import Case
from netcore_bench.generators import Load
from netcore_bench.registry import Installed

#: Figures that describe the load a row ran under rather than a result: no direction.
NEUTRAL = {"server_cpu_percent", "gen_cpu_percent", "connects"}


def case(key: str, baseline: str | None = None) -> Case:
    return Case(key=key, server="netcore", args=[], protocol="echo", load=Load(), baseline=baseline)


def run(key: str, rnd: int, **metrics: float) -> dict:
    return {"case": key, "round": rnd, "ok": True, "error": None, "flags": [], "metrics": metrics}


def test_rows_not_run_yet_are_pending_not_failed_in_the_live_table():
    cases = [case("a"), case("b", baseline="a")]
    runs = [run("a", 1, messages_per_s=1000.0, server_cpu_us_per_msg=3.0, gen_cpu_percent=20.0)]
    live = results.summarize(cases, runs, pending=True)
    assert [r["status"] for r in live] == ["ok", "pending"]
    plan = presets.Plan("t", "test", cases, [results.Column("case", "label"),
                                             results.Column("msgs/s", "v:messages_per_s", ",.0f")])
    _, body = results.table(live, plan.columns, 3)
    assert body[1] == ["b", "pending"] and "FAILED" not in str(body)
    styles = [row.style for row in display.RichDisplay(plan, 3)._table(live).rows]
    assert styles[1] != "red" and "red" not in str(styles[1])
    # Once the bench has ended, a case that never ran is a failure with its reason.
    final = results.summarize(cases, runs)
    assert final[1]["status"] == "failed" and "not run" in final[1]["reason"]


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_figure_column_says_which_way_is_better(name):
    opts = {"serve_args": [], "peers": None} if name not in ("default",) else {"serve_args": []}
    plan = presets.PRESETS[name](opts, Installed())
    for col in plan.columns:
        kind, _, metric = col.source.partition(":")
        if kind not in ("m", "v", "r", "d") or metric in NEUTRAL:
            continue
        assert col.better in ("lower", "higher"), f"{name}: {col.header!r} has no direction"
        assert col.title.endswith(f"({col.better} is better)")
        if kind == "r":  # a ratio says what it is a ratio of: CPU per unit, or throughput
            cpu, throughput = metric.startswith("server_cpu"), metric.endswith("_per_s")
            assert (cpu and "CPU/" in col.header) or (throughput and "/s vs" in col.header), col.header


def doc(rows: list[dict], cpu: str = "Test CPU", preset: str = "default") -> dict:
    return {"schema_version": 1, "preset": preset, "machine": {"cpu_model": cpu, "nproc": 2, "loadavg_at_start": [0.5]},
            "config": {"rounds": 3}, "rows": rows}


def three_rounds(key: str, msgs: tuple[float, float, float], cpu: tuple[float, float, float]) -> list[dict]:
    return [run(key, i + 1, messages_per_s=m, server_cpu_us_per_msg=c) for i, (m, c) in enumerate(zip(msgs, cpu))]


def test_compare_marks_only_differences_larger_than_the_rounds_spread(tmp_path, capsys):
    cases = [case("faster"), case("noisy"), case("gone")]
    a = results.summarize(cases, three_rounds("faster", (1000, 1010, 990), (3.0, 3.1, 2.9))
                          + three_rounds("noisy", (1000, 1300, 800), (3.0, 3.5, 2.5))
                          + three_rounds("gone", (1, 1, 1), (1, 1, 1)))
    b = results.summarize(cases[:2], three_rounds("faster", (1500, 1510, 1490), (2.0, 2.1, 1.9))
                          + three_rounds("noisy", (1100, 1350, 900), (2.8, 3.4, 2.6)))
    (tmp_path / "a.json").write_text(json.dumps(doc(a)))
    (tmp_path / "b.json").write_text(json.dumps(doc(b)))
    assert cli.main(["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    lines = {(ln.split()[0], ln.split()[1]): ln for ln in out.splitlines() if ln.startswith(("faster ", "noisy "))}
    assert "* B better" in lines["faster", "msgs/s"] and "1.500x" in lines["faster", "msgs/s"]
    assert "* B better" in lines["faster", "srv"]  # CPU per message fell: lower is better
    assert "within noise" in lines["noisy", "msgs/s"] and "*" not in lines["noisy", "msgs/s"]
    assert "gone: only in A" in out and "2 of 4 comparisons differ by more than the noise" in out
    assert "WARNING" not in out


def test_compare_judges_nothing_from_single_rounds_and_flags_other_machines():
    a = results.summarize([case("x")], [run("x", 1, messages_per_s=1000.0)])
    b = results.summarize([case("x")], [run("x", 1, messages_per_s=2000.0)])
    result = compare.compare(doc(a), doc(b, cpu="Another CPU"))
    [row] = result["rows"]
    assert row["ratio"] == 2.0 and not row["beyond_noise"] and "noise unknown" in row["verdict"]
    assert any("different machines" in w for w in result["warnings"])


def test_compare_refuses_a_file_that_is_not_a_result_in_one_line(tmp_path, capsys):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text(json.dumps(doc([])))
    assert cli.main(["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.json" in err and "not a 'netcore bench --json' result" in err
