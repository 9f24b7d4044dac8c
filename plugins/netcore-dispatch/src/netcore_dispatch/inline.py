"""Scheme 5, the single reactor: one thread, one loop, handlers run on the loop.

Redis's model. Nothing is handed between threads, so there is no queue, no lock and no
wake-up per request: the cheapest scheme per message, and the one a slow handler
stalls entirely (every other client waits while it runs).
"""

from __future__ import annotations

from netcore.dispatch import Dispatcher
from netcore.reactor.loop import EventLoop


class InlineDispatcher(Dispatcher):
    name = "inline"
    scheme = 5

    def serve(self, server) -> str:
        loop = EventLoop(server.new_poller(), name="main")
        worker = server.new_reactor_worker(loop, index=0)
        reason = "stopped"

        def stop(why: str, graceful: bool) -> None:
            nonlocal reason
            reason = why
            worker.stop(graceful)

        server.install_stop_signals(loop, stop)
        worker.start_accepting(server.acceptor, server.listeners)
        server.worker_started(worker)
        try:
            loop.run_forever()
        finally:
            server.worker_stopping(worker)
            worker.close()
            server.report_worker_stats(worker.stats)
        return reason
