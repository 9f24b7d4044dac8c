"""The combination under test: each test runs once per (poller, dispatch) of the matrix."""

from __future__ import annotations

import itertools

import pytest

from matrix import DISPATCHES, POLLERS

COMBINATIONS = [
    pytest.param((poller, dispatch), id=f"{poller}-{dispatch}")
    for poller, dispatch in itertools.product(POLLERS, DISPATCHES)
]


@pytest.fixture(params=COMBINATIONS)
def combination(request):
    poller, dispatch = request.param
    return ["--poller", poller, "--dispatch", dispatch]


@pytest.fixture
def echo_server(start_server, combination):
    return start_server(*combination, "--protocol", "echo")
