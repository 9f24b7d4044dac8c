"""The dispatch family's interface: where work runs (the essay's schemes 0-11, docs/concepts.md).

A dispatcher owns the shape of the running server: how many loops, threads or
processes, how connections reach them, and where ``Connection.submit`` runs a handler.
The host binds the listeners, then calls :meth:`Dispatcher.serve`, which returns when the
server has stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.registry import Registration
    from netcore.server import Server


class Dispatcher:
    """Base class of dispatch plugins.

    A dispatcher's identity -- its name, the essay's scheme number, what it provides --
    is its :class:`~netcore.registry.Registration`, the one the server selected and hands
    it; a class does not restate it, so that one class can serve under two
    registrations and the two can never disagree.
    """

    #: What WSGI's ``wsgi.multithread`` / ``wsgi.multiprocess`` must say under this scheme.
    multithread = False
    multiprocess = False
    #: Handlers run on threads other than the connection's I/O thread
    #: (``server.concurrency.handler_threads``).
    handler_threads = False
    #: The ``workers`` setting sizes this scheme (its loops, threads or processes), and
    #: ``server.started`` reports it. False for a scheme with one loop or accepting thread
    #: whatever ``--workers`` says: ``server.started`` then says 1, what serves.
    uses_workers = True

    def __init__(self, config: Config, registration: Registration | None = None) -> None:
        self.config = config
        #: The registration this dispatcher was selected by; None when made directly (a test).
        self.registration = registration

    @property
    def uses_poller(self) -> bool:
        """False for the blocking schemes (``provides=("blocking",)``), which ignore the
        poller setting: the assembly then loads no poller, and ``server.started`` says so."""
        return self.registration is None or "blocking" not in self.registration.provides

    @property
    def scheme(self) -> int | None:
        """The essay's scheme number, from the registration."""
        return None if self.registration is None else self.registration.scheme

    def check(self, server: Server) -> None:
        """Before anything is bound, under ``serve`` and ``--check-config`` alike: refuse
        (:class:`~netcore.errors.UsageError`, one line) what this scheme cannot start with;
        :class:`~netcore.errors.InUse` for what a running server holds, which
        ``--check-config`` only notes. Default: nothing to check."""

    def serve(self, server: Server) -> str:
        """Serve until stopped; return the reason (``"signal SIGTERM"``)."""
        raise NotImplementedError
