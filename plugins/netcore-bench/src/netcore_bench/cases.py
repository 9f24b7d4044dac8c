"""A case is one row of a result table: a server configuration and the load put on it.

Cases are built by :mod:`netcore_bench.matrix` (the command-line matrix) and
:mod:`netcore_bench.presets`; the runner only starts what a case describes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from netcore_bench.generators import Load
from netcore_bench.peers import PEERS

#: Peers: reference servers started like netcore (same runner, same events on stderr);
#: which protocols each serves (see :mod:`netcore_bench.peers`).
PEER_PROTOCOLS = {name: peer.protocols for name, peer in PEERS.items()}


@dataclass
class Case:
    key: str
    #: "netcore" or a peer name (a key of :data:`netcore_bench.peers.PEERS`)
    server: str
    #: arguments after ``netcore serve`` (or the peer's own)
    args: list[str]
    protocol: str
    load: Load
    #: poller/dispatch/acceptor/workers/handler..., for tables, grouping and plots
    params: dict[str, Any] = field(default_factory=dict)
    #: why the case is not run (not installed, over select's fd limit, ...)
    skip: str | None = None
    #: key of the case that ratios of this one are computed against
    baseline: str | None = None

    def command_prefix(self) -> list[str]:
        if self.server == "netcore":
            return [sys.executable, "-m", "netcore"]
        spec = PEERS.get(self.server)  # an unknown peer's case is skipped, never started
        return [sys.executable, "-m", spec.module if spec else "netcore_bench.peers.launcher"]

    def command(self) -> list[str]:
        """The full command line the runner starts (for the record)."""
        return self.command_prefix() + ["serve", "--log-format", "json", *self.args, "--bind", "127.0.0.1:0"]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "server": self.server, "args": list(self.args), "protocol": self.protocol,
                "load": self.load.as_dict(), "params": dict(self.params), "skip": self.skip,
                "baseline": self.baseline, "command": self.command()}


def peer_case(peer: str, protocol: str, load: Load, key: str | None = None) -> Case:
    """A reference server's case; skipped with the reason if unknown, not installed or
    not serving ``protocol``. An unknown peer is started as nothing (its case is skipped)."""
    spec = PEERS.get(peer)
    case = Case(key=key or f"{peer} [{load.label()}]", server=peer if spec else f"unknown:{peer}",
                args=list(spec.args) if spec else [], protocol=protocol, load=load, params={"peer": peer})
    if spec is None:
        case.skip = f"unknown peer {peer!r} (known: {', '.join(PEERS)})"
    elif protocol not in spec.protocols:
        case.skip = f"peer {peer!r} does not serve protocol {protocol!r} in this bench"
    elif why := spec.unavailable():
        case.skip = f"peer {peer!r} unavailable: {why}"
    return case
