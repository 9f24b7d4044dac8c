"""The master process of ``prefork`` and ``prefork-blocking``: gunicorn's arbiter, in small.

The master never runs the protocol. The server has bound the listeners before
:meth:`Master.run`; the master forks ``--workers`` processes, one per *slot* (0..N-1),
and from then on only watches them:

* **Signals are queued, not acted on in the handler.** Handlers append to a deque and the
  C-level handler writes to a wake-up socket (``signal.set_wakeup_fd``) that the master's
  ``poll`` watches, so each signal is handled by the main loop with nothing half done.
  TERM: graceful stop (workers get TERM: stop accepting, finish in-flight work within
  ``--graceful-timeout``; then SIGKILL). INT/QUIT: fast (workers get QUIT; SIGKILL after
  :data:`KILL_GRACE`). HUP: a new *generation* -- a new worker per slot, and each old one
  is sent TERM only once its replacement reports ready, so there is never a moment with
  nobody accepting, and if the new workers cannot start the old ones go on serving.
  TTIN/TTOU: one slot more or less (the highest slot goes).
* **A dead worker is replaced**, in the same slot -- at once if it had been running a
  while, else after a back-off doubling from :data:`BACKOFF_FIRST` to
  :data:`BACKOFF_MAX` seconds: a worker that cannot even start (a protocol failing in
  the child) costs a fork every few seconds and a log line each, not a fork bomb.
* **Heartbeats** (see :mod:`netcore_dispatch.worker_link`): a worker silent for
  ``--timeout`` seconds gets SIGABRT (it logs its stack and exits), then SIGKILL after
  :data:`KILL_GRACE`; the kernel closes its sockets, so its clients see their
  connections closed rather than hanging; a replacement starts at once.
* **max-requests**: a worker that asks to be recycled is replaced like a HUP'd one --
  replacement first, then a graceful TERM -- so no accepted connection is reset.
* Every worker's exit is reaped (``waitpid(WNOHANG)`` on each SIGCHLD wake-up and each
  loop turn: no zombies) and announced (``worker.exited``); its counters, sent through
  its status pipe as it exits, go into ``server.stopped``. The master closes every
  descriptor of a worker when it reaps it, and a new worker closes every master-side
  descriptor it inherited, so nothing accumulates across restarts.

What a worker runs is the *program*'s business (``prefork``: a reactor;
``prefork-blocking``: a thread blocking in accept): ``program.run(server, slot,
listeners, link) -> exit status``, in the child. The acceptor is consulted at the edges
(:meth:`Acceptor.listeners_for_worker` before each fork, ``worker_forked`` in the child
after it, ``retire_slot`` when TTOU removes a slot for good).
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import attrs
import structlog
from netcore.stats import WorkerStats

from netcore_dispatch.worker_link import BOOT_ERROR, MasterLink, flush_stdio, request_limit

if TYPE_CHECKING:
    from netcore.acceptor import Listener
    from netcore.server import Server

log = structlog.get_logger("netcore.master")

#: Seconds between SIGABRT (heartbeat timeout) or QUIT (fast stop) and SIGKILL.
KILL_GRACE = 1.0
#: After ``graceful_timeout`` a worker has this much longer to exit before SIGKILL (it
#: aborts its own connections at ``graceful_timeout``; this covers its exit).
STOP_MARGIN = 1.0
#: A worker that ran this long after reporting ready did not crash-loop: restart at once.
STABLE_AFTER = 2.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
#: Most worker processes TTIN may reach (the ``workers`` setting's maximum).
MAX_WORKERS = 1024
#: Signals the master handles itself (stop signals go through the server's handler).
MASTER_SIGNALS = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)
#: Blocked around fork, so that no handler runs in the child before it has reset them.
_BLOCK_AT_FORK = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, *MASTER_SIGNALS}

# Worker states, as the master sees them.
SERVING = "serving"      # accepting (or starting to)
RETIRING = "retiring"    # sent TERM: replaced (HUP, max-requests, TTOU) or the server stops
KILLING = "killing"      # sent SIGABRT/QUIT; SIGKILL at kill_at


@attrs.define(eq=False)
class WorkerProcess:
    """One worker process, as the master tracks it."""

    pid: int
    slot: int
    generation: int
    status_fd: int | None
    started_at: float
    last_beat: float
    state: str = SERVING
    ready_at: float | None = None
    #: It asked to be recycled (max-requests): a replacement is started, then it is retired.
    superseded: bool = False
    #: When the master sends SIGKILL if it has not exited (None: no deadline).
    kill_at: float | None = None
    #: Why the master ended it, for ``worker.exited``.
    reason: str | None = None
    stats: dict | None = None
    buffer: bytes = b""


class SignalQueue:
    """Signals and stop requests, queued in signal-handler context for a supervisor's loop.

    A handler may interrupt the supervisor anywhere, so it only appends to a deque (atomic)
    and the wake-up fd (``signal.set_wakeup_fd``) makes the selector return; the loop then
    handles the queue in order, outside handler context. Shared by the master and the
    ``forking`` parent.
    """

    _queue: collections.deque

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._queue.append(("signal", signum))

    def _on_stop(self, reason: str, graceful: bool) -> None:
        """The server's stop handler (signal handler context): queue it."""
        self._queue.append(("stop", reason, graceful))

    def _drain_wake(self, sock: socket.socket) -> None:
        try:
            while sock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass


class Master(SignalQueue):
    """Forks and supervises the worker processes of one server; :meth:`run` returns the stop reason."""

    def __init__(self, server: Server, program: Any) -> None:
        self.server = server
        self.program = program
        config = server.config
        self.acceptor = server.acceptor
        self.target = int(config.workers)
        self.timeout = float(config.get("timeout", 0.0) or 0.0)
        self.graceful_timeout = float(config.graceful_timeout)
        self.max_requests = int(config.get("max_requests", 0) or 0)
        self.max_requests_jitter = int(config.get("max_requests_jitter", 0) or 0)
        self.generation = 0
        self.workers: dict[int, WorkerProcess] = {}
        #: slot -> consecutive failures to start (or crashes soon after), and when the
        #: next start of that slot may happen.
        self.failures: dict[int, int] = {}
        self.not_before: dict[int, float] = {}
        self.stopping: str | None = None
        self.reason = "stopped"
        self.stop_deadline: float | None = None
        self._queue: collections.deque[tuple] = collections.deque()
        self._selector: selectors.BaseSelector | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._life: tuple[int, int] | None = None
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1

    # -- running -----------------------------------------------------------------------
    def run(self) -> str:
        self._setup()
        try:
            while self._turn():
                pass
        finally:
            self._teardown()
        return self.reason

    def _setup(self) -> None:
        # poll, not epoll: an epoll set is a kernel object that forked workers would share.
        self._selector = selectors.PollSelector()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wake = (reader, writer)
        self._selector.register(reader, selectors.EVENT_READ, self._drain_wake)
        self._life = os.pipe()
        self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in MASTER_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self.server.set_stop_handler(self._on_stop)

    def _turn(self) -> bool:
        """One round of the main loop; False once every worker is gone after a stop."""
        self._handle_queue()
        self._reap()
        now = time.monotonic()
        if self.stopping:
            if not self.workers:
                return False
            if self.stop_deadline is not None and now >= self.stop_deadline:
                self.stop_deadline = None
                for worker in self.workers.values():
                    self._kill(worker, signal.SIGKILL, worker.reason or "stop deadline")
        else:
            self._spawn_missing(now)
            self._retire_replaced(now)
        self._check_deadlines(now)
        assert self._selector is not None
        for key, _mask in self._selector.select(self._wait_time()):
            key.data(key.fileobj)
        return True

    def _wait_time(self) -> float:
        now = time.monotonic()
        times = [now + 1.0]
        if self.stop_deadline is not None:
            times.append(self.stop_deadline)
        if not self.stopping:
            times.extend(t for slot, t in self.not_before.items() if slot < self.target)
        for worker in self.workers.values():
            if worker.kill_at is not None:
                times.append(worker.kill_at)
            elif self.timeout:
                times.append(worker.last_beat + self.timeout)
        return max(0.0, min(times) - now)

    def _teardown(self) -> None:
        # Normally nobody is left; after an error in the master, leave no orphan behind.
        for worker in list(self.workers.values()):
            self._signal(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.workers and time.monotonic() < deadline:
            self._reap(block=True)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(self._previous_wakeup)
        except ValueError:
            pass
        if self._selector is not None:
            self._selector.close()
        if self._wake is not None:
            for sock in self._wake:
                sock.close()
        if self._life is not None:
            for fd in self._life:
                os.close(fd)
        self._wake = self._life = self._selector = None

    # -- signals -------------------------------------------------------------------------
    def _handle_queue(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item[0] == "stop":
                self._begin_stop(item[1], item[2])
                continue
            signum = item[1]
            if signum == signal.SIGCHLD:
                continue  # reaped right after
            if self.stopping:
                continue
            if signum == signal.SIGHUP:
                self.generation += 1
                log.info("master.reload", generation=self.generation, workers=self.target)
            elif signum == signal.SIGTTIN:
                if self.target < MAX_WORKERS:
                    self.target += 1
                log.info("master.workers", workers=self.target, change="+1")
            elif signum == signal.SIGTTOU:
                if self.target > 1:
                    self.target -= 1
                    slot = self.target
                    for worker in list(self.workers.values()):
                        if worker.slot == slot and worker.state == SERVING:
                            self._retire(worker, "workers decreased (TTOU)")
                    self.failures.pop(slot, None)
                    self.not_before.pop(slot, None)
                    self.acceptor.retire_slot(slot)
                log.info("master.workers", workers=self.target, change="-1")

    def _begin_stop(self, reason: str, graceful: bool) -> None:
        if self.stopping == "fast" or (self.stopping and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        self.reason = reason
        now = time.monotonic()
        log.info("master.stopping", reason=reason, graceful=graceful, workers=len(self.workers))
        if graceful:
            self.stop_deadline = now + self.graceful_timeout + STOP_MARGIN
            for worker in self.workers.values():
                if worker.state == SERVING:
                    self._signal(worker, signal.SIGTERM)
                    worker.state = RETIRING
                    worker.kill_at = None  # the stop deadline rules now
        else:
            self.stop_deadline = now + KILL_GRACE
            for worker in self.workers.values():
                if worker.state != KILLING:
                    self._signal(worker, signal.SIGQUIT)
                    worker.state = KILLING
                    worker.kill_at = None

    # -- workers: starting -----------------------------------------------------------------
    def _current(self, slot: int) -> WorkerProcess | None:
        for worker in self.workers.values():
            if (worker.slot == slot and worker.generation == self.generation and worker.state == SERVING
                    and not worker.superseded):
                return worker
        return None

    def _spawn_missing(self, now: float) -> None:
        for slot in range(self.target):
            if self._current(slot) is None and now >= self.not_before.get(slot, 0.0):
                self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        listeners = self.acceptor.listeners_for_worker(self.server.listeners, slot)
        status_r, status_w = os.pipe()
        limit = request_limit(self.max_requests, self.max_requests_jitter)
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCK_AT_FORK)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            os.close(status_r)
            os.close(status_w)
            self._failed_to_start(slot, time.monotonic(), f"fork failed: {exc}")
            return
        if pid == 0:  # the worker; never returns
            self._child(slot, listeners, status_r, status_w, limit, previous_mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        os.close(status_w)
        os.set_blocking(status_r, False)
        now = time.monotonic()
        worker = WorkerProcess(pid=pid, slot=slot, generation=self.generation, status_fd=status_r,
                               started_at=now, last_beat=now)
        self.workers[pid] = worker
        assert self._selector is not None
        self._selector.register(status_r, selectors.EVENT_READ, lambda _fd, w=worker: self._read_status(w))

    def _child(self, slot: int, listeners: list[Listener], status_r: int, status_w: int, limit: int,
               mask: Any) -> None:
        """In the new worker process: shed the master, then run the program; never returns."""
        code = BOOT_ERROR
        link = None
        try:
            os.close(status_r)
            self._shed_master(mask)
            assert self._life is not None
            link = MasterLink(slot, status_w, self._life[0], timeout=self.timeout, max_requests=limit)
            self.acceptor.worker_forked(listeners, slot)
            code = self.program.run(self.server, slot, listeners, link)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - anything: report it and exit, never return
            try:
                log.error("worker.failed", worker=slot, pid=os.getpid(),
                          started=bool(link and link.ready_sent), exc_info=exc)
            except BaseException:  # noqa: BLE001
                pass
            code = 1 if link is not None and link.ready_sent else BOOT_ERROR
        finally:
            flush_stdio()
            os._exit(code if isinstance(code, int) else 1)

    def _shed_master(self, mask: Any) -> None:
        """Right after fork: the master's signal handling and descriptors are not the worker's."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            # Ignored: a HUP sent to the whole process group is the master's to act on.
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.server.forked()
        assert self._selector is not None and self._wake is not None and self._life is not None
        for worker in self.workers.values():
            if worker.status_fd is not None:
                os.close(worker.status_fd)
        self.workers = {}
        self._selector.close()
        for sock in self._wake:
            sock.close()
        os.close(self._life[1])  # only the master may hold the write end: its death is our EOF
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    # -- workers: watching ---------------------------------------------------------------------
    def _read_status(self, worker: WorkerProcess) -> None:
        fd = worker.status_fd
        if fd is None:
            return
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_status(worker)
            return
        worker.last_beat = time.monotonic()
        self._take_messages(worker, data)

    def _take_messages(self, worker: WorkerProcess, data: bytes) -> None:
        *lines, worker.buffer = (worker.buffer + data).split(b"\n")
        for line in lines:
            if not line:
                continue  # a heartbeat
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("worker.bad_message", pid=worker.pid, worker=worker.slot, line=line[:200].decode("latin-1"))
                continue
            if message.get("ready"):
                worker.ready_at = time.monotonic()
            if "stats" in message:
                worker.stats = message["stats"]
            if "recycle" in message and worker.state == SERVING and not worker.superseded:
                worker.superseded = True  # a replacement starts now; this one retires once it is ready

    def _close_status(self, worker: WorkerProcess) -> None:
        fd = worker.status_fd
        if fd is None:
            return
        # Whatever is still in the pipe (the exit stats) is read before the fd goes.
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._take_messages(worker, data)
        worker.status_fd = None
        if self._selector is not None:
            self._selector.unregister(fd)
        os.close(fd)

    def _retire_replaced(self, now: float) -> None:
        """Retire (TERM) the old workers of every slot whose current worker is ready."""
        for worker in list(self.workers.values()):
            if worker.state != SERVING:
                continue
            if worker.slot >= self.target:
                self._retire(worker, "workers decreased (TTOU)")
                continue
            if worker.generation == self.generation and not worker.superseded:
                continue
            current = self._current(worker.slot)
            if current is not None and current.ready_at is not None:
                self._retire(worker, "max requests" if worker.superseded else "reload (HUP)")

    def _retire(self, worker: WorkerProcess, reason: str) -> None:
        worker.state = RETIRING
        worker.reason = reason
        worker.kill_at = time.monotonic() + self.graceful_timeout + STOP_MARGIN
        self._signal(worker, signal.SIGTERM)

    def _check_deadlines(self, now: float) -> None:
        for worker in list(self.workers.values()):
            if worker.kill_at is not None and now >= worker.kill_at:
                worker.kill_at = None
                self._kill(worker, signal.SIGKILL, worker.reason or "deadline")
            elif (self.timeout and worker.state != KILLING and now - worker.last_beat > self.timeout):
                log.error("worker.timeout", pid=worker.pid, worker=worker.slot, timeout=self.timeout,
                          silent=round(now - worker.last_beat, 3))
                self._kill(worker, signal.SIGABRT, "heartbeat timeout")
                worker.kill_at = now + KILL_GRACE

    def _kill(self, worker: WorkerProcess, signum: int, reason: str) -> None:
        worker.state = KILLING
        worker.reason = reason
        self._signal(worker, signum)

    @staticmethod
    def _signal(worker: WorkerProcess, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass  # exited already; reaped next

    # -- workers: exits ----------------------------------------------------------------------
    def _reap(self, block: bool = False) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()  # nothing left to wait for
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._exited(worker, status)
            if block:
                return

    def _exited(self, worker: WorkerProcess, status: int) -> None:
        self._close_status(worker)
        now = time.monotonic()
        fields: dict[str, Any] = {"generation": worker.generation}
        if worker.reason:
            fields["reason"] = worker.reason
        self.server.worker_exited(worker.pid, worker.slot, status, **fields)
        stats = WorkerStats.from_dict(worker.stats) if worker.stats else WorkerStats()
        stats.worker, stats.pid = worker.slot, worker.pid
        self.server.report_worker_stats(stats)
        if self.stopping or worker.state != SERVING or worker.superseded:
            return  # the master asked it to go (or its replacement is already running)
        # It died on its own: crash, kill -9 from outside, a failed start.
        if worker.ready_at is None or now - worker.ready_at < STABLE_AFTER:
            self._failed_to_start(worker.slot, now, "exited before it was ready" if worker.ready_at is None
                                  else "exited soon after it started")
        else:
            self.failures.pop(worker.slot, None)
            self.not_before.pop(worker.slot, None)

    def _failed_to_start(self, slot: int, now: float, why: str) -> None:
        failures = self.failures.get(slot, 0) + 1
        self.failures[slot] = failures
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
        self.not_before[slot] = now + delay
        log.warning("worker.restart_delayed", worker=slot, failures=failures, delay=round(delay, 3), why=why)

