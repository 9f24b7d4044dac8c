"""The accept mutex with a worker whose loop is held in a handler: the others take new connections.

A prefork worker runs its handlers inline, so a slow request (a WSGI app waiting on a
database) holds its loop. Such a loop cannot accept, so it must not keep the accept
lock, nor take it when it comes round: the lock goes to a worker that is free. Each
test holds one worker's loop in a real handler (blocked reading a pipe until the test
writes to it), then times new connections, each of which must be answered by another
worker well within the time the loop stays held. The parent reads who holds the lock
from the kernel (``F_GETLK``).
"""

from __future__ import annotations

import os
import select
import socket
import time

import pytest
from herd_harness import PATIENCE, Herd
from netcore.reactor.poller import EVENT_READ

pytest.importorskip("netcore_pollers.epoll_poller")
pytestmark = [
    pytest.mark.skipif(not hasattr(select, "epoll"), reason="the harness's default poller is epoll"),
    pytest.mark.usefixtures("all_children_reaped"),
]

#: How long each new connection may take to be answered while a worker's loop is held.
BOUND = 0.5
#: How long a client waits for its answer before the test calls it stalled (six times
#: the bound): the test releases the held loop only after its new connections were
#: answered or stalled.
STALL = 3.0
#: New connections made while the loop is held.
FRESH = 10


@pytest.fixture
def release():
    """A pipe: a worker asked to hold its loop reads one byte from it; the test writes it."""
    reader, writer = os.pipe()
    yield reader, writer
    os.close(reader)
    os.close(writer)


def holding_server(release_fd: int):
    """Keep-alive connections, one request a byte: ``p`` is answered with the worker's pid
    at once; ``h`` with ``h`` at once, then the loop is held in the handler until the test
    writes to the release pipe, then the pid."""

    def serve(loop, stats):
        def on_connection(sock: socket.socket, _peer) -> None:
            stats.connections_accepted += 1
            sock.setblocking(False)
            fd = sock.fileno()

            def on_read(_mask: int) -> None:
                try:
                    data = sock.recv(64)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if not data:
                    loop.unregister(fd)
                    sock.close()
                    stats.connections_closed += 1
                    return
                for request in data:
                    if request == ord("h"):
                        sock.sendall(b"h\n")
                        sock.setblocking(True)
                        os.read(release_fd, 1)  # the loop is held here
                        sock.setblocking(False)
                    sock.sendall(f"{os.getpid()}\n".encode())

            loop.register(fd, EVENT_READ, on_read)

        return on_connection

    return serve


def read_line(sock: socket.socket, timeout: float) -> bytes:
    """One answer, or a TimeoutError after ``timeout`` seconds (a byte at a time: the
    next answer may follow at once)."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"the worker closed the connection (got {data!r})")
        data += chunk
    return data.rstrip(b"\n")


def ask_pid(sock: socket.socket) -> int:
    sock.sendall(b"p")
    return int(read_line(sock, PATIENCE))


def one_connection_per_worker(herd: Herd) -> tuple[dict[int, socket.socket], int]:
    """Open connections until every worker has one (kept open; the others are closed).

    Returns the kept ones by pid, and how many were opened.
    """
    pids = {worker.pid for worker in herd.workers}
    kept: dict[int, socket.socket] = {}
    opened = 0
    deadline = time.monotonic() + PATIENCE
    for _ in range(200):  # the lock moves after every accept: a few tries reach every worker
        if set(kept) == pids or time.monotonic() > deadline:
            break
        sock = socket.create_connection(herd.address, timeout=PATIENCE)
        opened += 1
        pid = ask_pid(sock)
        if pid in kept:
            sock.close()
        else:
            kept[pid] = sock
    assert set(kept) == pids, (sorted(kept), sorted(pids))
    return kept, opened


def lock_holder(herd: Herd, ping: socket.socket) -> int:
    """The pid holding the accept lock once it has settled with one worker.

    Between two holders the lock is free for an instant: each look is paced by a
    round trip to a worker, not by a sleep.
    """
    lock = herd.acceptor.accept_lock
    pids = {worker.pid for worker in herd.workers}
    deadline = time.monotonic() + PATIENCE
    for _ in range(2000):
        holder = lock.holder_pid()
        if holder in pids or time.monotonic() > deadline:
            break
        ask_pid(ping)
    assert holder in pids, (holder, sorted(pids))
    return holder


def hold_loop(sock: socket.socket) -> None:
    """Have the worker behind ``sock`` hold its loop in a handler (until the release)."""
    sock.sendall(b"h")
    assert read_line(sock, PATIENCE) == b"h"


def fresh_connections(herd: Herd, held_pid: int) -> list[tuple[int, float]]:
    """``FRESH`` new connections, one after another: (who answered, in how many seconds)."""
    answers = []
    for i in range(FRESH):
        started = time.monotonic()
        with socket.create_connection(herd.address, timeout=STALL) as sock:
            sock.sendall(b"p")
            try:
                pid = int(read_line(sock, STALL))
            except TimeoutError:
                raise AssertionError(
                    f"new connection {i} not answered within {STALL} s while worker {held_pid}'s loop "
                    f"was held; answered before it: {answers}"
                ) from None
        answers.append((pid, round(time.monotonic() - started, 3)))
    return answers


@pytest.mark.parametrize("held", ["holder", "waiter"])
def test_a_held_loop_leaves_new_connections_to_a_free_worker(release, held):
    """The held worker holds the lock when its loop is held, or is queued for it."""
    release_r, release_w = release
    with Herd("mutex", 2, serve=holding_server(release_r)) as herd:
        kept, opened = one_connection_per_worker(herd)
        try:
            holder = lock_holder(herd, next(iter(kept.values())))
            held_pid = holder if held == "holder" else next(pid for pid in kept if pid != holder)
            hold_loop(kept[held_pid])
            try:
                answers = fresh_connections(herd, held_pid)
            finally:
                os.write(release_w, b"x")
            assert int(read_line(kept[held_pid], PATIENCE)) == held_pid  # its held request, answered now
            assert ask_pid(kept[held_pid]) == held_pid  # and it serves on
        finally:
            for sock in kept.values():
                sock.close()
        stats = herd.stop()
    assert all(pid != held_pid for pid, _ in answers), answers
    assert all(seconds < BOUND for _, seconds in answers), answers
    assert sum(s.connections_accepted for s in stats) == opened + FRESH
    assert sum(s.accept_eagain for s in stats) <= 1, stats


def test_a_retiring_worker_held_in_a_handler_takes_no_new_connection(release):
    """HUP's case: the only worker, holding the lock, is told to stop while its loop is
    held; the new generation starts. Every new connection goes to the new worker at once,
    and the old one, once free, stops without accepting any."""
    release_r, release_w = release
    with Herd("mutex", 1, serve=holding_server(release_r)) as herd:
        old = herd.workers[0]
        with socket.create_connection(herd.address, timeout=PATIENCE) as busy:
            assert ask_pid(busy) == old.pid
            assert lock_holder(herd, busy) == old.pid
            hold_loop(busy)
            try:
                os.write(old.control_fd, b"S")  # told to stop: it reads this once its loop is free
                new = herd.fork(1)
                answers = fresh_connections(herd, old.pid)
            finally:
                os.write(release_w, b"x")
            assert int(read_line(busy, PATIENCE)) == old.pid  # its held request, answered
            old_stats = herd.stop_worker_reported(old)
        herd.stop()
    assert all(pid == new.pid for pid, _ in answers), answers
    assert all(seconds < BOUND for _, seconds in answers), answers
    assert old_stats.connections_accepted == 1, old_stats  # the held connection, nothing after
    assert new.stats.connections_accepted == FRESH
