"""The running server: what a dispatcher is handed, and the events at its edges.

The server binds the listeners once (before any worker exists, so that multi-process
schemes share them), announces ``server.started``, lets the dispatcher serve, and
announces ``server.stopped`` with every worker's counters.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import attrs
import structlog

from netcore.errors import SettingError, UsageError
from netcore.metrics.figures import ProtocolFigures, Snapshot, worker_counters
from netcore.notify import notify
from netcore.privileges import switch_identity
from netcore.reactor.admission import build_accept_layers
from netcore.reactor.drain import close_door
from netcore.reactor.threads import start_thread
from netcore.reactor.worker import ReactorWorker
from netcore.stats import WorkerStats, summarize

if TYPE_CHECKING:
    from netcore.acceptor import Listener
    from netcore.assembly import Assembly
    from netcore.reactor.loop import EventLoop

log = structlog.get_logger("netcore.server")

#: Signals and whether they ask for a graceful stop (TERM graceful; INT, QUIT fast: docs/architecture.md).
STOP_SIGNALS = ((signal.SIGTERM, True), (signal.SIGINT, False), (signal.SIGQUIT, False))
#: Reload signals: a process scheme's master acts on them; anyone else logs and ignores them.
RELOAD_SIGNALS = (signal.SIGHUP, signal.SIGUSR2)
#: The other signals only a master acts on: USR1 (passed to its workers, which reopen
#: their log files), TTIN and TTOU (one worker more, one fewer). Their default actions
#: kill (USR1: logrotate's postrotate sends it) or stop (TTIN, TTOU: a frozen server whose
#: clients hang until SIGCONT) the process, so an in-process server logs and ignores them
#: -- USR1 unless something of its own reopens on it (the http access log file installs
#: its handler over this one).
MASTER_ONLY_SIGNALS = (signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU)
#: Why an in-process server ignores each, for ``server.signal_ignored``.
IGNORED_BECAUSE = {
    signal.SIGHUP: "restart to reload (process schemes reload in place)",
    signal.SIGUSR2: "restart to reload (process schemes reload in place)",
    signal.SIGUSR1: "nothing to reopen (the http protocol's access_log_file reopens on it)",
    signal.SIGTTIN: "one worker more or fewer is a master's (--dispatch prefork)",
    signal.SIGTTOU: "one worker more or fewer is a master's (--dispatch prefork)",
}
#: Seconds a fast stop (INT, QUIT) leaves a process before it is ended whatever it is
#: doing: a master SIGKILLs a worker still alive then (and one that got SIGABRT after a
#: heartbeat time-out), an in-process server ends itself (:meth:`Server._stop_watchdog`).
KILL_GRACE = 1.0


@attrs.frozen
class Concurrency:
    """How the server runs, as a protocol needs to know it (``server.concurrency``).

    What a protocol may depend on -- never the dispatcher object itself, whose shape is
    the dispatch plugin's business.
    """

    #: Handlers of different connections may run at the same time on several threads of
    #: one process: shared state needs a lock.
    multithread: bool
    #: Several processes serve the same listeners, each with its own memory.
    multiprocess: bool
    #: An event loop drives the connections (False: the blocking schemes, where each
    #: connection has a thread or process of its own and there is no ``connection.loop``).
    event_loop: bool
    #: Handlers run on threads other than the connection's I/O thread (thread,
    #: thread-per-connection, pool, multi-reactor-pool): a handler may then wait for more
    #: input from its connection (a request body still arriving) without stalling the
    #: I/O. False where the handler runs on the thread that reads (inline, multi-reactor,
    #: prefork, and the blocking schemes): there it must have all its input first.
    handler_threads: bool = False


class Server:
    """One configured combination of poller, acceptor, dispatcher and protocol."""

    def __init__(self, assembly: Assembly, hook: Any) -> None:
        config = assembly.config
        self.assembly = assembly
        self.config = config
        self.hook = hook
        loaded = assembly.loaded
        self.poller_class = loaded.get("poller")
        self.acceptor = loaded["acceptor"](config, **assembly.acceptor.kwargs)
        self.dispatcher = loaded["dispatch"](config, registration=assembly.dispatch, **assembly.dispatch.kwargs)
        self.concurrency = self._concurrency()
        self._metrics_bind = str(config.get("metrics_bind", "") or "")
        #: Per-protocol metric families (``None``: metrics are off, so a protocol makes none
        #: and counts nothing). Made before the protocol's ``for_server``, which declares them.
        self.metrics: ProtocolFigures | None = None
        if self._metrics_bind:
            from netcore.metrics.listener import parse_metrics_bind

            parse_metrics_bind(self._metrics_bind)  # a bad address fails now, in one line
            try:
                import prometheus_client  # noqa: F401 - a dependency of netcore-host; checked, not assumed
            except ImportError:
                raise SettingError("metrics_bind", self._metrics_bind,
                                   "an address, once prometheus-client is installed") from None
            self.metrics = ProtocolFigures()
        #: What ``/metrics`` shows; a supervisor of worker processes replaces it with its
        #: own (figures aggregated from its workers' status lines). See :meth:`metrics_snapshot`.
        self.metrics_source: Callable[[], Snapshot] | None = None
        #: What ``/readyz`` says: true from start until a stop begins.
        self.ready = False
        self._metrics_listener: Any = None
        self._live_workers: list[Any] = []
        #: Counters kept outside any worker, read at scrape time as well (see live_stats).
        self._live_stats: list[WorkerStats] = []
        self._stopped_workers = 0
        self.protocol_factory = loaded["protocol"].for_server(self)
        self.listeners: list[Listener] = []
        self.accept_layers = None
        #: One HUP's TLS reload at a time (each runs on a thread of its own).
        self._reload_lock = threading.Lock()
        #: Another process serves from these listening sockets after this one stops
        #: (a master started by USR2): a stop must leave their backlog alone.
        self.listeners_shared = False
        self.worker_stats: list[WorkerStats] = []
        self.pid = os.getpid()
        #: What ``netcore serve`` exits with: 1 once a reactor loop has died (:meth:`loop_failed`).
        self.exit_status = 0
        #: Taken by whoever writes ``server.stopped``: the main thread at the end of a run,
        #: or the stop watchdog once a fast stop is overdue -- the event is written once.
        self._stopped_claim = threading.Lock()

    def _concurrency(self) -> Concurrency:
        dispatcher = self.dispatcher
        return Concurrency(multithread=bool(dispatcher.multithread), multiprocess=bool(dispatcher.multiprocess),
                           event_loop=bool(dispatcher.uses_poller),
                           handler_threads=bool(getattr(dispatcher, "handler_threads", False)))

    # -- what dispatchers use ------------------------------------------------------------
    def new_poller(self) -> Any:
        return self.poller_class(**self.assembly.poller.kwargs)

    def connection_options(self) -> dict[str, Any]:
        c = self.config
        return {
            "recv_size": c.recv_size,
            "high_water": c.high_water,
            "low_water": min(c.low_water, c.high_water),
            "linger_timeout": c.linger_timeout,
            # PROXY header and TLS per listener (reactor/admission.py); None: plaintext only.
            "layers": self.accept_layers,
        }

    def new_reactor_worker(self, loop: EventLoop, index: int = 0) -> ReactorWorker:
        # A protocol whose code needs an asyncio loop on the reactor's thread (ASGI) says
        # so with ``loop_host(loop)`` on its factory: a host per loop (per thread, per
        # process), so that what is bound to one asyncio loop (lifespan state) stays on it.
        loop_host = getattr(self.protocol_factory, "loop_host", None)
        if loop_host is not None:
            loop.host = loop_host(loop)
        return ReactorWorker(
            loop,
            self.protocol_factory,
            index=index,
            connection_options=self.connection_options(),
            graceful_timeout=self.config.graceful_timeout,
            max_connections=self.config.max_connections,
        )

    def set_stop_handler(self, stop: Callable[[str, bool], None]) -> None:
        """Route stop signals to ``stop(reason, graceful)``: TERM graceful, INT/QUIT fast.

        ``stop`` runs in the main thread *inside the signal handler*: it must only hand
        the request on (set a flag, wake a loop, shut a socket down). A signal that came
        before this call is applied now; after the first, only a fast signal during a
        graceful stop gets through (a second INT hurries a slow TERM along), and
        repeated signals are otherwise ignored.
        """
        self._stop_handler = stop
        if self._early_stop is not None:
            early, self._early_stop = self._early_stop, None
            self._deliver_stop(*early)

    def install_stop_signals(self, loop: EventLoop, stop: Callable[[str, bool], None]) -> None:
        """:meth:`set_stop_handler` for a dispatcher whose main thread runs ``loop``."""
        loop.enable_signal_wakeup()
        self.set_stop_handler(lambda reason, graceful: loop.call_soon_threadsafe(stop, reason, graceful))

    def worker_started(self, worker: Any) -> None:
        """Called by a dispatcher once a worker is fully set up and about to serve."""
        log.info("worker.started", pid=os.getpid(), worker=getattr(worker, "index", 0))
        self._live_workers.append(worker)  # read by the metrics, at scrape time only
        listener = self._metrics_listener
        if listener is not None and not listener.serving:
            loop = getattr(worker, "loop", None)
            if loop is not None:
                listener.serve_on(loop)
            else:  # a dispatcher that said it has a loop but made a worker without one
                listener.start()
        self.hook.netcore_worker_started(worker=worker)

    def live_stats(self, stats: WorkerStats) -> None:
        """A dispatcher counts into ``stats`` outside any worker -- multi-reactor's acceptor
        loop counts the accept wake-ups and EAGAINs there: scrapes read it live too (it is
        still handed to :meth:`report_worker_stats` at the end, for ``server.stopped``)."""
        self._live_stats.append(stats)

    def worker_stopping(self, worker: Any) -> None:
        self._stopped_workers += 1
        self.hook.netcore_worker_stopping(worker=worker)

    # -- metrics (read from the metrics listener's thread, or its loop under inline) --------
    def worker_figures(self) -> dict[str, Any]:
        """This process's live counters and protocol figures, as a worker reports them."""
        figures: dict[str, Any] = worker_counters(list(self._live_workers), list(self._live_stats))
        if self.metrics is not None:
            figures["protocol"] = self.metrics.dump()
        return figures

    def metrics_snapshot(self) -> Snapshot:
        """What a scrape shows: this process's workers, or the supervisor's aggregate."""
        if self.metrics_source is not None:
            return self.metrics_source()
        workers = list(self._live_workers)
        return Snapshot(counters=worker_counters(workers, list(self._live_stats)),
                        protocol=self.metrics.dump() if self.metrics is not None else {},
                        workers_alive=max(0, len(workers) - self._stopped_workers), ready=self.ready)

    def report_worker_stats(self, stats: WorkerStats) -> None:
        self.worker_stats.append(stats)

    def worker_exited(self, pid: int, worker: int, status: int, **fields: Any) -> None:
        """A master reaped a worker process: announce ``worker.exited``.

        ``status`` is what ``waitpid`` returned: the event carries ``exit_code`` when the
        worker exited, ``signal`` (``"SIGKILL"``) when a signal ended it. A clean exit is
        info; anything else is a warning, since someone may have to look at it.
        """
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = str(signum)
            fields = {"signal": name, **fields}
            clean = False
        else:
            code = os.waitstatus_to_exitcode(status)
            fields = {"exit_code": code, **fields}
            clean = code == 0
        (log.info if clean else log.warning)("worker.exited", pid=pid, worker=worker, **fields)

    def forked(self) -> None:
        """In a worker process right after fork: drop the master's stop state and counters.

        The stop-signal handlers installed by :meth:`run` stay (they are this object's
        methods); the worker sets its own stop handler, and a signal arriving before it
        does is kept and applied then, as at start.
        """
        self._stop_handler = None
        self._early_stop = None
        self._stopping = None
        self._in_worker_process = True  # its listeners are its master's (see _close_door)
        self.worker_stats = []
        self._live_workers = []
        self._live_stats = []
        self._stopped_workers = 0
        self.metrics_source = None
        if self._metrics_listener is not None:
            self._metrics_listener.forget()  # the master's port: not held by its workers
            self._metrics_listener = None

    # -- running -----------------------------------------------------------------------
    @property
    def addresses(self) -> list[str]:
        return [listener.address for listener in self.listeners]

    def run(self) -> str:
        """Bind, serve until stopped, report; returns the stop reason."""
        self._stop_handler: Callable[[str, bool], None] | None = None
        self._early_stop: tuple[str, bool] | None = None
        self._stopping: str | None = None  # None, "graceful" or "fast"
        self._in_worker_process = False
        previous = {signum: signal.signal(signum, self._on_stop_signal) for signum, _ in STOP_SIGNALS}
        # HUP and USR2 terminate a process by default: under an in-process scheme (a
        # process scheme's master replaces these handlers with its own) they are logged
        # and ignored -- reloading in place would mean swapping the protocol under live
        # connections; a restart does it (under systemd socket activation, refusing no one).
        for signum in RELOAD_SIGNALS:
            previous[signum] = signal.signal(signum, self._on_reload_signal)
        # USR1, TTIN and TTOU kill or freeze a process by default; the same handler logs
        # and ignores them (see MASTER_ONLY_SIGNALS). A master replaces it with its own
        # and a plugin that reopens a file on USR1 installs its own over it, both later.
        for signum in MASTER_ONLY_SIGNALS:
            previous[signum] = signal.signal(signum, self._on_reload_signal)
        try:
            return self._run()
        finally:
            for signum, handler in previous.items():
                # After a stop, ignore stop signals: a TERM repeated while the process
                # exits must not turn a clean exit into death by signal. SIG_IGN, not a
                # Python handler: interpreter shutdown resets those to SIG_DFL.
                signal.signal(signum, signal.SIG_IGN if self._stopping else handler)

    def _on_reload_signal(self, signum: int, _frame: Any) -> None:
        # Acted on from a thread: the handler may have interrupted this very thread inside
        # a write to stderr, and a second write from here would fail (a reentrant call).
        threading.Thread(target=self.reload_in_place, args=(signum,), name="netcore-signal", daemon=True).start()

    def reload_in_place(self, signum: int) -> None:
        """What HUP does where no generation of workers is replaced (an in-process scheme,
        or the forking scheme's parent, whose children fork from it): the TLS certificate
        read again; USR2, or HUP without TLS, is logged and ignored, as are the other
        signals only a master acts on (USR1, TTIN, TTOU). Not a signal handler."""
        if signum == signal.SIGHUP and self.has_tls():
            self._reload_tls_in_place(signum)
        else:
            self._log_ignored(signum)

    def has_tls(self) -> bool:
        """True when some listener speaks TLS (what a HUP can reload)."""
        return self.accept_layers is not None and self.accept_layers.tls_context is not None

    def tls_for_reload(self, config: Any) -> Any:
        """The TLS context a reload under ``config`` gives the TLS listeners, built now from
        the files it names; None if there is nothing to change (no TLS, or the same files and
        settings: the running context keeps its session-ticket keys). Raises
        :class:`UsageError` (one line: the setting and why) if it cannot be built, or would
        turn TLS on or off, which needs new listeners: a restart. Changes nothing."""
        had = self.has_tls()
        if bool(config.certfile) != had:
            raise UsageError(f"setting 'certfile': turning TLS {'off' if had else 'on'} needs a restart")
        if not had:
            return None
        from netcore.reactor.tls import build_context, reload_needed

        return build_context(config) if reload_needed(config, self.accept_layers.tls_context) else None

    def _reload_tls_in_place(self, signum: int) -> None:
        """HUP under an in-process scheme: the same files read again, the context swapped for
        new connections (open ones keep theirs). A bad file keeps the running context."""
        with self._reload_lock:
            try:
                context = self.tls_for_reload(self.config)
            except UsageError as exc:
                log.error("tls.reload_failed", signal="SIGHUP", reason=f"{exc}: the running certificate is kept")
                return
            if context is None:
                log.info("tls.reload_unchanged", signal="SIGHUP",
                         reason="certificate files unchanged: the running context and its session tickets kept")
                return
            self.accept_layers.replace_tls(context)
            log.info("tls.reloaded", signal="SIGHUP", certfile=str(self.config.certfile))

    def _log_ignored(self, signum: int) -> None:
        name = signal.Signals(signum).name
        log.warning("server.signal_ignored", signal=name,
                    reason=f"{name} ignored under {self.config.dispatch}: "
                           f"{IGNORED_BECAUSE.get(signum, 'not acted on here')}")

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        graceful = dict(STOP_SIGNALS)[signum]
        reason = f"signal {signal.Signals(signum).name}"
        if self._stop_handler is None:
            # Before the dispatcher serves: remember it, so that a TERM right after
            # ``server.started`` still ends in a graceful stop with ``server.stopped``.
            if self._early_stop is None or not graceful:
                self._early_stop = (reason, graceful)
            return
        self._deliver_stop(reason, graceful)

    def request_stop(self, reason: str, graceful: bool = True) -> None:
        """Stop the whole server from inside it: a part that cannot go on (an I/O thread
        whose application failed to start). Any thread; as a stop signal would, once."""
        self._deliver_stop(reason, graceful)

    def _deliver_stop(self, reason: str, graceful: bool) -> None:
        if self._stopping == "fast" or (self._stopping == "graceful" and graceful):
            return
        # /readyz fails from here on, so that a balancer stops sending before connections close.
        self.ready = False
        self._stopping = "graceful" if graceful else "fast"
        if self._ends_itself():
            # A graceful stop is bounded too: by graceful_timeout, after which the
            # dispatcher aborts what is left -- unless a handler holds the thread that
            # would do it. Then, KILL_GRACE later, the watchdog ends the process.
            self._start_stop_watchdog(reason, KILL_GRACE + (float(self.config.graceful_timeout) if graceful else 0.0))
        if not self._in_worker_process:
            notify("STOPPING=1")
        if graceful and not self._in_worker_process and not self.listeners_shared:
            self._close_door()
        assert self._stop_handler is not None
        self._stop_handler(reason, graceful)

    def loop_failed(self, loop: Any, exc: BaseException) -> str:
        """A reactor loop died of an exception nothing on its path caught (a poller that
        refused its time-out, a bug in code run on the loop's own path): what it served,
        nobody serves now. A process left holding the listeners would be an outage that no
        supervisor notices, so the server stops and exits 1 -- systemd's
        ``Restart=on-failure`` then starts it again. This logs ``server.loop_failed`` with
        the traceback and sets :attr:`exit_status`; the dispatcher stops what is left
        (:meth:`request_stop`) and ends with the reason returned here. Any thread.

        A worker process under a master does not come here: its loop's exception ends the
        worker (``worker.failed``, exit 1) and the master replaces it.
        """
        self.exit_status = 1
        name = getattr(loop, "name", "?")
        log.error("server.loop_failed", loop=name, pid=os.getpid(), exc_info=exc)
        return f"loop {name} failed: {type(exc).__name__}: {exc}"

    def _ends_itself(self) -> bool:
        """True for the process of an in-process scheme, which nobody ends if its stop does
        not finish: a master's worker is SIGKILLed by its master, and a master (or the
        forking parent) waits only for its children, which it kills itself."""
        return not self._in_worker_process and not self.concurrency.multiprocess

    def _start_stop_watchdog(self, reason: str, after: float) -> None:
        """Bound this stop to ``after`` seconds, as a master bounds its workers': a fast
        stop to :data:`KILL_GRACE`, a graceful one to ``graceful_timeout`` more. Once per
        kind of stop (a fast one during a graceful one brings its own, shorter bound);
        maybe inside a signal handler (a thread start only)."""
        # A thread, not a timer on the loop or a SIGALRM handler: what the stop would wait
        # for is a handler holding the loop's thread (or a thread the dispatcher joins),
        # and Python can neither interrupt a function running in a thread nor run a signal
        # handler while the main thread is inside a C call. This thread runs as soon as the
        # held one lets go of the GIL, which every blocking call does (sleep, I/O, a lock)
        # and pure Python code does every few milliseconds.
        start_thread(self._stop_watchdog, reason, after, name="netcore-stop-watchdog")

    def _stop_watchdog(self, reason: str, after: float) -> None:
        time.sleep(after)  # a daemon thread: gone with a process that exits in time
        # Still here, the process did not finish its fast stop: end it, as a master ends
        # such a worker. Not with SIGKILL, though, which would exit 137 with nothing said:
        # this process can still say it, so it exits as a fast stop is documented to
        # (server.stopped, status 0; 1 after a failed loop). What the normal exit does
        # after the event is skipped: the plugins' netcore_server_stopped, the removal of
        # a unix: socket's file (the next start reuses a stale one).
        try:
            claimed = self._stopped_claim.acquire(blocking=False)
            writer = threading.Thread(target=self._finish_overdue_stop, args=(reason, claimed, after),
                                      name="netcore-stop-writer", daemon=True)
            writer.start()
            # stderr itself may be what holds the process (a pipe nobody reads): the events
            # are then lost, not the exit.
            writer.join(KILL_GRACE)
        finally:
            os._exit(self.exit_status)

    def _finish_overdue_stop(self, reason: str, claimed: bool, waited: float) -> None:
        """The stop watchdog's last words: ``server.stop_overdue``, and ``server.stopped``
        unless the main thread wrote it already (then something after it held the exit: a
        thread the interpreter joins)."""
        try:
            log.warning("server.stop_overdue", reason=reason, waited=waited,
                        detail=f"still running {waited:g} s after the stop began (a handler that does "
                               "not return): the process exits without waiting for it")
            if claimed:
                log.info("server.stopped", reason=reason, stats=summarize(self._stats_now()))
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass

    def _stats_now(self) -> list[WorkerStats]:
        """The counters for a ``server.stopped`` written before the dispatcher reported
        them all: the reported ones, then those of every live worker and of the live stats."""
        stats = list(self.worker_stats)
        seen = {id(s) for s in stats}
        for item in [*self._live_stats, *(getattr(w, "stats", None) for w in list(self._live_workers))]:
            if item is not None and id(item) not in seen:
                seen.add(id(item))
                stats.append(item)
        return stats

    def _close_door(self) -> None:
        """A graceful stop of the whole server: let no new client in, keep the queued ones
        for the workers' final accept (:func:`netcore.reactor.drain.close_door`). Not on
        sockets someone else goes on serving from (systemd's, a USR2 successor's)."""
        for listener in self.listeners:
            if not listener.inherited and listener.sock.fileno() != -1:
                close_door(listener.sock)

    def _run(self) -> str:
        config = self.config
        self.listeners = self.acceptor.bind(list(config.bind), config.backlog)
        try:
            # Before any worker exists: every worker shares the TLS context (and its
            # tickets). Before --user too, as nginx does: a key readable by root only.
            self.accept_layers = build_accept_layers(config, self.listeners)
            # --user/--group: root only as long as binding needs it
            switch_identity(config, [lst.path for lst in self.listeners if lst.path and not lst.inherited])
            metrics = self._start_metrics()
            log.info(
                "server.started",
                addresses=self.addresses,
                **({"metrics": metrics} if metrics else {}),
                poller=config.poller if self.dispatcher.uses_poller else None,
                dispatch=config.dispatch,
                acceptor=config.acceptor,
                protocol=config.protocol,
                # What serves, not the setting: --workers sizes only the schemes that
                # have several loops, threads or processes (Dispatcher.uses_workers).
                workers=config.workers if getattr(self.dispatcher, "uses_workers", True) else 1,
                pid=self.pid,
            )
            self.hook.netcore_server_started(server=self)
            # Ready now, or -- under a master that announces READY=1 itself -- once its
            # first workers serve (it sets ``ready`` then).
            self.ready = (self._stopping is None and self._early_stop is None
                          and not getattr(self.dispatcher, "announces_ready", False))
            if not getattr(self.dispatcher, "announces_ready", False):
                notify("READY=1")  # a master says it itself, once its workers serve
            reason = self.dispatcher.serve(self)
            self._stopping = self._stopping or "graceful"
        finally:
            self.ready = False
            if self._metrics_listener is not None:
                self._metrics_listener.close()
                self._metrics_listener = None
            self.acceptor.close(self.listeners)
        if not self._stopped_claim.acquire(blocking=False):
            # The stop watchdog found this fast stop overdue and writes server.stopped
            # itself; it ends the process within KILL_GRACE (os._exit), not this thread.
            threading.Event().wait()
        log.info("server.stopped", reason=reason, stats=summarize(self.worker_stats))
        self.hook.netcore_server_stopped(server=self, reason=reason)
        return reason

    def _start_metrics(self) -> str | None:
        """Start the metrics listener (``metrics_bind`` set); its address, for ``server.started``."""
        if not self._metrics_bind:
            return None
        from netcore.metrics.exposition import Exposition
        from netcore.metrics.figures import Monotonic
        from netcore.metrics.listener import MetricsListener

        config = self.config
        info = {"dispatch": str(config.dispatch), "protocol": str(config.protocol),
                "poller": str(config.poller) if self.dispatcher.uses_poller else "",
                "acceptor": str(config.acceptor)}
        assert self.metrics is not None
        exposition = Exposition(Monotonic(self.metrics_snapshot).snapshot, self.metrics, info)
        self._metrics_listener = MetricsListener(self._metrics_bind, exposition.render, lambda: self.ready)
        concurrency = self.concurrency
        if not (concurrency.event_loop and not concurrency.multithread and not concurrency.multiprocess):
            self._metrics_listener.start()
        # else: one loop in one thread (inline): served from that loop once its worker
        # starts (worker_started), since a second thread would tax every request
        # (metrics/listener.py says how much).
        return self._metrics_listener.address
