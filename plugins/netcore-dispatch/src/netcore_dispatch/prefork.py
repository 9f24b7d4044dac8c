"""Scheme 10, reactors in processes (nginx's model): ``--workers`` processes, each a loop.

Each worker process runs what ``inline`` runs in its one thread -- a
:class:`~netcore.reactor.worker.ReactorWorker` on an event loop with the configured
poller, handlers inline -- on the listeners the master bound before forking. Nothing is
shared between workers but the listening sockets, so there is no lock and no GIL
between them: N processes use N CPUs. Who wakes for a new connection is the acceptor's
business (``shared``: every worker, the herd; ``mutex``: the lock holder; ...).

The master (:mod:`netcore_dispatch.master`) forks, watches and replaces the workers;
this module is only what runs inside one.
"""

from __future__ import annotations

import structlog
from netcore.dispatch import Dispatcher
from netcore.reactor.loop import EventLoop
from netcore.reactor.poller import EVENT_READ

from netcore_dispatch.master import Master, check_master
from netcore_dispatch.worker_link import log_master_gone

log = structlog.get_logger("netcore.worker")

#: Seconds a retiring worker leaves a just-accepted, still silent connection to send its
#: first request (see ``ReactorWorker.fresh_grace``); prefork-blocking's too. Not 1 s,
#: as it was: the first request can be behind a TLS handshake (two round trips and the
#: request's own: 1.5 s on a 500 ms mobile link), a retransmission (Linux waits at least
#: 200 ms plus a round trip), or a client process descheduled on a loaded host (a test
#: client under CI's load lost a fresh connection to the 1 s grace). The cost falls only
#: on a worker holding a connection that sends nothing: it exits up to this much later,
#: within graceful_timeout.
FRESH_GRACE = 5.0


class PreforkDispatcher(Dispatcher):
    multiprocess = True
    #: The master tells systemd READY=1 once its first workers serve (see master.py).
    announces_ready = True
    #: ``--reload`` restarts the workers on a source change (see reloader.py).
    supports_reload = True

    def check(self, server) -> None:
        check_master(server)

    def serve(self, server) -> str:
        return Master(server, ReactorProgram()).run()


class ReactorProgram:
    """One prefork worker: a reactor loop serving the listeners it was given."""

    def run(self, server, slot: int, listeners, link) -> int:
        loop = EventLoop(server.new_poller(), name=f"worker-{slot}")
        worker = server.new_reactor_worker(loop, index=slot)
        worker.fresh_grace = FRESH_GRACE
        acceptor = server.acceptor

        def stop(_why: str, graceful: bool) -> None:
            worker.stop(graceful)

        def master_gone(_mask: int) -> None:
            # An orphan must not go on taking connections nobody supervises, nor hold the
            # port against the master that will replace it: stop accepting, let go of
            # the listeners, finish what is in flight (within graceful_timeout), exit.
            loop.unregister(link.life_fd)
            worker.stop(True)
            acceptor.close(listeners)
            log_master_gone(worker=slot)

        def tick() -> None:
            link.beat()
            if link.max_requests:
                served = worker.stats.requests + sum(conn.requests for conn in worker.connections)
                link.check_requests(served)
            loop.call_later(link.interval, tick)

        server.install_stop_signals(loop, stop)
        link.install_abort_handler()
        loop.register(link.life_fd, EVENT_READ, master_gone)
        # The hooks first: a worker whose start hook fails must not have taken a connection.
        server.worker_started(worker)
        worker.start_accepting(acceptor, listeners)
        # Ready once the loop runs: a loop hosted by asyncio first runs the application's
        # start-up (ASGI lifespan), and a worker whose start-up fails was never ready.
        loop.call_soon(link.ready)
        loop.call_later(link.interval, tick)
        try:
            loop.run_forever()
        finally:
            server.worker_stopping(worker)
            worker.close()
            acceptor.close(listeners)
            link.report(worker.stats)
        return 0
