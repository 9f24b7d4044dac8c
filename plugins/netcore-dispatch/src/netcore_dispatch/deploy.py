"""What a HUP deploys: the configuration re-read in the master, the application re-imported
in each new worker.

gunicorn's contract, which operators rely on: HUP re-reads the configuration and starts
workers that import the application afresh, so changed code is served by the new
generation; ``--preload`` imports the application once in the master instead (memory
shared copy-on-write), and HUP then restarts workers on the same code.

* **The configuration** is resolved again from the same sources as at start (the
  command line, ``NETCORE_*`` in the master's environment, the TOML file) by the function
  ``netcore serve`` leaves on the server (``server.reconfigure``). An error there is the
  operator's to fix: the reload is refused with one log line and nothing is replaced.
  Settings that shape the master itself -- the listeners, the scheme, the protocol --
  cannot change under a running master; a new value is reported and the old one kept.
* **The application** was imported by the master at start, so that a broken one fails
  at start with one line; a new worker (without ``preload``) forgets every module of the
  application's own source (Python files outside the interpreter's installation and
  outside netcore itself) and builds the protocol again, which imports them from disk.
  A new worker that fails there exits with the boot-error status, and the master rolls
  the whole generation back (see ``Master``): the old workers go on serving.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from typing import Any

import structlog

log = structlog.get_logger("netcore.master")

#: Settings a HUP cannot change: they shape the master (its sockets, its scheme) or the
#: process (its identity), not the workers it forks.
FIXED_ON_RELOAD = ("bind", "dispatch", "acceptor", "protocol", "poller", "backlog", "preload", "pid",
                   "user", "group", "chdir", "reload", "metrics_bind")


def reread_config(server: Any) -> Any:
    """The configuration as it would be resolved now; raises the user's error if invalid.

    The fixed settings keep their running values (one ``master.reload_needs_restart``
    line per change).
    """
    reconfigure = getattr(server, "reconfigure", None)
    old = server.config
    if reconfigure is None:  # a server built in code, not by ``netcore serve``: same config
        return old
    new = reconfigure()
    kept = {}
    for name in FIXED_ON_RELOAD:
        if name in old.values and new.get(name) != old.get(name):
            log.warning("master.reload_needs_restart", setting=name, running=_text(old.get(name)),
                        configured=_text(new.get(name)))
            kept[name] = old.get(name)
    return new.replace(**kept) if kept else new


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _installed_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_path(key)
        if path:
            roots.add(path)
    return tuple(os.path.realpath(root) + os.sep for root in roots)


#: Computed once, in the master: sysconfig imports lazily, and a worker running as
#: ``--user`` may not be able to read the interpreter's own files any more.
_ROOTS = _installed_roots()


def application_modules() -> list[str]:
    """Modules of the application's own source: what a deploy may have changed.

    Python source files outside the interpreter's installation (where libraries live)
    and outside netcore's own packages (editable installs of plugins included).
    """
    roots = _ROOTS
    names = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or name.split(".", 1)[0].startswith(("netcore", "_pytest", "pytest")):
            continue
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        if not os.path.realpath(path).startswith(roots):
            names.append(name)
    return names


def load_application_in_worker(server: Any) -> None:
    """In a new worker (no ``preload``): import the application afresh and rebuild the
    protocol with the configuration the master holds now."""
    if server.config.get("preload", False):
        return
    for name in application_modules():
        sys.modules.pop(name, None)
    importlib.invalidate_caches()  # files added since the master's import are found
    protocol = server.assembly.loaded["protocol"]
    server.assembly.config = server.config
    server.protocol_factory = protocol.for_server(server)
