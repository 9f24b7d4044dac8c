"""What every dispatch scheme must do, whatever the protocol: written once, checked with echo.

A dispatcher decides where work runs (one loop, loops in threads or processes, handler
threads, blocking threads or processes), and each is free to do that its own way; what it
owes the rest of netcore is the same for all of them, and this suite checks it against a
real ``netcore serve``:

* it serves many clients at once (a bounded scheme — ``iterative``, one at a time;
  ``prethread-blocking``, ``--workers`` at a time — serves them in turn), bytes and
  replies exact, replies in request order even when handlers finish out of order;
* ``server.started`` and ``server.stopped`` carry the fields the design names, and the
  counters add up: totals are the sums over ``workers``, echo sends what it received;
* ``SIGTERM`` is graceful (data already received is answered, exit 0), ``SIGINT`` fast;
* a client that resets, or a handler that raises, costs that connection only;
* clients that left leave no thread or descriptor behind.

Subclass it as ``Test<Name>``; ``dispatch`` names the scheme (None: every installed one)::

    from netcore.testing.dispatcher_contract import DispatcherContract

    class TestMyScheme(DispatcherContract):
        dispatch = "my-scheme"

The arguments each server gets come from the fixture ``server_args``; a suite that runs a
matrix (tests/behaviour: poller x dispatch) overrides that fixture instead. A scheme that
is bounded but not one of the known names overrides :meth:`concurrency`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import threading
import time
from typing import Any

import pytest

from netcore.stats import COUNTERS
from netcore.testing.clients import TIMEOUT, connect, recv_exactly, roundtrip
from netcore.testing.schemes import concurrency, installed_dispatches, option, scheme_args
from netcore.testing.server_process import ServerProcess

#: The counters ``server.stopped`` reports, as the design names them (``poll_calls`` is extra).
DESIGNED_COUNTERS = ("connections_accepted", "connections_closed", "bytes_received", "bytes_sent", "requests",
                     "errors", "accept_wakeups", "accept_eagain")

#: A protocol whose handler raises on a request starting with ``boom``; loaded with ``-p``.
FAILING_PROTOCOL = '''\
from netcore import hookimpl
from netcore.protocol import Protocol


def handle(request):
    if request.startswith(b"boom"):
        raise ValueError("handler failed on purpose")
    return request


class Failing(Protocol):
    def data_received(self, data):
        self.connection.submit(handle, data)


@hookimpl
def netcore_register_protocols(registry):
    registry.register("failing", "netcore_failing_proto:Failing", "echo, except that it fails on boom")
'''


class DispatcherContract:
    """Subclass as ``Test<Name>``; set ``dispatch`` or override the ``server_args`` fixture."""

    #: The scheme under test; None: every installed scheme.
    dispatch: str | None = None
    protocol_args: tuple[str, ...] = ("--protocol", "echo")

    def pytest_generate_tests(self, metafunc: Any) -> None:
        if "contract_dispatch" in metafunc.fixturenames:
            names = [self.dispatch] if self.dispatch else list(installed_dispatches())
            metafunc.parametrize("contract_dispatch", names, ids=names)

    @pytest.fixture
    def server_args(self, contract_dispatch) -> list[str]:
        """``netcore serve`` arguments that select the combination under test."""
        return scheme_args(contract_dispatch)

    @pytest.fixture
    def contract_start(self):
        """``start(*args, **kw)``: a started server; any left running is killed at teardown."""
        started: list[ServerProcess] = []

        def start(*args: str, **kwargs: Any) -> ServerProcess:
            server = ServerProcess(*args, **kwargs)
            started.append(server)
            return server.start()

        yield start
        for server in started:
            server.__exit__(None, None, None)

    @pytest.fixture
    def contract_server(self, contract_start, server_args) -> ServerProcess:
        return contract_start(*server_args, *self.protocol_args)

    def concurrency(self, server_args: list[str]) -> int | None:
        """Clients the scheme serves at once (None: not bounded)."""
        return concurrency(server_args)

    def require_concurrency(self, server_args: list[str], reason: str) -> None:
        if self.concurrency(server_args) is not None:
            pytest.skip(f"{option(server_args, '--dispatch')} serves a bounded number of clients at a time: {reason}")

    # -- events ---------------------------------------------------------------------------
    def test_started_and_stopped_events_carry_the_designed_fields(self, contract_server, server_args):
        """Tools and tests read these two events instead of parsing logs: every field
        the design names is there, with the real port, and the totals are the sums of
        the per-worker counters."""
        started = contract_server.started
        assert isinstance(started["addresses"], list) and started["addresses"], started
        host, port = contract_server.address
        assert port != 0 and f"{host}:{port}" in started["addresses"], started
        assert started["dispatch"] == option(server_args, "--dispatch"), started
        assert isinstance(started["workers"], int) and started["workers"] >= 1, started
        assert started["pid"] == contract_server.pid, started
        assert started["protocol"] == option(self.protocol_args, "--protocol"), started
        assert isinstance(started["acceptor"], str) and started["acceptor"], started
        assert "poller" in started and (started["poller"] is None or isinstance(started["poller"], str)), started
        payload = b"counted" * 1000
        with connect(contract_server.address) as sock:
            assert roundtrip(sock, payload) == payload
        assert contract_server.stop() == 0, contract_server.describe()
        stopped = contract_server.stopped_event()
        assert stopped["reason"] == "signal SIGTERM", stopped
        stats = stopped["stats"]
        for name in DESIGNED_COUNTERS:
            assert isinstance(stats.get(name), int) and stats[name] >= 0, (name, stats)
        workers = stats["workers"]
        assert isinstance(workers, list) and workers, stats
        for worker in workers:
            assert isinstance(worker.get("worker"), int) and isinstance(worker.get("pid"), int), worker
            for name in DESIGNED_COUNTERS:
                assert isinstance(worker.get(name), int), (name, worker)
        for name in COUNTERS:
            if name in stats:
                assert stats[name] == sum(worker.get(name, 0) for worker in workers), (name, stats)
        assert stats["connections_accepted"] == stats["connections_closed"] == 1, stats
        assert stats["bytes_received"] == stats["bytes_sent"] == len(payload), stats
        assert stats["requests"] >= 1 and stats["errors"] == 0, stats

    # -- many clients ---------------------------------------------------------------------
    def test_many_concurrent_clients(self, contract_server, server_args):
        """100 clients at once, 20 round trips each of random sizes (10 clients, served in
        turn, under a scheme that serves one at a time); then the counters add up."""
        failures = []
        rounds = 20

        def client(seed):
            rng = random.Random(seed)
            try:
                with connect(contract_server.address) as sock:
                    for _ in range(rounds):
                        payload = rng.randbytes(rng.randint(1, 20000))
                        got = roundtrip(sock, payload)
                        if got != payload:
                            failures.append((seed, len(payload), len(got)))
                            return
            except OSError as exc:
                failures.append((seed, repr(exc)))

        clients = 10 if self.concurrency(server_args) == 1 else 100
        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 2)
        assert not any(t.is_alive() for t in threads), "clients still running"
        assert not failures
        assert contract_server.stop() == 0
        stats = contract_server.stopped_event()["stats"]
        assert stats["connections_accepted"] == stats["connections_closed"] == clients
        assert stats["bytes_received"] == stats["bytes_sent"] > 0
        assert stats["requests"] >= clients * rounds

    def test_pipelined_requests_come_back_in_order(self, contract_start, server_args):
        """Many small requests in flight on one connection; a pool finishes them out of
        order (each handler burns a little CPU), the replies must not be."""
        server = contract_start(*server_args, *self.protocol_args, "--set", "echo_burn=0.0005")
        rng = random.Random(7)
        messages = [b"<%d:%s>" % (i, rng.randbytes(rng.randint(1, 300)).hex().encode()) for i in range(400)]
        expected = b"".join(messages)
        with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            received = bytearray()

            def read_all():
                while len(received) < len(expected):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    received.extend(chunk)

            reader = threading.Thread(target=read_all)
            reader.start()
            for message in messages:
                sock.sendall(message)  # separate sends: many separate reads, many requests
            reader.join(60)
        assert bytes(received) == expected
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
        assert stats["requests"] > 1

    # -- stopping -------------------------------------------------------------------------
    def test_term_is_graceful_for_data_in_flight(self, contract_server, server_args):
        """Bytes sent before TERM are echoed before the connection closes: none lost
        (as many clients as the scheme serves at once, at most 20)."""
        count = min(20, self.concurrency(server_args) or 20)
        socks = [connect(contract_server.address) for _ in range(count)]
        payloads = [os.urandom(30000 + i) for i in range(count)]
        for sock, payload in zip(socks, payloads):
            assert roundtrip(sock, b"x") == b"x"  # accepted and registered before the stop
            sock.sendall(payload)
        contract_server.proc.send_signal(signal.SIGTERM)
        for sock, payload in zip(socks, payloads):
            assert recv_exactly(sock, len(payload) + 1) == payload  # all of it, then EOF
            sock.close()
        assert contract_server.stop() == 0
        stopped = contract_server.stopped_event()
        assert stopped["reason"] == "signal SIGTERM"
        assert stopped["stats"]["bytes_sent"] == sum(len(p) + 1 for p in payloads)

    def test_int_stops_fast(self, contract_server):
        """SIGINT does not wait for clients: an idle connection is closed, exit 0."""
        sock = connect(contract_server.address)
        assert roundtrip(sock, b"hi") == b"hi"
        assert contract_server.stop(signal.SIGINT) == 0
        assert contract_server.stopped_event()["reason"] == "signal SIGINT"
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass  # an abort may reset: either way the connection is gone
        sock.close()

    # -- failures of one connection -------------------------------------------------------
    def test_reset_mid_stream_leaves_others_served(self, contract_server, server_args):
        """Clients that reset with replies owed to them cost only their own connection."""
        self.require_concurrency(server_args, "needs a bystander while others reset")
        with connect(contract_server.address) as bystander:
            assert roundtrip(bystander, b"before") == b"before"
            for _ in range(5):
                rude = connect(contract_server.address, bufsize=4096)
                try:
                    rude.sendall(os.urandom(256 * 1024))
                except OSError:
                    pass
                rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                rude.close()  # RST with echo output still owed to it
            assert roundtrip(bystander, b"after") == b"after"
        assert contract_server.stop() == 0
        stats = contract_server.stopped_event()["stats"]
        assert stats["connections_closed"] == stats["connections_accepted"] == 6

    def test_handler_error_closes_only_its_connection(self, contract_start, server_args, tmp_path):
        """A handler that raises: its connection closes, the error is logged once and
        counted in ``errors``, the other client goes on."""
        if self.concurrency(server_args) == 1:
            pytest.skip("needs two clients at once")
        (tmp_path / "netcore_failing_proto.py").write_text(FAILING_PROTOCOL)
        server = contract_start("-p", "netcore_failing_proto", *server_args, "--protocol", "failing",
                       env={"PYTHONPATH": str(tmp_path)})
        with socket.create_connection(server.address, timeout=TIMEOUT) as good, \
                socket.create_connection(server.address, timeout=TIMEOUT) as bad:
            good.sendall(b"fine")
            assert good.recv(10) == b"fine"
            bad.sendall(b"boom")
            try:
                assert bad.recv(10) == b""
            except ConnectionResetError:
                pass
            good.sendall(b"still")
            assert good.recv(10) == b"still"
        assert server.stop() == 0
        failures = [e for e in server.events
                    if e.get("event") in ("connection.protocol_failed", "connection.handler_failed")]
        assert len(failures) == 1 and "handler failed on purpose" in str(failures[0])
        assert server.stopped_event()["stats"]["errors"] == 1

    # -- resources ------------------------------------------------------------------------
    def test_no_threads_or_fds_left_behind_by_clients(self, contract_server, server_args):
        """After clients leave, the server is back to the threads and fds it had before them."""
        workers = int(option(server_args, "--workers") or 1)
        contract_server.wait_events("worker.started", workers, 10)  # every worker set up: its loop, its fds
        baseline = _threads_and_fds(contract_server.pid)
        clients = 1 if self.concurrency(server_args) == 1 else 20
        socks = [socket.create_connection(contract_server.address, timeout=TIMEOUT) for _ in range(clients)]
        for i, sock in enumerate(socks):
            sock.sendall(b"hello %d" % i)
        for i, sock in enumerate(socks):
            assert sock.recv(100) == b"hello %d" % i
            sock.close()
        deadline = time.monotonic() + 10

        def back_to_baseline() -> bool:
            # At most the baseline, not equal to it: the baseline itself may have caught a
            # descriptor the master holds for an instant (the heartbeat reads a worker's
            # /proc file), and a leak only ever adds.
            threads, fds = _threads_and_fds(contract_server.pid)
            return threads <= baseline[0] and fds <= baseline[1]

        while not back_to_baseline():  # connection threads end after their client
            assert time.monotonic() < deadline, f"{_threads_and_fds(contract_server.pid)} > {baseline} (threads, fds)"
            time.sleep(0.05)  # polling /proc: there is no event for "a thread ended"
        assert contract_server.stop() == 0


def _threads_and_fds(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))
