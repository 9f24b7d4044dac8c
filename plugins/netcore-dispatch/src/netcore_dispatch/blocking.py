"""What the three blocking schemes share: a blocking connection, blocking accept, stopping.

The essay's schemes 0, 2 and 4 (``iterative``, ``threading``, ``prethread-blocking``) use
no readiness API at all: a thread calls ``accept()`` and ``recv()``/``send()`` and the
kernel puts it to sleep until they can complete. That is the simplest code a server can
have -- the control flow of one client is the control flow of one thread, read top to
bottom -- and its price is one thread (or process) per client being served at the same
time: a thread blocked in ``recv`` on an idle client can do nothing else. The schemes
differ only in how many threads there are and who accepts; this module holds the rest:

* :class:`~netcore.reactor.blocking_connection.BlockingConnection` (in core) -- one
  accepted socket driven by the thread that serves it, with the reactor
  ``Connection``'s interface so that the same protocol code runs unchanged.
* :class:`~netcore_acceptors.blocking_accept.Accepting` (in netcore-acceptors, beside the
  reactor's accept channel, with which it shares the accept toolkit) -- ``accept()`` for
  one thread, over one or several listeners, and a spare descriptor for running out of
  file descriptors without spinning.
* :class:`StopControl` -- stopping threads that are asleep in the kernel. A blocked
  ``accept``/``recv`` cannot be "told" anything; the only things that wake it are the
  kernel's: shutting the socket down. Python runs signal handlers in the main thread
  only, between bytecodes, and the stop handler runs *inside* the signal handler, so
  everything it does is a flag, a socket option or a ``shutdown()``; the waiting
  (graceful timeout) and the final accept of a graceful stop run on a small stop thread,
  which also reads the signal wake-up fd so that a signal landing just before the main
  thread enters a blocking call is not lost.
* :class:`BlockingDispatcher` -- the base class: no poller, the stop machinery wired in.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import structlog
from netcore.dispatch import Dispatcher
from netcore.reactor.blocking_connection import BlockingConnection
from netcore.reactor.connection import ConnectionOwner
from netcore.reactor.drain import DRAIN_QUIET, SCAN_INTERVAL, QuietTracker, close_door
from netcore.reactor.threads import start_thread
from netcore.reactor.worker import BACKLOG_TAKE_MAX
from netcore.server import STOP_SIGNALS
from netcore.stats import WorkerStats
from netcore_acceptors.blocking_accept import Accepting, SpareDescriptor, prepare_listeners

if TYPE_CHECKING:
    from netcore.server import Server

log = structlog.get_logger("netcore.dispatch")

#: After a forced stop, how long serve() still waits for threads stuck in a handler
#: (a handler cannot be interrupted; its next write fails) before abandoning them.
ABANDON_AFTER = 5.0


# -- the worker ---------------------------------------------------------------------------


class BlockingWorker(ConnectionOwner):
    """One worker as hooks and ``server.stopped`` see it: an index, a pid, counters.

    Under ``threading`` one worker's counters are updated by every connection thread, so
    every update takes a lock -- once per connection and per accept, never per message
    (connections count their bytes in their own slots and fold them in when they close).
    """

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.pid = os.getpid()
        self.stats = WorkerStats(worker=index, pid=self.pid)
        self._lock = threading.Lock()

    def count(self, **deltas: int) -> None:
        stats = self.stats
        with self._lock:
            for name, delta in deltas.items():
                setattr(stats, name, getattr(stats, name) + delta)

    def connection_closed(self, connection: Any) -> None:
        stats = self.stats
        with self._lock:
            stats.connections_closed += 1
            stats.bytes_received += connection.bytes_received
            stats.bytes_sent += connection.bytes_sent
            stats.requests += connection.requests

    def count_error(self) -> None:
        self.count(errors=1)

    def __repr__(self) -> str:
        return f"<BlockingWorker {self.index} pid={self.pid}>"


# -- stopping -----------------------------------------------------------------------------

#: What the wake-up pipe carries: signal numbers (from the C-level signal handler) and
#: these commands, all above any signal number.
_GRACEFUL, _FAST, _EXIT = ord("g"), ord("f"), ord("x")
_GRACEFUL_BYTE, _FAST_BYTE, _EXIT_BYTE = bytes([_GRACEFUL]), bytes([_FAST]), bytes([_EXIT])
#: signal number -> graceful?
_STOP_SIGNALS = {int(signum): graceful for signum, graceful in STOP_SIGNALS}


class StopControl:
    """Stops threads that sleep in the kernel: shut their sockets down, wait, force.

    ``request`` is the server's stop handler. It runs in the main thread *inside the
    signal handler* -- possibly while the main thread itself is the one serving a client
    (``iterative``) -- so it takes no lock that code it interrupted might hold, starts no
    thread and waits for nothing. It sets :attr:`stopping` and applies the stop to each
    open connection: graceful, it only marks it draining (its thread tells the protocol
    before the next input, so that the next reply is final); fast, it shuts both sides
    down. Then it writes one byte to a pipe.

    The listeners end differently for the two. Shutting a listener down is what wakes a
    thread blocked in ``accept`` (Linux returns EINVAL; closing the fd from another
    thread would not wake it, and the number could be reused under it) -- but it also
    resets every connection still queued in the backlog, whose client may have sent its
    request already. So a fast stop shuts them down at once; a graceful one only *closes
    the door* (:func:`netcore.reactor.drain.close_door`: no new client gets in, the
    queued ones stay), and the stop thread then takes the queue (:meth:`_take_backlog`,
    non-blocking accepts until EAGAIN), and only then shuts the listeners down. The
    acceptors, once woken or done with their client, serve what it took the scheme's
    usual way (:meth:`final_accepted`; under ``threading`` the stop thread starts a
    connection thread for each), with the stop already applied.

    The stop thread reading that pipe does what needs time: during a graceful stop it
    takes the backlog as above, shuts the read side of each
    connection that has stayed quiet (:mod:`netcore.reactor.drain`: ``recv`` returns
    what is queued, then b'', and the protocol closes), after ``graceful_timeout`` it
    forces what is still open, and it wakes acceptors waiting for a free connection slot. The same pipe is the
    process's signal wake-up fd, so the stop thread also calls ``request`` itself as
    soon as a stop signal arrives (see :meth:`start` for why); ``request`` is
    idempotent, and whichever call comes second finds the stop under way.

    It also tracks the threads a scheme starts, so that ``serve()`` returns only after
    every one has finished.
    """

    def __init__(self, server: Server) -> None:
        self.listeners = list(server.listeners)
        self.graceful_timeout = float(server.config.graceful_timeout)
        #: The stop reason ``serve()`` returns.
        self.reason = "stopped"
        #: None while serving, then "graceful" or "fast".
        self.stopping: str | None = None
        #: Handed to every connection: serialises its close() with the stop's shutdown().
        self.sockets_lock = threading.RLock()
        self._connections: dict[BlockingConnection, None] = {}
        self._cond = threading.Condition(threading.Lock())
        self._live: set[threading.Thread] = set()
        self._finished: list[threading.Thread] = []
        self._forced_at: float | None = None
        self._on_stop: list[Callable[[], None]] = []
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop_thread: threading.Thread | None = None
        self._previous_wakeup_fd: int | None = None
        self._server = server
        #: What the final accept took, for the acceptors to serve; set once it is done.
        self._backlog: deque[tuple[socket.socket, Any]] = deque()
        self._backlog_taken = threading.Event()
        #: Set by a scheme whose acceptor hands each connection on to a new thread
        #: (``threading``, see ``BlockingDispatcher.accepting``): the final accept hands
        #: what it takes on the same way, counted on this worker. None: the acceptors
        #: serve it themselves, through :meth:`final_accepted`.
        self.backlog_worker: BlockingWorker | None = None
        self._backlog_threads = 0
        #: The quiet period of a connection that has received nothing yet (a worker
        #: retired while its siblings serve gives it longer: see prefork_blocking).
        self.fresh_quiet = DRAIN_QUIET

    def start(self, server: Server) -> None:
        """Start the stop thread, then take the server's stop signals (an early one applies now).

        Main thread only (``set_wakeup_fd``). The signal handler alone is not enough for
        a thread that blocks in a system call: Python runs handlers between bytecodes, so
        a signal that lands after the last check and before the thread enters ``recv()``
        or ``accept()`` interrupts nothing -- the C-level handler has already run, the
        call then sleeps, and the Python handler waits for the next client (measured:
        about one stop in 200 hung under load). The C-level handler also writes the
        signal number to the wake-up fd, which is this object's pipe: the stop thread
        sees it at once and applies the stop itself; the Python handler, when it runs,
        finds the stop already under way.
        """
        self._stop_thread = start_thread(self._supervise, name="netcore-stop")
        if threading.current_thread() is threading.main_thread():  # else no signals reach us anyway
            self._previous_wakeup_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        server.set_stop_handler(self.request)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the stop thread when a stop begins (wake a waiting acceptor)."""
        self._on_stop.append(callback)

    # -- the stop handler (signal handler context) --------------------------------------
    def request(self, reason: str, graceful: bool) -> None:
        if self._closed or self.stopping == "fast" or (self.stopping and graceful):
            return
        self.reason = reason
        self.stopping = "graceful" if graceful else "fast"
        if graceful:
            # Not shut down yet: that would reset the backlog (see the class doc). The
            # stop thread takes it, then shuts down, so an acceptor asleep in accept()
            # stays asleep until then -- harmless, it has nothing to serve before.
            self._close_doors()
        else:
            self._shut_listeners()
        # tuple(dict) copies without releasing the GIL: no thread can change it meanwhile.
        for conn in tuple(self._connections):
            self.stop_connection(conn, graceful)
        self._wake(_GRACEFUL_BYTE if graceful else _FAST_BYTE)

    def stop_connection(self, conn: BlockingConnection, graceful: bool) -> None:
        """Apply the stop to one connection (signal handler context: flags and shutdown only)."""
        if graceful:
            conn.announce_stop()
        else:
            conn.stop_now()

    def _close_doors(self) -> None:
        """Let no new client in, keep the queued ones (the server's own ``_close_door``
        does the same when the stop comes through it; the stop thread may get here first).
        Not on sockets someone else goes on serving from (systemd's, a USR2 successor's)."""
        if getattr(self._server, "listeners_shared", False):
            return
        for listener in self.listeners:
            if not listener.inherited and listener.sock.fileno() != -1:
                close_door(listener.sock)

    def _shut_listeners(self) -> None:
        for listener in self.listeners:
            try:
                listener.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _wake(self, command: bytes) -> None:
        try:
            os.write(self._wake_w, command)
        except OSError:
            pass

    # -- connections --------------------------------------------------------------------
    def register(self, conn: BlockingConnection) -> None:
        """Track an open connection; one accepted as the stop began is stopped here.

        The stop sets :attr:`stopping` before it walks the table and this adds to the
        table before it reads :attr:`stopping`, so at least one of the two sees the other.
        """
        self._connections[conn] = None
        stopping = self.stopping
        if stopping is not None:
            self.stop_connection(conn, stopping == "graceful")

    def unregister(self, conn: BlockingConnection) -> None:
        self._connections.pop(conn, None)

    def connections(self) -> tuple[BlockingConnection, ...]:
        """The open connections now (a copy; any thread)."""
        return tuple(self._connections)

    def force(self) -> None:
        """Shut every open connection down at once (from any thread)."""
        for conn in tuple(self._connections):
            conn.stop_now()

    # -- the final accept -----------------------------------------------------------------
    def final_accepted(self) -> tuple[socket.socket, Any] | None:
        """For an acceptor that has seen the stop: the next connection the final accept
        took, to serve the scheme's usual way; None when there is none left (or the stop
        is fast, or forced). Any thread.

        Waits for the stop thread to finish the final accept first: an acceptor that saw
        the stop flag an instant before it did would otherwise find nothing and return,
        and the connections it took would be left to nobody. The wait is a few system
        calls long; bounded all the same.
        """
        if self.stopping != "graceful":
            return None
        if not self._backlog_taken.wait(self.graceful_timeout):
            log.warning("dispatch.final_accept_missed", waited=self.graceful_timeout)
            return None
        if self._forced_at is not None:
            return None
        try:
            return self._backlog.popleft()
        except IndexError:
            return None

    def _take_backlog(self) -> None:
        """The final accept (stop thread, graceful stop): take the queue, then wake the acceptors.

        The door is closed (:meth:`request`), so the queue only shrinks. Our accepts must
        not sleep, so the listener is made non-blocking -- an acceptor thread already
        asleep in ``accept()`` stays asleep (the kernel read the flag when it entered) and
        is woken by the shutdown below, once the queue is ours; one entering ``accept()``
        meanwhile gets EAGAIN and sees the stop. Either may also win a connection from
        the queue before us, and serves it as usual. Bounded in count: a listener whose
        door could not be closed (systemd's) may keep receiving clients.
        """
        if not self._backlog_taken.is_set():
            for listener in self.listeners:
                sock = listener.sock
                try:
                    sock.setblocking(False)
                except OSError:
                    continue  # closed already
                for _ in range(BACKLOG_TAKE_MAX):
                    try:
                        accepted = sock.accept()
                    except OSError:  # EAGAIN: the queue is empty (or no descriptor is left)
                        break
                    if self.backlog_worker is None:
                        self._backlog.append(accepted)
                    else:
                        self._serve_in_thread(self.backlog_worker, *accepted)
        self._shut_listeners()
        self._final_accept_done()

    def _serve_in_thread(self, worker: BlockingWorker, sock: socket.socket, peer: Any) -> None:
        """Serve one connection of the final accept in a tracked thread of its own (``threading``)."""
        worker.count(connections_accepted=1)
        self._backlog_threads += 1
        try:
            self.start_thread(serve_connection, f"netcore-backlog-{self._backlog_threads}",
                              self._server, self, worker, sock, peer)
        except RuntimeError as exc:  # "can't start new thread": this client is refused
            log.warning("connection.refused", reason="cannot start a thread", error=str(exc))
            sock.close()
            worker.count(connections_closed=1, errors=1)

    def _final_accept_done(self) -> None:
        """No acceptor and no ``wait_threads`` may wait for the final accept any more."""
        self._backlog_taken.set()
        with self._cond:
            self._cond.notify_all()

    def _drop_backlog(self) -> None:
        """Close what the final accept took and no acceptor has served (fast or forced stop,
        or the end): the fast stop's usual fate for a client, and no descriptor leaked."""
        dropped = 0
        while True:
            try:
                sock, _peer = self._backlog.popleft()
            except IndexError:
                break
            sock.close()
            dropped += 1
        if dropped:
            log.warning("dispatch.backlog_dropped", connections=dropped, stopping=self.stopping)

    # -- the stop thread --------------------------------------------------------------
    def _supervise(self) -> None:
        waiter = select.poll()
        waiter.register(self._wake_r, select.POLLIN)
        deadline: float | None = None
        quiet: QuietTracker | None = None  # while a graceful stop drains
        while True:
            wake = [t for t in (deadline, None if quiet is None else time.monotonic() + SCAN_INTERVAL) if t]
            timeout = max(0, int((min(wake) - time.monotonic()) * 1000) + 1) if wake else None
            events = waiter.poll(timeout)
            now = time.monotonic()
            if quiet is not None:
                if self.stopping == "graceful" and self._forced_at is None:
                    for conn in quiet.quiet_ones(self.connections(), now):
                        conn.stop_gracefully()
                else:
                    quiet = None
            if deadline is not None and now >= deadline:
                deadline = quiet = None
                if self._connections:
                    log.warning("worker.graceful_timeout", aborted=len(self._connections),
                                graceful_timeout=self.graceful_timeout)
                    self.force()
                    self._mark_forced()
                self._drop_backlog()
            if not events:
                continue
            commands = os.read(self._wake_r, 64)
            if not commands or _EXIT in commands:
                return
            for byte in commands:
                if byte in _STOP_SIGNALS:
                    # Written by the C-level signal handler: stop from here, whatever the
                    # main thread is blocked in (request() writes "g"/"f", read next round).
                    self.request(f"signal {signal.Signals(byte).name}", _STOP_SIGNALS[byte])
            if _FAST in commands:
                deadline = None
                self._mark_forced()
            elif _GRACEFUL in commands and deadline is None and self._forced_at is None:
                self._take_backlog()
                deadline = time.monotonic() + self.graceful_timeout
                quiet = QuietTracker(DRAIN_QUIET, self.fresh_quiet)
            if _FAST in commands or _GRACEFUL in commands:
                if self.stopping == "fast":
                    self._drop_backlog()
                # Whatever happened above (a fast stop takes nothing), the final accept is over.
                self._final_accept_done()
                for callback in self._on_stop:
                    try:
                        callback()
                    except Exception:
                        log.exception("dispatch.stop_callback_failed")

    def _mark_forced(self) -> None:
        with self._cond:
            if self._forced_at is None:
                self._forced_at = time.monotonic()
            self._cond.notify_all()

    # -- threads ------------------------------------------------------------------------
    def start_thread(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        """Start a tracked daemon thread running ``target(*args)``, deaf to stop signals.

        The signals are blocked in it so that the kernel always delivers them to the main
        thread: one delivered to this thread would run no handler (Python runs them in the
        main thread only) and leave a main thread asleep in ``accept()`` unaware of it.
        Daemon, so that a thread stuck in a handler after a forced stop cannot keep the
        process alive once :meth:`wait_threads` has given up on it.
        """
        # Held across the start: the thread cannot report its end before it is tracked.
        with self._cond:
            thread = start_thread(self._run_thread, target, args, name=name)
            self._live.add(thread)
        return thread

    def _run_thread(self, target: Callable[..., None], args: tuple) -> None:
        try:
            target(*args)
        finally:
            me = threading.current_thread()
            with self._cond:
                self._live.discard(me)
                self._finished.append(me)
                self._cond.notify_all()

    def reap(self) -> None:
        """Join threads that have finished (instant), so they do not accumulate."""
        with self._cond:
            finished, self._finished = self._finished, []
        for thread in finished:
            thread.join()

    def wait_threads(self) -> None:
        """Wait until every started thread has finished; after a forced stop, at most
        :data:`ABANDON_AFTER` seconds more (a handler cannot be interrupted).

        During a graceful stop, also until the final accept is over: the threads it may
        start (``threading``) are not tracked yet when the acceptor gets here.
        """
        with self._cond:
            while self._live or (self.stopping == "graceful" and not self._backlog_taken.is_set()):
                if self._forced_at is None:
                    self._cond.wait()
                    continue
                remaining = self._forced_at + ABANDON_AFTER - time.monotonic()
                if remaining <= 0:
                    log.warning("dispatch.threads_abandoned", threads=sorted(t.name for t in self._live))
                    break
                self._cond.wait(remaining)
        self.reap()

    def close(self) -> None:
        """End the stop thread (after every serving thread has finished)."""
        self._closed = True
        self._backlog_taken.set()
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        self._wake(_EXIT_BYTE)
        if self._stop_thread is not None:
            self._stop_thread.join()
        self._drop_backlog()
        wake_r, wake_w = self._wake_r, self._wake_w
        self._wake_r = self._wake_w = -1
        os.close(wake_r)
        os.close(wake_w)


# -- serving ------------------------------------------------------------------------------


def serve_connection(server: Server, control: StopControl, worker: BlockingWorker,
                     sock: socket.socket, peer: Any) -> None:
    """Serve one accepted socket to its end on the calling thread."""
    try:
        conn = BlockingConnection(sock, server.protocol_factory, worker, peer=peer,
                                  sockets_lock=control.sockets_lock, **server.connection_options())
    except OSError:
        # Reset before we could even set it up (setsockopt on a dead socket): gone.
        sock.close()
        worker.count(connections_closed=1)
        return
    control.register(conn)
    try:
        conn.serve()
    finally:
        if not conn.closed:  # an exception escaped the serving loop: never leak the socket
            conn.abort()
        control.unregister(conn)


class BlockingDispatcher(Dispatcher):
    """Base of the blocking schemes: blocking sockets, no poller, the stop machinery.

    Registered with ``provides=("blocking",)``: the assembly then loads no poller and
    ``uses_poller`` (from the registration) is False.
    """

    def serve(self, server: Server) -> str:
        prepare_listeners(server.listeners)
        #: Shared by every accepting thread of this server.
        self.spare = SpareDescriptor()
        control = StopControl(server)
        self.prepare(server, control)
        control.start(server)
        try:
            self.run(server, control)
        finally:
            control.close()
            self.spare.close()
        return control.reason

    def accepting(self, server: Server, control: StopControl, worker: BlockingWorker) -> Accepting:
        """The accept side of a thread that hands each connection on to a new thread
        (``threading``). Such an acceptor ends at the stop, so what the stop's final
        accept takes is handed on the same way, by the stop thread, counted on ``worker``."""
        control.backlog_worker = worker
        return Accepting(server.listeners, worker, control, self.spare)

    def prepare(self, server: Server, control: StopControl) -> None:
        """Before stop signals are taken: register :meth:`StopControl.on_stop` callbacks."""

    def run(self, server: Server, control: StopControl) -> None:
        """Serve until stopped; return once every thread started has finished."""
        raise NotImplementedError

    def serve_worker(self, server: Server, control: StopControl, worker: BlockingWorker) -> None:
        """One worker's life: accept a client, serve it to its end, accept the next; after
        a graceful stop, the ones the final accept took (``Accepting`` hands them over)."""
        accepting = Accepting(server.listeners, worker, control, self.spare)
        server.worker_started(worker)
        try:
            while (accepted := accepting.accept()) is not None:
                serve_connection(server, control, worker, *accepted)
        finally:
            server.worker_stopping(worker)
