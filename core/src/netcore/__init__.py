"""netcore: a TCP server host whose concurrency model, poller, acceptor and protocol are plugins.

Plugins implement the hooks in :mod:`netcore.hookspecs`, marked with :data:`hookimpl`.
``hookimpl`` is made on first use so that importing the reactor core
(``netcore.reactor.*``) does not import pluggy: hooks assemble a server, plain method
calls run it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        import pluggy

        #: ``@netcore.hookimpl def netcore_register_pollers(registry): ...``
        marker = pluggy.HookimplMarker("netcore")
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module 'netcore' has no attribute {name!r}")
