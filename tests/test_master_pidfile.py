"""``--pid FILE`` under a master: a running master's file is never taken, nor deleted.

A second master started with the same ``--pid`` used to overwrite the file and delete
it at its exit, leaving the first one running without a pid file (``kill -HUP $(cat
FILE)`` then reached nobody). Now it refuses to start, as gunicorn does ("Already
running on PID ..."): exit status 2 and one line naming ``pid`` and the running pid. A
stale file is replaced; a USR2 successor still takes over (the old master's file is
``FILE.oldbin`` by then: tests/test_restarts.py and tests/test_upgrade_bind.py). A file
the master cannot write (a directory that is missing, or that ``--user`` cannot write)
is one line and exit status 2 too, at ``serve`` and at ``--check-config``.

Real ``netcore serve`` processes on 127.0.0.1, port 0.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from netcore.testing.server_process import ServerFailed, ServerProcess, run_netcore

MASTER_SCHEMES = ("prefork", "prefork-blocking")


def _master(dispatch: str, pidfile) -> ServerProcess:
    return ServerProcess("--dispatch", dispatch, "--workers", "1", "--pid", str(pidfile))


def _refused(server: ServerProcess) -> tuple[int, list[str]]:
    """Start ``server``, which must refuse: its exit status and its lines on stderr."""
    try:
        with pytest.raises(ServerFailed):
            server.start()  # no server.started: it refuses before binding
        status = server.stop()  # it has exited: this only waits for it and its output
    finally:
        server.__exit__(None, None, None)
    return status, server.other_lines


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_a_second_master_refuses_the_pid_file_of_a_running_one(dispatch, tmp_path):
    pidfile = tmp_path / "netcore.pid"
    with _master(dispatch, pidfile) as first:
        first.wait_events("worker.started", 1)
        assert pidfile.read_text().strip() == str(first.pid)
        status, lines = _refused(_master(dispatch, pidfile))
        assert status == 2, lines
        assert len(lines) == 1, lines
        assert "setting 'pid'" in lines[0] and f"PID {first.pid}" in lines[0], lines
        assert "Traceback" not in lines[0]
        assert pidfile.read_text().strip() == str(first.pid)  # neither overwritten nor deleted
        assert first.proc.poll() is None
        assert first.stop() == 0
    assert not pidfile.exists()


@pytest.mark.parametrize("stale", ["dead", "reused"])
def test_a_stale_pid_file_is_replaced(stale, tmp_path):
    pidfile = tmp_path / "netcore.pid"
    if stale == "dead":
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, timeout=60)
        pidfile.write_text(gone.stdout)
        other = None
    else:  # the pid now belongs to a program that is not netcore
        other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        pidfile.write_text(f"{other.pid}\n")
    try:
        with _master("prefork", pidfile) as server:
            server.wait_events("worker.started", 1)  # the master writes its file before forking
            assert pidfile.read_text().strip() == str(server.pid)
            assert server.stop() == 0
    finally:
        if other is not None:
            other.stdin.close()
            other.wait(20)
    assert not pidfile.exists()


def test_a_master_leaves_a_pid_file_that_no_longer_holds_its_pid(tmp_path):
    pidfile = tmp_path / "netcore.pid"
    with _master("prefork", pidfile) as server:
        server.wait_events("worker.started", 1)
        pidfile.write_text("1\n")  # someone else's now
        assert server.stop() == 0
    assert pidfile.read_text() == "1\n"


@pytest.mark.parametrize("check_only", [False, True], ids=["serve", "check-config"])
def test_a_pid_file_in_a_missing_directory_is_one_line(check_only, tmp_path):
    missing = tmp_path / "no-such-dir" / "netcore.pid"
    result = run_netcore("serve", *(["--check-config"] if check_only else []), "--dispatch", "prefork",
                         "--workers", "1", "--pid", str(missing), "--bind", "127.0.0.1:0", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "setting 'pid'" in lines[0], result.stderr
    assert not missing.parent.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.parametrize("check_only", [False, True], ids=["serve", "check-config"])
def test_a_pid_directory_the_user_cannot_write_is_one_line(check_only, tmp_path):
    directory = tmp_path / "run"
    directory.mkdir(mode=0o755)  # root's: writable by root, not by nobody
    result = run_netcore("serve", *(["--check-config"] if check_only else []), "--dispatch", "prefork",
                         "--workers", "1", "--user", "nobody", "--pid", str(directory / "netcore.pid"),
                         "--bind", "127.0.0.1:0", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "setting 'pid'" in lines[0], result.stderr
    assert list(directory.iterdir()) == []
