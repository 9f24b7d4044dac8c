"""Scheme 1, fork per connection: the parent accepts, a child process serves each client.

The classic Unix server (inetd, the first Apache): the parent's only job is ``accept()``;
for every connection it forks, the child serves that one client with plain blocking
calls (the iterative server's code) and exits, and the parent closes its copy of the
socket and accepts the next. Clients are isolated from each other -- a crash or a leak
in one child touches nobody else -- at the price of a ``fork()`` per connection (cheap
with copy-on-write, but far from free: compare ``threading`` and ``prefork-blocking`` in
``bench/``), and a process per concurrent client.

The parent is a :class:`~netcore_dispatch.supervisor.Supervisor`, as the prefork master
is: signals are queued and handled by its loop, every exited child is reaped at once
(no zombies), a stop escalates to SIGKILL. What it adds:

* **Accepting**, on the listeners, and a fork per connection.
* **A bound**: at ``max_connections`` live children the parent stops watching the
  listeners, so further clients wait in the backlog rather than cost a process each.
* **Stopping**: TERM stops accepting and passes TERM on to every child (each finishes
  its client within ``graceful_timeout``, as the blocking schemes do); children still
  alive after that are killed. INT/QUIT pass QUIT on and kill after a moment. HUP,
  TTIN and TTOU are logged and ignored: there is no pool of workers to replace or resize.
* **Counters**: the parent counts accepts; each child sends its counters (bytes,
  requests, ...) through a status pipe shared by all children as it exits -- one short
  line, written atomically -- and the parent adds them up: ``server.stopped`` reports
  one worker, the parent, with the totals of every child that ever ran.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import time
from typing import Any

import structlog
from netcore.dispatch import Dispatcher
from netcore.stats import WorkerStats

from netcore_dispatch.blocking import BlockingWorker, StopControl, serve_connection
from netcore_dispatch.supervisor import Child, Supervisor

log = structlog.get_logger("netcore.dispatch")

#: Connections accepted per wake-up of a listener at most (the rest on the next turn).
MAX_BATCH = 64
#: What a child's counters add to the parent's.
_CHILD_COUNTERS = ("connections_closed", "bytes_received", "bytes_sent", "requests", "errors")


class ForkingDispatcher(Dispatcher):
    multiprocess = True
    uses_workers = False  # one accepting parent and a child per client, whatever --workers says

    def serve(self, server) -> str:
        return ForkingParent(server).run()


class ForkingParent(Supervisor):
    """The accepting parent: one per server, in the main thread."""

    signal_ignored_reason = "forking has no worker pool: every connection gets a new process"

    def __init__(self, server) -> None:
        super().__init__(server)
        self.index = 0  # what hooks and worker.started see
        self.pid = os.getpid()
        self.stats = WorkerStats(worker=0, pid=self.pid)
        self.max_children = int(server.config.max_connections)
        self._watching = False
        self._stats_w = -1

    # -- running -----------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        _pipe, self._stats_w = self.open_status()  # shared by every child: owner None
        for listener in self.server.listeners:
            listener.sock.setblocking(False)
        self.server.worker_started(self)

    def teardown(self) -> None:
        self.server.worker_stopping(self)
        super().teardown()  # kills and reaps what is left, then reads the last counters
        os.close(self._stats_w)
        self.server.report_worker_stats(self.stats)

    def supervise(self, now: float) -> None:
        self._watch(not self.stopping and len(self.children) < self.max_children)

    def stop_overdue(self) -> None:
        log.warning("worker.graceful_timeout", children=len(self.children), action="killed")
        super().stop_overdue()

    def _watch(self, on: bool) -> None:
        if on == self._watching:
            return
        self._watching = on
        assert self.selector is not None
        for listener in self.server.listeners:
            if on:
                self.selector.register(listener.sock, selectors.EVENT_READ, self._accept)
            else:
                self.selector.unregister(listener.sock)

    # -- accepting ---------------------------------------------------------------------
    def _accept(self, sock: socket.socket) -> None:
        stats = self.stats
        stats.accept_wakeups += 1
        for attempt in range(MAX_BATCH):
            if len(self.children) >= self.max_children or self.stopping:
                return
            try:
                conn, peer = sock.accept()
            except BlockingIOError:
                if attempt == 0:
                    stats.accept_eagain += 1
                return
            except OSError as exc:
                stats.errors += 1
                log.warning("accept.failed", error=str(exc))
                return
            stats.connections_accepted += 1
            self._fork(conn, peer)

    def _fork(self, conn: socket.socket, peer: Any) -> None:
        try:
            pid = self.fork(lambda: self._serve_child(conn, peer))
        except OSError as exc:
            conn.close()
            self.stats.connections_closed += 1
            self.stats.errors += 1
            log.warning("connection.refused", reason="fork failed", error=str(exc))
            return
        conn.close()  # the child's now
        self.children[pid] = Child(pid=pid, started_at=time.monotonic())

    def shed(self) -> None:
        # The listeners stay the parent's: a child holding them would keep the port
        # bound after the parent is gone.
        for listener in self.server.listeners:
            listener.sock.close()

    def _serve_child(self, conn: socket.socket, peer: Any) -> int:
        """In the child, once it has shed the parent: serve this one client, report, exit 0."""
        server = self.server
        control = StopControl(server)
        control.listeners = []
        worker = BlockingWorker(0)
        control.start(server)
        try:
            serve_connection(server, control, worker, conn, peer)
        finally:
            control.wait_threads()
            control.close()
        os.write(self._stats_w, json.dumps(
            {name: getattr(worker.stats, name) for name in _CHILD_COUNTERS}).encode() + b"\n")
        return 0

    def handle_hup(self) -> None:
        """Every child forks from this parent, with its TLS context: a HUP reads the
        certificate files again here (a bad file keeps the running one), so the next
        clients get the new certificate. Nothing else is re-read: a restart does that."""
        if self.server.has_tls():
            self.server.reload_in_place(signal.SIGHUP)
        else:
            log.info("master.signal_ignored", signal="SIGHUP", reason=self.signal_ignored_reason)

    # -- children ----------------------------------------------------------------------
    def child_exited(self, child: Child, status: int) -> None:
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            self.server.worker_exited(child.pid, 0, status)  # only the unusual ones: not one line per client

    def status_message(self, _owner: None, message: dict | None) -> None:
        if message is None:
            return
        stats = self.stats
        for name in _CHILD_COUNTERS:
            setattr(stats, name, getattr(stats, name) + int(message.get(name, 0)))
