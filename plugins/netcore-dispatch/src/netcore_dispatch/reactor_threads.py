"""Schemes 6, 7 and 8: one reactor for all I/O, handlers on other threads.

The loop thread frames requests and writes replies; the handler runs elsewhere, so a
slow handler no longer stalls every other client (the essay's reason for these schemes),
at the price of a hand-off per request: a queue operation, a thread switch and a
wake-up of the loop to write the reply. ``bench/`` measures that price.
"""

from __future__ import annotations

from netcore_dispatch.executors import PoolExecutor, ThreadPerConnectionExecutor, ThreadPerTaskExecutor
from netcore_dispatch.inline import SingleReactorDispatcher


class ThreadPerTaskDispatcher(SingleReactorDispatcher):
    """Scheme 6: every request's handler runs in a thread started for it."""

    multithread = True
    handler_threads = True

    def make_executor(self, server):
        config = server.config
        return ThreadPerTaskExecutor(max_threads=max(1, config.threads), capacity=config.pool_queue)


class ThreadPerConnectionDispatcher(SingleReactorDispatcher):
    """Scheme 7: each connection's handlers run in that connection's own thread."""

    multithread = True
    handler_threads = True

    def make_executor(self, server):
        return ThreadPerConnectionExecutor()


class PoolDispatcher(SingleReactorDispatcher):
    """Scheme 8: handlers run in a fixed pool of ``--threads`` threads."""

    multithread = True
    handler_threads = True

    def make_executor(self, server):
        config = server.config
        return PoolExecutor(max(1, config.threads), config.pool_queue)
