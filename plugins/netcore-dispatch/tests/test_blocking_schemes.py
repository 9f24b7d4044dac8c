"""The blocking schemes (0 ``iterative``, 2 ``threading``, 4 ``prethread-blocking``) against real servers.

Each test starts ``netcore serve`` and talks to it over loopback with plain blocking
sockets. Waits are for bytes, an EOF or a server event, and every one is bounded; the
few time measurements are the behaviour under test (do two slow requests overlap?),
with margins far wider than scheduling noise.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import textwrap
import threading
import time

import pytest
from netcore.testing.clients import TIMEOUT, connect, recv_exactly, roundtrip, wait_until_served
from netcore.testing.server_process import ServerProcess, cpu_seconds, module_env, run_netcore

#: ``--set echo_delay``: each request's handler sleeps this long.
DELAY = 0.3

#: name -> (extra arguments, clients that can be served at the same time)
SCHEMES = {
    "iterative": ([], 1),
    "threading": ([], 20),
    "prethread-blocking": (["--workers", "4"], 4),
}


@pytest.fixture(params=sorted(SCHEMES))
def scheme(request):
    return request.param


def serve_args(scheme: str, *more: str) -> list[str]:
    return ["--dispatch", scheme, "--protocol", "echo", *SCHEMES[scheme][0], *more]


# -- client helpers ------------------------------------------------------------------------


def run_clients(count: int, client) -> list:
    """Run ``client(i)`` in ``count`` threads; return the failures they recorded."""
    failures: list = []

    def run(i):
        try:
            client(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append((i, repr(exc)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "a client is still running"
    return failures


def task_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def wait_task_count(pid: int, expected: int, timeout: float = 10.0) -> int:
    """Poll the server's thread count until it equals ``expected`` (threads exit asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        count = task_count(pid)
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def stopped_stats(server: ServerProcess, sig=signal.SIGTERM) -> dict:
    assert server.stop(sig) == 0, server.describe()
    return server.stopped_event()["stats"]


# -- announcing ----------------------------------------------------------------------------


def test_started_says_no_poller(start_server, scheme):
    server = start_server(*serve_args(scheme), "--poller", "poll")
    assert server.started["poller"] is None
    assert server.started["dispatch"] == scheme
    assert stopped_stats(server)["connections_accepted"] == 0


def test_config_and_plugins_say_the_poller_is_ignored(scheme):
    result = run_netcore("config", "--dispatch", scheme, "--json")
    assert result.returncode == 0, result.stderr
    poller = json.loads(result.stdout)["poller"]
    assert "blocking" in poller["note"] and scheme in poller["note"]

    result = run_netcore("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["families"]["dispatch"]}
    row = rows[scheme]
    assert row["available"], row["reason"]
    assert row["scheme"] == {"iterative": 0, "threading": 2, "prethread-blocking": 4}[scheme]
    assert "blocking" in row["provides"]
    assert row["notes"] == "blocking sockets; ignores --poller"


# -- echo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 1000, 65536, 1_000_003])
def test_random_payload_with_small_buffers(start_server, scheme, size):
    """4 KiB socket buffers force partial sends and reads on both sides."""
    server = start_server(*serve_args(scheme))
    payload = random.Random(size).randbytes(size)
    with connect(server.address, bufsize=4096) as sock:
        assert roundtrip(sock, payload) == payload
    stats = stopped_stats(server)
    assert stats["bytes_received"] == stats["bytes_sent"] == size


def test_many_concurrent_clients(start_server, scheme):
    """Every client is answered; under ``iterative`` they are simply served one after another."""
    server = start_server(*serve_args(scheme))
    clients, rounds = 40, 10

    def client(seed):
        rng = random.Random(seed)
        with connect(server.address) as sock:
            for _ in range(rounds):
                payload = rng.randbytes(rng.randint(1, 20000))
                assert roundtrip(sock, payload) == payload

    assert run_clients(clients, client) == []
    stats = stopped_stats(server)
    assert stats["connections_accepted"] == stats["connections_closed"] == clients
    assert stats["bytes_received"] == stats["bytes_sent"] > 0
    assert stats["requests"] >= clients * rounds
    assert stats["errors"] == 0


def test_half_close_receives_everything_then_eof(start_server, scheme):
    server = start_server(*serve_args(scheme))
    payload = os.urandom(2 * 1024 * 1024)
    with connect(server.address) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        data = recv_exactly(sock, len(payload) + 1)  # one more: it must be EOF, not data
        sender.join(TIMEOUT)
    assert data == payload
    stats = stopped_stats(server)
    assert stats["connections_closed"] == 1


def test_reset_mid_stream_leaves_others_served(start_server, scheme):
    """A peer's RST (ECONNRESET/EPIPE on our side) closes that connection only."""
    server = start_server(*serve_args(scheme))
    bystander = connect(server.address)
    assert roundtrip(bystander, b"before") == b"before"
    if scheme == "iterative":  # it would hold the only slot: a fresh client comes after instead
        bystander.close()
    for _ in range(5):
        rude = connect(server.address, bufsize=4096)
        try:
            rude.sendall(os.urandom(256 * 1024))
        except OSError:
            pass
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.close()  # RST with echo output still owed to it
    if scheme == "iterative":
        bystander = connect(server.address)
    assert roundtrip(bystander, b"after") == b"after"
    bystander.close()
    stats = stopped_stats(server)
    # 256 KiB cannot fit in the backlog's buffers: every rude client was accepted and read.
    assert stats["connections_closed"] == stats["connections_accepted"] == (7 if scheme == "iterative" else 6)
    assert stats["errors"] == 0


# -- stopping ------------------------------------------------------------------------------


def test_term_is_graceful_for_data_in_flight(start_server, scheme):
    """Bytes sent before TERM are all echoed, then EOF: none lost, exit status 0."""
    server = start_server(*serve_args(scheme))
    count = SCHEMES[scheme][1]  # only clients being served are "in flight"; others wait in the backlog
    socks = [connect(server.address) for _ in range(count)]
    payloads = [os.urandom(30000 + i) for i in range(count)]
    for sock, payload in zip(socks, payloads, strict=True):
        assert roundtrip(sock, b"x") == b"x"  # accepted and being served before the stop
        sock.sendall(payload)
    server.proc.send_signal(signal.SIGTERM)
    for sock, payload in zip(socks, payloads, strict=True):
        assert recv_exactly(sock, len(payload) + 1) == payload  # all of it, then EOF
        sock.close()
    assert server.stop() == 0
    stopped = server.stopped_event()
    assert stopped["reason"] == "signal SIGTERM"
    stats = stopped["stats"]
    assert stats["bytes_sent"] == stats["bytes_received"] == sum(len(p) + 1 for p in payloads)
    assert stats["connections_accepted"] == stats["connections_closed"] == count


def test_term_waits_for_a_slow_handler(start_server, scheme):
    """TERM while the handler sleeps: its reply is still written before the connection closes."""
    server = start_server(*serve_args(scheme, "--set", f"echo_delay={DELAY}"))
    with connect(server.address) as sock:
        assert roundtrip(sock, b"first") == b"first"
        sock.sendall(b"in flight")
        server.proc.send_signal(signal.SIGTERM)
        assert recv_exactly(sock, len(b"in flight") + 1) == b"in flight"
    stats = stopped_stats(server)
    assert stats["bytes_sent"] == stats["bytes_received"] == len(b"first") + len(b"in flight")
    assert stats["connections_accepted"] == stats["connections_closed"] == 1


def test_int_stops_fast(start_server, scheme):
    server = start_server(*serve_args(scheme))
    socks = [connect(server.address) for _ in range(min(3, SCHEMES[scheme][1]))]
    for sock in socks:
        assert roundtrip(sock, b"hi") == b"hi"
    assert server.stop(signal.SIGINT) == 0
    stopped = server.stopped_event()
    assert stopped["reason"] == "signal SIGINT"
    for sock in socks:
        assert sock.recv(10) == b""
        sock.close()
    assert stopped["stats"]["connections_accepted"] == stopped["stats"]["connections_closed"] == len(socks)


def test_stop_while_idle_in_accept(start_server, scheme):
    """Threads asleep in accept() wake when the listener is shut down; the stop is prompt."""
    server = start_server(*serve_args(scheme))
    with connect(server.address) as sock:
        assert roundtrip(sock, b"warm") == b"warm"
    started = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - started < 5
    assert server.stopped_event()["stats"]["connections_closed"] == 1


def test_graceful_timeout_forces_a_client_that_does_not_read(start_server, scheme):
    """A client that never reads blocks the server's send; graceful_timeout ends it."""
    server = start_server(*serve_args(scheme, "--set", "graceful_timeout=0.5"))
    with connect(server.address, bufsize=4096) as sock:
        assert roundtrip(sock, b"hello") == b"hello"
        try:
            sock.settimeout(0.5)  # fill both directions until our send would block
            while True:
                sock.send(b"z" * 65536)
        except (TimeoutError, BlockingIOError):
            pass
        sock.settimeout(TIMEOUT)
        assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert server.events_named("worker.graceful_timeout"), server.describe()
    stats = server.stopped_event()["stats"]
    assert stats["connections_accepted"] == stats["connections_closed"] == 1


def test_term_answers_every_client_waiting_in_the_backlog(start_server, scheme):
    """Clients connected, their requests sent, still in the listen backlog when TERM comes:
    the final accept takes each one and serves it (all of its echo, then EOF), exit 0.

    The server is frozen (SIGSTOP) while they connect and send, so that no thread can
    accept them first: the kernel completes the handshakes and queues the bytes on its
    own. TERM is sent while frozen and delivered at SIGCONT -- the stop then begins with
    every client in the backlog, the case a shutdown of the listener resets.
    """
    clients = 8  # more than prethread-blocking's 4 workers: some wait for a worker to be free
    server = start_server(*serve_args(scheme))
    with connect(server.address) as warm:  # the accepting threads are running
        assert roundtrip(warm, b"warm") == b"warm"
    payloads = [os.urandom(20000 + i) for i in range(clients)]
    socks: list[socket.socket] = []
    os.kill(server.pid, signal.SIGSTOP)
    try:
        _pid, status = os.waitpid(server.pid, os.WUNTRACED)  # until it is stopped: no thread runs
        assert os.WIFSTOPPED(status), status
        for payload in payloads:
            sock = connect(server.address)
            socks.append(sock)
            sock.sendall(payload)
        os.kill(server.pid, signal.SIGTERM)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    try:
        for i, (sock, payload) in enumerate(zip(socks, payloads, strict=True)):
            assert recv_exactly(sock, len(payload) + 1) == payload, f"client {i}"  # all of it, then EOF
    finally:
        for sock in socks:
            sock.close()
    assert server.stop() == 0, server.describe()
    stopped = server.stopped_event()
    assert stopped["reason"] == "signal SIGTERM"
    stats = stopped["stats"]
    assert stats["connections_accepted"] == stats["connections_closed"] == clients + 1
    assert stats["bytes_received"] == stats["bytes_sent"] == len(b"warm") + sum(map(len, payloads))
    assert not server.events_named("dispatch.backlog_dropped"), server.describe()


# -- the essay's point: what each scheme does with a slow client ----------------------------


def test_iterative_serves_one_client_at_a_time(start_server):
    """A second client gets no answer until the first one has left."""
    server = start_server(*serve_args("iterative", "--set", f"echo_delay={DELAY}"))
    events: list[str] = []
    first = connect(server.address)
    assert roundtrip(first, b"one") == b"one"
    second = connect(server.address)  # the kernel completes the handshake: it waits in the backlog
    second.sendall(b"two")

    def read_second():
        events.append("second answered" if recv_exactly(second, 3) == b"two" else "second failed")

    reader = threading.Thread(target=read_second)
    reader.start()
    # Two more requests on the first connection: 2 * DELAY during which a concurrent
    # server would have answered the second client's request (DELAY) already.
    for _ in range(2):
        assert roundtrip(first, b"more") == b"more"
    events.append("first closed")
    first.close()
    reader.join(TIMEOUT)
    second.close()
    assert events == ["first closed", "second answered"]
    stats = stopped_stats(server)
    assert stats["connections_accepted"] == stats["connections_closed"] == 2


@pytest.mark.parametrize("name", ["threading", "prethread-blocking"])
def test_slow_requests_of_two_clients_overlap(start_server, name):
    """Each client has its own thread: two slow requests take DELAY, not 2 * DELAY."""
    server = start_server(*serve_args(name, "--set", f"echo_delay={DELAY}"))
    socks = [connect(server.address) for _ in range(2)]
    elapsed: dict[int, float] = {}
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    def client(i):
        barrier.wait()
        start = time.monotonic()
        socks[i].sendall(b"req%d" % i)
        assert recv_exactly(socks[i], 4) == b"req%d" % i
        elapsed[i] = time.monotonic() - start

    assert run_clients(2, client) == []
    for sock in socks:
        sock.close()
    # Serial service would need 2 * DELAY for the second reply.
    assert max(elapsed.values()) < DELAY * 1.8, elapsed
    stopped_stats(server)


def test_no_threads_leak(start_server, scheme):
    """Threads made for clients (``threading``) are gone once the clients are; pools stay fixed."""
    server = start_server(*serve_args(scheme))
    pid = server.pid
    capacity = SCHEMES[scheme][1]
    # Warm up so that every long-lived thread exists (the stop thread, all prethreaded
    # workers: each of 4 concurrent clients is being served by its own worker).
    warm = [connect(server.address) for _ in range(4 if scheme == "prethread-blocking" else 1)]
    for sock in warm:
        assert roundtrip(sock, b"warm") == b"warm"
    keep, rest = warm[:1], warm[1:]
    for sock in rest:
        sock.close()
    if scheme == "iterative":  # the only slot: free it for the burst
        keep[0].close()
        keep = []
    before = task_count(pid)
    burst = min(capacity - len(keep), 20)
    socks = [connect(server.address) for _ in range(burst)]
    for sock in socks:
        assert roundtrip(sock, b"burst") == b"burst"
    during = task_count(pid)
    for sock in socks:
        sock.close()
    after = wait_task_count(pid, before)
    for sock in keep:
        assert roundtrip(sock, b"still") == b"still"
        sock.close()
    assert after == before, (before, during, after)
    if scheme == "threading":
        assert during >= before + burst  # a thread per connection
    else:
        assert during == before  # no thread per connection
    stats = stopped_stats(server)
    assert stats["connections_accepted"] == stats["connections_closed"] == len(warm) + burst


def test_prethread_reports_each_worker(start_server):
    workers = 4
    server = start_server(*serve_args("prethread-blocking"))
    socks = [connect(server.address) for _ in range(workers)]
    for sock in socks:
        assert roundtrip(sock, b"w") == b"w"  # four clients at once: each on its own worker
    for sock in socks:
        sock.close()
    stats = stopped_stats(server)
    assert [w["worker"] for w in stats["workers"]] == list(range(workers))
    assert all(w["pid"] == server.pid for w in stats["workers"])
    assert all(w["connections_accepted"] == w["connections_closed"] == 1 for w in stats["workers"])
    # Threads asleep in accept() on one socket: Linux wakes one per connection, no herd.
    assert stats["accept_eagain"] == 0
    assert stats["accept_wakeups"] == workers


def test_threading_max_connections_makes_clients_wait(start_server):
    """At ``max_connections`` the acceptor stops accepting: a third client waits for a slot."""
    server = start_server(*serve_args("threading", "--set", "max_connections=2",
                                      "--set", f"echo_delay={DELAY}"))
    first, second = connect(server.address), connect(server.address)
    assert roundtrip(first, b"1") == b"1"
    assert roundtrip(second, b"2") == b"2"
    third = connect(server.address)
    third.sendall(b"three")
    events: list[str] = []

    def read_third():
        events.append("third answered" if recv_exactly(third, 5) == b"three" else "third failed")

    reader = threading.Thread(target=read_third)
    reader.start()
    for _ in range(2):  # 2 * DELAY in which an unbounded server would have answered the third
        assert roundtrip(first, b"more") == b"more"
    events.append("first closed")
    first.close()
    reader.join(TIMEOUT)
    assert events == ["first closed", "third answered"]
    assert roundtrip(second, b"still") == b"still"
    second.close()
    third.close()
    stats = stopped_stats(server)
    assert stats["connections_accepted"] == stats["connections_closed"] == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_threading_stops_while_waiting_for_a_slot(start_server, sig):
    """At the limit the acceptor sleeps on a semaphore, not in accept(): the stop must wake it.

    TERM's final accept also takes the client waiting in the backlog (it is closed once
    it has stayed silent); INT resets it with the listener.
    """
    server = start_server(*serve_args("threading", "--set", "max_connections=1"))
    with connect(server.address) as sock:
        assert roundtrip(sock, b"only") == b"only"
        waiting = connect(server.address)  # in the backlog: the acceptor waits for a slot
        sock.sendall(b"tail")
        assert server.stop(sig, timeout=15) == 0
        if sig == signal.SIGTERM:
            assert recv_exactly(sock, 5) == b"tail"  # echoed, then EOF
        else:
            assert recv_exactly(sock, 4) in (b"", b"tail")
        waiting.close()
    stats = server.stopped_event()["stats"]
    assert stats["connections_accepted"] == stats["connections_closed"] == (2 if sig == signal.SIGTERM else 1)


@pytest.mark.parametrize("name", ["iterative", "prethread-blocking"])
def test_several_listeners(start_server, tmp_path, name):
    """With two listeners the threads wait in poll() for either, then accept without blocking."""
    path = tmp_path / "echo.sock"
    server = start_server(*serve_args(name), "--bind", "127.0.0.1:0", "--bind", f"unix:{path}", bind="")
    with connect(server.address) as sock:
        assert roundtrip(sock, b"tcp") == b"tcp"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
        assert roundtrip(sock, b"unix") == b"unix"
    stats = stopped_stats(server)
    assert stats["connections_accepted"] == stats["connections_closed"] == 2


@pytest.mark.parametrize("name", ["threading", "prethread-blocking"])
def test_out_of_descriptors_refuses_without_spinning(start_server, name):
    """EMFILE: a blocking accept() fails at once; clients are refused, no thread spins."""
    import resource

    limit = 40

    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    args = serve_args(name) + (["--workers", "64"] if name == "prethread-blocking" else [])
    server = start_server(*args, preexec_fn=lower_limit)
    held, refused, waiting = [], 0, 0
    for _ in range(limit + 10):
        sock = connect(server.address)
        sock.settimeout(3)
        sock.sendall(b"ping")
        try:
            data = sock.recv(4)
        except ConnectionResetError:
            data = b""
        except TimeoutError:
            # Blocking accept() cannot always refuse: another thread's accept() may take
            # the slot the spare descriptor frees, and then nothing can take this client
            # until a descriptor frees up. It waits in the backlog: not served, not spun on.
            waiting += 1
            sock.close()
            continue
        if data == b"ping":
            held.append(sock)
        else:
            refused += 1
            sock.close()
    assert len(held) >= limit - 15 and refused + waiting >= 5, (len(held), refused, waiting)
    before = cpu_seconds(server.pid)
    time.sleep(1.0)  # a measurement window, not synchronisation: CPU used while idle at the limit
    assert cpu_seconds(server.pid) - before < 0.3
    for sock in held[:5]:
        sock.close()
    wait_until_served(server.address)  # the server notices the closes by itself
    for sock in held[5:]:
        sock.close()
    stats = stopped_stats(server)
    assert stats["connections_accepted"] == stats["connections_closed"]
    assert stats["errors"] >= refused  # every refusal counted


# -- a protocol whose handler fails ------------------------------------------------------------

FAILING_PLUGIN = textwrap.dedent('''
    """A test protocol: echo, except that a request containing b"boom" makes the handler raise."""
    from netcore import hookimpl
    from netcore.protocol import Protocol


    def handler(request):
        if b"boom" in request:
            raise ValueError("boom requested")
        return request


    class FailingEcho(Protocol):
        def data_received(self, data):
            self.connection.submit(handler, data)


    @hookimpl
    def netcore_register_protocols(registry):
        registry.register("failing-echo", "blocking_test_failing_echo:FailingEcho", "echo that fails on boom")
''')


def test_failing_handler_closes_only_its_connection(start_server, scheme, tmp_path):
    env = module_env(tmp_path, "blocking_test_failing_echo", FAILING_PLUGIN)
    args = ["--dispatch", scheme, *SCHEMES[scheme][0], "-p", "blocking_test_failing_echo",
            "--protocol", "failing-echo"]
    server = start_server(*args, env=env)
    with connect(server.address) as victim:
        assert roundtrip(victim, b"fine") == b"fine"
        victim.sendall(b"boom")
        try:
            assert victim.recv(10) == b""  # closed, nothing echoed
        except ConnectionResetError:
            pass
    with connect(server.address) as other:  # the server goes on serving
        assert roundtrip(other, b"next") == b"next"
    stats = stopped_stats(server)
    assert stats["errors"] == 1
    assert stats["connections_accepted"] == stats["connections_closed"] == 2
    failures = server.events_named("connection.protocol_failed")
    assert len(failures) == 1, server.describe()
    assert "boom requested" in json.dumps(failures[0])  # with its traceback
