"""The acceptor family's interface: how listening sockets are made and connections taken.

An acceptor has two halves because multi-process schemes split them: :meth:`Acceptor.bind`
runs once, in the process that owns the addresses (before any fork), and
:meth:`Acceptor.start` runs in every worker, putting the listeners into that worker's loop.
The herd, the accept mutex, EPOLLEXCLUSIVE and SO_REUSEPORT are all differences in
those two methods.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable

import attrs

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.reactor.loop import EventLoop
    from netcore.stats import WorkerStats

#: ``on_connection(sock, peer)``: a freshly accepted socket, handed to the dispatcher.
OnConnection = Callable[[socket.socket, Any], None]


@attrs.define(eq=False)
class Listener:
    """A listening socket and the address it was asked for."""

    sock: socket.socket
    #: What to show users: ``127.0.0.1:41234`` (the real port when 0 was asked),
    #: ``[::1]:2007``, ``unix:/run/echo.sock``.
    address: str
    #: ``tcp``, ``unix``.
    kind: str = "tcp"
    #: A Unix socket's path, removed when the server stops (unless inherited).
    path: str | None = None
    #: Handed over by systemd or ``fd://N``: not ours to unlink or to re-bind.
    inherited: bool = False

    def fileno(self) -> int:
        return self.sock.fileno()


class Acceptor:
    """Base class of acceptor plugins."""

    name = "abstract"

    def __init__(self, config: Config) -> None:
        self.config = config

    def bind(self, addresses: list[str], backlog: int) -> list[Listener]:
        """Create, bind and listen (or adopt inherited sockets). Runs once, before workers start."""
        raise NotImplementedError

    def start(
        self,
        loop: EventLoop,
        listeners: list[Listener],
        on_connection: OnConnection,
        stats: WorkerStats,
    ) -> None:
        """In a worker: watch the listeners on ``loop`` and hand each accepted socket on.

        Counting is split: the acceptor counts ``accept_wakeups``, ``accept_eagain`` and
        refused connections (``errors``) in ``stats``; ``on_connection`` counts
        ``connections_accepted``. If ``on_connection`` raises, the socket is the
        acceptor's to close (closing twice is harmless).
        """
        raise NotImplementedError

    def pause_accepting(self, loop: EventLoop) -> None:
        """Stop watching the listeners on ``loop`` for now (a connection limit was reached);
        new clients wait in the kernel's backlog. Loop thread only."""

    def resume_accepting(self, loop: EventLoop) -> None:
        """Watch the listeners on ``loop`` again after :meth:`pause_accepting`."""

    def stop_accepting(self) -> None:
        """In a worker: stop taking new connections (graceful stop). Idempotent."""
        raise NotImplementedError

    def close(self, listeners: list[Listener]) -> None:
        """Close the listening sockets and remove Unix socket files this process created."""
        raise NotImplementedError
