"""An in-process server from start to exit: what ``server.started`` says serves, and what a
reactor loop that dies of an exception does to the process.

A loop that dies must not leave a process that holds the port and serves nobody (or,
under ``multi-reactor``, serves only the connections the surviving loops get): it logs
``server.loop_failed`` with the traceback and exits 1, so that a supervisor
(systemd's ``Restart=on-failure``) starts it again. The failure is made by a small plugin
written for the test: its protocol hands the loop an object whose flush raises, an
error on the loop's own path that no handler catches.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap

import pytest
from netcore.testing.clients import connect, recv_exactly
from netcore.testing.server_process import ServerProcess, module_env

DOOM_PLUGIN = textwrap.dedent('''
    """Test plugin: the ``doom`` protocol, whose first request breaks the loop it runs on."""
    from netcore import hookimpl
    from netcore.protocol import Protocol


    class Doomed:
        def flush_behind(self):
            raise RuntimeError("test: this loop cannot go on")


    class DoomProtocol(Protocol):
        def data_received(self, data):
            if data.startswith(b"doom"):
                self.connection.loop.write_behind(Doomed())
            self.connection.submit(bytes, data)


    @hookimpl
    def netcore_register_protocols(registry):
        registry.register("doom", "doom_plugin:DoomProtocol", "test: a request that kills its loop")
''')


@pytest.fixture
def doom_env(tmp_path):
    return module_env(tmp_path, "doom_plugin", DOOM_PLUGIN)


# -- server.started ------------------------------------------------------------------------------


@pytest.mark.parametrize(("dispatch", "expected"), [
    ("inline", 1), ("pool", 1), ("thread", 1), ("threading", 1), ("iterative", 1),
    ("multi-reactor", 2), ("prethread-blocking", 2),
])
def test_started_says_how_many_workers_serve_not_the_setting(dispatch, expected):
    """``--workers 2`` sizes multi-reactor's loops and prethread-blocking's threads; under
    the schemes it does not size, one loop or thread serves and the event says so."""
    with ServerProcess("--dispatch", dispatch, "--workers", "2") as server:
        assert server.started["workers"] == expected, server.started
        assert server.stop() == 0, server.describe()


# -- a loop that dies ----------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ("inline", "pool", "multi-reactor"))
def test_a_loop_that_dies_ends_the_process_with_status_1(dispatch, doom_env):
    args = ["-p", "doom_plugin", "--protocol", "doom", "--dispatch", dispatch]
    if dispatch == "multi-reactor":
        args += ["--workers", "2"]  # the other loop must not keep the process alive
    with ServerProcess(*args, env=doom_env) as server:
        server.wait_events("worker.started", 2 if dispatch == "multi-reactor" else 1)
        with connect(server.address, timeout=10) as sock:
            sock.sendall(b"fine")
            assert recv_exactly(sock, 4) == b"fine"
            sock.sendall(b"doom")
            failed = server.wait_event("server.loop_failed", 10)
            try:
                sock.recv(16)  # the connection goes with the loop (closed or reset)
            except OSError:
                pass
        # No signal: the process ends by itself, with the status of a failure.
        code = _wait_exit(server, 20)
        stopped = server.wait_event("server.stopped", 1.0)
    assert code == 1, server.describe()
    assert failed["level"] == "error", failed
    assert "this loop cannot go on" in str(failed.get("exception")), failed
    assert "RuntimeError" in stopped["reason"], stopped
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=5).close()


def _wait_exit(server: ServerProcess, timeout: float) -> int:
    """The exit status of a server expected to exit on its own (killed if it does not)."""
    assert server.proc is not None
    try:
        code = server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)
        pytest.fail(f"still running {timeout} s after its loop died; {server.describe()}")
    server._reader.join(10)
    return code
