"""Scheme 4, prethreaded: N threads made at start, each blocking in accept() and serving its client.

The fix for both costs of ``threading``: no thread is created per connection (the pool
is made once), and the number of threads -- hence memory and scheduling load -- is fixed
by ``--workers`` whatever the clients do. The threads all sleep in ``accept()`` on the
same listening socket; the kernel hands each new connection to exactly one of them
(modern Linux wakes one sleeper, so there is no thundering herd here: ``accept_eagain``
stays 0), with no acceptor thread and no queue between accept and service.

The price is a hard ceiling: at most N clients are served at once, and the N+1th waits
in the backlog until one of them leaves -- N idle keep-alive clients block everyone.
It is scheme 3 (prefork) with threads instead of processes: cheaper to start and to
switch, sharing memory (so shared state needs locks), and one crash takes all down.
"""

from __future__ import annotations

import structlog

from netcore_dispatch.blocking import BlockingDispatcher, BlockingWorker

log = structlog.get_logger("netcore.dispatch")


class PrethreadBlockingDispatcher(BlockingDispatcher):
    multithread = True

    def run(self, server, control) -> None:
        workers = [BlockingWorker(index) for index in range(server.config.workers)]
        try:
            for worker in workers:
                control.start_thread(self._work, f"netcore-worker-{worker.index}", server, control, worker)
        except RuntimeError as exc:  # "can't start new thread": stop the ones that did start
            log.error("worker.start_failed", error=str(exc))
            control.request(f"worker start failed: {exc}", False)
        finally:
            # The main thread only waits: signals are handled here (Python runs them in
            # the main thread only), and the stop wakes the workers through their sockets.
            control.wait_threads()
            for worker in workers:
                server.report_worker_stats(worker.stats)

    def _work(self, server, control, worker: BlockingWorker) -> None:
        try:
            self.serve_worker(server, control, worker)
        except Exception as exc:
            # A worker that dies quietly would leave the server with fewer threads than
            # asked and nobody told: stop the whole server, visibly.
            log.error("worker.failed", worker=worker.index, exc_info=exc)
            control.request(f"worker {worker.index} failed: {type(exc).__name__}: {exc}", True)
