"""The dispatch family's interface: where work runs (the essay's schemes 0-11).

A dispatcher owns the shape of the running server: how many loops, threads or
processes, how connections reach them, and where ``Connection.submit`` runs a handler.
The host binds the listeners, then calls :meth:`Dispatcher.serve`, which returns when the
server has stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.server import Server


class Dispatcher:
    """Base class of dispatch plugins."""

    name = "abstract"
    #: The essay's scheme number.
    scheme: int | None = None
    #: False for the blocking schemes, which ignore the poller setting.
    uses_poller = True
    #: What WSGI's ``wsgi.multithread`` / ``wsgi.multiprocess`` must say under this scheme.
    multithread = False
    multiprocess = False

    def __init__(self, config: Config) -> None:
        self.config = config

    def serve(self, server: Server) -> str:
        """Serve until stopped; return the reason (``"signal SIGTERM"``)."""
        raise NotImplementedError
