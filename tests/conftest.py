"""Shared fixtures of the integration suites: real ``netcore serve`` processes on loopback."""

from __future__ import annotations

import pytest

from netcore.testing.server_process import ServerProcess

@pytest.fixture
def start_server():
    """``start_server(*args, **kw)`` starts a server; every one started is killed at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.__exit__(None, None, None)
