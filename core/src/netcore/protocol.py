"""The protocol family's interface: bytes in, requests out, replies back.

One :class:`Protocol` object per connection. Its methods run on the connection's I/O
thread and do the *framing*: they cut the byte stream into requests and hand each to
``self.connection.submit(handler, request)``. Where ``handler(request)`` then runs is the
dispatcher's business (inline on the loop, a new thread, a pool, ...); its reply is
written in request order whatever thread produced it. The same protocol code therefore
runs unchanged under every scheme: the connection contract a protocol relies on
(``submit`` with ``count``, ``serial``, ``job_done``, ``LATER``, ``send``, deadlines) is
in :mod:`netcore.reactor.base`, and docs/plugin-authoring.md explains it with examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from netcore.reactor.base import LATER, ConnectionClosed

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.reactor.connection import Connection
    from netcore.server import Server


class Protocol:
    """Base class of protocol plugins; subclass and implement :meth:`data_received`."""

    #: True: at most one submission of a connection is handled at a time; the others
    #: wait, in order, in the connection. Set it when handlers of one connection share
    #: state (a transaction, a response streamed with ``connection.send``). It changes
    #: nothing under the schemes that already run one handler at a time.
    serial = False

    #: A method ``job_done(self)`` defined by a subclass runs on the I/O thread after each
    #: submission's reply has been handed to the connection (move a keep-alive deadline,
    #: close after a final reply). None: nothing to call, nothing spent per request.
    job_done: Any = None

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    def configure(cls, config: Config) -> Callable[[Connection], Protocol]:
        """Called once at assembly; returns the per-connection factory.

        Override to read settings or build state shared by all connections (a keyspace, a
        WSGI app). The default is the class itself.
        """
        return cls

    @classmethod
    def for_server(cls, server: Server) -> Callable[[Connection], Protocol]:
        """What the server calls at assembly; the default is :meth:`configure`.

        Override instead of ``configure`` when the protocol must know how the server
        runs, not only its settings: ``server.concurrency`` says whether handlers may run
        on several threads at once (``multithread``), whether several processes serve
        (``multiprocess``), and whether an event loop drives the connections
        (``event_loop``) -- WSGI's ``wsgi.multithread``/``wsgi.multiprocess`` follow it.
        """
        return cls.configure(server.config)

    def connection_made(self) -> None:
        """The connection is registered on its loop."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived: frame them and ``self.connection.submit(handler, request)``."""
        raise NotImplementedError

    def eof_received(self) -> None:
        """The peer sent FIN. Replies still owed are written before the connection closes."""

    def eof_pending(self) -> None:
        """The peer sent FIN while reading was paused; the input before it is not read yet.

        Called at most once, where the poller can tell (epoll, poll on Linux; not
        select). That input is still read and framed when reading resumes, then
        ``eof_received`` runs as usual, so the default does nothing. A protocol that
        owes a departed client nothing (a request waiting for an event, not yet
        answered) may ``abort()`` here instead of holding the connection.
        """

    def stop_requested(self) -> None:
        """The server is draining this connection (graceful stop, or this worker retired).

        Called once, on the connection's thread, after the input that had already
        arrived was read. Make the next reply the final one if the protocol can say so
        (HTTP: ``Connection: close``) and close after it. Do not close a connection that
        is idle between requests here: the client may have sent its next request
        already. The core closes such a connection once it has stayed quiet (see
        :mod:`netcore.reactor.drain`), so the default does nothing.
        """

    #: True if :meth:`stop_requested` makes the next reply tell the client that the
    #: connection ends (HTTP: ``Connection: close``). The core then closes a draining
    #: connection only once it has stayed quiet, since a busy client is told anyway;
    #: False (nothing can tell a client), at the first moment nothing is owed.
    tells_client_on_stop = False

    def is_idle(self) -> bool:
        """True when no request is partly received or being answered (asked during a drain).

        The core closes a draining connection only while this holds, so a protocol that
        knows it is in the middle of a message (a request body still arriving) says so
        and the connection is left to its own deadlines and the graceful timeout.
        """
        return True

    def pause_writing(self) -> None:
        """Queued output passed the high-water mark: stop producing output (loop thread).

        The connection has also stopped reading. Only reactor connections call this;
        under the blocking schemes a write blocks until the kernel has taken it.
        """

    def resume_writing(self) -> None:
        """Queued output is back at the low-water mark: produce again (loop thread)."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is closed; ``exc`` is the error that closed it, if any."""


__all__ = ["LATER", "ConnectionClosed", "Protocol"]
