"""The executors behind the reactor + thread schemes: where a deferred handler runs.

Each one is a different answer to the essay's question "which thread does the work?",
and each is bounded: thread counts are fixed or capped, and a full queue makes the
connection stop reading (backpressure) instead of growing memory.

* :class:`PoolExecutor` — scheme 8: N long-lived threads take jobs from one queue. The
  queue is contended by every thread and the job's data moves between CPUs: the
  hand-off cost the essay warns about, which ``bench/`` measures.
* :class:`ThreadPerTaskExecutor` — scheme 6: a new thread for every request (capped;
  requests beyond the cap wait their turn in a bounded backlog).
* :class:`ThreadPerConnectionExecutor` — scheme 7: each connection gets one thread of its
  own; its requests run there one after another.
"""

from __future__ import annotations

import collections
import queue
import threading
import time

from netcore.reactor.deferred import DeferredConnection, Executor, run_jobs
from netcore.reactor.threads import start_thread

#: What DeferredConnection hands over: ``(connection, seq, handler, request)``.
Job = tuple


class _Waiters:
    """Connections paused because a queue was full; told when there is room again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[DeferredConnection] = []

    def add(self, connection: DeferredConnection) -> None:
        with self._lock:
            self._waiting.append(connection)

    def __bool__(self) -> bool:
        return bool(self._waiting)  # a racy peek is fine: wake() re-checks under the lock

    @property
    def waiting(self) -> list:
        """The list itself, for a per-job peek without a Python call (racy, as above)."""
        return self._waiting

    def wake(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for connection in waiting:
            connection.loop.call_soon_threadsafe(connection.executor_has_room)


#: A batch whose handlers are expected to take longer than this (seconds) is spread over
#: the pool's threads; a quicker one goes to one thread whole.
SPLIT_ABOVE = 0.0002


class PoolExecutor(Executor):
    """Scheme 8: a fixed pool of ``threads`` threads sharing one job queue of ``capacity``.

    The jobs a loop submits in one iteration are handed over together, at the end of
    that iteration: a hand-off (a queue operation, a thread wake-up, GIL transfers) costs
    the same for one job as for fifty, and under load one loop iteration frames many
    requests. Measured with ``netcore bench``, echo 64 B over 64 connections: 8.2 -> 5.2
    µs of server CPU per message. The batch is split over up to ``threads`` threads only
    when its handlers are slow (they have been taking more than :data:`SPLIT_ABOVE`
    seconds per batch): slow handlers -- a blocking call -- then still run side by side,
    while fast ones, which the GIL runs one at a time anyway, cost one hand-off.
    """

    def __init__(self, threads: int, capacity: int, *, name: str = "pool") -> None:
        self.threads = threads
        self.capacity = capacity
        self._queue: queue.SimpleQueue[list | None] = queue.SimpleQueue()
        #: loop -> the jobs it submitted this iteration (each loop touches only its own).
        self._batches: dict = {}
        #: Jobs handed to the threads and not yet run (the bound ``capacity`` applies to).
        self._lock = threading.Lock()
        self._queued = 0
        #: Seconds a job took, as last measured by a thread (racy by design: an estimate).
        #: Unknown at first: the first batch is spread, as if its handlers were slow.
        self._job_seconds = float("inf")
        self._waiters = _Waiters()
        self._workers = [start_thread(self._work, name=f"netcore-{name}-{i}") for i in range(threads)]

    def submit(self, connection: DeferredConnection, job: tuple) -> bool:
        loop = connection.loop
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self._hand_over, loop)  # runs after this iteration's events
        batch.append(job)
        if self._queued + len(batch) < self.capacity:
            return True
        self._waiters.add(connection)
        return False

    def _hand_over(self, loop) -> None:
        """End of the loop's iteration: give its jobs to the threads, in up to ``threads`` lists."""
        batch = self._batches.pop(loop)
        count = len(batch)
        with self._lock:
            self._queued += count
        put = self._queue.put
        parts = min(count, self.threads)
        if parts <= 1 or self._job_seconds * count < SPLIT_ABOVE:
            put(batch)
            return
        size = -(-count // parts)
        for start in range(0, count, size):
            put(batch[start:start + size])

    def _work(self) -> None:
        get = self._queue.get
        low = self.capacity // 2
        waiters = self._waiters
        lock = self._lock
        monotonic = time.monotonic
        while True:
            jobs = get()
            if jobs is None:
                return
            started = monotonic()
            run_jobs(jobs)
            self._job_seconds = (monotonic() - started) / len(jobs)
            with lock:
                self._queued -= len(jobs)
                queued = self._queued
            if waiters._waiting and queued <= low:
                waiters.wake()

    def shutdown(self, wait: bool = True) -> None:
        for _ in self._workers:
            self._queue.put(None)  # after every job already queued: those finish first
        if wait:
            for worker in self._workers:
                worker.join()
        self._waiters.wake()


class ThreadPerTaskExecutor(Executor):
    """Scheme 6: every request runs in a thread started for it.

    At most ``max_threads`` run at once; further requests wait in a backlog of
    ``capacity`` and are each started in a new thread as one finishes.
    """

    def __init__(self, max_threads: int, capacity: int) -> None:
        self.max_threads = max_threads
        self.capacity = capacity
        self._lock = threading.Lock()
        self._backlog: collections.deque[Job] = collections.deque()
        self._running: set[threading.Thread] = set()
        self._waiters = _Waiters()
        self._closed = False

    def submit(self, connection: DeferredConnection, job: Job) -> bool:
        with self._lock:
            if len(self._running) >= self.max_threads:
                self._backlog.append(job)
                if len(self._backlog) < self.capacity:
                    return True
                self._waiters.add(connection)
                return False
            self._start(job)
        return True

    def _start(self, job: Job) -> None:
        # Called with the lock held.
        self._running.add(start_thread(self._run, job, name="netcore-task"))

    def _run(self, job: Job) -> None:
        run_jobs([job])
        with self._lock:
            self._running.discard(threading.current_thread())
            if self._backlog:
                self._start(self._backlog.popleft())  # the next request gets a new thread too
            wake = self._waiters and len(self._backlog) <= self.capacity // 2
        if wake:
            self._waiters.wake()

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            while True:
                with self._lock:
                    running = list(self._running)
                if not running:
                    break
                for thread in running:
                    thread.join()
        self._waiters.wake()


class ThreadPerConnectionExecutor(Executor):
    """Scheme 7: one thread per connection, started with its first request.

    A connection's requests run in its thread one after another, so they cannot finish
    out of order; the thread ends when the connection closes. The number of threads is
    bounded by the number of connections (``max_connections``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[DeferredConnection, queue.SimpleQueue[Job | None]] = {}
        self._threads: set[threading.Thread] = set()

    def submit(self, connection: DeferredConnection, job: Job) -> bool:
        q = self._queues.get(connection)
        if q is None:
            q = queue.SimpleQueue()
            with self._lock:
                self._queues[connection] = q
                self._threads.add(start_thread(self._serve, q, name="netcore-conn"))
        q.put(job)
        return True  # the connection's own max_pending bounds this queue

    def _serve(self, q: queue.SimpleQueue) -> None:
        try:
            while True:
                job = q.get()
                if job is None:
                    return
                run_jobs([job])
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def connection_closed(self, connection: DeferredConnection) -> None:
        with self._lock:
            q = self._queues.pop(connection, None)
        if q is not None:
            q.put(None)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            queues = list(self._queues.values())
            self._queues.clear()
            threads = list(self._threads)
        for q in queues:
            q.put(None)
        if wait:
            for thread in threads:
                thread.join()
