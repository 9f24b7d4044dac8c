"""Restarts an operator does: HUP deploys, USR2 upgrades, systemd's notify protocol,
``--check-config``, and HUP under the in-process schemes.

Real ``netcore serve`` processes, real signals, real sockets; the HTTP load is the
counting client of ``test_zero_loss`` (every request sent must be answered).
"""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from http_load import HttpLoad, assert_no_loss
from netcore.testing.server_process import ServerProcess, wait_gone

APP = textwrap.dedent('''
    import helper

    def app(environ, start_response):
        body = helper.VERSION.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
''')


def get(address, path="/") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def write_version(directory, version: str) -> None:
    # A different length each time: Python's cached bytecode is keyed on mtime and size.
    (directory / "helper.py").write_text(f"VERSION = {version!r}\n" + "#" * len(version) * 3)


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "myapp.py").write_text(APP)
    write_version(tmp_path, "v1")
    return tmp_path


# -- HUP deploys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ["prefork", "prefork-blocking"])
def test_hup_after_editing_the_source_serves_the_new_code(dispatch, app_dir):
    with ServerProcess("--dispatch", dispatch, "--workers", "2", "--chdir", str(app_dir), "myapp:app") as server:
        server.wait_events("worker.started", 2)
        assert get(server.address) == (200, b"v1")
        write_version(app_dir, "version two")
        os.kill(server.pid, signal.SIGHUP)
        server.wait_event("master.reloaded", 30)
        server.wait_events("worker.exited", 2, timeout=30, reason="reload (HUP)")  # the old ones are gone
        assert get(server.address) == (200, b"version two")
        assert server.stop() == 0


def test_preload_imports_in_the_master_and_hup_keeps_the_code(app_dir):
    with ServerProcess("--dispatch", "prefork", "--workers", "1", "--preload", "--chdir", str(app_dir),
                       "myapp:app") as server:
        server.wait_events("worker.started", 1)
        write_version(app_dir, "version two")
        os.kill(server.pid, signal.SIGHUP)
        server.wait_event("master.reloaded", 30)
        assert get(server.address) == (200, b"v1")  # gunicorn's --preload: restart to deploy
        assert server.stop() == 0


@pytest.mark.parametrize("dispatch", ["prefork", "prefork-blocking"])
def test_hup_with_a_broken_app_keeps_serving_the_old_one(dispatch, app_dir):
    with ServerProcess("--dispatch", dispatch, "--workers", "2", "--chdir", str(app_dir), "myapp:app") as server:
        old = {e["pid"] for e in server.wait_events("worker.started", 2)}
        (app_dir / "helper.py").write_text("VERSION = (\n")  # a syntax error
        with HttpLoad(server.address, 2) as load:
            load.wait_for(20)
            os.kill(server.pid, signal.SIGHUP)
            failed = server.wait_event("master.reload_failed", 30)
            load.wait_for(20)
        assert_no_loss(load)
        assert load.bodies == {b"v1"}
        assert "failed to start" in failed["reason"]
        assert len(server.events_named("master.reload_failed")) == 1  # one line, no retry loop
        assert old <= {e["pid"] for e in server.events_named("worker.started")}
        assert get(server.address) == (200, b"v1")
        write_version(app_dir, "fixed")
        os.kill(server.pid, signal.SIGHUP)  # the next HUP deploys
        server.wait_event("master.reloaded", 30)
        server.wait_events("worker.exited", 2, timeout=30, reason="reload (HUP)")
        assert get(server.address) == (200, b"fixed")
        assert server.stop() == 0


def test_hup_rereads_the_config_file_and_refuses_an_invalid_one(app_dir):
    config = app_dir / "netcore.toml"
    config.write_text("workers = 2\n")
    with ServerProcess("--dispatch", "prefork", "--config", str(config), "--chdir", str(app_dir),
                       "myapp:app") as server:
        server.wait_events("worker.started", 2)
        config.write_text("workers = 3\n")
        os.kill(server.pid, signal.SIGHUP)
        done = server.wait_event("master.reloaded", 30)
        assert done["workers"] == 3
        config.write_text("workers = 'many'\n")
        os.kill(server.pid, signal.SIGHUP)
        failed = server.wait_event("master.reload_failed", 30)
        assert "workers" in failed["reason"]
        assert len(server.events_named("master.reload")) == 1  # nothing was replaced
        assert get(server.address) == (200, b"v1")
        config.write_text("workers = 3\nbacklog = 16\n")
        os.kill(server.pid, signal.SIGHUP)
        server.wait_event("master.reload_needs_restart", 30, setting="backlog")  # the listeners are bound
        server.wait_events("master.reloaded", 2, timeout=30)
        assert get(server.address) == (200, b"v1")
        assert server.stop() == 0


# -- HUP under the in-process schemes ------------------------------------------------------------


IN_PROCESS = ("iterative", "threading", "prethread-blocking", "inline", "thread", "thread-per-connection",
              "pool", "multi-reactor", "multi-reactor-pool")


@pytest.mark.parametrize("dispatch", IN_PROCESS)
def test_hup_under_an_in_process_scheme_leaves_the_server_running(dispatch):
    with ServerProcess("--dispatch", dispatch, "--protocol", "http") as server:
        assert get(server.address)[0] == 200
        for sig in (signal.SIGHUP, signal.SIGUSR2):
            os.kill(server.pid, sig)
            ignored = server.wait_event("server.signal_ignored", 10, signal=signal.Signals(sig).name)
            assert "restart to reload" in ignored["reason"]
        assert get(server.address)[0] == 200
        assert server.stop() == 0
        assert server.stopped_event()


# -- USR2: the master upgrades itself ------------------------------------------------------------


@pytest.mark.parametrize(("dispatch", "acceptor"), [("prefork", "shared"), ("prefork", "mutex"),
                                                    ("prefork", "exclusive"), ("prefork-blocking", "shared")])
def test_usr2_then_term_of_the_old_master_loses_no_request(dispatch, acceptor, tmp_path):
    pidfile = tmp_path / "netcore.pid"
    workers = "6" if dispatch == "prefork-blocking" else "2"
    with ServerProcess("--protocol", "http", "--dispatch", dispatch, "--acceptor", acceptor, "--workers", workers,
                       "--pid", str(pidfile)) as server:
        server.wait_events("worker.started", int(workers))
        assert pidfile.read_text().strip() == str(server.pid)
        with HttpLoad(server.address, 4) as load:
            load.wait_for(100)
            os.kill(server.pid, signal.SIGUSR2)
            upgrade = server.wait_event("master.upgrade", 10)
            new = upgrade["new_master"]
            server.wait_event("server.started", 30, pid=new)
            server.wait_events("worker.started", 2 * int(workers), timeout=30)
            assert (tmp_path / "netcore.pid.oldbin").read_text().strip() == str(server.pid)
            deadline = time.monotonic() + 10
            while not (pidfile.exists() and pidfile.read_text().strip() == str(new)):
                assert time.monotonic() < deadline, "the new master wrote no pid file"
                time.sleep(0.02)
            load.wait_for(100)
            os.kill(server.pid, signal.SIGTERM)
            assert server.proc.wait(30) == 0
            load.wait_for(200)  # the new master alone serves
            load.stop()
        assert_no_loss(load)
        assert not (tmp_path / "netcore.pid.oldbin").exists()
        os.kill(new, signal.SIGTERM)
        assert wait_gone([new], 30) == []
        assert not pidfile.exists()


def test_a_successor_that_fails_leaves_the_old_master_serving(tmp_path):
    pidfile = tmp_path / "netcore.pid"
    with ServerProcess("--protocol", "http", "--dispatch", "prefork", "--workers", "1",
                       "--pid", str(pidfile)) as server:
        server.wait_events("worker.started", 1)
        os.kill(server.pid, signal.SIGUSR2)
        upgrade = server.wait_event("master.upgrade", 10)
        server.wait_event("server.started", 30, pid=upgrade["new_master"])
        os.kill(upgrade["new_master"], signal.SIGTERM)
        server.wait_event("master.successor_exited", 30)
        assert pidfile.read_text().strip() == str(server.pid)
        assert get(server.address)[0] == 200
        assert server.stop() == 0


# -- systemd Type=notify -------------------------------------------------------------------------


def test_systemd_notify_ready_reloading_stopping(tmp_path):
    path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(30)
    try:
        with ServerProcess("--dispatch", "prefork", "--workers", "2", env={"NOTIFY_SOCKET": path}) as server:
            def expect(state: str) -> None:
                message = receiver.recv(4096).decode()
                assert state in message.split("\n"), message
                assert f"MAINPID={server.pid}" in message

            expect("READY=1")
            os.kill(server.pid, signal.SIGHUP)
            expect("RELOADING=1")
            expect("READY=1")
            os.kill(server.pid, signal.SIGTERM)
            expect("STOPPING=1")
            assert server.proc.wait(30) == 0
    finally:
        receiver.close()


def test_systemd_notify_under_an_in_process_scheme(tmp_path):
    path = "@netcore-test-%d" % os.getpid()  # the abstract namespace, as systemd may use
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + path[1:])
    receiver.settimeout(30)
    try:
        with ServerProcess("--dispatch", "inline", env={"NOTIFY_SOCKET": path}) as server:
            assert "READY=1" in receiver.recv(4096).decode()
            server.stop()
            assert "STOPPING=1" in receiver.recv(4096).decode()
    finally:
        receiver.close()


# -- --check-config ------------------------------------------------------------------------------


def check(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netcore", "serve", "--check-config", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_check_config_accepts_what_serve_would_start(app_dir):
    result = check("--dispatch", "prefork", "--chdir", str(app_dir), "-b", "127.0.0.1:0", "myapp:app")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


@pytest.mark.parametrize(("args", "names"), [
    (("-b", "192.0.2.1:80"), "192.0.2.1"),  # TEST-NET-1: not an address of this machine
    (("--dispatch", "prefork", "--acceptor", "reuseport", "-b", "unix:x.sock"), "reuseport"),
    (("--workers", "0"), "workers"),
    (("--protocol", "http", "--app", "no_such_module_here:app"), "app"),
    (("--chdir", "/nonexistent/dir"), "chdir"),
    (("--user", "no-such-user-here"), "user"),
])
def test_check_config_refuses_what_serve_would_refuse(args, names, tmp_path):
    result = check(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert names in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "x.sock").exists()


def test_check_config_while_the_server_runs_on_the_port():
    with ServerProcess("--dispatch", "inline") as server:
        host, port = server.address
        result = check("-b", f"{host}:{port}")
        assert result.returncode == 0, result.stderr
        assert "in use" in result.stderr


# -- max_connections across the loops of multi-reactor ---------------------------------------------


@pytest.mark.parametrize("dispatch", ["multi-reactor", "multi-reactor-pool"])
def test_max_connections_caps_all_io_loops_together(dispatch):
    from netcore.testing.clients import connect, recv_exactly

    with ServerProcess("--dispatch", dispatch, "--workers", "3", "--max-connections", "2") as server:
        first = [connect(server.address) for _ in range(2)]
        for i, sock in enumerate(first):
            sock.sendall(b"x%d" % i)
            assert recv_exactly(sock, 2) == b"x%d" % i
        waiting = connect(server.address)  # completes in the backlog: nobody accepts it
        waiting.sendall(b"w!")
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(2)  # three loops, but two connections in all
        first[0].close()
        waiting.settimeout(10)
        assert recv_exactly(waiting, 2) == b"w!"  # a slot freed: accepted and served
        for sock in (*first[1:], waiting):
            sock.close()
        assert server.stop() == 0


# -- what operators of gunicorn expect around it -------------------------------------------------


def test_reload_restarts_workers_when_the_source_changes(app_dir):
    with ServerProcess("--dispatch", "prefork", "--workers", "1", "--reload", "--chdir", str(app_dir),
                       "myapp:app") as server:
        server.wait_events("worker.started", 1)
        server.wait_event("master.reload_watching", 10)
        assert get(server.address) == (200, b"v1")
        write_version(app_dir, "edited")
        server.wait_event("master.source_changed", 15)
        server.wait_event("master.reloaded", 30)
        server.wait_events("worker.exited", 1, timeout=30, reason="reload (HUP)")
        assert get(server.address) == (200, b"edited")
        assert server.stop() == 0


def test_reload_is_refused_where_there_is_no_master():
    result = check("--reload", "--dispatch", "inline")
    assert result.returncode == 2 and "reload" in result.stderr


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\0", b" ").decode()


def test_process_titles_tell_the_master_from_its_workers():
    pytest.importorskip("setproctitle")
    with ServerProcess("--dispatch", "prefork", "--workers", "2") as server:
        workers = [e["pid"] for e in server.wait_events("worker.started", 2)]
        assert _cmdline(server.pid).startswith("netcore: master [prefork]")
        assert {_cmdline(pid).split(" [")[0] for pid in workers} == {"netcore: worker 0", "netcore: worker 1"}
        assert server.stop() == 0


def _uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("Uid:")).split()[1])


def _python_runs_as(uid: int) -> bool:
    try:
        result = subprocess.run([sys.executable, "-c", "import netcore, json, sysconfig; sysconfig.get_paths()"],
                                preexec_fn=lambda: os.setuid(uid), capture_output=True, timeout=60)
    except PermissionError:  # the interpreter itself cannot be executed by that user
        return False
    return result.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_group_are_switched_after_binding(tmp_path):
    import pwd

    nobody = pwd.getpwnam("nobody")
    if not _python_runs_as(nobody.pw_uid):
        pytest.skip("this interpreter's files cannot be read by nobody")
    with ServerProcess("--dispatch", "prefork", "--workers", "1", "--user", "nobody", "--protocol", "http",
                       cwd=str(tmp_path)) as server:
        worker = server.wait_events("worker.started", 1)[0]["pid"]
        assert _uid(server.pid) == nobody.pw_uid and _uid(worker) == nobody.pw_uid
        assert get(server.address)[0] == 200
        assert server.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="switching groups needs root")
def test_a_unix_socket_is_given_to_the_group_switched_to(tmp_path):
    """Created by root before the switch; its group is the server's own afterwards, so
    that clients in that group (with a umask that lets groups write) can connect. It was
    left root's."""
    import grp

    group = grp.getgrnam("nogroup" if _has_group("nogroup") else "nobody")
    path = tmp_path / "s.sock"
    with ServerProcess("--group", group.gr_name, "--bind", f"unix:{path}", cwd=str(tmp_path)) as server:
        assert os.stat(path).st_gid == group.gr_gid
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(20)
            client.connect(str(path))
            client.sendall(b"ping\n")
            assert client.recv(10) == b"ping\n"
        assert server.stop() == 0
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_unix_socket_belongs_to_the_user_switched_to(tmp_path):
    """The user the server runs as can connect to its own socket (it was root's, mode
    0755: permission denied), and removes it at the stop; where it cannot (a directory
    only root may write), the stop says so."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    if not _python_runs_as(nobody.pw_uid):
        pytest.skip("this interpreter's files cannot be read by nobody")
    os.chmod(tmp_path, 0o755)  # nobody may not write here: the socket is left, and logged
    path = tmp_path / "s.sock"
    with ServerProcess("--user", "nobody", "--bind", f"unix:{path}", cwd=str(tmp_path)) as server:
        assert os.stat(path).st_uid == nobody.pw_uid
        probe = subprocess.run([sys.executable, "-c", _CONNECT_AND_ECHO, str(path)], capture_output=True,
                               text=True, timeout=60, preexec_fn=lambda: os.setuid(nobody.pw_uid))
        assert probe.returncode == 0 and probe.stdout == "ping\n", probe.stderr
        assert server.stop() == 0
        assert server.events_named("listener.socket_left")[0]["path"] == str(path)


_CONNECT_AND_ECHO = """
import socket, sys
with socket.socket(socket.AF_UNIX) as s:
    s.settimeout(20)
    s.connect(sys.argv[1])
    s.sendall(b"ping\\n")
    sys.stdout.write(s.recv(10).decode())
"""


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# -- RESP through restarts ------------------------------------------------------------------------


class RespLoad:
    """PING/SET clients with a little think time, counting every command and reply.

    RESP has no reply that says "this connection ends" (HTTP's ``Connection: close``),
    so a draining server can only close a connection between commands. A careful
    client looks for the server's FIN before it sends (as HTTP clients check a pooled
    connection): such a close costs it a reconnect, never a command. A command sent and
    then met by EOF or a reset is a loss.
    """

    def __init__(self, address, clients: int = 4) -> None:
        self.address = address
        self.done = False
        self.sent = self.received = self.reconnects = 0
        self.lost: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.done = True
        for t in self.threads:
            t.join(30)

    def wait_for(self, replies: int, timeout: float = 30.0) -> None:
        goal = self.received + replies
        deadline = time.monotonic() + timeout
        while self.received < goal:
            assert time.monotonic() < deadline and not self.lost, (self.received, self.lost[:3])
            time.sleep(0.02)

    def _run(self, index: int) -> None:
        sock = None
        n = 0
        while not self.done:
            if sock is not None:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    sock.close()  # closed while idle: nothing was sent on it
                    sock = None
                    self.reconnects += 1
            if sock is None:
                try:
                    sock = socket.create_connection(self.address, timeout=30)
                except ConnectionRefusedError:
                    time.sleep(0.01)
                    continue
            n += 1
            try:
                sock.sendall(b"*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$%d\r\n%d\r\n" % (index, len(str(n)), n))
                self.sent += 1
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = sock.recv(64)
                    if not chunk:
                        raise EOFError("EOF before the reply")
                    reply += chunk
                assert reply == b"+OK\r\n", reply
                self.received += 1
            except (OSError, EOFError) as exc:
                self.lost.append(f"client {index} command {n}: {exc!r}")
                sock.close()
                sock = None
            time.sleep(0.02)  # think time
        if sock is not None:
            sock.close()


@pytest.mark.parametrize("dispatch", ["inline", "pool", "multi-reactor", "threading"])
def test_resp_clients_lose_no_command_through_term(dispatch):
    # RESP keeps its keyspace in one process: only the in-process schemes serve it, and
    # their restart is TERM (a HUP is logged and ignored, which must not disturb it).
    workers = "2" if dispatch == "multi-reactor" else "1"
    with ServerProcess("--protocol", "resp", "--dispatch", dispatch, "--workers", workers) as server:
        with RespLoad(server.address) as load:
            load.wait_for(40)
            os.kill(server.pid, signal.SIGHUP)
            server.wait_event("server.signal_ignored", 10)
            load.wait_for(40)
            assert server.stop() == 0
        assert not load.lost, load.lost[:5]
        assert load.sent == load.received


def test_usr2_successor_applies_a_relative_chdir_from_where_the_command_was_given(tmp_path):
    """``--chdir sub`` moves the master into ``sub``; its USR2 successor is executed with
    the same command line and must start from the original directory, or it would look
    for ``sub/sub`` and fail."""
    (tmp_path / "sub").mkdir()
    with ServerProcess("--protocol", "echo", "--dispatch", "prefork", "--workers", "1", "--chdir", "sub",
                       cwd=str(tmp_path)) as server:
        server.wait_events("worker.started", 1)
        os.kill(server.pid, signal.SIGUSR2)
        new = server.wait_event("master.upgrade", 10)["new_master"]
        server.wait_event("server.started", 30, pid=new)
        os.kill(server.pid, signal.SIGTERM)
        assert server.proc.wait(30) == 0
        os.kill(new, signal.SIGTERM)
        assert wait_gone([new], 30) == []
