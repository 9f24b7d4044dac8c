"""Scheme 0, the iterative server: accept one client, serve it until it leaves, accept the next.

The essay's first server and the shortest correct one: one thread, blocking calls, no
concurrency at all. Its cost is the whole point of the schemes that follow: while one
client is being served -- even while it merely sits idle between requests -- every other
client waits in the listen backlog, connected (the kernel completed the handshake) but
unanswered. Throughput is one client at a time, and one slow or idle client stalls all.
Useful only where clients are few, short-lived and trusted, or to show why the others exist.
"""

from __future__ import annotations

from netcore_dispatch.blocking import BlockingDispatcher, BlockingWorker


class IterativeDispatcher(BlockingDispatcher):
    """Scheme 0: the main thread accepts one client and serves it to its end."""

    uses_workers = False  # one thread, whatever --workers says

    def run(self, server, control) -> None:
        # The main thread accepts and serves; the only other thread is the stop thread,
        # which applies stop signals and graceful_timeout while we sit in recv() or send().
        worker = BlockingWorker(0)
        try:
            self.serve_worker(server, control, worker)
        finally:
            server.report_worker_stats(worker.stats)
