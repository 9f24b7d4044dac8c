"""Scheme 3, preforked: ``--workers`` processes made at start, each blocking in accept().

The essay's prefork server (Apache's prefork MPM, gunicorn's sync worker): each worker
process is an iterative server -- accept a client, serve it to the end with blocking
calls, accept the next -- and all of them sleep in ``accept()`` on the same listening
socket, where Linux wakes exactly one sleeper per connection (no herd; ``accept_eagain``
stays 0). N processes serve at most N clients at once; unlike ``prethread-blocking`` they
share no memory and no GIL, and one crashing takes only itself down.

Two things differ from the in-process blocking schemes, both because the listeners are
shared with sibling processes:

* **Stopping cannot shut the listener down** (that would stop every sibling: shutdown
  acts on the socket, not on this process's descriptor). A lone listener gets
  ``SO_RCVTIMEO`` instead: ``accept()`` still sleeps in the kernel, in the exclusive
  wait queue, and returns EAGAIN every :data:`TICK` seconds to look at the stop flag.
* **Heartbeats come from a helper thread**, which beats only while no handler has been
  running since its previous beat: a handler stuck in a loop silences the worker and the
  master replaces it (a client idle on its connection does not).
"""

from __future__ import annotations

import os
import select
import socket
import struct

import structlog
from netcore.dispatch import Dispatcher
from netcore.reactor.threads import start_thread
from netcore.reactor.worker import BACKLOG_TAKE_MAX
from netcore_acceptors.blocking_accept import Accepting, SpareDescriptor, prepare_listeners

from netcore_dispatch.blocking import BlockingWorker, StopControl, serve_connection
from netcore_dispatch.master import Master, check_master
from netcore_dispatch.prefork import FRESH_GRACE
from netcore_dispatch.worker_link import log_master_gone

log = structlog.get_logger("netcore.worker")

#: How often an idle worker's accept() returns to look at the stop flag.
TICK = 0.25
_NO_TIMEOUT = struct.pack("ll", 0, 0)


class PreforkBlockingDispatcher(Dispatcher):
    multiprocess = True
    #: The master tells systemd READY=1 once its first workers serve (see master.py).
    announces_ready = True
    #: ``--reload`` restarts the workers on a source change (see reloader.py).
    supports_reload = True

    def check(self, server) -> None:
        check_master(server)

    def serve(self, server) -> str:
        return Master(server, BlockingProgram()).run()


class WorkerStopControl(StopControl):
    """The stop machinery of one worker process: listeners are left alone, fresh
    connections get :data:`FRESH_GRACE` to send their first request, and the final accept
    is the worker's own, limited to what was queued when the stop came."""

    def __init__(self, server, grace: float, listeners=()) -> None:
        super().__init__(server)
        self.listeners = []  # shared with the siblings: never shut down (see module doc)
        self.fresh_quiet = min(grace, self.graceful_timeout)
        self._final_from = list(listeners)
        #: How many more the final accept may take from each listener of _final_from.
        self._final_left = [BACKLOG_TAKE_MAX] * len(self._final_from)

    def request(self, reason: str, graceful: bool) -> None:
        # The stop is here (signal handler context: one getsockopt per listener): what
        # waits in the queue now is all the final accept may take. A worker retired while
        # its siblings serve on must not go on taking new clients -- for seconds, new
        # code deployed, while the siblings are busy -- and on a whole-server stop the
        # door is closed first (see Master), so nothing joins the queue anyway.
        if graceful and self.stopping is None and not self._closed:
            self._final_left = [min(left, _queued(listener.sock))
                                for left, listener in zip(self._final_left, self._final_from)]
        super().request(reason, graceful)

    def _take_backlog(self) -> None:
        # On the stop thread as the graceful stop begins, after request(): the taking is
        # the main thread's (final_accepted); say how much it may take, per listener.
        log.debug("worker.draining", pid=os.getpid(), may_take=list(self._final_left))
        super()._take_backlog()

    def final_accepted(self):
        """After a graceful stop, on the main thread: the next connection queued now, or None.

        Left in the backlog, a connection is reset when the last worker closes the
        listener (the master has closed the door and its own copy: see ``Master``). Not
        taken on the stop thread as in-process: the listeners are shared, so they may be
        neither shut down nor made non-blocking (the siblings' accept() would spin). A
        poll that does not wait says whether anything is queued; should a sibling take it
        first, the accept waits at most :data:`TICK` (``SO_RCVTIMEO``; several listeners
        are non-blocking anyway). Each listener is left at its first empty look, or once
        as many have been taken from it as were queued at the stop (:meth:`request`).
        """
        if self.stopping != "graceful" or self._forced_at is not None:
            return None
        while self._final_from:
            sock = self._final_from[0].sock
            accepted = None
            if self._final_left[0] > 0:
                try:
                    queued = select.poll()
                    queued.register(sock, select.POLLIN)
                    accepted = sock.accept() if queued.poll(0) else None
                except (OSError, ValueError):  # EAGAIN (a sibling was first), or the listener is closed
                    accepted = None
            if accepted is None:
                self._final_from.pop(0)
                self._final_left.pop(0)
                continue
            self._final_left[0] -= 1
            return accepted
        return None


def _queued(sock: socket.socket) -> int:
    """Connections waiting in a TCP listener's accept queue now: Linux reports it in
    ``tcpi_unacked`` for a listening socket (``ss -lt`` shows it as Recv-Q). Where it
    cannot be read (a Unix socket), :data:`BACKLOG_TAKE_MAX`: the queue is then taken
    until a look finds it empty, a retired worker's final accept as long as new
    clients keep coming while its siblings are busy."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        state, unacked = info[0], struct.unpack_from("I", info, _UNACKED_AT)[0]
    except (OSError, AttributeError, struct.error, IndexError):
        return BACKLOG_TAKE_MAX
    return unacked if state == _TCP_LISTEN else BACKLOG_TAKE_MAX


#: struct tcp_info (linux/tcp.h): eight one-byte fields, then __u32 rto, ato, snd_mss,
#: rcv_mss, unacked -- for a listening socket, the accept queue's length.
_UNACKED_AT = 8 + 4 * 4
_TCP_INFO_SIZE = _UNACKED_AT + 8
_TCP_LISTEN = 10


class BlockingProgram:
    """One prefork-blocking worker: accept, serve, repeat, on the main thread."""

    def run(self, server, slot: int, listeners, link) -> int:
        prepare_listeners(listeners)
        if len(listeners) == 1:
            seconds = int(TICK)
            listeners[0].sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                         struct.pack("ll", seconds, int((TICK - seconds) * 1e6)))
        spare = SpareDescriptor()
        control = WorkerStopControl(server, FRESH_GRACE, listeners)
        worker = BlockingWorker(slot)
        link.install_abort_handler()
        control.start(server)
        helper_r, helper_w = os.pipe()
        helper = start_thread(self._helper, link, control, worker, helper_r, name="netcore-heartbeat")
        accepting = Accepting(listeners, worker, control, spare, tick=TICK)
        server.worker_started(worker)
        link.ready()
        timed = len(listeners) == 1
        try:
            while (accepted := accepting.accept()) is not None:
                if timed:
                    # Linux copies the listener's options to the accepted socket: without
                    # this, an idle client's recv() would time out like our accept() does.
                    try:
                        accepted[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)
                    except OSError:
                        pass  # reset already: serve_connection finds out
                serve_connection(server, control, worker, *accepted)
        finally:
            server.worker_stopping(worker)
            server.acceptor.close(listeners)
            control.wait_threads()
            os.write(helper_w, b"x")
            helper.join()
            os.close(helper_r)
            os.close(helper_w)
            control.close()
            spare.close()
            link.report(worker.stats)
        return 0

    @staticmethod
    def _helper(link, control: WorkerStopControl, worker: BlockingWorker, quit_fd: int) -> None:
        """Heartbeats, the master's death, max-requests."""
        waiter = select.poll()
        waiter.register(link.life_fd, select.POLLIN)
        waiter.register(quit_fd, select.POLLIN)
        busy: dict = {}
        interval_ms = int(link.interval * 1000)
        while True:
            ready = {fd for fd, _ in waiter.poll(interval_ms)}
            if quit_fd in ready:
                return
            if link.life_fd in ready:
                waiter.unregister(link.life_fd)
                control.request("master exited", True)
                log_master_gone(worker=worker.index)
            conns = control.connections()
            # The same handler call still running since the previous look (requests counts
            # calls as they start): stuck for at least an interval, so no beat this time.
            stuck = any(conn.pending and busy.get(conn) == conn.requests for conn in conns)
            busy = {conn: conn.requests for conn in conns if conn.pending}
            if not stuck:
                link.beat()
            if link.max_requests:
                link.check_requests(worker.stats.requests + sum(conn.requests for conn in conns))
