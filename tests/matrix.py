"""The combination matrix of the integration suites.

``NCTEST_POLLER`` / ``NCTEST_DISPATCH`` / ``NCTEST_PROTOCOL`` (comma-separated; tox's
``matrix`` env passes them through) narrow it; unset means every value. ``NCTEST_ACCEPTOR``
picks the acceptor of the process schemes. (Not ``NETCORE_*``:
those are the server's own settings.)
"""

from __future__ import annotations

import os

ALL_POLLERS = ("select", "poll", "epoll-lt", "epoll-et")
#: In-process reactor dispatchers: each runs with every poller.
REACTOR_DISPATCHES = ("inline", "thread", "thread-per-connection", "pool", "multi-reactor", "multi-reactor-pool",
                      "prefork")
#: Blocking dispatchers: they ignore the poller, so they run once.
BLOCKING_DISPATCHES = ("iterative", "threading", "prethread-blocking", "prefork-blocking", "forking")
#: Schemes with worker processes (a master, or a parent that forks per connection).
PROCESS_DISPATCHES = ("prefork", "prefork-blocking", "forking")
ALL_DISPATCHES = REACTOR_DISPATCHES + BLOCKING_DISPATCHES
ALL_PROTOCOLS = ("echo",)
#: Schemes that serve one client at a time.
SERIAL_DISPATCHES = ("iterative",)
#: Schemes that serve at most --workers clients at a time (the rest wait in the backlog).
BOUNDED_DISPATCHES = SERIAL_DISPATCHES + ("prethread-blocking", "prefork-blocking")


def _from_env(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(name)
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else default


POLLERS = _from_env("NCTEST_POLLER", ALL_POLLERS)
DISPATCHES = _from_env("NCTEST_DISPATCH", ALL_DISPATCHES)
PROTOCOLS = _from_env("NCTEST_PROTOCOL", ALL_PROTOCOLS)
#: The acceptor of the process schemes; unset: the server's default (``mutex`` under
#: prefork when installed). Every acceptor x process scheme is in tests/test_process_schemes.py.
ACCEPTOR = os.environ.get("NCTEST_ACCEPTOR", "").strip()


def combinations() -> list[tuple[str | None, str]]:
    """(poller, dispatch) pairs: reactor schemes with every poller, blocking ones once."""
    pairs: list[tuple[str | None, str]] = []
    for dispatch in DISPATCHES:
        if dispatch in BLOCKING_DISPATCHES:
            pairs.append((None, dispatch))
        else:
            pairs.extend((poller, dispatch) for poller in POLLERS)
    return pairs


def args_for(poller: str | None, dispatch: str) -> list[str]:
    args = ["--dispatch", dispatch]
    if poller is not None:
        args = ["--poller", poller] + args
    if dispatch in ("multi-reactor", "multi-reactor-pool", "prethread-blocking", "prefork"):
        args += ["--workers", "2"]
    if dispatch == "prefork-blocking":
        # Each process serves one client at a time: four, as many as the behaviour suite's
        # slow-handler test holds open at once.
        args += ["--workers", "4"]
    if dispatch in PROCESS_DISPATCHES and ACCEPTOR:
        args += ["--acceptor", ACCEPTOR]
    if dispatch in ("pool", "multi-reactor-pool", "thread"):
        args += ["--threads", "4"]
    return args



