"""The acceptor family's interface: how listening sockets are made and connections taken.

An acceptor has two halves because multi-process schemes split them: :meth:`Acceptor.bind`
runs once, in the process that owns the addresses (before any fork), and
:meth:`Acceptor.start` runs in every worker, putting the listeners into that worker's loop.
The herd, the accept mutex, EPOLLEXCLUSIVE and SO_REUSEPORT are all differences in
those two methods.

A master process (the multi-process schemes) calls three more, in this order, so that
an acceptor can give each worker something of its own:

1. :meth:`Acceptor.listeners_for_worker` in the master, before forking the worker that
   occupies a *slot* (0..N-1; a replacement for a dead or retired worker reuses its
   predecessor's slot);
2. :meth:`Acceptor.worker_forked` in the child right after the fork;
3. :meth:`Acceptor.start` in the worker, with the listeners step 1 returned;

and :meth:`Acceptor.retire_slot` in the master when a slot goes away for good (TTOU).
In-process schemes call none of them: they run ``start`` with the listeners ``bind``
returned, which every acceptor must accept as slot 0's.
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
    #: Asked for as ``tls:ADDR``: connections on it speak TLS (reactor/admission.py).
    tls: bool = False

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

    def listeners_for_worker(self, listeners: list[Listener], slot: int) -> list[Listener]:
        """Master, before forking the worker of ``slot``: the listeners that worker uses.

        ``listeners`` is what :meth:`bind` returned. The default shares them with every
        worker; ``reuseport`` gives each slot sockets of its own, kept in the master
        across worker generations.
        """
        return listeners

    def worker_forked(self, listeners: list[Listener], slot: int) -> None:
        """Child, right after the fork: ``listeners`` is what :meth:`listeners_for_worker` returned.

        The place to close inherited sockets that are not this worker's (a child holding
        a retired slot's socket would keep it alive, with its queued connections never
        accepted) and to reset per-process state such as locks. Default: nothing.
        """

    def retire_slot(self, slot: int) -> None:
        """Master: ``slot`` is removed for good (one worker less). Default: nothing."""

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
