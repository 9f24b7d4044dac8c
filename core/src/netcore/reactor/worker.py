"""A reactor worker: one loop, its listeners, its connections, its counters.

Every reactor scheme is made of these: ``inline`` runs one in the main thread,
``multi-reactor`` one per I/O thread, ``prefork`` one per process. The worker owns the
parts that must behave the same in all of them: accepting into connections, counting,
and stopping — gracefully (stop accepting, answer what has arrived, flush, close) or
fast (close everything now).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any, Callable

import structlog

from netcore.reactor.admission import ProxyStage, admit_reactor
from netcore.reactor.connection import Connection, ConnectionOwner
from netcore.reactor.drain import DRAIN_QUIET, SCAN_INTERVAL, QuietTracker
from netcore.reactor.poller import PollerLimitError
from netcore.reactor.tls import tls_variant
from netcore.stats import WorkerStats

if TYPE_CHECKING:
    from netcore.acceptor import Acceptor, Listener
    from netcore.reactor.loop import EventLoop

log = structlog.get_logger("netcore.worker")

#: Most connections a stopping worker takes from one listener's backlog.
BACKLOG_TAKE_MAX = 4096


class ReactorWorker(ConnectionOwner):
    """Accepts connections onto one :class:`EventLoop` and tracks them until they close."""

    connection_class = Connection

    def __init__(
        self,
        loop: EventLoop,
        protocol_factory: Callable[[Connection], Any],
        *,
        index: int = 0,
        connection_options: dict[str, Any] | None = None,
        graceful_timeout: float = 30.0,
        max_connections: int | None = None,
    ) -> None:
        self.loop = loop
        self.index = index
        self.pid = os.getpid()
        self.protocol_factory = protocol_factory
        self.stats = WorkerStats(worker=index, pid=self.pid)
        self.connections: set[Connection] = set()
        self.connection_options = dict(connection_options or {})
        #: The PROXY/TLS layers of the listeners (reactor/admission.py); None: plaintext only.
        self.layers = self.connection_options.pop("layers", None)
        self.graceful_timeout = graceful_timeout
        self.max_connections = max_connections
        self._acceptor: Acceptor | None = None
        self._listeners: list[Listener] = []
        self._accept_held = False
        self._stopping = False
        self._deadline_timer = None
        self._scan_timer = None
        self._quiet: QuietTracker | None = None
        #: Seconds a graceful stop leaves a connection that has sent nothing yet to send
        #: its first request, if longer than the drain's quiet period (DRAIN_QUIET). A
        #: worker retired while its siblings go on serving (prefork's HUP, max-requests)
        #: sets it: a client whose connect was accepted an instant before the stop has its
        #: request on the way, behind whatever handshake it does first.
        self.fresh_grace = 0.0

    # -- accepting ---------------------------------------------------------------------
    def start_accepting(self, acceptor: Acceptor, listeners: list[Listener]) -> None:
        self._acceptor = acceptor
        self._listeners = list(listeners)
        acceptor.start(self.loop, listeners, self.add_connection, self.stats)

    def add_connection(self, sock: socket.socket, peer: Any = None) -> Connection | None:
        """Adopt an accepted socket (on this worker's loop thread)."""
        stats = self.stats
        stats.connections_accepted += 1
        if self._stopping and self._quiet is None:
            # Handed over while we stop fast: close it at once rather than leave it unanswered.
            stats.connections_closed += 1
            sock.close()
            return None
        try:
            if self.layers is None:
                conn = self.connection_class(self.loop, sock, self.protocol_factory, self, peer=peer,
                                             **self.connection_options)
            else:
                conn = self._admit(sock, peer)
                if conn is None:  # refused (a PROXY header from a peer not allowed to send one)
                    stats.connections_closed += 1
                    return None
        except PollerLimitError:
            stats.connections_closed += 1
            sock.close()
            raise  # the acceptor logs it, rate-limited, and counts the error
        self._track(conn)
        return conn

    def _admit(self, sock: socket.socket, peer: Any) -> Any:
        """The listener's layers: a PROXY header stage, then a TLS or plaintext connection."""
        setup = self.layers.for_socket(sock)
        if setup is None:
            return self.connection_class(self.loop, sock, self.protocol_factory, self, peer=peer,
                                         **self.connection_options)

        def open_connection(stage: Any, sock: socket.socket, peer: Any) -> Any:
            if setup.tls is not None:
                conn = tls_variant(self.connection_class)(
                    self.loop, sock, self.protocol_factory, self, peer=peer, tls_context=setup.tls,
                    handshake_timeout=setup.handshake_timeout, **self.connection_options)
            else:
                conn = self.connection_class(self.loop, sock, self.protocol_factory, self, peer=peer,
                                             **self.connection_options)
            if stage is not None:  # handed on by a PROXY stage: it leaves the table, this enters
                self.connections.discard(stage)
                self._track(conn)
            return conn

        conn = admit_reactor(setup, sock, peer, self, open_connection)
        if isinstance(conn, ProxyStage):
            self._track(conn)
            conn.start()  # may hand on (or close) at once: the header came with the connection
        return conn

    def _track(self, conn: Any) -> None:
        if not conn.closed:
            self.connections.add(conn)
            if self._quiet is not None:
                conn.drain_and_close()  # taken from the backlog during a drain: announce it
            if (self.max_connections is not None and len(self.connections) >= self.max_connections
                    and self._acceptor is not None and not self._accept_held):
                # At the limit: leave new clients in the kernel's backlog, do not refuse them.
                self._accept_held = True
                self._acceptor.pause_accepting(self.loop)

    # -- ConnectionOwner ---------------------------------------------------------------
    def connection_closed(self, conn: Connection) -> None:
        stats = self.stats
        stats.connections_closed += 1
        stats.bytes_received += conn.bytes_received
        stats.bytes_sent += conn.bytes_sent
        stats.requests += conn.requests
        self.connections.discard(conn)
        if self._accept_held and not self._stopping and len(self.connections) < self.max_connections:
            self._accept_held = False
            self._acceptor.resume_accepting(self.loop)
        if self._stopping and not self.connections:
            self._stop_if_done()

    def _stop_if_done(self) -> None:
        """The last connection closed during a stop: end the loop, unless the backlog
        has more (a graceful stop takes it, so as not to leave it to be reset)."""
        if self._quiet is not None:
            self._take_backlog()
        if not self.connections:
            self.loop.stop()
        elif self._scan_timer is None:
            self._scan_timer = self.loop.call_later(SCAN_INTERVAL, self._scan_quiet)

    def count_error(self) -> None:
        self.stats.errors += 1

    # -- stopping ----------------------------------------------------------------------
    def stop(self, graceful: bool = True) -> None:
        """Begin stopping (loop thread). The loop returns when every connection is closed.

        Graceful: stop accepting, announce the stop to each connection (its protocol
        makes the next reply final), close each once it is quiet; connections still open
        after ``graceful_timeout`` are aborted.
        Fast: abort every connection now.
        """
        if graceful and not self._stopping:
            self._take_backlog()
        if self._acceptor is not None:
            self._acceptor.stop_accepting()
        already = self._stopping
        self._stopping = True
        if not graceful:
            for conn in list(self.connections):
                conn.abort()
            self.loop.stop()
            return
        if already:
            return
        # Announce the stop to every connection (each reads what has arrived first), then
        # close the ones that stay quiet: see netcore.reactor.drain for why not at once.
        for conn in list(self.connections):
            conn.drain_and_close()
        self._quiet = QuietTracker(DRAIN_QUIET, self.fresh_grace)
        if not self.connections:
            self._stop_if_done()
        if not self.connections:
            return
        self._deadline_timer = self.loop.call_later(self.graceful_timeout, self._graceful_timeout_expired)
        if self._scan_timer is None:
            self._scan_quiet()

    def _take_backlog(self) -> None:
        """Accept what waits in the listeners' backlog, as a graceful stop begins.

        A connection in the backlog has completed its handshake, so its client is
        sending its request already; left there, it would be reset when the last holder
        of the listener closes it. Taken now, it is drained like the others: its request
        gets a final reply. (Whoever owns the listener has made the backlog as short as
        it can first: see ``Server`` "closing the door".)
        """
        for listener in self._listeners:
            sock = listener.sock
            if sock.fileno() == -1 or sock.getblocking():
                continue  # closed, or a blocking listener: accept() could wait
            for _ in range(BACKLOG_TAKE_MAX):
                try:
                    accepted, peer = sock.accept()
                except OSError:  # EAGAIN: the backlog is empty (or the listener is shut)
                    break
                try:
                    self.add_connection(accepted, peer)
                except PollerLimitError:
                    return

    def _scan_quiet(self) -> None:
        self._scan_timer = None
        if not self._stopping or self._quiet is None:
            return
        for conn in self._quiet.quiet_ones(list(self.connections), self.loop.time()):
            conn.close()  # nothing owed: the FIN goes now
        if self.connections:
            self._scan_timer = self.loop.call_later(SCAN_INTERVAL, self._scan_quiet)

    def _graceful_timeout_expired(self) -> None:
        if self.connections:
            log.warning("worker.graceful_timeout", worker=self.index, aborted=len(self.connections),
                        graceful_timeout=self.graceful_timeout)
            self.stop(graceful=False)

    def close(self) -> None:
        """After the loop has returned: release what is left (loop thread or after join)."""
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        if self._scan_timer is not None:
            self._scan_timer.cancel()
        for conn in list(self.connections):
            conn.abort()
        self.stats.poll_calls = self.loop.poll_calls
        self.loop.close()
