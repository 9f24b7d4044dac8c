"""The command-line matrix: every combination of the options given, plus peers.

``--poller all --dispatch inline,pool --connections 64,1000`` is 4 x 2 x 2 netcore cases;
each peer gets one case per load. A name that is not installed becomes a skipped row
that says so, never an error: the same command works before and after a plugin lands.
"""

from __future__ import annotations

import itertools
from typing import Any

from netcore_bench.cases import Case, peer_case
from netcore_bench.generators import Load
from netcore_bench.registry import Installed

#: (family, option) pairs that take a list of names or "all".
FAMILIES = (("poller", "poller"), ("dispatch", "dispatch"), ("acceptor", "acceptor"), ("protocol", "protocol"))
#: select(2) can watch fds below this only (FD_SETSIZE); the server also holds a
#: listening socket, a wake-up pipe and its stdio.
SELECT_FD_LIMIT = 1024
SELECT_RESERVED_FDS = 16


def split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def names(family: str, value: str | None, installed: Installed) -> list[str | None]:
    """The names an option asks for: "all" = every available one; nothing = the server's default."""
    if not value:
        return [None]
    if value == "all":
        return list(installed.available(family)) or [None]
    return list(dict.fromkeys(split(value)))


def ints(value: str | None, default: int) -> list[int]:
    return [int(v) for v in split(value)] or [default]


def netcore_case(params: dict[str, Any], load: Load, installed: Installed, extra: list[str] | None = None,
                 key: str | None = None) -> Case:
    """One netcore case; skipped with the reason if a name is missing or a limit is hit."""
    args: list[str] = []
    for opt in ("poller", "dispatch", "acceptor", "protocol", "workers", "threads", "backlog"):
        if params.get(opt) is not None:
            args += [f"--{opt}", str(params[opt])]
    args += list(extra or [])
    label = key or " ".join(f"{params[k]}" for k in ("poller", "dispatch", "acceptor", "protocol", "workers")
                            if params.get(k) is not None) or "netcore"
    case = Case(key=label, server="netcore", args=args, protocol=params.get("protocol") or "echo", load=load,
                params=dict(params))
    for family, _ in FAMILIES:
        name = params.get(family)
        if name is not None and (why := installed.missing(family, name)):
            case.skip = why
            return case
    poller = params.get("poller")
    blocking = params.get("dispatch") is not None and installed.is_blocking(params["dispatch"])
    fds = load.connections + load.idle + SELECT_RESERVED_FDS
    if poller == "select" and not blocking and fds > SELECT_FD_LIMIT:
        case.skip = (f"select stops at its fd limit: {load.connections + load.idle:,} connections need fds "
                     f"beyond FD_SETSIZE ({SELECT_FD_LIMIT})")
    return case


def expand(opts: dict[str, Any], installed: Installed, loads: list[Load]) -> list[Case]:
    """Every netcore combination x every load, then every peer x every load."""
    lists = {fam: names(fam, opts.get(opt), installed) for fam, opt in FAMILIES}
    workers = [int(w) for w in split(opts.get("workers"))] or [None]
    cases: list[Case] = []
    seen: set[str] = set()
    multi_load = len(loads) > 1
    for load in loads:
        for poller, dispatch, acceptor, protocol, nworkers in itertools.product(
                lists["poller"], lists["dispatch"], lists["acceptor"], lists["protocol"], workers):
            if dispatch is not None and installed.is_blocking(dispatch):
                poller = None  # blocking schemes have no poller: one row, not one per poller
            params = {"poller": poller, "dispatch": dispatch, "acceptor": acceptor, "protocol": protocol,
                      "workers": nworkers}
            case = netcore_case(params, load, installed, extra=list(opts.get("serve_args") or []))
            if multi_load:
                case.key = f"{case.key} [{load.label()}]"
            if case.key in seen:
                continue
            seen.add(case.key)
            cases.append(case)
    protocols = [p or "echo" for p in lists["protocol"]]
    for load in loads:
        peers = [peer_case(peer, protocol, load) for peer in split(opts.get("peers")) for protocol in protocols]
        if not multi_load:
            for p in peers:
                p.key = p.key.split(" [")[0]
        cases.extend(peers)
    # Ratios against the best-known peer of the same load (uvloop, else asyncio).
    for case in cases:
        same = [c for c in cases if c.server != "netcore" and c.load == case.load and not c.skip]
        base = next((c for c in same if c.server == "uvloop"), None) or next(iter(same), None)
        if base is not None:
            case.baseline = base.key
    return cases
