"""``mutex``: nginx's ``accept_mutex`` — only the worker holding a lock watches the listeners.

Every worker shares the listening sockets (as with ``shared``), but a worker puts them
in its poll set only while it holds a cross-process lock, so one connection wakes one
worker: no herd. What differs from nginx, and why:

* **The lock: a POSIX record lock** (``fcntl(F_SETLK[W])`` on byte 0 of an unlinked
  temporary file that :meth:`MutexAcceptor.bind` creates before any fork). POSIX record
  locks belong to a *process*: the kernel drops them when the process dies, however it
  dies (``kill -9`` of the holder never wedges accepting), and a ``fork`` does not copy
  them, so a child a worker's application forks can never end up holding the accept
  lock. Open-file-description locks (``F_OFD_SETLK``) would be shared with such a child
  through the inherited descriptor and outlive the worker, and would have to be
  re-opened per worker. The price of POSIX locks: threads of one process share them, so
  loops of one process (several reactors using this acceptor) are excluded from each
  other by a ``threading.Lock`` taken first.
* **Waiting in the kernel, not polling.** nginx's workers without the lock try it
  again every ``accept_mutex_delay`` (500 ms by default), so a lock given up waits up
  to that long for a taker: nginx keeps it with one worker while the load is light,
  which is why one worker takes nearly every connection. Here each loop has a small
  helper thread that blocks in ``fcntl(F_SETLKW)`` and wakes its loop the moment the
  lock is granted, so the lock can move after every accept at the cost of a thread
  wake-up, with no periodic wake-ups of idle workers and no added latency.
* **The holder gives the lock up after each iteration that accepted** (checked by a
  prepare callback, before the loop polls again: nginx releases after handling its
  accept events too) and queues for it again behind the workers already waiting, so
  connections go round the workers instead of piling on one. A holder that accepts
  nothing keeps the lock and its listeners: an idle server answers at once.
* A worker at its connection limit (``pause_accepting``) or stopping gives the lock up
  and stops asking for it.

Blocking schemes (``prefork-blocking`` and the in-process blocking ones) never call
``start``: their workers sleep in ``accept()``, where the kernel already wakes only one.
"""

from __future__ import annotations

import fcntl
import os
import struct
import tempfile
import threading
from typing import TYPE_CHECKING

import structlog
from netcore.acceptor import Listener, OnConnection

from netcore_acceptors.channel import AcceptChannel
from netcore_acceptors.shared import SharedAcceptor

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop
    from netcore.stats import WorkerStats

log = structlog.get_logger("netcore.acceptor")

#: How often a helper waiting for the in-process thread lock looks at its stop flag.
THREAD_LOCK_POLL = 0.2


#: ``struct flock`` on Linux: l_type, l_whence, l_start, l_len, l_pid (for F_GETLK only).
_FLOCK = "hhqqi"


class AcceptLock:
    """The cross-process accept lock plus the lock that keeps this process's threads apart."""

    def __init__(self) -> None:
        # Unlinked at once: nothing to clean up on disk, whatever way the server ends.
        self.file = tempfile.TemporaryFile(prefix="netcore-accept-mutex-")
        self.fd = self.file.fileno()
        self.threads = threading.Lock()

    def after_fork(self) -> None:
        """In a new worker: the parent's thread lock state means nothing here."""
        self.threads = threading.Lock()

    def acquire_for_thread(self, stopped: threading.Event) -> bool:
        """This thread's turn among the loops of this process; False if ``stopped`` came first."""
        while not self.threads.acquire(timeout=THREAD_LOCK_POLL):
            if stopped.is_set():
                return False
        return True

    def acquire_for_process(self) -> None:
        """Sleep in the kernel until no other process holds the lock (after acquire_for_thread).

        ``lockf`` is ``fcntl(F_SETLKW)``, a POSIX record lock; a signal interrupting the
        wait is retried by Python (PEP 475).
        """
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, 0)
        except BaseException:
            self.threads.release()
            raise

    def release(self) -> None:
        """Give both locks up. After :meth:`close` there is no record lock left to give
        up (closing the file dropped this process's), only the thread lock: a helper
        thread that got the lock as its worker closed the acceptor must not fail."""
        fd = self.fd
        try:
            if fd >= 0:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
        except OSError:
            if self.fd >= 0:
                raise  # not closed under us: a real failure
        finally:
            self.threads.release()

    def holder_pid(self) -> int | None:
        """The pid of another process holding the lock, or None (for tests and diagnostics)."""
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
        kind, _whence, _start, _len, pid = struct.unpack(_FLOCK, fcntl.fcntl(self.fd, fcntl.F_GETLK, query))
        return None if kind == fcntl.F_UNLCK else pid

    def close(self) -> None:
        self.fd = -1  # first: a release racing this close then skips the unlock
        self.file.close()


class LoopTurn:
    """One loop's share of the mutex: its channels, its helper thread, whether it holds the lock.

    Everything but :meth:`_wait_for_lock` runs on the loop's thread.
    """

    def __init__(self, lock: AcceptLock, loop: EventLoop, channels: list[AcceptChannel], stats: WorkerStats) -> None:
        self.lock = lock
        self.loop = loop
        self.channels = channels
        self.stats = stats
        self.holding = False
        self.paused = False
        self.stopped = threading.Event()
        self._want = threading.Event()
        self._mark = 0
        #: True while the helper sleeps in the kernel for another process's lock.
        self.in_kernel = False
        for channel in channels:
            channel.hold()  # nobody watches a listener without the lock
        loop.add_prepare(self.prepare)
        self._thread = threading.Thread(target=self._wait_for_lock, name=f"netcore-accept-mutex-{loop.name}", daemon=True)
        self._thread.start()
        self._want.set()

    # -- the helper thread ---------------------------------------------------------------
    def _wait_for_lock(self) -> None:
        want, stopped = self._want, self.stopped
        while True:
            want.wait()
            want.clear()
            if stopped.is_set():
                return
            if not self.lock.acquire_for_thread(stopped):
                return
            self.in_kernel = True
            try:
                self.lock.acquire_for_process()
            except OSError as exc:  # the lock file is gone: the acceptor was closed
                if not stopped.is_set() and self.lock.fd >= 0:  # closed as asked: nothing to say
                    log.warning("accept.mutex_failed", loop=self.loop.name, error=str(exc))
                return
            finally:
                self.in_kernel = False
            if stopped.is_set():
                self.lock.release()
                return
            try:
                self.loop.call_soon_threadsafe(self._granted)
            except Exception:  # the loop was closed under us
                self.lock.release()
                return

    # -- the loop side -------------------------------------------------------------------
    def _granted(self) -> None:
        if self.stopped.is_set() or self.paused:
            self.lock.release()
            return
        self.holding = True
        self._mark = self.stats.accept_wakeups
        for channel in self.channels:
            channel.release()

    def prepare(self) -> None:
        """Before each poll: an iteration that accepted hands the lock on."""
        if self.holding and self.stats.accept_wakeups != self._mark:
            self._give_up()
            self._want.set()  # and queue for it again, behind those already waiting

    def _give_up(self) -> None:
        if not self.holding:
            return
        self.holding = False
        for channel in self.channels:
            channel.hold()
        self.lock.release()

    def pause(self) -> None:
        self.paused = True
        self._give_up()

    def resume(self) -> None:
        if self.paused and not self.stopped.is_set():
            self.paused = False
            self._want.set()

    def stop(self) -> None:
        """Close the channels, give the lock up and end the helper thread. Idempotent."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.loop.remove_prepare(self.prepare)
        self._give_up()
        for channel in self.channels:
            channel.close()
        self._want.set()
        # The helper is waiting for _want (it returns now), for the thread lock (within
        # THREAD_LOCK_POLL) or in the kernel for another process's lock: then it cannot
        # be interrupted, releases the lock the moment it gets it, and dies with the
        # process — waiting for it would only delay this worker's stop.
        if not self.in_kernel:
            self._thread.join(THREAD_LOCK_POLL * 2)


class MutexAcceptor(SharedAcceptor):
    """Shared listeners, watched only by the worker that holds the accept lock."""

    name = "mutex"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.accept_lock: AcceptLock | None = None
        self.turns: list[LoopTurn] = []

    def bind(self, addresses: list[str], backlog: int) -> list[Listener]:
        listeners = super().bind(addresses, backlog)
        if self.accept_lock is None:
            self.accept_lock = AcceptLock()  # before any fork: every worker shares the file
        return listeners

    def worker_forked(self, listeners: list[Listener], slot: int) -> None:
        if self.accept_lock is not None:
            self.accept_lock.after_fork()
        with self._lock:
            self.turns = []
            self.channels = []
        self._lock = threading.Lock()

    def start(self, loop: EventLoop, listeners: list[Listener], on_connection: OnConnection, stats: WorkerStats) -> None:
        if self.accept_lock is None:
            self.accept_lock = AcceptLock()
        channels = []
        try:
            for listener in listeners:
                channels.append(AcceptChannel(loop, listener, on_connection, stats, max_batch=self.max_batch))
        except BaseException:
            for channel in channels:
                channel.close()
            raise
        turn = LoopTurn(self.accept_lock, loop, channels, stats)
        with self._lock:
            self.channels.extend(channels)
            self.turns.append(turn)

    def _turns_of(self, loop: EventLoop) -> list[LoopTurn]:
        with self._lock:
            return [t for t in self.turns if t.loop is loop]

    def pause_accepting(self, loop: EventLoop) -> None:
        for turn in self._turns_of(loop):
            turn.pause()

    def resume_accepting(self, loop: EventLoop) -> None:
        for turn in self._turns_of(loop):
            turn.resume()

    def stop_accepting(self) -> None:
        """As ``shared``: on a loop's thread that loop's turn, from elsewhere all of them."""
        with self._lock:
            mine = [t for t in self.turns if t.loop.in_loop_thread()]
            turns = mine or self.turns
            self.turns = [t for t in self.turns if t not in turns]
            closing = {id(c) for t in turns for c in t.channels}
            self.channels = [c for c in self.channels if id(c) not in closing]
        for turn in turns:
            loop = turn.loop
            if loop.in_loop_thread() or not loop.is_running():
                turn.stop()
            else:
                loop.call_soon_threadsafe(turn.stop)

    def close(self, listeners: list[Listener]) -> None:
        while self.turns:
            self.stop_accepting()
        super().close(listeners)
        if self.accept_lock is not None:
            self.accept_lock.close()
            self.accept_lock = None
