"""The settings every server has, declared by the host itself through the same hook.

Settings that belong to one plugin (an HTTP body limit, a RESP keyspace option) are
declared by that plugin, next to the code that reads them.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from netcore import hookimpl
from netcore.layer_settings import MAX_DURATION, add_layer_settings

if TYPE_CHECKING:
    from netcore.plugins import PluginHost
    from netcore.settings import Settings

#: The essay's echo port, on loopback.
DEFAULT_BIND = "127.0.0.1:2007"
#: Preferred pollers, best first: epoll where it exists, else poll, else select.
POLLER_PREFERENCE = ("epoll-lt", "poll", "select")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Upper bound (seconds) of the two durations that may legitimately be long
#: (graceful_timeout, timeout): a day. The others have MAX_DURATION, an hour.
MAX_LONG_DURATION = 86400.0


def default_backlog() -> int:
    """The kernel's own cap on the accept queue (as Go reads it), not a small constant.

    ``listen()`` silently truncates a larger backlog to ``net.core.somaxconn``, so asking
    for exactly that is the largest queue the kernel will give.
    """
    try:
        with open("/proc/sys/net/core/somaxconn") as fh:
            return max(1, int(fh.read().strip()))
    except (OSError, ValueError):
        return socket.SOMAXCONN


class CorePlugin:
    """Registered as ``netcore.core``: declares the host's settings."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def _names(self, family: str):
        return lambda: self.host.registries[family].names() if family in self.host.registries else []

    def _default_poller(self, _values: dict[str, Any]) -> str | None:
        """The first of epoll-lt, poll, select that is installed and works on this platform."""
        registry = self.host.registries.get("poller")
        if registry is None or not len(registry):
            return POLLER_PREFERENCE[0]
        for name in POLLER_PREFERENCE:
            entry = registry.get(name)
            if entry is not None and entry.platform_ok():
                return name
        return registry.names()[0]

    def _default_acceptor(self, values: dict[str, Any]) -> str:
        """mutex under prefork (when installed), else shared.

        nginx's accept_mutex: under prefork processes share a listener and the herd is theirs.
        """
        if values.get("dispatch") == "prefork":
            registry = self.host.registries.get("acceptor")
            if registry is None or "mutex" in registry:
                return "mutex"
        return "shared"

    def _default_workers(self, values: dict[str, Any]) -> int:
        """The usable CPUs under a process scheme, else 1.

        One process per CPU is what nginx and gunicorn advise; "usable" is the affinity mask.
        """
        registry = self.host.registries.get("dispatch")
        entry = registry.get(values.get("dispatch") or "") if registry is not None else None
        if entry is not None and "processes" in entry.provides:
            return usable_cpus()
        return 1

    @hookimpl
    def netcore_add_settings(self, settings: Settings) -> None:
        add = settings.add
        add("bind", "list", [DEFAULT_BIND],
            "address to listen on: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; repeat for several "
            "(port 0 picks a free port; systemd's LISTEN_FDS sockets are used automatically)",
            metavar="ADDR")
        add("poller", "choice", self._default_poller,
            "readiness API of the reactor schemes: select, poll, epoll-lt (level) or epoll-et (edge)",
            choices=self._names("poller"), metavar="NAME")
        add("dispatch", "choice", "inline", "where work runs: one of the essay's schemes 0-11",
            choices=self._names("dispatch"), metavar="NAME")
        add("acceptor", "choice", self._default_acceptor,
            "how listening sockets are made and connections taken (default: mutex under prefork, else shared)",
            choices=self._names("acceptor"), metavar="NAME")
        add("protocol", "choice", "echo", "what is spoken on the connections",
            choices=self._names("protocol"), metavar="NAME")
        add("workers", "int", self._default_workers,
            "worker loops, threads or processes (for schemes that have several; default: the number "
            "of CPUs under the process schemes, else 1)", minimum=1, maximum=1024, metavar="N")
        add("threads", "int", 8, "handler thread-pool size (for schemes with a pool; 0: none)",
            minimum=0, maximum=4096, metavar="N")
        add("max_connections", "int", 10000,
            "most connections served at once (per worker); at the limit the server stops accepting "
            "and new clients wait in the backlog until a connection closes. Bounds the threads of "
            "the thread-per-connection schemes", minimum=1, maximum=10_000_000, metavar="N")
        add("backlog", "int", _default_backlog,
            "accept-queue length passed to listen() (default: the kernel's somaxconn)",
            minimum=1, maximum=2**31 - 1, metavar="N")
        # Every duration has an upper bound, as every other number has: a value no one
        # means (inf, 1e12) is refused at start in one line instead of reaching a poller
        # or a socket time-out, which cannot take it. A day for the two that may
        # legitimately be long (long downloads or WebSockets to drain; long requests).
        add("graceful_timeout", "float", 30.0,
            "seconds a graceful stop (TERM) waits for in-flight work before closing connections",
            minimum=0, maximum=MAX_LONG_DURATION, metavar="SECONDS")
        add("timeout", "float", 30.0,
            "process schemes: a worker silent for this many seconds (a handler stuck in a loop) is "
            "killed and replaced; 0: never", minimum=0, maximum=MAX_LONG_DURATION, metavar="SECONDS")
        add("max_requests", "int", 0,
            "process schemes: a worker that has served this many requests is replaced gracefully "
            "(a remedy for leaks); 0: never", minimum=0, metavar="N")
        add("max_requests_jitter", "int", 0,
            "process schemes: add a random 0..N to max_requests per worker, so that workers are not "
            "all replaced at once", minimum=0, metavar="N")
        add("recv_size", "int", 65536, "bytes asked of each recv() on a connection",
            minimum=1024, maximum=16 * 1024 * 1024, metavar="BYTES")
        add("high_water", "int", 256 * 1024,
            "queued output (bytes) above which a connection stops reading its peer",
            minimum=1, metavar="BYTES")
        add("low_water", "int", 64 * 1024,
            "queued output (bytes) below which a paused connection reads again",
            minimum=0, metavar="BYTES")
        add("linger_timeout", "float", 2.0,
            "seconds a closing connection waits for the peer's FIN after sending its own",
            minimum=0, maximum=MAX_DURATION, metavar="SECONDS")
        add("log_format", "choice", _default_log_format,
            "log rendering on stderr: console (default on a terminal) or json lines",
            choices=("console", "json"))
        add("log_level", "choice", "info", "lowest level logged", choices=LOG_LEVELS)
        # Operations (docs/operations.md): what operators of gunicorn expect around a master.
        add("pid", "str", "",
            "process schemes: write the master's pid to this file (renamed FILE.oldbin while a "
            "USR2 successor runs); empty: none", metavar="FILE")
        add("preload", "bool", False,
            "import the application in the master before forking (shared copy-on-write memory); "
            "HUP then restarts workers on the same code. Default: each worker imports it, so HUP "
            "deploys new code")
        add("reload", "bool", False,
            "development: restart the workers (or re-exec the server) when a source file of the "
            "application changes (watchfiles if installed, else polling)")
        add("chdir", "str", "", "change to this directory before loading the application",
            metavar="DIR")
        add("user", "str", "", "switch to this user (name or uid) after binding the listeners",
            metavar="USER")
        add("group", "str", "", "switch to this group (name or gid) after binding the listeners",
            metavar="GROUP")
        add_layer_settings(add)
        add("metrics_bind", "str", "",
            "HOST:PORT of a separate listener serving GET /metrics (Prometheus text), /livez and "
            "/readyz (503 once a stop begins); under the process schemes the master serves it. "
            "Empty: off (docs/metrics.md)", metavar="ADDR")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_backlog(_values: dict[str, Any]) -> int:
    """The kernel's net.core.somaxconn."""
    return default_backlog()


def _default_log_format(_values: dict[str, Any]) -> str:
    """console when stderr is a terminal, else json."""
    return "console" if _isatty(sys.stderr) else "json"


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = ["MAX_LONG_DURATION", "CorePlugin", "DEFAULT_BIND", "default_backlog", "usable_cpus"]
