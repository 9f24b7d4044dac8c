"""The accept toolkit and the blocking accept loop, over real listeners.

The reactor channel's use of the toolkit is tested in ``test_accept_channel.py`` and,
out of descriptors, in ``test_acceptor_emfile.py``; the blocking schemes' use of it in
netcore-dispatch's ``test_blocking_schemes.py`` against real servers. Here: each part on
its own, and the out-of-descriptor outcomes of the spare in a subprocess that fills its
own descriptor table.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
import structlog
from netcore_acceptors import accept_errors
from netcore_acceptors.accept_errors import (
    EMPTY,
    FAILED,
    LOST,
    NO_FDS,
    NO_MEMORY,
    RETRY,
    TAKEN,
    RateLimitedLog,
    SpareDescriptor,
    classify,
)
from netcore_acceptors.blocking_accept import Accepting, prepare_listeners
from netcore_acceptors.listeners import close_listeners, open_listeners

TIMEOUT = 5.0


@pytest.fixture
def listeners():
    opened = []

    def open_(count: int = 1):
        got = open_listeners(["127.0.0.1:0"] * count, 16, use_systemd=False)
        opened.extend(got)
        return got

    yield open_
    close_listeners(opened)


def _connect(listener) -> socket.socket:
    return socket.create_connection(listener.sock.getsockname()[:2], timeout=TIMEOUT)


class Worker:
    """What Accepting counts for: an index and ``count(**deltas)`` (a BlockingWorker's shape)."""

    def __init__(self) -> None:
        self.index = 7
        self.counts: dict[str, int] = {}

    def count(self, **deltas: int) -> None:
        for name, delta in deltas.items():
            self.counts[name] = self.counts.get(name, 0) + delta


class Control:
    stopping: str | None = None


# -- the error table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ECONNABORTED, RETRY),
        (errno.EPROTO, RETRY),
        (errno.ECONNRESET, RETRY),
        (errno.EMFILE, NO_FDS),
        (errno.ENFILE, NO_FDS),
        (errno.ENOBUFS, NO_MEMORY),
        (errno.ENOMEM, NO_MEMORY),
        (errno.EBADF, FAILED),
        (errno.EINVAL, FAILED),
    ],
)
def test_classify(code, kind):
    assert classify(OSError(code, os.strerror(code))) == kind


def test_one_table_for_both_accept_loops():
    """The channel and the blocking loop decide with the same function, not copies of it."""
    from netcore_acceptors import blocking_accept, channel

    assert channel.classify is blocking_accept.classify is accept_errors.classify
    assert channel.SpareDescriptor is blocking_accept.SpareDescriptor is SpareDescriptor
    assert channel.RateLimitedLog is blocking_accept.RateLimitedLog is RateLimitedLog


# -- the spare descriptor ---------------------------------------------------------------------


def test_spare_takes_a_queued_connection_and_reopens(listeners):
    (listener,) = listeners()
    listener.sock.setblocking(False)
    spare = SpareDescriptor()
    try:
        assert spare.fd is not None and not os.get_inheritable(spare.fd)
        assert spare.take(listener.sock.accept) == (EMPTY, None)  # nothing queued
        assert spare.fd is not None
        with _connect(listener) as client:
            outcome, accepted = spare.take(listener.sock.accept)
            assert outcome == TAKEN and spare.fd is not None  # a descriptor was free: reopened
            sock, _peer = accepted
            with sock:
                client.sendall(b"x")
                assert sock.recv(1) == b"x"
    finally:
        spare.close()
        spare.close()  # idempotent
    assert spare.fd is None


def test_spare_reports_a_lost_slot_when_accept_fails(listeners):
    (listener,) = listeners()
    listener.sock.setblocking(False)
    listener.sock.shutdown(socket.SHUT_RDWR)  # what a stop does: accept() fails with EINVAL
    spare = SpareDescriptor()
    try:
        assert spare.take(listener.sock.accept) == (LOST, None)
        assert spare.fd is not None
    finally:
        spare.close()


OUT_OF_FDS = textwrap.dedent(
    """
    import json, os, resource, socket, sys
    from netcore_acceptors.accept_errors import SpareDescriptor

    server = socket.create_server(("127.0.0.1", 0))
    spare = SpareDescriptor()
    clients = [socket.create_connection(server.getsockname()) for _ in range(2)]
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 4, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    hoard = []
    while True:
        try:
            hoard.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    results = []
    try:
        server.accept()
    except OSError as exc:
        results.append(exc.errno)
    outcome, accepted = spare.take(server.accept)  # the slot is the spare's own
    results += [outcome, accepted, spare.fd is not None]
    os.close(spare.fd)
    spare.fd = None
    hoard.append(os.open(os.devnull, os.O_RDONLY))  # someone else took the slot
    outcome, accepted = spare.take(server.accept)
    results += [outcome, accepted, spare.fd]
    print(json.dumps(results))
    """
)


def test_spare_out_of_descriptors_refuses_then_gives_up():
    """At the limit: the queued client is refused through the spare's slot; without a spare, nothing."""
    result = subprocess.run([sys.executable, "-c", OUT_OF_FDS], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == [errno.EMFILE, "refused", None, True, "no_spare", None, None]


# -- the rate-limited log -----------------------------------------------------------------------


def test_rate_limited_log_adds_its_context_to_every_line():
    limited = RateLimitedLog(interval=60, worker=3)
    with structlog.testing.capture_logs() as logs:
        limited.warning("a.event", n=1)
        limited.warning("a.event", n=2)
    assert [(e["event"], e["worker"], e["n"]) for e in logs] == [("a.event", 3, 1)]


# -- blocking accept --------------------------------------------------------------------------


def test_prepare_listeners_blocks_one_and_not_several(listeners):
    (one,) = listeners()
    prepare_listeners([one])
    assert one.sock.gettimeout() is None
    several = listeners(2)
    prepare_listeners(several)
    assert all(listener.sock.gettimeout() == 0.0 for listener in several)


@pytest.fixture
def spare():
    spare = SpareDescriptor()
    yield spare
    spare.close()


def _accept_a_client(accepting: Accepting, listener) -> None:
    with _connect(listener) as client:
        sock, peer = accepting.accept()
        with sock:
            assert peer == client.getsockname()


def test_blocking_accept_from_one_listener_counts_the_wakeup(listeners, spare):
    (listener,) = listeners()
    prepare_listeners([listener])
    worker = Worker()
    _accept_a_client(Accepting([listener], worker, Control(), spare), listener)
    assert worker.counts == {"accept_wakeups": 1, "connections_accepted": 1}


def test_blocking_accept_over_several_listeners_polls_then_counts_the_herd(listeners, spare):
    """Two listeners: poll() for either; a wake-up another thread took first is accept_eagain."""
    first, second = listeners(2)
    prepare_listeners([first, second])
    worker = Worker()
    accepting = Accepting([first, second], worker, Control(), spare, tick=0.05)
    _accept_a_client(accepting, second)
    assert worker.counts == {"accept_wakeups": 1, "connections_accepted": 1}
    # The herd: a wake-up whose accept finds nothing (here: another accept got there first).
    assert accepting._accept_from(first) is None
    assert worker.counts["accept_eagain"] == 1 and worker.counts["accept_wakeups"] == 2


def test_blocking_accept_returns_none_once_stopped(listeners, spare):
    """A stop shuts the listener down: the thread asleep in accept() wakes and returns None."""
    (listener,) = listeners()
    prepare_listeners([listener])
    worker, control = Worker(), Control()
    accepting = Accepting([listener], worker, control, spare)
    result = []
    thread = threading.Thread(target=lambda: result.append(accepting.accept()))
    thread.start()
    control.stopping = "graceful"
    listener.sock.shutdown(socket.SHUT_RDWR)
    thread.join(TIMEOUT)
    assert not thread.is_alive() and result == [None]
    assert "connections_accepted" not in worker.counts
