"""Scheme 5, the single reactor: one thread, one loop, handlers run on the loop.

Redis's model. Nothing is handed between threads, so there is no queue, no lock and no
wake-up per request: the cheapest scheme per message, and the one a slow handler
stalls entirely (every other client waits while it runs).

:class:`SingleReactorDispatcher` is also the base of schemes 6, 7 and 8, which keep this
one loop for all I/O and only move the handlers to other threads.
"""

from __future__ import annotations

from netcore.dispatch import Dispatcher
from netcore.errors import UsageError
from netcore.reactor.deferred import DeferredConnection, Executor
from netcore.reactor.loop import EventLoop
from netcore.reactor.worker import ReactorWorker


class SingleReactorDispatcher(Dispatcher):
    """One loop in the main thread does all accepting, reading and writing."""

    uses_workers = False  # one loop, whatever --workers says (threads: --threads)

    def make_executor(self, server) -> Executor | None:
        """Where handlers run; None: inline, on the loop thread."""
        return None

    def serve(self, server) -> str:
        loop = EventLoop(server.new_poller(), name="main")
        worker = server.new_reactor_worker(loop, index=0)
        executor = self.make_executor(server)
        if executor is not None:
            use_executor(worker, executor, server)
        reason = "stopped"
        graceful_stop = True

        def stop(why: str, graceful: bool) -> None:
            nonlocal reason, graceful_stop
            reason, graceful_stop = why, graceful
            worker.stop(graceful)

        server.install_stop_signals(loop, stop)
        worker.start_accepting(server.acceptor, server.listeners)
        server.worker_started(worker)
        try:
            loop.run_forever()
        except UsageError:
            raise  # what the user must fix (an ASGI app's failed lifespan startup): exit 2, one line
        except Exception as exc:  # noqa: BLE001 - whatever killed the loop: log it, exit 1
            # The one loop is gone: the process must end (and say it failed) rather than
            # go on holding the listeners with nobody accepting.
            reason = server.loop_failed(loop, exc)
        finally:
            server.worker_stopping(worker)
            worker.close()
            if executor is not None:
                # Graceful: every request was answered before the loop returned, so the
                # threads are idle; join them. Fast: do not wait for handlers still busy.
                executor.shutdown(wait=graceful_stop)
            server.report_worker_stats(worker.stats)
        return reason


def use_executor(worker: ReactorWorker, executor: Executor, server) -> None:
    """Make ``worker``'s connections hand their handlers to ``executor``."""
    worker.connection_class = DeferredConnection
    worker.connection_options = {
        **worker.connection_options,
        "executor": executor,
        "max_pending": server.config.max_pending,
    }


class InlineDispatcher(SingleReactorDispatcher):
    """Scheme 5 itself: :class:`SingleReactorDispatcher` with no executor (schemes 6-8 add one)."""
