"""The master process of ``prefork`` and ``prefork-blocking``: gunicorn's arbiter, in small.

The master never runs the protocol. The server has bound the listeners before
:meth:`Master.run`; the master forks ``--workers`` processes, one per *slot* (0..N-1),
and from then on only watches them. The signal queue, forking, reaping, status pipes
and kill escalation are the :class:`~netcore_dispatch.supervisor.Supervisor`'s, shared
with the ``forking`` parent; what is here is what a pool of long-lived workers adds:

* **Signals.** TERM: graceful stop (workers get TERM: stop accepting, finish in-flight
  work within ``--graceful-timeout``; then SIGKILL). INT/QUIT: fast (workers get QUIT;
  SIGKILL after :data:`KILL_GRACE`). HUP: a new *generation* -- a new worker per slot,
  and each old one is sent TERM only once its replacement reports ready, so there is
  never a moment with nobody accepting, and if the new workers cannot start the old
  ones go on serving. TTIN/TTOU: one slot more or less (the highest slot goes). A
  stopping master starts and retires nothing, so HUP/TTIN/TTOU then do nothing.
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
* Every worker's exit is announced (``worker.exited``); its counters, sent through its
  status pipe as it exits, go into ``server.stopped``. The master closes every
  descriptor of a worker when it reaps it, and a new worker closes every master-side
  descriptor it inherited (the life pipe's write end among them), so nothing
  accumulates across restarts.

What a worker runs is the *program*'s business (``prefork``: a reactor;
``prefork-blocking``: a thread blocking in accept): ``program.run(server, slot,
listeners, link) -> exit status``, in the child. The acceptor is consulted at the edges
(:meth:`Acceptor.listeners_for_worker` before each fork, ``worker_forked`` in the child
after it, ``retire_slot`` when TTOU removes a slot for good).
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any, Iterable

import attrs
import structlog
from netcore.stats import WorkerStats

from netcore_dispatch.supervisor import (
    KILL_GRACE,
    KILLING,
    RETIRING,
    SERVING,
    STOP_MARGIN,
    Child,
    StatusPipe,
    Supervisor,
)
from netcore_dispatch.worker_link import BOOT_ERROR, MasterLink, request_limit

if TYPE_CHECKING:
    from netcore.acceptor import Listener
    from netcore.server import Server

log = structlog.get_logger("netcore.master")

#: A worker that ran this long after reporting ready did not crash-loop: restart at once.
STABLE_AFTER = 2.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
#: Most worker processes TTIN may reach (the ``workers`` setting's maximum).
MAX_WORKERS = 1024


@attrs.define(eq=False, kw_only=True)
class WorkerProcess(Child):
    """One worker process, as the master tracks it."""

    slot: int
    generation: int
    status: StatusPipe
    last_beat: float
    ready_at: float | None = None
    #: It asked to be recycled (max-requests): a replacement is started, then it is retired.
    superseded: bool = False
    stats: dict | None = None

    def log_fields(self) -> dict[str, Any]:
        return {"pid": self.pid, "worker": self.slot}


class Master(Supervisor):
    """Forks and supervises the worker processes of one server; :meth:`run` returns the stop reason."""

    def __init__(self, server: Server, program: Any) -> None:
        super().__init__(server)
        self.program = program
        config = server.config
        self.acceptor = server.acceptor
        self.target = int(config.workers)
        self.timeout = float(config.get("timeout", 0.0) or 0.0)
        self.max_requests = int(config.get("max_requests", 0) or 0)
        self.max_requests_jitter = int(config.get("max_requests_jitter", 0) or 0)
        self.generation = 0
        self.children: dict[int, WorkerProcess] = {}
        #: slot -> consecutive failures to start (or crashes soon after), and when the
        #: next start of that slot may happen.
        self.failures: dict[int, int] = {}
        self.not_before: dict[int, float] = {}
        #: In a worker process only: its end of the line to the master.
        self.link: MasterLink | None = None
        self._life: tuple[int, int] | None = None

    # -- running -----------------------------------------------------------------------
    def setup(self) -> None:
        self._life = os.pipe()
        super().setup()

    def teardown(self) -> None:
        super().teardown()
        if self._life is not None:
            for fd in self._life:
                os.close(fd)
            self._life = None

    def supervise(self, now: float) -> None:
        if not self.stopping:
            self._spawn_missing(now)
            self._retire_replaced(now)
        if not self.timeout:
            return
        for worker in list(self.children.values()):
            if worker.state == KILLING:
                continue  # being killed already
            if now - worker.last_beat > self.timeout:
                log.error("worker.timeout", pid=worker.pid, worker=worker.slot, timeout=self.timeout,
                          silent=round(now - worker.last_beat, 3))
                self.kill(worker, signal.SIGABRT, "heartbeat timeout")
                worker.kill_at = now + KILL_GRACE

    def wake_times(self) -> Iterable[float]:
        if not self.stopping:
            yield from (t for slot, t in self.not_before.items() if slot < self.target)
        if self.timeout:
            yield from (w.last_beat + self.timeout for w in self.children.values() if w.kill_at is None)

    # -- signals -------------------------------------------------------------------------
    def handle_hup(self) -> None:
        if self.stopping:
            return
        self.generation += 1
        log.info("master.reload", generation=self.generation, workers=self.target)

    def handle_ttin(self) -> None:
        if self.stopping:
            return
        if self.target < MAX_WORKERS:
            self.target += 1
        log.info("master.workers", workers=self.target, change="+1")

    def handle_ttou(self) -> None:
        if self.stopping:
            return
        if self.target > 1:
            self.target -= 1
            slot = self.target
            for worker in list(self.children.values()):
                if worker.slot == slot and worker.state == SERVING:
                    self._retire(worker, "workers decreased (TTOU)")
            self.failures.pop(slot, None)
            self.not_before.pop(slot, None)
            self.acceptor.retire_slot(slot)
        log.info("master.workers", workers=self.target, change="-1")

    def stop_children(self, graceful: bool) -> None:
        log.info("master.stopping", reason=self.reason, graceful=graceful, workers=len(self.children))
        super().stop_children(graceful)

    # -- workers: starting -----------------------------------------------------------------
    def _current(self, slot: int) -> WorkerProcess | None:
        for worker in self.children.values():
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
        pipe, status_w = self.open_status()
        limit = request_limit(self.max_requests, self.max_requests_jitter)
        try:
            pid = self.fork(lambda: self._worker_main(slot, listeners, status_w, limit),
                            lambda exc: self._worker_failed(slot, exc))
        except OSError as exc:
            os.close(status_w)
            self.close_status(pipe)
            self._failed_to_start(slot, time.monotonic(), f"fork failed: {exc}")
            return
        os.close(status_w)
        now = time.monotonic()
        worker = WorkerProcess(pid=pid, slot=slot, generation=self.generation, status=pipe,
                               started_at=now, last_beat=now)
        pipe.owner = worker
        self.children[pid] = worker

    def shed(self) -> None:
        assert self._life is not None
        os.close(self._life[1])  # only the master may hold the write end: its death is our EOF

    def _worker_main(self, slot: int, listeners: list[Listener], status_w: int, limit: int) -> int:
        """In the new worker process, once it has shed the master: run the program."""
        assert self._life is not None
        self.link = MasterLink(slot, status_w, self._life[0], timeout=self.timeout, max_requests=limit)
        self.acceptor.worker_forked(listeners, slot)
        return self.program.run(self.server, slot, listeners, self.link)

    def _worker_failed(self, slot: int, exc: BaseException) -> int:
        """In a worker whose start or program raised: the exit status that tells the master
        whether it had started (a failure before ``ready`` is a boot error: back off)."""
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else 1
        started = bool(self.link and self.link.ready_sent)
        try:
            log.error("worker.failed", worker=slot, pid=os.getpid(), started=started, exc_info=exc)
        except BaseException:  # noqa: BLE001 - a log that fails must not stop the exit
            pass
        return 1 if started else BOOT_ERROR

    # -- workers: watching ---------------------------------------------------------------------
    def status_message(self, worker: WorkerProcess, message: dict | None) -> None:
        worker.last_beat = time.monotonic()
        if message is None:
            return  # a heartbeat
        if message.get("ready"):
            worker.ready_at = time.monotonic()
        if "stats" in message:
            worker.stats = message["stats"]
        if "recycle" in message and worker.state == SERVING and not worker.superseded:
            worker.superseded = True  # a replacement starts now; this one retires once it is ready

    def _retire_replaced(self, now: float) -> None:
        """Retire (TERM) the old workers of every slot whose current worker is ready."""
        for worker in list(self.children.values()):
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
        self.send(worker, signal.SIGTERM)

    # -- workers: exits ----------------------------------------------------------------------
    def child_exited(self, worker: WorkerProcess, status: int) -> None:
        self.close_status(worker.status)
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
