"""What every acceptor must do inside a real server, written once, subclassed per acceptor.

An acceptor decides how listening sockets are made and how workers take connections
from them (one shared socket, an accept mutex, ``EPOLLEXCLUSIVE``, a socket per worker
with ``SO_REUSEPORT``). Those differ in who is woken and who wins; what they owe is the
same, and this suite checks only that, through ``netcore serve`` with echo:

* under a burst of connections (all queued while the server is stopped with SIGSTOP), under
  ``prefork`` with two worker processes and under ``multi-reactor``, every connection
  is accepted and answered, none is lost or accepted twice;
* the counters add up: ``connections_accepted`` is the number of connections made, the
  totals are the sums over workers, and the accept counters are consistent — a wake-up
  either finds the queue empty (``accept_eagain``) or accepts at least one connection,
  so ``accept_eagain <= accept_wakeups <= accept_eagain + connections accepted``;
* with one accepting loop (``inline``, ``pool``, ``multi-reactor``) there is nobody to
  lose a race to: ``accept_eagain`` is 0;
* a blocking scheme (``threading``) accepts from the sockets ``bind()`` made.

How *many* wake-ups each acceptor costs is its design, not its correctness: that is
measured by netcore-acceptors' herd tests and ``netcore bench herd``, not asserted here.
Subclass it as ``Test<Name>`` with ``acceptor`` set::

    from netcore.testing.acceptor_contract import AcceptorContract

    class TestMyAcceptor(AcceptorContract):
        acceptor = "my-acceptor"
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from typing import Any

import pytest

from netcore.stats import COUNTERS
from netcore.testing.clients import TIMEOUT, Client, connect, roundtrip
from netcore.testing.schemes import installed_dispatches
from netcore.testing.server_process import ServerProcess, child_pids, process_state


@functools.cache
def installed_pollers() -> tuple[str, ...]:
    from netcore.plugins import PluginHost

    host = PluginHost()
    return tuple(entry.name for entry in host.registries["poller"] if entry.availability()[0])


class AcceptorContract:
    """Subclass as ``Test<Name>`` and set ``acceptor``."""

    acceptor: str = ""
    #: Connections of the burst.
    burst = 200
    #: Schemes the burst runs under, each with two workers (processes, loops).
    burst_dispatches: tuple[str, ...] = ("prefork", "multi-reactor")
    #: Pollers the burst runs with: level-triggered accepts in batches of at most 256 per
    #: wake-up, edge-triggered must go on until EAGAIN. Those not installed are skipped.
    pollers: tuple[str, ...] = ("epoll-lt", "epoll-et")
    #: In-process schemes whose only accepting loop must never see EAGAIN.
    single_loop_dispatches: tuple[str, ...] = ("inline", "multi-reactor", "pool")
    blocking_dispatches: tuple[str, ...] = ("threading",)

    def pytest_generate_tests(self, metafunc: Any) -> None:
        def params(names, installed):
            return [pytest.param(name, id=name, marks=[] if name in installed else
                                 [pytest.mark.skip(reason=f"{name!r} is not installed")]) for name in names]

        if "burst_dispatch" in metafunc.fixturenames:
            metafunc.parametrize("burst_dispatch", params(self.burst_dispatches, installed_dispatches()))
        if "burst_poller" in metafunc.fixturenames:
            metafunc.parametrize("burst_poller", params(self.pollers, installed_pollers()))
        if "single_loop_dispatch" in metafunc.fixturenames:
            metafunc.parametrize("single_loop_dispatch", params(self.single_loop_dispatches, installed_dispatches()))
        if "blocking_dispatch" in metafunc.fixturenames:
            metafunc.parametrize("blocking_dispatch", params(self.blocking_dispatches, installed_dispatches()))

    @pytest.fixture
    def contract_start(self):
        """``start(*args)``: an echo server with this acceptor; killed at teardown if left running."""
        started: list[ServerProcess] = []

        def start(*args: str) -> ServerProcess:
            server = ServerProcess("--acceptor", self.acceptor, "--protocol", "echo", *args)
            started.append(server)
            server.start()
            assert server.started["acceptor"] == self.acceptor, server.started
            return server

        yield start
        for server in started:
            server.__exit__(None, None, None)

    def stop_and_check(self, server: ServerProcess, connections: int) -> dict[str, Any]:
        """Stop gracefully; check the counters every correct acceptor keeps consistent."""
        assert server.stop() == 0, server.describe()
        stats = server.stopped_event()["stats"]
        workers = stats["workers"]
        for name in COUNTERS:
            if name in stats:
                assert stats[name] == sum(w.get(name, 0) for w in workers), (name, stats)
        assert stats["connections_accepted"] == stats["connections_closed"] == connections, stats
        assert stats["errors"] == 0, stats
        assert 1 <= stats["accept_wakeups"], stats
        assert stats["accept_eagain"] <= stats["accept_wakeups"], stats
        # A wake-up that did not find the queue empty accepted at least one connection.
        assert stats["accept_wakeups"] - stats["accept_eagain"] <= stats["connections_accepted"], stats
        return stats

    @contextlib.contextmanager
    def frozen(self, server: ServerProcess):
        """The server's processes stopped (SIGSTOP) for the duration, resumed after: the
        kernel still completes connections into the backlog, nobody accepts them."""
        pids = [*child_pids(server.pid), server.pid]  # workers first: they are the ones accepting
        stopped = []
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            deadline = time.monotonic() + 10
            while any(process_state(pid) not in ("T", "t", None) for pid in pids):
                assert time.monotonic() < deadline, [process_state(pid) for pid in pids]
                time.sleep(0.005)  # polling /proc: there is no event for "stopped"
            yield
        finally:
            for pid in reversed(stopped):
                os.kill(pid, signal.SIGCONT)

    def test_burst_every_connection_accepted_and_answered(self, contract_start, burst_dispatch, burst_poller):
        """All connections are made and their requests sent while the server is frozen,
        so that when it resumes they are all queued at once: the workers wake together,
        accept in batches and compete. Each must be accepted exactly once and answered."""
        server = contract_start("--dispatch", burst_dispatch, "--workers", "2", "--poller", burst_poller)
        server.wait_events("worker.started", 2, 10)  # every worker accepting before the freeze
        clients: list[Client] = []
        try:
            with self.frozen(server):
                for i in range(self.burst):  # completed by the kernel, queued in the backlog
                    clients.append(Client(server.address))
                    clients[-1].send(b"burst %d;" % i)
            for i, client in enumerate(clients):
                expected = b"burst %d;" % i
                assert client.read_exactly(len(expected)) == expected, i
                client.answered()
                client.assert_all_answered()
        finally:
            for client in clients:
                client.close()
        stats = self.stop_and_check(server, self.burst)
        assert stats["bytes_received"] == stats["bytes_sent"] == sum(len(b"burst %d;" % i) for i in range(self.burst))
        if burst_dispatch == "prefork":
            # Each worker process accepts for itself: its own counters must agree too.
            for worker in stats["workers"]:
                accepted = worker["connections_accepted"]
                useful = worker["accept_wakeups"] - worker["accept_eagain"]
                assert (useful >= 1) if accepted else (useful == 0), worker
                assert useful <= accepted, worker

    def test_single_accepting_loop_never_loses_a_race(self, contract_start, single_loop_dispatch):
        """Several clients at once, moving between them (a mutex changes hands); with one
        loop accepting, no wake-up can find the queue already emptied by another."""
        server = contract_start("--dispatch", single_loop_dispatch, "--workers", "2")
        clients = [connect(server.address) for _ in range(5)]
        try:
            for i, sock in enumerate(clients):
                payload = f"hello {self.acceptor} {i}".encode() * 50
                assert roundtrip(sock, payload) == payload
        finally:
            for sock in clients:
                sock.close()
        stats = self.stop_and_check(server, 5)
        assert stats["accept_eagain"] == 0, stats

    def test_blocking_scheme_accepts_from_the_bound_sockets(self, contract_start, blocking_dispatch):
        """Blocking schemes never start the acceptor in a loop: they accept from the
        sockets its ``bind()`` made (reuseport: slot 0's), which must serve."""
        server = contract_start("--dispatch", blocking_dispatch)
        for i in range(3):
            with connect(server.address, timeout=TIMEOUT) as sock:
                assert roundtrip(sock, b"ping %d" % i) == b"ping %d" % i
        self.stop_and_check(server, 3)
