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

from netcore.reactor.connection import Connection, ConnectionOwner
from netcore.reactor.poller import PollerLimitError
from netcore.stats import WorkerStats

if TYPE_CHECKING:
    from netcore.acceptor import Acceptor, Listener
    from netcore.reactor.loop import EventLoop

log = structlog.get_logger("netcore.worker")


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
        self.connection_options = connection_options or {}
        self.graceful_timeout = graceful_timeout
        self.max_connections = max_connections
        self._acceptor: Acceptor | None = None
        self._accept_held = False
        self._stopping = False
        self._deadline_timer = None
        self._fresh_timer = None
        #: Seconds a graceful stop leaves a connection that has sent nothing yet to send
        #: its first request. 0 (the default): closed with the others at once. A worker
        #: retired while its siblings go on serving (prefork's HUP, max-requests) sets it:
        #: a client whose connect was accepted an instant before the stop has its request
        #: on the way, and closing before it arrives would fail a request that was never
        #: refused by the server as a whole.
        self.fresh_grace = 0.0

    # -- accepting ---------------------------------------------------------------------
    def start_accepting(self, acceptor: Acceptor, listeners: list[Listener]) -> None:
        self._acceptor = acceptor
        acceptor.start(self.loop, listeners, self.add_connection, self.stats)

    def add_connection(self, sock: socket.socket, peer: Any = None) -> Connection | None:
        """Adopt an accepted socket (on this worker's loop thread)."""
        stats = self.stats
        stats.connections_accepted += 1
        if self._stopping:
            # Handed over while we stop: close it at once rather than leave it unanswered.
            stats.connections_closed += 1
            sock.close()
            return None
        try:
            conn = self.connection_class(self.loop, sock, self.protocol_factory, self, peer=peer, **self.connection_options)
        except PollerLimitError:
            stats.connections_closed += 1
            sock.close()
            raise  # the acceptor logs it, rate-limited, and counts the error
        if not conn.closed:
            self.connections.add(conn)
            if (self.max_connections is not None and len(self.connections) >= self.max_connections
                    and self._acceptor is not None and not self._accept_held):
                # At the limit: leave new clients in the kernel's backlog, do not refuse them.
                self._accept_held = True
                self._acceptor.pause_accepting(self.loop)
        return conn

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
            self.loop.stop()

    def count_error(self) -> None:
        self.stats.errors += 1

    # -- stopping ----------------------------------------------------------------------
    def stop(self, graceful: bool = True) -> None:
        """Begin stopping (loop thread). The loop returns when every connection is closed.

        Graceful: stop accepting, answer input that has already arrived, flush and close
        each connection; connections still open after ``graceful_timeout`` are aborted.
        Fast: abort every connection now.
        """
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
        fresh = False
        for conn in list(self.connections):
            if self.fresh_grace and not conn.bytes_received and not conn.pending:
                fresh = True  # see fresh_grace: answered normally if its request comes
            else:
                conn.drain_and_close()
        if fresh:
            self._fresh_timer = self.loop.call_later(min(self.fresh_grace, self.graceful_timeout),
                                                     self._close_fresh)
        if not self.connections:
            self.loop.stop()
        else:
            self._deadline_timer = self.loop.call_later(self.graceful_timeout, self._graceful_timeout_expired)

    def _close_fresh(self) -> None:
        self._fresh_timer = None
        for conn in list(self.connections):
            conn.drain_and_close()  # no-op for those already closing

    def _graceful_timeout_expired(self) -> None:
        if self.connections:
            log.warning("worker.graceful_timeout", worker=self.index, aborted=len(self.connections),
                        graceful_timeout=self.graceful_timeout)
            self.stop(graceful=False)

    def close(self) -> None:
        """After the loop has returned: release what is left (loop thread or after join)."""
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        if self._fresh_timer is not None:
            self._fresh_timer.cancel()
        for conn in list(self.connections):
            conn.abort()
        self.stats.poll_calls = self.loop.poll_calls
        self.loop.close()
