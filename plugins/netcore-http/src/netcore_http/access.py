"""The access log: one line per response, as an event or in gunicorn's format, to stderr or a file.

Off by default, and free when off: every caller tests one attribute (``access is None``)
that the protocol resolved at start. On, each response -- the app's, and the 400, 408,
413, 431 and 500 the server makes itself -- gives one record with the method, target,
version, status, body bytes sent, the duration from the start of the response, and the
peer (the client, once a trusted proxy's ``Forwarded`` was applied).

* ``access_log_format`` empty: the record is an ``http.access`` event through structlog,
  so ``--log-format json`` stays one JSON object per line.
* A gunicorn format (``%(h)s %(r)s %(s)s ...``, the same atoms) or a named one,
  ``combined`` (Apache's combined, gunicorn's default) or ``common``: a text line. Without
  ``access_log_file`` it is the ``line`` field of the event; with it, the line itself is
  appended to that file.
* ``access_log_file``: opened ``O_APPEND`` and written with one ``os.write`` per line --
  no Python buffer, so lines from several threads or forked workers never interleave
  and nothing is lost at exit. ``SIGUSR1`` reopens it (after logrotate moved it, as
  gunicorn and nginx do): the new file is ``dup2``-ed onto the same descriptor, so a
  writer on another thread never sees a closed one.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from typing import Any

import structlog
from netcore.errors import SettingError
from netcore.reactor.threads import start_thread

log = structlog.get_logger("netcore.http")

#: The named formats ``access_log_format`` accepts.
FORMATS = {
    "combined": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    "common": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s',
}
#: What each atom means (gunicorn's set); ``%({name}i)s`` is a request header.
ATOMS = {
    "h": "remote address", "l": "'-'", "u": "user name ('-': never read from the request)",
    "t": "date of the request", "r": "request line", "m": "method", "U": "path without query",
    "q": "query string", "H": "protocol", "s": "status", "B": "response body bytes",
    "b": "response body bytes, '-' for none", "f": "Referer", "a": "User-Agent",
    "T": "duration in whole seconds", "M": "duration in milliseconds", "D": "duration in microseconds",
    "L": "duration in seconds, decimal", "p": "process id",
}


def peer_address(peer: Any) -> str:
    """The address part of ``connection.peer`` (what REMOTE_ADDR holds), for server-made responses."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer) if peer else "-"


def resolve_format(value: str) -> str:
    return FORMATS.get(value, value)


def check_format(value: str) -> str | None:
    """The problem with an ``access_log_format`` value, or None."""
    fmt = resolve_format(value)
    if not fmt:
        return None
    try:
        fmt % _Atoms(("GET", "/", "1.1", []), 200, 0, 0.0, "127.0.0.1")
    except KeyError as exc:
        return f"%({exc.args[0]})s is no atom"
    except (ValueError, TypeError) as exc:
        return f"not a %-format of atoms: {exc}"
    return None


def _escape(text: str) -> str:
    """Quotes, backslashes and control characters escaped, as Apache does in its log."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for char in text:
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif not char.isprintable():
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


class _Atoms(dict):
    """The values of one record, by atom name; request headers looked up on demand."""

    def __init__(self, request: tuple, status: int, sent: int, duration: float, peer: str) -> None:
        method, target, version, headers = request[0], request[1], request[2], request[3]
        if isinstance(method, bytes):
            method, target = method.decode("latin-1"), target.decode("latin-1")
        path, _, query = target.partition("?")
        protocol = f"HTTP/{version}"
        super().__init__(
            h=peer or "-", l="-", u="-", t=time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
            r=_escape(f"{method} {target} {protocol}") if method else "-", m=method or "-", U=_escape(path),
            q=_escape(query), H=protocol, s=str(status), B=str(sent), b=str(sent) if sent else "-",
            T=str(int(duration)), M=str(int(duration * 1000)), D=str(int(duration * 1_000_000)),
            L=f"{duration:.6f}", p=str(os.getpid()),
        )
        self._headers = headers

    def __missing__(self, key: str) -> str:
        if key in ("f", "a"):
            return self.header("referer" if key == "f" else "user-agent")
        if key.startswith("{") and key.endswith("}i"):
            return self.header(key[1:-2].lower())
        raise KeyError(key)

    def header(self, lower: str) -> str:
        wanted = lower.encode("latin-1")
        for name, value in self._headers:
            if name.lower() == wanted:
                return _escape(value.decode("latin-1"))
        return "-"


class AccessLog:
    """Where access records go, resolved once at start (see the module docstring)."""

    def __init__(self, fmt: str, path: str) -> None:
        self.format = resolve_format(fmt) or (FORMATS["combined"] if path else "")
        self.path = path
        self.fd = -1
        if path:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                # At start (serve and --check-config alike): one line, not a traceback.
                raise SettingError("access_log_file", path, f"a file this process can append to "
                                   f"({exc.strerror})") from None

    def record(self, request: tuple, status: int, sent: int, started: float, peer: str) -> None:
        """Log one response. ``started`` is a ``time.monotonic()`` reading (0: unknown)."""
        duration = time.monotonic() - started if started else 0.0
        if not self.format:
            method, target = request[0], request[1]
            if isinstance(method, bytes):
                method, target = method.decode("latin-1"), target.decode("latin-1")
            log.info("http.access", method=method, target=target, version=request[2], status=status,
                     bytes=sent, duration=round(duration, 6), peer=peer)
            return
        line = self.format % _Atoms(request, status, sent, duration, peer)
        if self.fd < 0:
            log.info("http.access", line=line)
            return
        try:
            os.write(self.fd, (line + "\n").encode("utf-8", "replace"))
        except OSError as exc:  # a full disk must not fail the response
            log.warning("http.access_log_failed", path=self.path, error=str(exc))

    def reopen(self) -> None:
        """USR1: the same descriptor now writes to a fresh file at ``path``."""
        if self.fd < 0:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            log.warning("http.access_log_reopen_failed", path=self.path, error=str(exc))
            return
        os.dup2(fd, self.fd, inheritable=False)
        os.close(fd)
        # Logged from a thread: this runs in the signal handler, which may have
        # interrupted this very thread inside a log write that holds the logger's lock
        # (not reentrant: logging here would wait for ever).
        start_thread(functools.partial(log.info, "http.access_log_reopened", path=self.path, pid=os.getpid()),
                     name="netcore-access-log")

    def install_reopen_signal(self) -> None:
        """Reopen on SIGUSR1 in this process (main thread only, where Python allows handlers).

        Under the process schemes the master passes USR1 on to its workers, which call
        this once they have been forked.
        """
        if self.fd < 0 or threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.reopen())


#: The access log of this process, once the protocol made one (for the lifecycle hooks).
current: AccessLog | None = None


def configure(config: Any) -> AccessLog | None:
    """The access log the settings ask for, or None (off: nothing is ever logged)."""
    global current
    path = config.get("access_log_file", "") or ""
    if not (config.get("access_log", False) or path):
        current = None
        return None
    current = AccessLog(config.get("access_log_format", "") or "", path)
    return current
