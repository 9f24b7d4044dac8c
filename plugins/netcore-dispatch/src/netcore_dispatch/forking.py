"""Scheme 1, fork per connection: the parent accepts, a child process serves each client.

The classic Unix server (inetd, the first Apache): the parent's only job is ``accept()``;
for every connection it forks, the child serves that one client with plain blocking
calls (the iterative server's code) and exits, and the parent closes its copy of the
socket and accepts the next. Clients are isolated from each other -- a crash or a leak
in one child touches nobody else -- at the price of a ``fork()`` per connection (cheap
with copy-on-write, but far from free: compare ``threading`` and ``prefork-blocking`` in
``bench/``), and a process per concurrent client.

What the parent owns here:

* **No zombies.** Every exited child is reaped with ``waitpid(WNOHANG)`` as soon as
  SIGCHLD wakes the parent (the handler only queues; a wake-up fd makes ``poll``
  return) and once per loop turn besides.
* **A bound**: at ``max_connections`` live children the parent stops watching the
  listeners, so further clients wait in the backlog rather than cost a process each.
* **Stopping**: TERM stops accepting and passes TERM on to every child (each finishes
  its client within ``graceful_timeout``, as the blocking schemes do); children still
  alive after that are killed. INT/QUIT pass QUIT on and kill after a moment.
* **Counters**: the parent counts accepts; each child sends its counters (bytes,
  requests, ...) through a pipe shared by all children as it exits -- one short line,
  written atomically -- and the parent adds them up: ``server.stopped`` reports one
  worker, the parent, with the totals of every child that ever ran.
"""

from __future__ import annotations

import collections
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
from netcore_dispatch.master import KILL_GRACE, STOP_MARGIN, SignalQueue
from netcore_dispatch.worker_link import flush_stdio

log = structlog.get_logger("netcore.dispatch")

#: Connections accepted per wake-up of a listener at most (the rest on the next turn).
MAX_BATCH = 64
#: What a child's counters add to the parent's.
_CHILD_COUNTERS = ("connections_closed", "bytes_received", "bytes_sent", "requests", "errors")
_BLOCK_AT_FORK = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD, signal.SIGHUP,
                  signal.SIGTTIN, signal.SIGTTOU}


class ForkingDispatcher(Dispatcher):
    name = "forking"
    scheme = 1
    uses_poller = False
    multiprocess = True

    def serve(self, server) -> str:
        return ForkingParent(server).run()


class ForkingParent(SignalQueue):
    """The accepting parent: one per server, in the main thread."""

    def __init__(self, server) -> None:
        self.server = server
        self.index = 0  # what hooks and worker.started see
        self.pid = os.getpid()
        self.stats = WorkerStats(worker=0, pid=self.pid)
        self.children: dict[int, float] = {}
        self.max_children = int(server.config.max_connections)
        self.graceful_timeout = float(server.config.graceful_timeout)
        self.stopping: str | None = None
        self.reason = "stopped"
        self.deadline: float | None = None
        self._queue: collections.deque = collections.deque()
        self._watching = False
        self._buffer = b""

    # -- running -----------------------------------------------------------------------
    def run(self) -> str:
        server = self.server
        self.selector = selectors.PollSelector()  # nothing for the children to inherit
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._wake = (wake_r, wake_w)
        self._stats_r, self._stats_w = os.pipe()
        os.set_blocking(self._stats_r, False)
        self.selector.register(wake_r, selectors.EVENT_READ, self._drain_wake)
        self.selector.register(self._stats_r, selectors.EVENT_READ, self._read_stats)
        for listener in server.listeners:
            listener.sock.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        previous = {signal.SIGCHLD: signal.signal(signal.SIGCHLD, self._on_signal)}
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            previous[signum] = signal.signal(signum, self._on_signal)
        server.set_stop_handler(self._on_stop)
        server.worker_started(self)
        try:
            while self._turn():
                pass
        finally:
            server.worker_stopping(self)
            for pid in list(self.children):
                _kill(pid, signal.SIGKILL)
            while self.children:
                self._reap(block=True)
            self._read_stats()
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            signal.set_wakeup_fd(previous_wakeup)
            self.selector.close()
            wake_r.close()
            wake_w.close()
            os.close(self._stats_r)
            os.close(self._stats_w)
            server.report_worker_stats(self.stats)
        return self.reason

    def _turn(self) -> bool:
        self._handle_queue()
        self._reap()
        now = time.monotonic()
        if self.stopping:
            if not self.children:
                return False
            if self.deadline is not None and now >= self.deadline:
                self.deadline = None
                log.warning("worker.graceful_timeout", children=len(self.children), action="killed")
                for pid in self.children:
                    _kill(pid, signal.SIGKILL)
        self._watch(not self.stopping and len(self.children) < self.max_children)
        timeout = None if self.deadline is None else max(0.0, self.deadline - now)
        for key, _mask in self.selector.select(timeout if timeout is not None else 1.0):
            key.data(key.fileobj)
        return True

    def _watch(self, on: bool) -> None:
        if on == self._watching:
            return
        self._watching = on
        for listener in self.server.listeners:
            if on:
                self.selector.register(listener.sock, selectors.EVENT_READ, self._accept)
            else:
                self.selector.unregister(listener.sock)

    # -- signals -----------------------------------------------------------------------
    def _handle_queue(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item[0] == "signal":
                if item[1] in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
                    log.info("master.signal_ignored", signal=signal.Signals(item[1]).name,
                             reason="forking has no worker pool: every connection gets a new process")
                continue
            _, reason, graceful = item
            if self.stopping == "fast" or (self.stopping and graceful):
                continue
            self.stopping = "graceful" if graceful else "fast"
            self.reason = reason
            self.deadline = time.monotonic() + (self.graceful_timeout + STOP_MARGIN if graceful else KILL_GRACE)
            for pid in self.children:
                _kill(pid, signal.SIGTERM if graceful else signal.SIGQUIT)

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
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCK_AT_FORK)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            conn.close()
            self.stats.connections_closed += 1
            self.stats.errors += 1
            log.warning("connection.refused", reason="fork failed", error=str(exc))
            return
        if pid == 0:
            self._child(conn, peer, mask)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        conn.close()  # the child's now
        self.children[pid] = time.monotonic()

    def _child(self, conn: socket.socket, peer: Any, mask: Any) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(signum, signal.SIG_DFL if signum == signal.SIGCHLD else signal.SIG_IGN)
            server = self.server
            server.forked()
            # The listeners stay the parent's: a child holding them would keep the port
            # bound after the parent is gone.
            for listener in server.listeners:
                listener.sock.close()
            self.selector.close()
            for sock in self._wake:
                sock.close()
            os.close(self._stats_r)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report and exit; never return into the parent's code
            try:
                log.error("worker.failed", pid=os.getpid(), exc_info=exc)
            except BaseException:  # noqa: BLE001
                pass
        finally:
            flush_stdio()
            os._exit(code)

    # -- children ----------------------------------------------------------------------
    def _reap(self, block: bool = False) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if self.children.pop(pid, None) is not None:
                if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                    self.server.worker_exited(pid, 0, status)  # only the unusual ones: not one line per client
            if block:
                return

    def _read_stats(self, _fd: Any = None) -> None:
        while True:
            try:
                data = os.read(self._stats_r, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            *lines, self._buffer = (self._buffer + data).split(b"\n")
            stats = self.stats
            for line in lines:
                try:
                    counts = json.loads(line)
                except ValueError:
                    continue
                for name in _CHILD_COUNTERS:
                    setattr(stats, name, getattr(stats, name) + int(counts.get(name, 0)))


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
