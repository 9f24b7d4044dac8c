"""Entry point ``acceptors`` of group ``netcore``: registers the acceptors of this distribution.

One line per implementation and nothing imported until one is selected (the registry
imports ``target`` lazily), so that ``netcore plugins`` stays cheap.
"""

from __future__ import annotations

import netcore


@netcore.hookimpl
def netcore_register_acceptors(registry):
    registry.register(
        "shared",
        "netcore_acceptors.shared:SharedAcceptor",
        "one listening socket, every worker polls it (the herd under prefork)",
        provides=("acceptor",),
    )
