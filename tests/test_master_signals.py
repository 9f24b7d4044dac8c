"""The master of ``prefork`` and ``prefork-blocking`` under signals, with clients running.

A load client (two threads: one opening a fresh connection per round trip, one keeping
its connection alive) runs through each HUP, TTIN, TTOU and max-requests recycling, and
must see zero failed requests. One rule comes from HTTP/1.1 (RFC 9112, 9.3.1): a
connection that the server closes *while idle between requests* is not a failure; a
client retries its next request on a new connection if the reused one ends before any
byte of the reply. A fresh connection gets no such leniency: every one must be served.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import pytest
from netcore.testing.clients import TIMEOUT, connect, recv_exactly
from netcore.testing.server_process import ServerProcess, child_pids, module_env, wait_gone

MASTER_SCHEMES = ("prefork", "prefork-blocking")
# prefork-blocking serves one client per worker: leave room for the fresh connections
# while the kept-alive one holds a worker.
WORKERS = {"prefork": "2", "prefork-blocking": "3"}


def _timing(connected: float | None, sent_after: float | None) -> str:
    """When a failed round trip sent and failed, counted from its connect."""
    if connected is None:
        return "(before the connect completed)"
    sent = "not sent" if sent_after is None else f"sent {sent_after:.3f} s"
    return f"({sent}, failed {time.monotonic() - connected:.3f} s after connecting)"


class Load:
    """Round trips on fresh and on kept-alive connections until stopped; counts failures."""

    def __init__(self, address) -> None:
        self.address = address
        self.done = threading.Event()
        self.failures: list[str] = []
        self.ok = {"fresh": 0, "kept": 0}
        self.reconnects = 0
        self.threads = [threading.Thread(target=self._fresh, daemon=True),
                        threading.Thread(target=self._kept, daemon=True)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        for t in self.threads:
            t.join(TIMEOUT)

    def wait_for(self, fresh: int, kept: int, timeout: float = 30.0) -> None:
        """Until at least this many more round trips of each kind have succeeded."""
        goal = (self.ok["fresh"] + fresh, self.ok["kept"] + kept)
        deadline = time.monotonic() + timeout
        while self.ok["fresh"] < goal[0] or self.ok["kept"] < goal[1]:
            assert time.monotonic() < deadline, f"load stalled: {self.ok} {self.failures[:3]}"
            assert not self.failures, self.failures[:3]
            time.sleep(0.02)

    def _fresh(self) -> None:
        n = 0
        while not self.done.is_set():
            n += 1
            payload = b"fresh %d" % n
            # How long this client took to send after its connect returned, and to fail: a
            # retiring worker gives a silent new connection a grace period (prefork's
            # FRESH_GRACE), so a failure says whether it was exceeded.
            connected = sent_after = None
            try:
                with connect(self.address) as sock:
                    connected = time.monotonic()
                    sock.sendall(payload)
                    sent_after = time.monotonic() - connected
                    reply = recv_exactly(sock, len(payload))
            except OSError as exc:
                self.failures.append(f"fresh {n}: {exc!r} {_timing(connected, sent_after)}")
                continue
            if reply != payload:
                self.failures.append(f"fresh {n}: got {reply!r} {_timing(connected, sent_after)}")
            else:
                self.ok["fresh"] += 1

    def _kept(self) -> None:
        sock, reused, n = None, False, 0
        while not self.done.is_set():
            n += 1
            payload = b"kept %d" % n
            if sock is None:
                sock, reused = connect(self.address), False
            try:
                sock.sendall(payload)
                reply = recv_exactly(sock, len(payload))
            except OSError as exc:
                reply = None
                error = repr(exc)
            else:
                error = f"got {reply!r}"
            if reply == payload:
                self.ok["kept"] += 1
                reused = True
                continue
            sock.close()
            sock = None
            if reused and reply == b"":
                self.reconnects += 1  # closed while idle: retry on a new connection (HTTP's rule)
                continue
            self.failures.append(f"kept {n}: {error}")
        if sock is not None:
            sock.close()


def live_workers(server: ServerProcess) -> set[int]:
    return {pid for pid in child_pids(server.pid)}


# -- HUP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_hup_replaces_every_worker_under_load_with_no_failed_request(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", WORKERS[dispatch]) as server:
        n = int(WORKERS[dispatch])
        old = {e["pid"] for e in server.wait_events("worker.started", n)}
        with Load(server.address) as load:
            load.wait_for(20, 20)
            for generation in (1, 2):
                os.kill(server.pid, signal.SIGHUP)
                server.wait_events("worker.started", n * (generation + 1), timeout=30)
                retired = server.wait_events("worker.exited", n * generation, timeout=30)
                assert {e["reason"] for e in retired} == {"reload (HUP)"}
                load.wait_for(20, 20)
        assert not load.failures, load.failures[:5]
        assert old.isdisjoint(live_workers(server))
        assert {e["generation"] for e in server.events_named("worker.exited")} == {0, 1}
        assert server.stop() == 0


# -- TTIN / TTOU -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_ttin_and_ttou_under_load_with_no_failed_request(dispatch):
    n = int(WORKERS[dispatch])
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", str(n)) as server:
        server.wait_events("worker.started", n)
        with Load(server.address) as load:
            load.wait_for(10, 10)
            os.kill(server.pid, signal.SIGTTIN)
            added = server.wait_event("worker.started", 20, worker=n)
            assert len(live_workers(server)) == n + 1
            load.wait_for(10, 10)
            # One at a time: two signals sent together may arrive as one (POSIX merges them).
            os.kill(server.pid, signal.SIGTTOU)
            server.wait_events("worker.exited", 1, timeout=30)
            os.kill(server.pid, signal.SIGTTOU)
            removed = server.wait_events("worker.exited", 2, timeout=30)
            assert {e["worker"] for e in removed} == {n, n - 1}
            assert {e["reason"] for e in removed} == {"workers decreased (TTOU)"}
            assert added["pid"] in {e["pid"] for e in removed}
            load.wait_for(10, 10)
        assert not load.failures, load.failures[:5]
        assert len(live_workers(server)) == n - 1
        assert server.stop() == 0
        stopped = server.stopped_event()
    assert stopped["stats"]["requests"] >= 60


# -- max-requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_max_requests_recycles_workers_without_resetting_connections(dispatch):
    n = int(WORKERS[dispatch]) - 1
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", str(n),
                       "--max-requests", "40", "--max-requests-jitter", "10", "--timeout", "30") as server:
        server.wait_events("worker.started", n)
        with Load(server.address) as load:
            load.wait_for(150, 150, timeout=60)
            recycled = server.wait_events("worker.exited", 2, timeout=30, reason="max requests")
        assert not load.failures, load.failures[:5]
        assert all(e.get("exit_code") == 0 for e in recycled)
        assert server.events_named("worker.max_requests")
        assert server.stop() == 0


# -- TERM, INT -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES + ("forking",))
def test_term_with_requests_in_flight_loses_none(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "4",
                       "--set", "echo_delay=1.0") as server:
        if dispatch != "forking":
            server.wait_events("worker.started", 4)
        socks = [connect(server.address) for _ in range(4)]
        for i, sock in enumerate(socks):
            sock.sendall(b"in flight %d" % i)
        time.sleep(0.3)  # let the requests reach their handlers (not a synchronisation: a margin)
        os.kill(server.pid, signal.SIGTERM)
        for i, sock in enumerate(socks):
            assert recv_exactly(sock, len(b"in flight %d" % i)) == b"in flight %d" % i
            assert sock.recv(10) == b""  # then closed cleanly
            sock.close()
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
    assert stats["requests"] == 4 and stats["bytes_sent"] == stats["bytes_received"]


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_int_is_fast_even_with_idle_clients(dispatch):
    with ServerProcess("--dispatch", dispatch, "--acceptor", "shared", "--workers", "2",
                       "--graceful-timeout", "60") as server:
        pids = [e["pid"] for e in server.wait_events("worker.started", 2)]
        idle = connect(server.address)
        idle.sendall(b"x")
        assert recv_exactly(idle, 1) == b"x"
        assert server.stop(signal.SIGINT, timeout=20) == 0  # far sooner than the graceful 60 s
        assert server.stopped_event()["reason"] == "signal SIGINT"
        assert wait_gone(pids) == []
        idle.close()


# -- workers that cannot start ------------------------------------------------------------------------

FAILING_PLUGIN = textwrap.dedent('''
    """Test plugin: a worker cannot start while the file named by $FAILING_WORKER_FLAG exists."""
    import os

    from netcore import hookimpl


    @hookimpl
    def netcore_worker_started(worker):
        flag = os.environ.get("FAILING_WORKER_FLAG")
        if flag and os.path.exists(flag):
            raise RuntimeError("this worker cannot start (test)")
        if flag:  # tell the test that this worker is past the point where it could fail
            open(f"{flag}.{os.getpid()}", "w").close()
''')


def wait_past_start(flag, pids, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(f"{flag}.{pid}") for pid in pids):
        assert time.monotonic() < deadline, "workers did not get past their start hook"
        time.sleep(0.02)


@pytest.fixture
def failing_plugin(tmp_path):
    flag = tmp_path / "fail"
    env = {**module_env(tmp_path, "failing_worker_plugin", FAILING_PLUGIN), "FAILING_WORKER_FLAG": str(flag)}
    return env, flag


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_a_worker_that_cannot_start_is_retried_with_back_off_not_spun(dispatch, failing_plugin):
    env, flag = failing_plugin
    flag.write_text("")
    with ServerProcess("-p", "failing_worker_plugin", "--dispatch", dispatch, "--acceptor", "shared",
                       "--workers", "1", env=env) as server:
        delays = server.wait_events("worker.restart_delayed", 4, timeout=30)
        assert [e["delay"] for e in delays] == sorted(e["delay"] for e in delays)
        assert delays[-1]["delay"] > delays[0]["delay"]
        assert all(e["exit_code"] == 3 for e in server.events_named("worker.exited"))
        # Bounded: the fourth failure came after 0.1 + 0.2 + 0.4 s of back-off at least, so
        # there were only a handful of forks, not thousands.
        assert len(server.events_named("worker.failed")) < 10
        flag.unlink()  # the cause is fixed: the next attempt starts and serves
        server.wait_event("worker.started", 30)
        with connect(server.address) as sock:
            sock.sendall(b"works")
            assert recv_exactly(sock, 5) == b"works"
        assert server.stop() == 0


@pytest.mark.parametrize("dispatch", MASTER_SCHEMES)
def test_hup_whose_new_workers_cannot_start_keeps_the_old_ones(dispatch, failing_plugin):
    env, flag = failing_plugin
    with ServerProcess("-p", "failing_worker_plugin", "--dispatch", dispatch, "--acceptor", "shared",
                       "--workers", "2", env=env) as server:
        old = {e["pid"] for e in server.wait_events("worker.started", 2)}
        wait_past_start(flag, old)
        flag.write_text("")
        os.kill(server.pid, signal.SIGHUP)
        # The first new worker that fails to boot rolls the generation back (nginx's
        # rollback): one line, no retry loop, the old workers serve on.
        failed = server.wait_event("master.reload_failed", 30)
        assert "old workers go on serving" in failed["reason"]
        assert old <= live_workers(server)
        for i in range(4):
            with connect(server.address) as sock:
                sock.sendall(b"old %d" % i)
                assert recv_exactly(sock, 5) == b"old %d" % i
        assert not server.events_named("worker.restart_delayed")
        flag.unlink()  # the cause is fixed: the next HUP deploys
        os.kill(server.pid, signal.SIGHUP)
        server.wait_event("master.reloaded", 30)
        server.wait_events("worker.exited", 2, timeout=30, reason="reload (HUP)")
        assert old.isdisjoint(live_workers(server))
        assert server.stop() == 0


def test_master_itself_serves_nothing():
    with ServerProcess("--dispatch", "prefork", "--acceptor", "shared", "--workers", "1") as server:
        server.wait_events("worker.started", 1)
        with connect(server.address) as sock:
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
        assert server.stop() == 0
        workers = server.stopped_event()["stats"]["workers"]
    assert server.pid not in {w["pid"] for w in workers}
    assert sum(w["requests"] for w in workers) == 1
