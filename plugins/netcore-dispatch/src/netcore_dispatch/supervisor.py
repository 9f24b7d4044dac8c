"""A parent process that forks children and watches them: what every process scheme shares.

Two supervisors subclass :class:`Supervisor`: the master of ``prefork`` and
``prefork-blocking`` (:mod:`netcore_dispatch.master`: worker slots, generations,
heartbeats) and the ``forking`` parent (:mod:`netcore_dispatch.forking`: a child per
accepted connection). What differs between them is what their children are for; what
is here is what any process that forks has to get right, and gets wrong in the same
ways when it is written twice:

* **Signals are queued, not acted on in the handler.** A handler may interrupt the
  supervisor anywhere -- halfway through forking, or through updating its table of
  children -- so it only appends to a deque (atomic) and the C-level handler writes to a
  wake-up socket (``signal.set_wakeup_fd``) that the supervisor's ``poll`` watches. The
  loop then takes the queue in order, with nothing half done: HUP, TTIN, TTOU and CHLD
  go to ``handle_hup``, ``handle_ttin``, ... looked up by the signal's name, so a
  subclass says what it does with a signal by defining one method, and one it does not
  define is logged as ignored. TERM, INT and QUIT are not in that table: they reach the
  supervisor through the server's stop handler (which owns the rules for repeated and
  early stop signals) and queue a stop, handled by :meth:`Supervisor.handle_stop`.
* **Fork with every supervised signal blocked**, so that no handler of the supervisor
  runs in the child before the child has reset them; the child then sheds everything
  that is the supervisor's (its wake-up fd, its selector, the read ends of every status
  pipe, HUP/TTIN/TTOU -- ignored, since one sent to the whole process group is the
  supervisor's to act on) and never returns into the supervisor's code: whatever
  happens, it leaves through ``os._exit``.
* **No zombies**: every exited child is reaped with ``waitpid(WNOHANG)`` on each turn of
  the loop, and SIGCHLD makes a turn happen at once.
* **Status lines**: children report through pipes, one newline-terminated line per
  message (an empty line is a heartbeat, any other a JSON object), each far below
  ``PIPE_BUF`` so that a write is atomic and two children sharing a pipe cannot
  interleave. A pipe is read to its end before it is closed, so the counters a child
  writes as it exits are never lost to the order in which its exit and its last line
  are noticed.
* **Kill escalation**: a stop sends TERM (graceful) or QUIT (fast) and SIGKILL once the
  deadline passes -- ``graceful_timeout`` + :data:`STOP_MARGIN`, or :data:`KILL_GRACE` --
  and any child may be given its own SIGKILL deadline (``Child.kill_at``).
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn

import attrs
import structlog
from netcore.server import KILL_GRACE

from netcore_dispatch.worker_link import flush_stdio

if TYPE_CHECKING:
    from netcore.server import Server

log = structlog.get_logger("netcore.master")

# KILL_GRACE, the seconds between SIGABRT (heartbeat timeout) or QUIT (fast stop) and
# SIGKILL, is the host's (netcore.server): an in-process server bounds its own fast stop
# by the same second. Imported here for the master, which takes it from this module.
#: After ``graceful_timeout`` a child has this much longer to exit before SIGKILL (it
#: aborts its own connections at ``graceful_timeout``; this covers its exit).
STOP_MARGIN = 1.0
#: Signals a supervisor handles itself (stop signals go through the server's handler).
SUPERVISED_SIGNALS = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD, signal.SIGUSR1,
                      signal.SIGUSR2)
#: ``handle_<name>`` is the method that handles each of them.
SIGNAL_NAMES = {signum: signal.Signals(signum).name[3:].lower() for signum in SUPERVISED_SIGNALS}
#: Blocked around fork, so that no handler runs in the child before it has reset them.
BLOCK_AT_FORK = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, *SUPERVISED_SIGNALS}

# Child states, as the supervisor sees them.
SERVING = "serving"      # doing its job (or starting to)
RETIRING = "retiring"    # sent TERM: it finishes what it has, then exits
KILLING = "killing"      # sent SIGABRT/QUIT/SIGKILL; SIGKILL at kill_at


@attrs.define(eq=False, kw_only=True)
class Child:
    """One child process, as its supervisor tracks it."""

    pid: int
    started_at: float
    state: str = SERVING
    #: When the supervisor sends SIGKILL if it has not exited (None: no deadline).
    kill_at: float | None = None
    #: Why the supervisor ended it, for ``worker.exited``.
    reason: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {"pid": self.pid}


class StatusPipe:
    """The supervisor's end of a pipe that children write status lines to.

    ``owner`` is the child whose pipe it is, or None for a pipe all children share.
    """

    def __init__(self, fd: int, owner: Child | None = None) -> None:
        self.fd = fd
        self.owner = owner
        #: The start of a line whose end has not arrived yet.
        self.buffer = b""
        self.closed = False


class Supervisor:
    """Forks children and watches them until a stop; :meth:`run` returns the stop reason.

    Subclasses define what differs: :meth:`supervise` (each turn, while the loop runs),
    ``handle_<signal>`` methods, :meth:`status_message` and :meth:`child_exited`, and
    they add what they own to :meth:`setup`, :meth:`shed` and :meth:`teardown`.
    """

    #: Logged when a supervised signal has no ``handle_<name>`` method.
    signal_ignored_reason = "not handled by this supervisor"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.graceful_timeout = float(server.config.graceful_timeout)
        self.children: dict[int, Any] = {}
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.reason = "stopped"
        self.stop_deadline: float | None = None
        self.selector: selectors.BaseSelector | None = None
        self._queue: collections.deque[tuple] = collections.deque()
        self._pipes: dict[int, StatusPipe] = {}
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1

    # -- running -----------------------------------------------------------------------
    def run(self) -> str:
        self.setup()
        try:
            while self.turn():
                pass
        finally:
            self.teardown()
        return self.reason

    def setup(self) -> None:
        # poll, not epoll: an epoll set is a kernel object that forked children would share.
        self.selector = selectors.PollSelector()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wake = (reader, writer)
        self.selector.register(reader, selectors.EVENT_READ, self._drain_wake)
        self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in SUPERVISED_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self.server.set_stop_handler(self._on_stop)

    def turn(self) -> bool:
        """One round of the main loop; False once every child is gone after a stop."""
        self.handle_signals()
        self.reap()
        now = time.monotonic()
        if self.stopping:
            if not self.children:
                return False
            if self.stop_deadline is not None and now >= self.stop_deadline:
                self.stop_deadline = None
                self.stop_overdue()
        for child in list(self.children.values()):
            if child.kill_at is not None and now >= child.kill_at:
                child.kill_at = None
                self.kill(child, signal.SIGKILL, child.reason or "deadline")
        self.supervise(now)
        assert self.selector is not None
        for key, _mask in self.selector.select(self.wait_time()):
            key.data(key.fileobj)
        return True

    def supervise(self, now: float) -> None:
        """The subclass's part of each turn, after signals, reaping and kill deadlines."""

    def wake_times(self) -> Iterable[float]:
        """When the subclass wants a turn, besides signals, status lines and deadlines."""
        return ()

    def wait_time(self) -> float:
        # Once a second at least: a lost wake-up (a full wake-up socket) costs a second.
        now = time.monotonic()
        times = [now + 1.0, *self.wake_times()]
        if self.stop_deadline is not None:
            times.append(self.stop_deadline)
        times.extend(child.kill_at for child in self.children.values() if child.kill_at is not None)
        return max(0.0, min(times) - now)

    def teardown(self) -> None:
        # Normally nobody is left; after an error in the supervisor, leave no orphan behind.
        for child in list(self.children.values()):
            self.send(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.children and time.monotonic() < deadline:
            self.reap(block=True)
        for pipe in list(self._pipes.values()):
            self.close_status(pipe)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(self._previous_wakeup)
        except ValueError:
            pass
        if self.selector is not None:
            self.selector.close()
        if self._wake is not None:
            for sock in self._wake:
                sock.close()
        self._wake = self.selector = None

    # -- signals -------------------------------------------------------------------------
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

    def handle_signals(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item[0] == "stop":
                self.handle_stop(item[1], item[2])
                continue
            name = SIGNAL_NAMES[item[1]]
            handler = getattr(self, f"handle_{name}", None)
            if handler is None:
                log.info("master.signal_ignored", signal=signal.Signals(item[1]).name,
                         reason=self.signal_ignored_reason)
            else:
                handler()

    def handle_chld(self) -> None:
        """Nothing to do here: every turn reaps, and this one does right after."""

    def handle_stop(self, reason: str, graceful: bool) -> None:
        """TERM (graceful) or INT/QUIT (fast), from the server's stop handler.

        A second graceful stop changes nothing; a fast one hurries a graceful one along.
        """
        if self.stopping == "fast" or (self.stopping and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        self.reason = reason
        self.stop_deadline = time.monotonic() + (self.graceful_timeout + STOP_MARGIN if graceful else KILL_GRACE)
        self.stop_children(graceful)

    def stop_children(self, graceful: bool) -> None:
        """Pass the stop on: TERM to the children serving, or QUIT to all not being killed.

        The stop deadline rules from now on, not a deadline a child had before.
        """
        for child in self.children.values():
            if graceful:
                if child.state == SERVING:
                    self.send(child, signal.SIGTERM)
                    child.state = RETIRING
                    child.kill_at = None
            elif child.state != KILLING:
                self.send(child, signal.SIGQUIT)
                child.state = KILLING
                child.kill_at = None

    def stop_overdue(self) -> None:
        """The stop deadline has passed with children still alive: SIGKILL them."""
        for child in list(self.children.values()):
            self.kill(child, signal.SIGKILL, child.reason or "stop deadline")

    # -- children: starting ----------------------------------------------------------------
    def fork(self, main: Callable[[], int], failed: Callable[[BaseException], int] | None = None) -> int:
        """Fork a child that runs ``main()`` and exits with what it returns; return its pid.

        Raises :class:`OSError` if the fork failed (nothing is left blocked). In the child,
        an exception from ``main`` goes to ``failed`` (default :meth:`child_failed`), whose
        return value is the exit status.
        """
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, BLOCK_AT_FORK)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid == 0:
            self._child(main, failed or self.child_failed, mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid

    def _child(self, main: Callable[[], int], failed: Callable[[BaseException], int], mask: Any) -> NoReturn:
        code: Any = 1
        try:
            self._shed(mask)
            code = main()
        except BaseException as exc:  # noqa: BLE001 - anything: report it and exit, never return
            code = failed(exc)
        finally:
            flush_stdio()
            os._exit(code if isinstance(code, int) else 1)

    def child_failed(self, exc: BaseException) -> int:
        """In a child whose ``main`` raised: log it; the exit status."""
        try:
            log.error("worker.failed", pid=os.getpid(), exc_info=exc)
        except BaseException:  # noqa: BLE001 - a log that fails must not stop the exit
            pass
        return 1

    def _shed(self, mask: Any) -> None:
        """Right after fork: the supervisor's signal handling and descriptors are not the child's."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2):
            # Ignored: a HUP sent to the whole process group is the supervisor's to act on
            # (USR1 until the worker installs its own handler: the default would kill it).
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.server.forked()
        for pipe in self._pipes.values():
            os.close(pipe.fd)
        self._pipes = {}
        self.children = {}
        assert self.selector is not None and self._wake is not None
        self.selector.close()
        for sock in self._wake:
            sock.close()
        self.shed()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def shed(self) -> None:
        """In a new child: close what the subclass holds that the child must not."""

    # -- children: status lines ------------------------------------------------------------
    def open_status(self, owner: Child | None = None) -> tuple[StatusPipe, int]:
        """A new status pipe, watched from now on: its read end, and the write end's fd.

        Open it before the fork: the child (which must close it) then finds the read end
        among the pipes it sheds.
        """
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        pipe = StatusPipe(read_fd, owner)
        self._pipes[read_fd] = pipe
        assert self.selector is not None
        self.selector.register(read_fd, selectors.EVENT_READ, lambda _fd: self._read_status(pipe))
        return pipe, write_fd

    def _read_status(self, pipe: StatusPipe) -> None:
        try:
            data = os.read(pipe.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close_status(pipe)
            return
        self._take_lines(pipe, data)

    def _take_lines(self, pipe: StatusPipe, data: bytes) -> None:
        *lines, pipe.buffer = (pipe.buffer + data).split(b"\n")
        for line in lines:
            message: dict | None = None  # an empty line: a heartbeat
            if line:
                try:
                    message = json.loads(line)
                except ValueError:
                    message = None
                if not isinstance(message, dict):
                    log.warning("worker.bad_message", line=line[:200].decode("latin-1"),
                                **(pipe.owner.log_fields() if pipe.owner is not None else {}))
                    continue
            self.status_message(pipe.owner, message)

    def status_message(self, owner: Any, message: dict | None) -> None:
        """A line from ``owner``'s status pipe (None: a shared pipe); None is a heartbeat."""

    def close_status(self, pipe: StatusPipe) -> None:
        """Stop watching ``pipe`` and close it, after taking whatever is still in it."""
        if pipe.closed:
            return
        while True:
            try:
                data = os.read(pipe.fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._take_lines(pipe, data)
        pipe.closed = True
        self._pipes.pop(pipe.fd, None)
        if self.selector is not None:
            self.selector.unregister(pipe.fd)
        os.close(pipe.fd)

    # -- children: ending ------------------------------------------------------------------
    def kill(self, child: Child, signum: int, reason: str) -> None:
        child.state = KILLING
        child.reason = reason
        self.send(child, signum)

    @staticmethod
    def send(child: Child, signum: int) -> None:
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass  # exited already; reaped next

    def reap(self, block: bool = False) -> None:
        """Collect exited children (all that have exited; with ``block``, one)."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()  # nothing left to wait for
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self.child_exited(child, status)
            else:
                self.other_exited(pid, status)
            if block:
                return

    def child_exited(self, child: Any, status: int) -> None:
        """``child`` was reaped; ``status`` is what ``waitpid`` said."""

    def other_exited(self, pid: int, status: int) -> None:
        """A child that is not in :attr:`children` was reaped (a USR2 successor)."""
