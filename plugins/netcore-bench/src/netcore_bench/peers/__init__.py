"""Reference servers the bench measures netcore against, in the same run.

Each peer is started like netcore, through :class:`netcore.testing.ServerProcess`: a
Python module that accepts ``serve --log-format json --bind HOST:PORT`` and prints
netcore's ``server.started`` event once it answers. The echo peers are asyncio servers
written here (:mod:`.asyncio_echo`); the others are the real servers (uvicorn, waitress,
gunicorn, nginx, redis-server) run by :mod:`.launcher` with the hello apps of
:mod:`.wsgi_hello` and :mod:`.asgi_hello`. Nothing here is imported until a peer runs;
:func:`unavailable` only looks for modules and executables. Under ``--tls`` every peer gets
``--certfile``/``--keyfile`` after its arguments (see :mod:`netcore_bench.tls`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass

#: Where Debian and most distributions put daemons that an unprivileged PATH may lack.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


@dataclass(frozen=True)
class Peer:
    name: str
    #: protocols this peer serves in the bench
    protocols: tuple[str, ...]
    #: ``python -m MODULE ARGS serve ...`` starts it
    module: str
    args: tuple[str, ...]
    summary: str
    python_modules: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    install_hint: str = ""
    #: serves TLS under ``netcore bench --tls`` (given ``--certfile``/``--keyfile``)
    tls: bool = True
    #: why not, when it does not
    tls_note: str = ""

    def unavailable(self) -> str | None:
        """Why this peer cannot run here, or None."""
        missing = [m for m in self.python_modules if importlib.util.find_spec(m) is None]
        missing += [e for e in self.executables if find_executable(e) is None]
        if missing:
            return f"{', '.join(missing)} not installed" + (f" ({self.install_hint})" if self.install_hint else "")
        return None


def find_executable(name: str) -> str | None:
    """``name`` on PATH, else in the usual sbin directories (nginx, redis-server)."""
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN_DIRS:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


_ECHO = "netcore_bench.peers.asyncio_echo"
_LAUNCHER = "netcore_bench.peers.launcher"

PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("asyncio", ("echo",), _ECHO, ("--loop", "asyncio"), "asyncio Protocol echo server, stock event loop"),
    Peer("uvloop", ("echo",), _ECHO, ("--loop", "uvloop"), "asyncio Protocol echo server on uvloop",
         python_modules=("uvloop",), install_hint="pip install uvloop"),
    Peer("uvicorn", ("http",), _LAUNCHER, ("--peer", "uvicorn"),
         "uvicorn, httptools parser, uvloop loop, a raw ASGI hello app",
         python_modules=("uvicorn", "httptools", "uvloop"), install_hint="pip install uvicorn httptools uvloop"),
    Peer("uvicorn-fastapi", ("http",), _LAUNCHER, ("--peer", "uvicorn-fastapi"),
         "uvicorn, httptools parser, uvloop loop, a FastAPI JSON endpoint",
         python_modules=("uvicorn", "httptools", "uvloop", "fastapi"),
         install_hint="pip install uvicorn httptools uvloop fastapi"),
    Peer("waitress", ("http",), _LAUNCHER, ("--peer", "waitress"), "waitress, 4 threads, the WSGI hello app",
         python_modules=("waitress",), install_hint="pip install waitress", tls=False,
         tls_note="waitress has no TLS: it is meant to run behind a proxy that terminates it"),
    Peer("gunicorn-sync", ("http",), _LAUNCHER, ("--peer", "gunicorn-sync"),
         "gunicorn, 1 sync worker (a master and a worker process), the WSGI hello app",
         python_modules=("gunicorn",), install_hint="pip install gunicorn"),
    Peer("gunicorn-gthread", ("http",), _LAUNCHER, ("--peer", "gunicorn-gthread"),
         "gunicorn, 1 gthread worker with 8 threads (a master and a worker process), the WSGI hello app",
         python_modules=("gunicorn",), install_hint="pip install gunicorn"),
    Peer("nginx", ("http",), _LAUNCHER, ("--peer", "nginx"),
         "nginx, a master and 1 worker process, 'return 200 \"Hello, World!\"'",
         executables=("nginx",), install_hint="Debian: apt-get install nginx"),
    Peer("redis-server", ("resp",), _LAUNCHER, ("--peer", "redis-server"),
         "redis-server --save '' --appendonly no",
         executables=("redis-server",), install_hint="Debian: apt-get install redis-server"),
)}


def peer_names(protocol: str) -> list[str]:
    return [p.name for p in PEERS.values() if protocol in p.protocols]
