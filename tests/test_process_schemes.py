"""The process schemes (1 ``forking``, 3 ``prefork-blocking``, 10 ``prefork``) as real processes.

Every test runs ``netcore serve`` and looks at it from outside: sockets on loopback, the
JSON events on stderr, signals, and /proc for the process tree (children, zombies, open
descriptors). Waits are for events, bytes or process states, each bounded; nothing
asserts on timing. Signal handling of the master (HUP, TTIN/TTOU, TERM under load, crash
loops) is in ``test_master_signals.py``.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from netcore.testing.clients import TIMEOUT, connect, recv_exactly
from netcore.testing.server_process import (
    ServerProcess,
    child_pids,
    open_fds,
    process_state,
    run_netcore,
    wait_gone,
)

PROCESS_SCHEMES = ("prefork", "prefork-blocking", "forking")
#: Schemes with a master and a fixed set of worker processes.
MASTER_SCHEMES = ("prefork", "prefork-blocking")


def _plugins() -> dict:
    result = run_netcore("plugins", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["families"]


PLUGINS = _plugins()
ACCEPTORS = sorted(row["name"] for row in PLUGINS["acceptor"] if row["available"])


def _valid(dispatch: str, acceptor: str) -> bool:
    """What the assembly checks: the acceptor's requirements met by the dispatcher or poller."""
    rows = {(family, row["name"]): row for family, items in PLUGINS.items() for row in items}
    needs = set(rows[("acceptor", acceptor)]["requires"])
    offered = set(rows[("dispatch", dispatch)]["provides"])
    if "blocking" not in offered:
        offered |= set(rows[("poller", "epoll-lt")]["provides"])
    return needs <= offered


def echo_once(address, payload: bytes) -> bytes:
    with connect(address) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def server_socket_owner(client: socket.socket, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of ``client``'s TCP connection (via /proc/net/tcp)."""
    local_port = client.getsockname()[1]
    server_port = client.getpeername()[1]
    inode = None
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == local_port:
                inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        if f"socket:[{inode}]" in open_fds(pid):
            return pid
    return None


def fd_kinds(pid: int) -> collections.Counter:
    """How many descriptors of each kind (``pipe``, ``socket``, a path) ``pid`` holds.

    ``/proc`` files are left out: the master opens a worker's ``/proc/PID/stat`` for an
    instant to read its CPU time (the heartbeat's starvation check), and a sample taken in
    that instant is not a leak (it reads it in a ``with`` block: the file is closed at once)."""
    return collections.Counter(kind for kind in (target.split(":[")[0] for target in open_fds(pid))
                               if not kind.startswith("/proc/"))


# -- every scheme x acceptor -------------------------------------------------------------------


@pytest.mark.parametrize("acceptor", ACCEPTORS)
@pytest.mark.parametrize("dispatch", PROCESS_SCHEMES)
def test_scheme_serves_echo_with_acceptor(dispatch, acceptor):
    args = ["--dispatch", dispatch, "--acceptor", acceptor, "--workers", "2", "--protocol", "echo"]
    if not _valid(dispatch, acceptor):
        result = run_netcore("serve", "--bind", "127.0.0.1:0", *args, timeout=60)
        assert result.returncode == 2, result.stderr
        assert acceptor in result.stderr and dispatch in result.stderr, result.stderr
        return
    with ServerProcess(*args) as server:
        assert server.started["dispatch"] == dispatch and server.started["acceptor"] == acceptor
        if dispatch in MASTER_SCHEMES:
            started = server.wait_events("worker.started", 2)
            assert {e["worker"] for e in started} == {0, 1}
            assert server.pid not in {e["pid"] for e in started}  # the master does not serve
        failures: list = []

        def client(i: int) -> None:
            try:
                for j in range(5):
                    payload = b"client %d request %d" % (i, j)
                    assert echo_once(server.address, payload) == payload
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert not failures
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
    assert stats["requests"] == 20 and stats["connections_accepted"] == 20
    assert stats["connections_closed"] == 20 and stats["bytes_sent"] == stats["bytes_received"]
    if dispatch in MASTER_SCHEMES:
        assert {w["worker"] for w in stats["workers"]} == {0, 1}
        assert sum(w["requests"] for w in stats["workers"]) == 20
        assert len(server.events_named("worker.exited")) == 2


def test_defaults_under_process_schemes():
    cpus = len(os.sched_getaffinity(0))
    for dispatch, workers in (("prefork", cpus), ("prefork-blocking", cpus), ("forking", cpus), ("inline", 1)):
        result = run_netcore("config", "--json", "--dispatch", dispatch)
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        assert config["workers"] == {"value": workers, "source": "default"}, dispatch
        expected = "mutex" if dispatch == "prefork" and "mutex" in ACCEPTORS else "shared"
        assert config["acceptor"]["value"] == expected
    # A value the user gave is kept.
    config = json.loads(run_netcore("config", "--json", "--dispatch", "prefork", "--workers", "3").stdout)
    assert config["workers"]["value"] == 3


# -- a worker dies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_killed_worker_is_replaced_and_others_unaffected(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "2") as server:
        started = sorted(server.wait_events("worker.started", 2), key=lambda e: e["worker"])
        pids = [e["pid"] for e in started]  # worker 0's, worker 1's
        # A client held on each worker (prefork-blocking: each worker serves one at a time).
        # Which worker accepts is the kernel's and the scheduler's choice: on a loaded
        # machine one worker may win many in a row, so try up to 200 within 20 s.
        clients = []
        deadline = time.monotonic() + 20
        for i in range(200):
            if time.monotonic() > deadline:
                break
            sock = connect(server.address)
            sock.sendall(b"hello %d" % i)
            assert recv_exactly(sock, len(b"hello %d" % i)) == b"hello %d" % i
            clients.append((sock, server_socket_owner(sock, pids)))
            if {owner for _, owner in clients} == set(pids):
                break
        victim = pids[0]
        survivors = [sock for sock, owner in clients if owner == pids[1]]
        assert survivors, "no client landed on the second worker"
        os.kill(victim, signal.SIGKILL)
        exited = server.wait_event("worker.exited", 10, pid=victim)
        assert exited["signal"] == "SIGKILL" and exited["worker"] == 0
        replacement = server.wait_events("worker.started", 3, timeout=20)[2]
        assert replacement["worker"] == 0 and replacement["pid"] not in pids
        for sock in survivors:  # the other worker's clients did not notice
            sock.sendall(b"still there")
            assert recv_exactly(sock, 11) == b"still there"
        for sock, _ in clients:
            sock.close()
        assert process_state(victim) is None  # reaped, not a zombie
        assert server.stop() == 0


# -- no zombies, no leaked descriptors ---------------------------------------------------------------


def test_forking_reaps_every_child_under_a_stream_of_connections():
    with ServerProcess("--dispatch", "forking") as server:
        for i in range(150):
            assert echo_once(server.address, b"%d" % i) == b"%d" % i
        # Every child exits after its client; the parent reaps each one.
        deadline = time.monotonic() + 20
        while child_pids(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child_pids(server.pid) == []
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
    assert stats["connections_accepted"] == 150 and stats["requests"] == 150 and stats["connections_closed"] == 150


def test_forking_serves_clients_in_parallel_processes():
    with ServerProcess("--dispatch", "forking") as server:
        socks = [connect(server.address) for _ in range(3)]
        for i, sock in enumerate(socks):
            sock.sendall(b"c%d" % i)
            assert recv_exactly(sock, 2) == b"c%d" % i
        kids = child_pids(server.pid)
        assert len(kids) == 3 and all(process_state(pid) in ("S", "R") for pid in kids)
        for sock in socks:
            sock.close()
        assert wait_gone(kids) == []
        assert server.stop() == 0


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_master_leaks_no_descriptors_and_no_zombies_across_restarts(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "2") as server:
        server.wait_events("worker.started", 2)
        before = fd_kinds(server.pid)
        expected = 2
        for _ in range(3):
            victim = server.wait_events("worker.started", expected)[-1]["pid"]
            os.kill(victim, signal.SIGKILL)
            expected += 1
            server.wait_events("worker.started", expected, timeout=20)
        os.kill(server.pid, signal.SIGHUP)
        expected += 2
        server.wait_events("worker.started", expected, timeout=20)
        server.wait_events("worker.exited", 5, timeout=20)
        assert echo_once(server.address, b"after restarts") == b"after restarts"
        # Same number of each kind (the workers' status pipes are new ones, one per worker).
        assert fd_kinds(server.pid) == before
        kids = child_pids(server.pid)
        assert len(kids) == 2 and all(process_state(pid) != "Z" for pid in kids)
        assert server.stop() == 0


# -- the master dies ---------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_workers_exit_when_the_master_is_killed(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "2",
                       "--graceful-timeout", "2") as server:
        pids = [e["pid"] for e in server.wait_events("worker.started", 2)]
        idle = connect(server.address)  # an idle client must not keep an orphan alive for long
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(10)
        assert wait_gone(pids, timeout=15) == [], "workers outlived their master"
        idle.settimeout(TIMEOUT)
        assert idle.recv(10) == b""  # closed, not left hanging
        idle.close()
        gone = [e for e in server.events_named("worker.master_gone")]
        assert {e["pid"] for e in gone} == set(pids)


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_workers_exit_when_the_master_is_killed_and_stderr_is_gone(dispatch):
    """The orphans' own log line then fails (EPIPE): they must stop all the same."""
    proc = subprocess.Popen([sys.executable, "-m", "netcore", "serve", "--log-format", "json",
                             "--bind", "127.0.0.1:0", "--dispatch", dispatch, "--acceptor", "shared",
                             "--workers", "2", "--graceful-timeout", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pids = []
    try:
        for line in proc.stderr:  # no reader thread: this test owns the pipe and closes it
            if '"worker.started"' in line:
                pids.append(json.loads(line)["pid"])
                if len(pids) == 2:
                    break
        assert len(pids) == 2
        proc.stderr.close()  # whoever read the master's stderr has gone too
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert wait_gone(pids, timeout=15) == [], "workers outlived their master"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)  # only if the assertion above failed: our own orphans
            except ProcessLookupError:
                pass


# -- heartbeat ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_stuck_worker_is_killed_and_replaced(dispatch):
    # Every handler burns 30 s of CPU: the worker that takes the request stops beating.
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "1", "--timeout", "2",
                       "--set", "echo_burn=30") as server:
        stuck = server.wait_events("worker.started", 1)[0]["pid"]
        sock = connect(server.address)
        sock.sendall(b"spin")
        try:
            data = sock.recv(10)  # the client sees its connection closed, not a hang
        except ConnectionResetError:
            data = b""
        assert data == b""
        sock.close()
        timeout = server.wait_event("worker.timeout", 10, pid=stuck)
        assert timeout["worker"] == 0
        exited = server.wait_event("worker.exited", 10, pid=stuck)
        assert exited["reason"] == "heartbeat timeout"
        assert exited.get("exit_code") == 6 or exited.get("signal") == "SIGKILL"
        replacement = server.wait_events("worker.started", 2, timeout=20)[1]
        assert replacement["worker"] == 0 and replacement["pid"] != stuck
        assert server.stop() == 0


# -- heartbeat: stopped versus starved ---------------------------------------------------------


@pytest.mark.parametrize("dispatch", ["prefork", "prefork-blocking"])
def test_a_stopped_worker_is_caught_within_the_timeout(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "2", "--timeout", "1.5") as server:
        pids = [e["pid"] for e in server.wait_events("worker.started", 2)]
        stopped_at = time.monotonic()
        os.kill(pids[0], signal.SIGSTOP)
        timeout = server.wait_event("worker.timeout", 10, pid=pids[0])
        # within the timeout plus a master turn (a beat interval is timeout/4)
        assert time.monotonic() - stopped_at < 1.5 + 1.0
        assert timeout["silent"] >= 1.5
        os.kill(pids[0], signal.SIGCONT)  # SIGKILL follows anyway; CONT lets SIGABRT's handler run
        server.wait_event("worker.exited", 10, pid=pids[0])
        server.wait_events("worker.started", 3, timeout=20)
        assert not server.events_named("worker.timeout")[1:]  # the healthy one was left alone
        assert server.stop() == 0


def _starve(pid: int, cpu: int) -> None:
    """Make ``pid`` wait for a CPU: pinned to ``cpu`` at the idle scheduling class."""
    os.sched_setaffinity(pid, {cpu})
    os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs SCHED_IDLE and two CPUs")
def test_a_worker_starved_of_cpu_is_not_killed():
    cpus = sorted(os.sched_getaffinity(0))
    with ServerProcess("--dispatch", "prefork", "--acceptor", "shared", "--workers", "1", "--timeout", "1") as server:
        worker = server.wait_events("worker.started", 1)[0]["pid"]
        os.sched_setaffinity(server.pid, {cpus[1]})  # the master keeps a CPU of its own
        # A CPU hog at normal priority on the worker's CPU for 2 timeouts (below the 3 a
        # starved worker is spared): a busy host.
        hog = subprocess.Popen([sys.executable, "-c", "import os, time\n"
                                f"os.sched_setaffinity(0, {{{cpus[0]}}})\n"
                                "end = time.monotonic() + 2\n"
                                "while time.monotonic() < end: pass\n"])
        try:
            _starve(worker, cpus[0])
            hog.wait(20)  # SCHED_IDLE still lets it beat now and then: it must merely survive
        finally:
            hog.kill()
            hog.wait()
        assert not server.events_named("worker.timeout"), server.describe()
        os.sched_setscheduler(worker, os.SCHED_OTHER, os.sched_param(0))
        assert echo_once(server.address, b"alive") == b"alive"
        assert not server.events_named("worker.timeout")
        assert worker in child_pids(server.pid)
        assert server.stop() == 0
