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

import signal
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


# -- the exit after a stop -----------------------------------------------------------------------

EXIT_PROBE = textwrap.dedent('''
    """Test plugin: what an application leaves for the process's exit to do."""
    import atexit
    import os
    import threading
    import time

    from netcore import hookimpl

    MARKS = os.environ["EXIT_PROBE_DIR"]


    def mark(name):
        with open(os.path.join(MARKS, name), "w") as fh:
            fh.write("done")


    atexit.register(mark, "atexit")
    if os.environ.get("EXIT_PROBE_THREAD"):
        def late():
            # Work that outlives the server's stop: it ends when the test says so (bounded).
            deadline = time.monotonic() + 20
            while not os.path.exists(os.path.join(MARKS, "release")) and time.monotonic() < deadline:
                time.sleep(0.01)
            mark("thread")
        threading.Thread(target=late, daemon=False).start()


    @hookimpl
    def netcore_register_protocols(registry):
        pass
''')


def test_a_stopped_server_still_runs_the_applications_atexit_handlers(tmp_path):
    """The process leaves without the interpreter's teardown (netcore.cli._leave), but an
    application's atexit handlers still run, as at a normal Python exit."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**module_env(tmp_path, "exit_probe", EXIT_PROBE), "EXIT_PROBE_DIR": str(marks)}
    with ServerProcess("-p", "exit_probe", env=env) as server:
        assert not (marks / "atexit").exists()
        assert server.stop() == 0, server.describe()
    assert (marks / "atexit").read_text() == "done"


def test_a_stopped_server_waits_for_the_applications_own_thread(tmp_path):
    """A non-daemon thread the application started is waited for after the stop, as a
    normal Python exit waits for it; then the atexit handlers run and the status is 0."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**module_env(tmp_path, "exit_probe", EXIT_PROBE), "EXIT_PROBE_DIR": str(marks), "EXIT_PROBE_THREAD": "1"}
    with ServerProcess("-p", "exit_probe", env=env) as server:
        server.proc.send_signal(signal.SIGTERM)
        server.wait_event("server.stopped", 10)
        with pytest.raises(subprocess.TimeoutExpired):
            server.proc.wait(0.3)  # held by the thread, which has not finished
        assert not (marks / "thread").exists()
        (marks / "release").write_text("")
        assert _wait_exit(server, 20) == 0
    assert (marks / "thread").read_text() == "done"
    assert (marks / "atexit").read_text() == "done"
