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
from netcore.errors import UsageError
from netcore.metrics.figures import Snapshot, add_counters
from netcore.notify import notify
from netcore.reactor.drain import close_door
from netcore.stats import WorkerStats

from netcore_dispatch.deploy import load_application_in_worker, reread_config
from netcore_dispatch.heartbeat import Heartbeat
from netcore_dispatch.proctitle import set_title
from netcore_dispatch.reloader import Reloader, watched_files
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
from netcore_dispatch.upgrade import PidFile, exec_successor
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
    #: CPU seconds it had used at its last beat (see heartbeat.py); None: unknown.
    cpu_at_beat: float | None = None
    #: Silent past the timeout but only starved of CPU (logged once per silence).
    starved: bool = False
    #: Its latest protocol figures (metrics on): kept apart, since the counters it sends
    #: as it exits have none.
    figures: dict | None = None
    #: Why its application refused to start (a usage error in the worker: an ASGI
    #: lifespan startup that failed), as it said before exiting; None otherwise.
    refused: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {"pid": self.pid, "worker": self.slot}


def check_master(server: Server) -> None:
    """What a master refuses before anything is bound, under ``serve`` and
    ``--check-config`` (``Dispatcher.check``): a pid file it could not keep."""
    PidFile.of(server.config).check(server.config)


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
        #: The generation a HUP started, until it serves alone (``master.reloaded``).
        self._reloading: int | None = None
        self._ready_announced = False
        #: A worker ever reported ready (until then, an application that refuses to start
        #: ends the server: restarting cannot help, and nothing has been served).
        self._ever_ready = False
        #: Set when the application refused to start in the first workers: :meth:`run`
        #: raises it as the usage error (exit status 2) once every worker is gone.
        self.refusal: str | None = None
        self.pidfile = PidFile.of(config)
        #: The pid of the master a USR2 executed, while it runs.
        self._successor: int | None = None
        self._own_paths: list[Any] = []
        self._reloader: Reloader | None = None
        self.heartbeat = Heartbeat(self.timeout)
        #: How often a starved worker's silence is judged again.
        self.heartbeat_recheck = 0.25
        #: The configuration before that HUP, for a rollback; and its TLS context.
        self._config_before: Any = None
        self._tls_before: Any = None
        #: Metrics: workers started in a slot that had one before; slots that had one;
        #: the counters and protocol figures of the workers that have exited.
        self.restarts = 0
        self._slots_seen: set[int] = set()
        self._retired: dict[str, int] = {}
        self._retired_figures: dict = {}
        if server.metrics is not None:
            server.metrics_source = self.metrics_snapshot

    # -- running -----------------------------------------------------------------------
    def setup(self) -> None:
        self.pidfile.write()  # first: refused (a master started meanwhile), nothing is set up yet
        self._life = os.pipe()
        super().setup()
        config = self.server.config
        set_title(f"netcore: master [{config.dispatch}] {' '.join(self.server.addresses)}")
        if config.get("reload"):
            self._reloader = Reloader(watched_files(config))
            self._reloader.start()

    def teardown(self) -> None:
        if self._reloader is not None:
            self._reloader.stop()
            self._reloader = None
        super().teardown()
        self.pidfile.remove()
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
        self.heartbeat.timeout = self.timeout
        for worker in list(self.children.values()):
            if worker.state == KILLING:
                continue  # being killed already
            verdict = self.heartbeat.verdict(worker, now)
            if verdict == "starved":
                if not worker.starved:
                    worker.starved = True
                    log.warning("worker.starved", pid=worker.pid, worker=worker.slot, timeout=self.timeout,
                                silent=round(now - worker.last_beat, 3),
                                reason="runnable, waiting for a CPU: not killed")
            elif verdict == "dead":
                log.error("worker.timeout", pid=worker.pid, worker=worker.slot, timeout=self.timeout,
                          silent=round(now - worker.last_beat, 3))
                self.kill(worker, signal.SIGABRT, "heartbeat timeout")
                worker.kill_at = now + KILL_GRACE

    def wait_time(self) -> float:
        wait = super().wait_time()
        if self.timeout:
            now = time.monotonic()
            self.heartbeat.master_turn(now, wait, list(self.children.values()))
        return wait

    def wake_times(self) -> Iterable[float]:
        if not self.stopping:
            yield from (t for slot, t in self.not_before.items() if slot < self.target)
        if self.timeout:
            for w in self.children.values():
                if w.kill_at is None:
                    # a starved worker is looked at again a little later
                    yield w.last_beat + self.timeout + (self.heartbeat_recheck if w.starved else 0.0)

    # -- signals -------------------------------------------------------------------------
    def handle_hup(self) -> None:
        """A new generation, with the configuration re-read (see :mod:`deploy`): an invalid
        one is refused with one line and nothing is replaced."""
        if self.stopping:
            return
        try:
            config = reread_config(self.server)
            # The certificate files read again now, in the master, so that the new
            # generation's workers share the new context (and its ticket keys); a bad
            # file refuses the HUP like a bad setting, the old workers serving on.
            tls = self.server.tls_for_reload(config)
        except (UsageError, OSError) as exc:
            log.error("master.reload_failed", reason=f"configuration: {exc}", generation=self.generation)
            return
        if self._reloading is None:
            self._config_before = self.server.config
            self._tls_before = getattr(self.server.accept_layers, "tls_context", None)
        self._apply_config(config)
        if tls is not None:
            self.server.accept_layers.replace_tls(tls)
            log.info("tls.reloaded", certfile=str(config.certfile), generation=self.generation + 1)
        self.generation += 1
        self._reloading = self.generation
        self.reloading()
        log.info("master.reload", generation=self.generation, workers=self.target)

    def _apply_config(self, config: Any) -> None:
        """Make ``config`` what the master and the workers it forks from now on use."""
        before = self.server.config
        self.server.config = config
        self.graceful_timeout = float(config.graceful_timeout)
        self.timeout = float(config.get("timeout", 0.0) or 0.0)
        self.max_requests = int(config.get("max_requests", 0) or 0)
        self.max_requests_jitter = int(config.get("max_requests_jitter", 0) or 0)
        if config.get("workers") != before.get("workers"):
            # A new ``workers`` setting wins over TTIN/TTOU since the previous one.
            for slot in range(int(config.workers), self.target):
                self.acceptor.retire_slot(slot)
            self.target = int(config.workers)

    def _roll_back(self, failed: WorkerProcess) -> None:
        """A worker of the generation a HUP started failed to boot: abandon that generation
        (nginx's rollback). Its workers are retired, the older ones serve on, under the
        configuration they started with."""
        generation = self._reloading
        self._reloading = None
        older = [w.generation for w in self.children.values() if w.state == SERVING and w.generation != generation]
        self.generation = max(older, default=(generation or 1) - 1)
        if self._config_before is not None:
            self._apply_config(self._config_before)
            self._config_before = None
        if self._tls_before is not None:  # respawned old-generation workers: the old certificate
            self.server.accept_layers.replace_tls(self._tls_before)
            self._tls_before = None
        for worker in list(self.children.values()):
            if worker.generation == generation and worker.state == SERVING:
                self._retire(worker, "reload rolled back")
        self.failures.pop(failed.slot, None)
        self.not_before.pop(failed.slot, None)
        log.error("master.reload_failed", generation=generation, serving_generation=self.generation,
                  reason="a new worker failed to start (see worker.failed): the old workers go on serving")
        self.reloaded()

    def handle_usr1(self) -> None:
        """Reopen log files (logrotate's signal, as gunicorn's and nginx's): each worker
        that writes one (the http access log) reopens it on its own USR1."""
        for worker in list(self.children.values()):
            self.send(worker, signal.SIGUSR1)

    def handle_usr2(self) -> None:
        """Execute a new master on the same sockets (see :mod:`upgrade`)."""
        if self.stopping or self._successor is not None:
            log.warning("master.upgrade_ignored", reason="stopping" if self.stopping else
                        f"a new master (pid {self._successor}) runs already")
            return
        self.pidfile.to_oldbin()
        try:
            self._successor = exec_successor(self.server.listeners)
        except OSError as exc:
            self.pidfile.back_from_oldbin()
            log.error("master.upgrade_failed", reason=f"fork failed: {exc}")
            return
        self._share_listeners(True)
        log.info("master.upgrade", new_master=self._successor)

    def _share_listeners(self, shared: bool) -> None:
        """While a successor serves from our sockets, a stop leaves them to it: no door
        closing, no removal of a Unix socket's file (it is the successor's as much)."""
        server = self.server
        server.listeners_shared = shared
        if shared:
            self._own_paths = [listener for listener in server.listeners if not listener.inherited]
            for listener in self._own_paths:
                listener.inherited = True
        else:
            for listener in self._own_paths:
                listener.inherited = False
            self._own_paths = []

    def other_exited(self, pid: int, status: int) -> None:
        if pid != self._successor:
            return
        self._successor = None
        self._share_listeners(False)
        self.pidfile.back_from_oldbin()
        log.warning("master.successor_exited", pid=pid, status=os.waitstatus_to_exitcode(status),
                    reason="this master serves on")

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
        if graceful:
            self._let_go_of_listeners()
        super().stop_children(graceful)

    def _let_go_of_listeners(self) -> None:
        """A graceful stop starts no worker again: close the master's copies now, so
        that the listening socket goes away with the last worker, right after that
        worker's final accept (``ReactorWorker._take_backlog``) -- not later, at the
        master's exit, with connections queued meanwhile that nobody would answer."""
        slots = set(range(self.target)) | {worker.slot for worker in self.children.values()}
        for slot in sorted(slots):
            for listener in self.acceptor.listeners_for_worker(self.server.listeners, slot):
                if not listener.inherited and not self.server.listeners_shared and listener.sock.fileno() != -1:
                    close_door(listener.sock)
            self.acceptor.retire_slot(slot)
        for listener in self.server.listeners:
            try:
                listener.sock.close()
            except OSError:
                pass

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
        if slot in self._slots_seen:
            self.restarts += 1
        self._slots_seen.add(slot)

    def run(self) -> str:
        reason = super().run()
        if self.refusal is not None:
            raise UsageError(self.refusal)
        return reason

    def shed(self) -> None:
        assert self._life is not None
        os.close(self._life[1])  # only the master may hold the write end: its death is our EOF

    def _worker_main(self, slot: int, listeners: list[Listener], status_w: int, limit: int) -> int:
        """In the new worker process, once it has shed the master: run the program."""
        assert self._life is not None
        self.link = MasterLink(slot, status_w, self._life[0], timeout=self.timeout, max_requests=limit)
        if self.server.metrics is not None:
            self.link.live_stats = self.server.worker_figures
        self.acceptor.worker_forked(listeners, slot)
        set_title(f"netcore: worker {slot} [{self.server.config.dispatch}] generation {self.generation}")
        load_application_in_worker(self.server)  # a failure here is a boot error
        return self.program.run(self.server, slot, listeners, self.link)

    def _worker_failed(self, slot: int, exc: BaseException) -> int:
        """In a worker whose start or program raised: the exit status that tells the master
        whether it had started (a failure before ``ready`` is a boot error: back off)."""
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else 1
        started = bool(self.link and self.link.ready_sent)
        if isinstance(exc, UsageError) and not started and self.link is not None:
            # The application refused to start (its own words, one line): tell the master,
            # which ends the server with it if no worker has ever served.
            try:
                self.link.send(refused=str(exc))
            except OSError:
                pass
        try:
            log.error("worker.failed", worker=slot, pid=os.getpid(), started=started, exc_info=exc)
        except BaseException:  # noqa: BLE001 - a log that fails must not stop the exit
            pass
        return 1 if started else BOOT_ERROR

    # -- workers: watching ---------------------------------------------------------------------
    def status_message(self, worker: WorkerProcess, message: dict | None) -> None:
        worker.last_beat = time.monotonic()
        worker.starved = False
        if self.timeout:
            self.heartbeat.beat(worker)
        if message is None:
            return  # a heartbeat
        if message.get("ready"):
            worker.ready_at = time.monotonic()
            self._ever_ready = True
        if "refused" in message:
            worker.refused = str(message["refused"])
        if "stats" in message:
            worker.stats = message["stats"]
            if isinstance(worker.stats, dict) and "protocol" in worker.stats:
                worker.figures = worker.stats["protocol"]
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
        if not self._ready_announced and self._generation_serving():
            self._ready_announced = True
            notify("READY=1")
            self.server.ready = not self.stopping  # /readyz too
        if self._reloading is not None and self._reloading <= self.generation and self._generation_serving():
            log.info("master.reloaded", generation=self.generation, workers=self.target)
            self._reloading = None
            self.reloaded()

    def _generation_serving(self) -> bool:
        """Every slot has a ready worker of the current generation, and no older one serves."""
        for slot in range(self.target):
            current = self._current(slot)
            if current is None or current.ready_at is None:
                return False
        return not any(w.state == SERVING and w.generation != self.generation for w in self.children.values())

    def reloading(self) -> None:
        """A HUP began (systemd hears RELOADING=1)."""
        notify("RELOADING=1")

    def reloaded(self) -> None:
        """A HUP's new generation serves alone now, or was rolled back (READY=1 again)."""
        notify("READY=1")

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
        if self.server.metrics is not None:
            retired = dict(self._retired)  # a new dict: a scrape reading the old one sees it whole
            add_counters(retired, stats.as_dict())
            self._retired_figures = self.server.metrics.merged([self._retired_figures, worker.figures or {}])
            self._retired = retired
        if self.stopping or worker.state != SERVING or worker.superseded:
            return  # the master asked it to go (or its replacement is already running)
        if (self._reloading is not None and worker.generation == self._reloading and worker.ready_at is None
                and os.waitstatus_to_exitcode(status) == BOOT_ERROR):
            self._roll_back(worker)
            return
        if worker.refused is not None and worker.ready_at is None and not self._ever_ready:
            # The first workers cannot start the application (gunicorn halts on a boot
            # error too): stop the others and exit 2 with its reason, not back off forever.
            log.error("master.application_refused", worker=worker.slot, reason=worker.refused)
            self.refusal = worker.refused
            self.handle_stop("application failed to start", True)
            return
        # It died on its own: crash, kill -9 from outside, a failed start.
        if worker.ready_at is None or now - worker.ready_at < STABLE_AFTER:
            self._failed_to_start(worker.slot, now, "exited before it was ready" if worker.ready_at is None
                                  else "exited soon after it started")
        else:
            self.failures.pop(worker.slot, None)
            self.not_before.pop(worker.slot, None)

    # -- metrics (called on the metrics listener's thread) -----------------------------------
    def metrics_snapshot(self) -> Snapshot:
        """The workers' figures added up: those exited, then the latest of those alive.

        Read without a lock from the tables the master's own thread keeps: each read is one
        C-level copy of a dict, and a count caught mid-move between them is evened out by
        the server's monotonic wrapper (``netcore.metrics.figures.Monotonic``).
        """
        retired, retired_figures = self._retired, self._retired_figures
        children = list(self.children.values())
        counters = dict(retired)
        for worker in children:
            if isinstance(worker.stats, dict):
                add_counters(counters, worker.stats)
        assert self.server.metrics is not None
        figures = self.server.metrics.merged([retired_figures, *(w.figures or {} for w in children)])
        return Snapshot(counters=counters, protocol=figures, workers_alive=len(children),
                        worker_restarts=self.restarts, ready=self.server.ready)

    def _failed_to_start(self, slot: int, now: float, why: str) -> None:
        failures = self.failures.get(slot, 0) + 1
        self.failures[slot] = failures
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
        self.not_before[slot] = now + delay
        log.warning("worker.restart_delayed", worker=slot, failures=failures, delay=round(delay, 3), why=why)
