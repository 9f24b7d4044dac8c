"""Schemes 9 and 11: one loop per thread (muduo's model), optionally plus a pool.

The main thread runs an acceptor loop; ``--workers N`` I/O threads each run their own
loop, and every accepted connection is handed round-robin to one of them, where it
stays for life. Each I/O thread then does what scheme 5 does — no locks, no hand-off
per request — and the work spreads over N threads. With ``multi-reactor-pool``
(scheme 11) the handlers additionally run in a shared pool of ``--threads`` threads;
``--threads 0`` gives scheme 9 again, as the essay says.

Python's GIL lets only one of these threads run Python code at a time, so N loops help
where time is spent outside the interpreter (in the kernel, in C extensions, in
blocking handlers) — which ``bench/`` lets a user check rather than assume.
"""

from __future__ import annotations

import itertools
import os

import structlog
from netcore.dispatch import Dispatcher
from netcore.reactor.loop import EventLoop
from netcore.reactor.poller import PollerLimitError
from netcore.reactor.threads import start_thread
from netcore.stats import WorkerStats

from netcore_dispatch.executors import PoolExecutor
from netcore_dispatch.inline import use_executor

log = structlog.get_logger("netcore.dispatch")


class MultiReactorDispatcher(Dispatcher):
    """Scheme 9: an acceptor loop and ``--workers`` I/O loops, one loop per thread."""

    multithread = True

    def make_executor(self, server):
        return None

    def serve(self, server) -> str:
        config = server.config
        main_loop = EventLoop(server.new_poller(), name="acceptor")
        accept_stats = WorkerStats(worker=0, pid=os.getpid())
        executor = self.make_executor(server)
        workers = []
        for index in range(1, config.workers + 1):
            worker = server.new_reactor_worker(EventLoop(server.new_poller(), name=f"io-{index}"), index=index)
            worker.max_connections = None  # the acceptor loop applies the limit, to all loops at once
            if executor is not None:
                use_executor(worker, executor, server)
            workers.append(worker)

        running = len(workers)
        reason = "stopped"
        graceful_stop = True

        def io_thread(worker) -> None:
            server.worker_started(worker)
            try:
                worker.loop.run_forever()
            except Exception as exc:  # noqa: BLE001 - whatever killed the loop: log it, exit 1
                # The connections handed to this loop would hang while the others serve on:
                # end them now, and the whole server (gracefully, for the other loops'
                # clients), so that it exits 1 and a supervisor starts it again.
                server.request_stop(server.loop_failed(worker.loop, exc), graceful=True)
                for conn in list(worker.connections):
                    conn.abort()
            finally:
                server.worker_stopping(worker)
                main_loop.call_soon_threadsafe(io_done)

        def io_done() -> None:
            nonlocal running
            running -= 1
            if running == 0:
                main_loop.stop()

        next_worker = itertools.cycle(workers).__next__
        budget = ConnectionBudget(config.max_connections, workers, main_loop, server.acceptor)

        def hand_over(sock, peer) -> None:
            worker = next_worker()
            budget.handed += 1
            worker.loop.call_soon_threadsafe(adopt, worker, sock, peer, budget)
            budget.check()

        def stop(why: str, graceful: bool) -> None:
            nonlocal reason, graceful_stop
            reason, graceful_stop = why, graceful
            budget.paused = False  # no resume after the stop
            server.acceptor.stop_accepting()
            for worker in workers:
                worker.loop.call_soon_threadsafe(worker.stop, graceful)

        server.install_stop_signals(main_loop, stop)
        server.acceptor.start(main_loop, server.listeners, hand_over, accept_stats)
        server.live_stats(accept_stats)  # the accept wake-ups and EAGAINs, in /metrics while serving
        threads = [start_thread(io_thread, w, name=f"netcore-io-{w.index}", daemon=False) for w in workers]
        try:
            main_loop.run_forever()
        except Exception as exc:  # noqa: BLE001 - the acceptor loop died: stop the I/O loops, exit 1
            why = server.loop_failed(main_loop, exc)
            server.request_stop(why, graceful=True)  # the server's part: /readyz, the door
            stop(why, True)  # here: the loop that would have run it is the one that died
        finally:
            for thread in threads:
                thread.join()
            for worker in workers:
                worker.close()
            main_loop.close()
            if executor is not None:
                executor.shutdown(wait=graceful_stop)
            server.report_worker_stats(accept_stats)
            for worker in workers:
                server.report_worker_stats(worker.stats)
        return reason


class ConnectionBudget:
    """``max_connections`` for the whole process, not per I/O loop.

    The acceptor loop counts what it handed over and reads each loop's open
    connections (``len()`` of a set is atomic under the GIL; the count is a bound, so a
    moment's staleness only delays a pause or a resume by one connection). At the limit
    it stops accepting -- new clients wait in the kernel's backlog, as in every scheme
    -- and looks again every :attr:`RECHECK` seconds until a connection has closed: no
    hook runs on the I/O loops' path for it.
    """

    RECHECK = 0.01

    def __init__(self, limit: int, workers: list, loop, acceptor) -> None:
        self.limit = limit
        self.workers = workers
        self.loop = loop
        self.acceptor = acceptor
        #: Connections handed to an I/O loop (acceptor thread) and adopted by one (I/O
        #: threads, one slot each): their difference is what is on its way.
        self.handed = 0
        self.adopted = [0] * (len(workers) + 1)
        self.paused = False

    def open_now(self) -> int:
        return sum(len(w.connections) for w in self.workers) + self.handed - sum(self.adopted)

    def check(self) -> None:
        if not self.paused and self.open_now() >= self.limit:
            self.paused = True
            self.acceptor.pause_accepting(self.loop)
            self.loop.call_later(self.RECHECK, self._recheck)

    def _recheck(self) -> None:
        if not self.paused:
            return
        if self.open_now() < self.limit:
            self.paused = False
            self.acceptor.resume_accepting(self.loop)
        else:
            self.loop.call_later(self.RECHECK, self._recheck)


def adopt(worker, sock, peer, budget: ConnectionBudget | None = None) -> None:
    """On the I/O loop: take over a connection the acceptor loop handed us."""
    try:
        worker.add_connection(sock, peer)
    except PollerLimitError as exc:
        worker.stats.errors += 1
        sock.close()
        log.warning("connection.refused", worker=worker.index, reason=str(exc))
    finally:
        if budget is not None:
            # After the connection is in the loop's table: counted twice for a moment
            # rather than not at all, so the limit errs on the side of pausing.
            budget.adopted[worker.index] += 1


class MultiReactorPoolDispatcher(MultiReactorDispatcher):
    """Scheme 11: scheme 9 plus a pool of ``--threads`` handler threads (0: scheme 9)."""

    @property
    def handler_threads(self) -> bool:
        return self.config.threads > 0

    def make_executor(self, server):
        config = server.config
        if config.threads == 0:
            return None
        return PoolExecutor(config.threads, config.pool_queue)
