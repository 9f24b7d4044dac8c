"""A case is one row of a result table: a server configuration and the load put on it.

Cases are built by :mod:`netcore.bench.matrix` (the command-line matrix) and
:mod:`netcore.bench.presets`; the runner only starts what a case describes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from netcore.bench.generators import Load

#: Peers: reference servers started like netcore (same runner, same events on stderr).
PEER_MODULE = "netcore.bench.peers.asyncio_echo"
PEER_PROTOCOLS = {"asyncio": ("echo",), "uvloop": ("echo",)}


@dataclass
class Case:
    key: str
    #: "netcore" or a peer name ("asyncio", "uvloop")
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
        return [sys.executable, "-m", PEER_MODULE]

    def command(self) -> list[str]:
        """The full command line the runner starts (for the record)."""
        return self.command_prefix() + ["serve", "--log-format", "json", *self.args, "--bind", "127.0.0.1:0"]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "server": self.server, "args": list(self.args), "protocol": self.protocol,
                "load": self.load.as_dict(), "params": dict(self.params), "skip": self.skip,
                "baseline": self.baseline, "command": self.command()}


def peer_case(peer: str, protocol: str, load: Load, key: str | None = None) -> Case:
    case = Case(key=key or f"{peer} [{load.label()}]", server=peer, args=["--loop", peer], protocol=protocol,
                load=load, params={"peer": peer})
    if protocol not in PEER_PROTOCOLS.get(peer, ()):
        case.skip = f"peer {peer!r} does not serve protocol {protocol!r} in this bench"
    elif peer == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            case.skip = f"uvloop not installed ({exc}); pip install uvloop"
    return case
