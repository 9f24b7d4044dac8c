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
* **A loop busy in a handler does not keep the lock.** nginx's workers never block, and
  it takes the lock at the top of an iteration and releases it after the accept events,
  before the others: the lock is never held while a worker runs other code. Here
  handlers run inline in the loop (a WSGI app under ``prefork``), a handler may take
  seconds, and the loop has no place between its poll and its handlers to give the lock
  up from. Kept as it was, one slow request stopped every worker from accepting, and
  after a HUP the old worker, once free, accepted what had waited for it. So the
  helper thread, which holds the lock for its loop, checks that the loop can use it:
  the loop must take up a grant (run its callback) within :data:`BUSY_GRACE`, and a
  connection that waits while the loop holds the lock must be taken within
  :data:`BUSY_GRACE` too (the helper sleeps on the listeners while its loop holds the
  lock, so this costs no periodic wake-up). Otherwise the helper takes the lock back and
  a free worker gets it; the busy loop accepts nothing more (:class:`MutexChannel`)
  and asks for the lock again only once it is free. A new connection waits at most
  that grace per busy spell of a worker, not for the handler.
* A worker at its connection limit (``pause_accepting``) or stopping gives the lock up
  and stops asking for it.

Blocking schemes (``prefork-blocking`` and the in-process blocking ones) never call
``start``: their workers sleep in ``accept()``, where the kernel already wakes only one.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import tempfile
import threading
import time
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
#: Seconds a loop has to take up the lock once its helper got it, and to take a
#: connection waiting while it holds the lock, before the helper takes the lock back:
#: a loop that does neither is busy in a handler (see LoopTurn._keep). A free loop does
#: both within a wake-up (microseconds; a few ms on a loaded machine); this is what a
#: new connection waits at most, once per busy spell of a worker, where without it it
#: waited for the handler to return.
BUSY_GRACE = 0.05


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


class MutexChannel(AcceptChannel):
    """An accept channel that accepts only while its loop's turn has the lock.

    The helper thread can take the lock back while the loop is busy in a handler (see
    :class:`LoopTurn`); the listener stays in that loop's poller until the loop is free
    to unregister it, and a report already in its poll list must then find nothing to
    do: another worker has the lock and accepts now.
    """

    turn: LoopTurn | None = None

    def handle_read(self, mask: int) -> None:
        turn = self.turn
        if turn is not None and not turn.owned:
            return
        AcceptChannel.handle_read(self, mask)


class LoopTurn:
    """One loop's share of the mutex: its channels, its helper thread, whether it holds the lock.

    The loop side (everything but :meth:`_helper` and what it calls) runs on the loop's
    thread. The two sides share :attr:`owned`, the grant numbers and the wish for the
    lock, under :attr:`_guard`; the loop rings the helper through a pipe (a byte) when
    one of them changes, so that the helper can sleep in ``poll`` on the pipe and, while
    the loop holds the lock, on the listeners too.
    """

    def __init__(self, lock: AcceptLock, loop: EventLoop, channels: list[MutexChannel], stats: WorkerStats) -> None:
        self.lock = lock
        self.loop = loop
        self.channels = channels
        self.stats = stats
        #: Loop thread: the listeners are in the loop's poller (for the grant taken up last).
        self.holding = False
        self.paused = False
        self.stopped = threading.Event()
        self._guard = threading.Lock()
        #: This turn has the lock (the record lock and the thread lock), from the helper's
        #: acquisition to the release by whichever side ends the grant.
        self.owned = False
        self._grant = 0  # the number of the latest acquisition
        self._taken_up = 0  # the latest grant the loop took up (listeners watched)
        self._wanted = False  # the loop, free, asks for the lock
        self._mark = 0
        #: True while the helper sleeps in the kernel for another process's lock.
        self.in_kernel = False
        self._bell_r, self._bell_w = os.pipe()
        os.set_blocking(self._bell_r, False)
        os.set_blocking(self._bell_w, False)
        for channel in channels:
            channel.turn = self
            channel.hold()  # nobody watches a listener without the lock
        loop.add_prepare(self.prepare)
        self._thread = threading.Thread(target=self._helper, name=f"netcore-accept-mutex-{loop.name}", daemon=True)
        self._thread.start()
        self._ask()

    # -- the helper thread ---------------------------------------------------------------
    def _helper(self) -> None:
        bell = select.poll()
        bell.register(self._bell_r, select.POLLIN)
        watch = select.poll()
        watch.register(self._bell_r, select.POLLIN)
        for channel in self.channels:
            watch.register(channel.fd, select.POLLIN)
        try:
            while self._wait_for_wish(bell):
                grant = self._acquire()
                if grant is None:
                    return
                try:
                    self.loop.call_soon_threadsafe(self._granted, grant)
                except Exception:  # the loop was closed under us
                    self._take_back(grant)
                    return
                if not self._keep(grant, bell, watch):
                    return
        finally:
            os.close(self._bell_r)

    def _wait_for_wish(self, bell: select.poll) -> bool:
        """Sleep until the loop asks for the lock; False once the turn is stopped."""
        while True:
            with self._guard:
                if self._wanted:
                    self._wanted = False
                    return not self.stopped.is_set()
            if self.stopped.is_set():
                return False
            self._sleep(bell, None)

    def _acquire(self) -> int | None:
        """Queue for the lock (in the kernel); the grant's number, or None: stopped or failed."""
        if not self.lock.acquire_for_thread(self.stopped):
            return None
        self.in_kernel = True
        try:
            self.lock.acquire_for_process()
        except OSError as exc:  # the lock file is gone: the acceptor was closed
            if not self.stopped.is_set() and self.lock.fd >= 0:  # closed as asked: nothing to say
                log.warning("accept.mutex_failed", loop=self.loop.name, error=str(exc))
            return None
        finally:
            self.in_kernel = False
        with self._guard:
            if self.stopped.is_set():
                self.lock.release()
                return None
            self._grant += 1
            self.owned = True
            return self._grant

    def _keep(self, grant: int, bell: select.poll, watch: select.poll) -> bool:
        """Hold ``grant`` until the loop ends it, or take it back from a loop that cannot accept.

        The loop is free when it asks, but it may have started a handler since, and it
        cannot say so from inside one: the loop only runs its own code around the poll.
        So the helper judges by what the loop does. It must take the grant up (run
        :meth:`_granted` from its queue) within :data:`BUSY_GRACE`, and a connection
        waiting on a listener must end the grant (the loop accepts and gives the lock up
        before its next poll) within :data:`BUSY_GRACE` of the helper seeing it. A loop
        that does neither is in a handler: the lock is taken back for the free workers.
        The helper sleeps on the pipe and the listeners, with a time-out only while one
        of the two graces runs: nothing wakes it while nothing happens.
        """
        current = self._current
        take_up_by = time.monotonic() + BUSY_GRACE
        accept_by = None  # set when a waiting connection is seen
        while current(grant):
            now = time.monotonic()
            if take_up_by is not None and self._taken_up == grant:
                take_up_by = None
            if take_up_by is not None and now >= take_up_by:
                if self._take_back(grant, unless_taken_up=True):
                    break
                take_up_by = None  # taken up just now
            if accept_by is not None and now >= accept_by:
                self._take_back(grant)
                break
            deadlines = [t for t in (take_up_by, accept_by) if t is not None]
            timeout = min(deadlines) - now if deadlines else None
            # Once a connection is seen the listeners stay readable until it is taken:
            # from then on only the pipe (the grant's end) matters.
            ready = self._sleep(bell if accept_by is not None else watch, timeout)
            if accept_by is None and any(fd != self._bell_r for fd, _ in ready):
                accept_by = time.monotonic() + BUSY_GRACE
        return not self.stopped.is_set()

    def _current(self, grant: int) -> bool:
        return self.owned and self._grant == grant and not self.stopped.is_set()

    def _sleep(self, poller: select.poll, timeout: float | None) -> list[tuple[int, int]]:
        """Poll (the pipe, maybe the listeners); empty the pipe if it rang. The state the
        caller checked before may have changed since: the ring that said so is in the
        pipe, so this returns at once."""
        ready = poller.poll(None if timeout is None else timeout * 1000)
        for fd, _events in ready:
            if fd == self._bell_r:
                try:
                    while os.read(self._bell_r, 256):
                        pass  # a closed write end (the turn stopped) reads b""
                except (BlockingIOError, InterruptedError):
                    pass
                break
        return ready

    def _take_back(self, grant: int, unless_taken_up: bool = False) -> bool:
        """End ``grant`` for a loop that cannot accept; it learns of it once free.

        False if the grant had ended already (or, with ``unless_taken_up``, if the loop
        has taken it up: it was free then).
        """
        with self._guard:
            if not (self.owned and self._grant == grant) or (unless_taken_up and self._taken_up == grant):
                return False
            self.owned = False
            self._wanted = False  # only the loop, free again, may ask anew
            self.lock.release()
        try:
            self.loop.call_soon_threadsafe(self._taken_back)
        except Exception:  # the loop was closed under us
            pass
        return True

    # -- the loop side -------------------------------------------------------------------
    def _granted(self, grant: int) -> None:
        with self._guard:
            current = self.owned and self._grant == grant
            if current and not (self.paused or self.stopped.is_set()):
                self._taken_up = grant
        if not current:  # taken back before this loop could take it up: it is free now
            self._ask()
            return
        if self.paused or self.stopped.is_set():
            self._give_up()
            return
        self.holding = True
        self._mark = self.stats.accept_wakeups
        for channel in self.channels:
            channel.release()

    def _taken_back(self) -> None:
        if self.holding and not self.owned:
            self._give_up()
        if not self.holding:
            self._ask()

    def prepare(self) -> None:
        """Before each poll: an iteration that accepted hands the lock on (as does one
        whose lock the helper took back)."""
        if self.holding and (self.stats.accept_wakeups != self._mark or not self.owned):
            self._give_up(ask=True)  # and queue for it again, behind those already waiting

    def _ask(self) -> None:
        if self.paused or self.stopped.is_set():
            return
        with self._guard:
            self._wanted = True
        self._ring()

    def _give_up(self, ask: bool = False) -> None:
        if self.holding:
            self.holding = False
            for channel in self.channels:
                channel.hold()
        with self._guard:
            ended = self.owned
            if ended:
                self.owned = False
                self.lock.release()
            if ask and not (self.paused or self.stopped.is_set()):
                self._wanted = True
        if ended or ask:
            self._ring()

    def _ring(self) -> None:
        if self._bell_w >= 0:
            try:
                os.write(self._bell_w, b"\0")
            except BlockingIOError:
                pass  # full: the helper has rings to read already
            except OSError:
                # EPIPE: the helper has returned and closed its end (it saw the stop
                # before this ring of it): nobody is left to wake. Raising here would
                # break off the worker's stop.
                pass

    def pause(self) -> None:
        self.paused = True
        self._give_up()

    def resume(self) -> None:
        if self.paused and not self.stopped.is_set():
            self.paused = False
            self._ask()

    def stop(self) -> None:
        """Close the channels, give the lock up and end the helper thread. Idempotent."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.loop.remove_prepare(self.prepare)
        self._give_up()
        for channel in self.channels:
            channel.close()
        # Closing the pipe's write end wakes a helper sleeping on it (the read end
        # reports a hang-up); the helper closes the read end as it returns.
        bell, self._bell_w = self._bell_w, -1
        os.close(bell)
        # The helper is sleeping on the pipe (it returns now), waiting for the thread
        # lock (within THREAD_LOCK_POLL) or in the kernel for another process's lock:
        # then it cannot be interrupted, releases the lock the moment it gets it, and
        # dies with the process — waiting for it would only delay this worker's stop.
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
                channels.append(MutexChannel(loop, listener, on_connection, stats, max_batch=self.max_batch))
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
