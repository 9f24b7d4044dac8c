"""The accept channel on a real loop and a real poller (level- and edge-triggered)."""

from __future__ import annotations

import os
import socket
import time

import pytest
import structlog
from acceptor_testing import open_fds, run_once
from netcore.reactor.poller import EVENT_READ, PollerLimitError
from netcore.stats import WorkerStats
from netcore_acceptors.accept_errors import RateLimitedLog
from netcore_acceptors.channel import AcceptChannel
from netcore_acceptors.listeners import close_listeners, open_listeners


@pytest.fixture
def listener():
    (listener,) = open_listeners(["127.0.0.1:0"], 512, use_systemd=False)
    yield listener
    close_listeners([listener])


def _port(listener) -> int:
    return listener.sock.getsockname()[1]


class Collect:
    """An ``on_connection`` that keeps what it is given (and closes it all at the end)."""

    def __init__(self) -> None:
        self.accepted: list[tuple[socket.socket, object]] = []

    def __call__(self, sock: socket.socket, peer) -> None:
        self.accepted.append((sock, peer))

    def close(self) -> None:
        for sock, _peer in self.accepted:
            sock.close()


@pytest.fixture
def collect():
    c = Collect()
    yield c
    c.close()


@pytest.fixture
def clients():
    made: list[socket.socket] = []

    def connect(address, n: int = 1, family=socket.AF_INET) -> list[socket.socket]:
        new = []
        for _ in range(n):
            sock = socket.socket(family)
            made.append(sock)
            sock.settimeout(5)
            sock.connect(address)  # on loopback the handshake is done when this returns
            new.append(sock)
        return new

    yield connect
    for sock in made:
        sock.close()


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_batch_of_50_in_one_wakeup(loop, listener, collect, clients):
    stats = WorkerStats()
    channel = AcceptChannel(loop, listener, collect, stats)
    clients(("127.0.0.1", _port(listener)), 50)
    run_once(loop)
    assert len(collect.accepted) == 50
    assert (stats.accept_wakeups, stats.accept_eagain, stats.errors) == (1, 0, 0)
    # The accepted sockets are real and connected to our clients.
    assert {peer[0] for _sock, peer in collect.accepted} == {"127.0.0.1"}
    channel.close()


def test_batch_limit_applies_only_to_level_triggered(loop, listener, collect, clients):
    stats = WorkerStats()
    channel = AcceptChannel(loop, listener, collect, stats, max_batch=8)
    clients(("127.0.0.1", _port(listener)), 20)
    run_once(loop)
    if loop.poller.edge_triggered:
        # No further edge would come for the 12 left: all must be taken now.
        assert len(collect.accepted) == 20
    else:
        assert len(collect.accepted) == 8
        for _ in range(10):  # bounded: the poller keeps reporting the listener
            if len(collect.accepted) == 20:
                break
            run_once(loop)
        assert len(collect.accepted) == 20
        assert stats.accept_wakeups == 3
    assert stats.errors == 0
    channel.close()


def test_herd_counts_the_wakeup_that_found_nothing(make_loop, listener, collect, clients):
    """Two workers' loops watch one listener; one connection wakes both, one gets EAGAIN."""
    loop_a, loop_b = make_loop(), make_loop()
    stats_a, stats_b = WorkerStats(worker=0), WorkerStats(worker=1)
    channel_a = AcceptChannel(loop_a, listener, collect, stats_a)
    channel_b = AcceptChannel(loop_b, listener, collect, stats_b)
    clients(("127.0.0.1", _port(listener)), 1)
    # Both pollers report the listener before either accepts: the herd.
    events_a = [e for e in loop_a.poller.poll(0) if e[0] == listener.fileno()]
    events_b = [e for e in loop_b.poller.poll(0) if e[0] == listener.fileno()]
    assert events_a and events_b
    channel_a.handle_read(events_a[0][1])
    channel_b.handle_read(events_b[0][1])
    assert len(collect.accepted) == 1
    assert (stats_a.accept_wakeups, stats_a.accept_eagain) == (1, 0)
    assert (stats_b.accept_wakeups, stats_b.accept_eagain) == (1, 1)
    channel_a.close()
    channel_b.close()


def test_on_connection_failing_closes_that_socket_only(loop, listener, clients):
    stats = WorkerStats()
    kept: list[socket.socket] = []
    calls = 0

    def on_connection(sock, peer):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("dispatcher bug")
        kept.append(sock)

    channel = AcceptChannel(loop, listener, on_connection, stats)
    address = ("127.0.0.1", _port(listener))
    with structlog.testing.capture_logs() as logs:
        (first,) = clients(address)
        run_once(loop)
        (second,) = clients(address)
        run_once(loop)
    try:
        assert _closed_by_server(first)
        assert len(kept) == 1 and loop.is_registered(listener.fileno())
        assert stats.errors == 1
        failures = [e for e in logs if e["event"] == "accept.on_connection_failed"]
        assert len(failures) == 1
        assert failures[0]["exc_info"] is True and failures[0]["log_level"] == "warning"
    finally:
        for sock in kept:
            sock.close()
        channel.close()


def test_poller_limit_refuses_the_connection_with_a_hint(loop, listener, clients):
    stats = WorkerStats()

    def on_connection(sock, peer):
        raise PollerLimitError(f"fd {sock.fileno()} is past FD_SETSIZE")

    channel = AcceptChannel(loop, listener, on_connection, stats)
    address = ("127.0.0.1", _port(listener))
    with structlog.testing.capture_logs() as logs:
        a, b, c = clients(address, 3)
        run_once(loop)
    assert all(_closed_by_server(s) for s in (a, b, c))
    assert stats.errors == 3
    warnings = [e for e in logs if e["event"] == "accept.poller_limit"]
    assert len(warnings) == 1  # rate-limited: three refusals, one line
    assert "poll or epoll" in warnings[0]["hint"]
    assert warnings[0]["poller"] == loop.poller.name
    channel.close()


def test_unix_peer_is_the_socket_path(loop, tmp_path, collect):
    path = str(tmp_path / "peer.sock")
    (listener,) = open_listeners([f"unix:{path}"], 16, use_systemd=False)
    try:
        channel = AcceptChannel(loop, listener, collect, WorkerStats())
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(path)
            run_once(loop)
            assert [peer for _sock, peer in collect.accepted] == [path]
        channel.close()
    finally:
        close_listeners([listener])


def test_close_unregisters_and_leaves_the_listener_open(loop, listener, collect, clients):
    before = open_fds()
    channel = AcceptChannel(loop, listener, collect, WorkerStats())
    assert loop.is_registered(listener.fileno())
    assert len(open_fds() - before) == 1  # the spare descriptor
    channel.close()
    channel.close()  # idempotent
    assert not loop.is_registered(listener.fileno())
    assert open_fds() == before
    assert listener.sock.fileno() != -1
    (client,) = clients(("127.0.0.1", _port(listener)))  # still queued by the kernel
    run_once(loop)
    assert collect.accepted == []
    channel.handle_read(EVENT_READ)  # a stale report after close is ignored
    assert collect.accepted == []


def test_rate_limited_log_reports_what_it_suppressed():
    limited = RateLimitedLog(interval=0.05)
    with structlog.testing.capture_logs() as logs:
        assert limited.warning("x.event", n=1) is True
        assert limited.warning("x.event", n=2) is False
        assert limited.warning("x.event", n=3) is False
        assert limited.warning("y.event") is True  # another kind has its own budget
        time.sleep(0.06)  # sleep() waits at least this long, so the interval has passed
        assert limited.warning("x.event", n=4) is True
    assert [(e["event"], e.get("n"), e.get("suppressed")) for e in logs] == [
        ("x.event", 1, None),
        ("y.event", None, None),
        ("x.event", 4, 2),
    ]


# select.poll's register() silently replaces an entry, so only epoll can fail here.
@pytest.mark.parametrize("poller_name", ["epoll-et"])
def test_failed_registration_leaks_nothing(loop, listener, collect):
    channel = AcceptChannel(loop, listener, collect, WorkerStats())
    before = open_fds()
    with pytest.raises(FileExistsError):
        AcceptChannel(loop, listener, collect, WorkerStats())
    assert open_fds() == before  # the second channel's spare was closed again
    channel.close()


def test_connections_after_a_drained_batch_bring_a_new_wakeup(loop, listener, collect, clients):
    """After a wake-up drains to EAGAIN, a later connection is reported again (ET's edge)."""
    stats = WorkerStats()
    channel = AcceptChannel(loop, listener, collect, stats)
    address = ("127.0.0.1", _port(listener))
    for round_ in (1, 2, 3):
        clients(address, 2)
        run_once(loop)
        assert len(collect.accepted) == 2 * round_
    assert (stats.accept_wakeups, stats.accept_eagain) == (3, 0)
    channel.close()


def test_ipv6_listener(loop, collect, clients):
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind [::1] here: {exc}")
    (listener,) = open_listeners(["[::1]:0"], 16, use_systemd=False)
    try:
        channel = AcceptChannel(loop, listener, collect, WorkerStats())
        clients(("::1", _port(listener)), 2, family=socket.AF_INET6)
        run_once(loop)
        assert [peer[0] for _sock, peer in collect.accepted] == ["::1", "::1"]
        channel.close()
    finally:
        close_listeners([listener])


def test_spare_descriptor_is_cloexec(loop, listener, collect):
    before = open_fds()
    channel = AcceptChannel(loop, listener, collect, WorkerStats())
    (spare,) = open_fds() - before
    assert os.get_inheritable(spare) is False
    assert os.readlink(f"/proc/self/fd/{spare}") == os.devnull
    channel.close()


def test_closing_from_on_connection_ends_the_batch(loop, listener, clients):
    """A dispatcher at its connection limit stops accepting from inside on_connection."""
    stats = WorkerStats()
    kept: list[socket.socket] = []
    channel = None

    def on_connection(sock, peer):
        kept.append(sock)
        if len(kept) == 2:
            channel.close()

    channel = AcceptChannel(loop, listener, on_connection, stats)
    clients(("127.0.0.1", _port(listener)), 5)
    run_once(loop)
    try:
        assert len(kept) == 2  # the other three stay queued for other workers
        assert not loop.is_registered(listener.fileno())
    finally:
        for sock in kept:
            sock.close()
