"""A retiring ``prefork-blocking`` worker takes no connection that arrived after its stop.

A worker retired by HUP used to go on accepting after its in-flight client -- every
connection its final accept found queued, up to 4096 of them, each one new and served
by the old code with ``Connection: close`` -- for as long as the new workers were busy:
seconds after ``master.reloaded`` ("the new generation serves alone"). It may take only
what was queued when it was told to stop (prefork's reactor worker does the same).

The scene, with one worker per generation and real processes, signals and sockets: the
old worker is held by a request it has not finished reading, HUP retires it, the new
worker is held the same way, and fresh connections queue meanwhile. The old worker then
finishes its request; the queued connections must wait for, and be answered by, the
new worker.
"""

from __future__ import annotations

import os
import signal
import socket

from deployment_testing import APP_ENV
from netcore.testing.server_process import ServerProcess

# Headers not ended: the worker serving it sits in recv() until END arrives.
PARTIAL = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
END = b"\r\n"
FULL = PARTIAL + END


def _connect(address) -> socket.socket:
    return socket.create_connection(address, timeout=20)


def _answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read a response to EOF (every request says Connection: close): its head and body."""
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    sock.close()
    head, _, body = b"".join(parts).partition(b"\r\n\r\n")
    return head, body


def _pid(body: bytes) -> int:
    return int(body.split()[-1])  # whoami: "REMOTE_ADDR PID"


def test_a_worker_retired_by_hup_leaves_new_connections_to_the_new_generation():
    # The held requests must outlive a slow HUP on a loaded machine: no 408 for them.
    # Debug: the retiring worker says when its stop has begun (worker.draining).
    with ServerProcess("--protocol", "http", "--dispatch", "prefork-blocking", "--workers", "1",
                       "--header-timeout", "300", "--log-level", "debug",
                       "--app", "deployment_apps:whoami", env=APP_ENV) as server:
        old = server.wait_events("worker.started", 1)[0]["pid"]
        held_old = _connect(server.address)
        held_old.sendall(PARTIAL)  # the old worker is busy with this until END
        os.kill(server.pid, signal.SIGHUP)
        server.wait_event("master.reloaded", 30)  # the old worker has been sent TERM
        new = server.wait_events("worker.started", 2, timeout=30)[1]["pid"]
        # Its stop has begun, with nothing queued: the new worker accepts everything.
        assert server.wait_event("worker.draining", 30, pid=old)["may_take"] == [0]
        probe = _connect(server.address)
        probe.sendall(FULL)
        assert _pid(_answer(probe)[1]) == new
        held_new = _connect(server.address)
        held_new.sendall(PARTIAL)  # now the new one is busy too (it is the only one accepting)
        fresh = [_connect(server.address) for _ in range(3)]  # queued: nobody is free
        for sock in fresh:
            sock.sendall(FULL)
        held_old.sendall(END)
        head, body = _answer(held_old)
        assert _pid(body) == old and b"connection: close" in head.lower()  # its in-flight request
        server.wait_event("worker.exited", 30, pid=old)
        held_new.sendall(END)
        assert _pid(_answer(held_new)[1]) == new
        assert [_pid(_answer(sock)[1]) for sock in fresh] == [new] * 3
        assert server.stop() == 0
