"""The combination under test: each behaviour test runs once per (poller, dispatch)."""

from __future__ import annotations

import pytest
from matrix import BOUNDED_DISPATCHES, args_for, combinations

COMBINATIONS = [
    pytest.param((poller, dispatch), id=f"{poller}-{dispatch}" if poller else dispatch)
    for poller, dispatch in combinations()
]


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
