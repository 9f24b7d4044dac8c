"""pytest fixtures for tests that run real servers; load with ``pytest_plugins``.

    # conftest.py at the root of your tests
    pytest_plugins = ["netcore.testing.fixtures"]
"""

from __future__ import annotations

from typing import Iterator

import pytest

from netcore.testing.server_process import ServerProcess


@pytest.fixture
def start_server() -> Iterator:
    """``start_server(*args, **kw)`` starts ``netcore serve`` and waits for ``server.started``;
    every server started is killed at teardown if the test did not stop it."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.__exit__(None, None, None)
