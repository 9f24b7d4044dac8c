"""Scheme 2, thread per connection: the main thread accepts, each client gets a new thread.

Every client is served at once and the code stays the iterative server's straight-line
blocking code, moved into a thread. The costs the essay names: a thread is created and
destroyed per connection (expensive for short connections), each thread holds a stack
and a kernel task, and many threads mean many context switches -- the scheme does not
scale to tens of thousands of mostly idle clients (the C10K problem). Threads share
memory, so shared state needs locks (under CPython the GIL also serialises the Python
part of the work; blocking I/O and sleeps release it, so I/O-bound handlers overlap).

``max_connections`` bounds the damage: at the limit the acceptor waits for a free slot
before calling accept() again, so further clients wait in the listen backlog rather
than each costing a thread.
"""

from __future__ import annotations

import threading

import structlog

from netcore_dispatch.blocking import BlockingDispatcher, BlockingWorker, serve_connection

log = structlog.get_logger("netcore.dispatch")


class ThreadingDispatcher(BlockingDispatcher):
    multithread = True
    uses_workers = False  # one accepting thread and a thread per client, whatever --workers says

    def prepare(self, server, control) -> None:
        self.slots = threading.Semaphore(server.config.max_connections)
        # An acceptor waiting for a free slot sleeps in the semaphore, not in accept():
        # shutting the listener down would not wake it, so the stop thread releases it.
        control.on_stop(self.slots.release)

    def run(self, server, control) -> None:
        worker = BlockingWorker(0)
        accepting = self.accepting(server, control, worker)
        slots = self.slots
        server.worker_started(worker)
        number = 0
        try:
            while True:
                slots.acquire()
                control.reap()
                if control.stopping:
                    break
                accepted = accepting.accept()
                if accepted is None:
                    break
                number += 1
                try:
                    control.start_thread(self._serve_one, f"netcore-conn-{number}",
                                         server, control, worker, *accepted)
                except RuntimeError as exc:  # "can't start new thread": refuse this client
                    log.warning("connection.refused", reason="cannot start a thread", error=str(exc))
                    accepted[0].close()
                    worker.count(connections_closed=1, errors=1)
                    slots.release()
        finally:
            control.wait_threads()
            server.worker_stopping(worker)
            server.report_worker_stats(worker.stats)

    def _serve_one(self, server, control, worker, sock, peer) -> None:
        try:
            serve_connection(server, control, worker, sock, peer)
        finally:
            self.slots.release()
