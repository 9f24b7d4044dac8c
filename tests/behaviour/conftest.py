"""The combination under test: each behaviour test runs once per (poller, dispatch)."""

from __future__ import annotations

import pytest
from matrix import BOUNDED_DISPATCHES, args_for, combinations

COMBINATIONS = [
    pytest.param((poller, dispatch), id=f"{poller}-{dispatch}" if poller else dispatch)
    for poller, dispatch in combinations()
]


#: nodeid -> combination id; per combination, each test's outcome (for the summary below).
_COMBINATION_OF: dict[str, str] = {}
_OUTCOMES: dict[str, dict[str, str]] = {}


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "combination" in callspec.params:
            poller, dispatch = callspec.params["combination"]
            _COMBINATION_OF[item.nodeid] = f"{poller}-{dispatch}" if poller else dispatch


def pytest_runtest_logreport(report):
    combination = _COMBINATION_OF.get(report.nodeid)
    if combination is None:
        return
    tests = _OUTCOMES.setdefault(combination, {})
    if report.failed:
        tests[report.nodeid] = "failed"  # in setup, call or teardown: the test failed
    elif tests.get(report.nodeid) != "failed" and (report.when == "call" or report.skipped):
        tests[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter):
    """Name every combination that failed: the whole matrix runs in one tox env."""
    if not _OUTCOMES:
        return
    failed = []
    terminalreporter.section("combinations")
    for name, tests in _OUTCOMES.items():
        outcomes = list(tests.values())
        if "failed" in outcomes:
            failed.append(name)
            terminalreporter.write_line(f"FAILED {name}: {outcomes.count('failed')} of {len(outcomes)} tests failed")
    summary = f"{len(_OUTCOMES) - len(failed)} of {len(_OUTCOMES)} combinations passed"
    terminalreporter.write_line(summary + (f"; failed: {', '.join(failed)}" if failed else ""))


@pytest.fixture(params=COMBINATIONS)
def combination(request):
    poller, dispatch = request.param
    return args_for(poller, dispatch)


@pytest.fixture
def dispatch(combination):
    return combination[combination.index("--dispatch") + 1]


@pytest.fixture
def concurrent(dispatch):
    """Skip tests that hold many connections open at once under a scheme that serves only
    one (iterative) or --workers (prethread-blocking) at a time: the others would wait in
    the backlog, which is the scheme's nature (tested in test_dispatch.py), not a fault."""
    if dispatch in BOUNDED_DISPATCHES:
        pytest.skip(f"{dispatch} serves a bounded number of clients at a time")


@pytest.fixture
def echo_server(start_server, combination):
    return start_server(*combination, "--protocol", "echo")
