"""The dispatch schemes installed here, and the arguments a contract suite runs each with.

The contract suites run a plugin under every scheme that is installed, not under a list
written into the tests: a scheme added by another distribution is covered as soon as it
is installed. The list comes from the plugin registry, exactly as ``netcore plugins
--json`` builds it (``PluginHost`` loads the ``netcore`` entry points; a registration is
kept if its target imports on this platform).
"""

from __future__ import annotations

import functools

#: Known schemes run with two workers: enough for two clients at once under the bounded
#: ones, and for the multi-loop and multi-process ones to have more than one loop.
TWO_WORKERS = ("multi-reactor", "multi-reactor-pool", "prethread-blocking", "prefork", "prefork-blocking")
#: Known schemes with a handler-thread limit: four, so that handlers overlap.
FOUR_THREADS = ("pool", "multi-reactor-pool", "thread")
#: Known schemes that serve one client at a time (the next waits in the backlog).
SERIAL = ("iterative",)
#: Known schemes that serve at most ``--workers`` clients at a time.
BOUNDED_BY_WORKERS = ("prethread-blocking", "prefork-blocking")


@functools.cache
def installed_dispatches() -> tuple[str, ...]:
    """Names of the dispatch registrations that load here, in the registry's order."""
    from netcore.plugins import PluginHost

    host = PluginHost()
    return tuple(entry.name for entry in host.registries["dispatch"] if entry.availability()[0])


def scheme_args(dispatch: str) -> list[str]:
    """``--dispatch NAME`` and the worker and thread counts the suites run it with."""
    args = ["--dispatch", dispatch]
    if dispatch in TWO_WORKERS:
        args += ["--workers", "2"]
    if dispatch in FOUR_THREADS:
        args += ["--threads", "4"]
    return args


def option(args: list[str] | tuple[str, ...], name: str) -> str | None:
    """The value that follows the last ``name`` in ``args`` (``option(args, "--dispatch")``)."""
    value = None
    for index, arg in enumerate(args[:-1]):
        if arg == name:
            value = args[index + 1]
    return value


def concurrency(args: list[str] | tuple[str, ...]) -> int | None:
    """How many clients the scheme in ``args`` serves at once: None when not bounded."""
    dispatch = option(args, "--dispatch")
    if dispatch in SERIAL:
        return 1
    if dispatch in BOUNDED_BY_WORKERS:
        return int(option(args, "--workers") or 1)
    return None
