"""``--reload`` (development): a changed source file restarts the workers, as a HUP does.

A thread of the master watches the application's own modules (see
:func:`netcore_dispatch.deploy.application_modules`, as imported by the master at
start) and the configuration file, and sends the master a HUP when one changes -- so a
change goes through exactly the deploy path production uses: new workers import the
new code, the old ones drain, and a broken edit leaves the running code serving with
one log line. ``watchfiles`` (inotify, optional) is used when installed: it reacts at
once and costs nothing while idle; otherwise the files' modification times are
compared every :data:`POLL_INTERVAL` seconds.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Iterable

import structlog

from netcore_dispatch.deploy import application_modules

log = structlog.get_logger("netcore.master")

POLL_INTERVAL = 1.0


def watched_files(config) -> list[str]:
    import sys

    files = {os.path.realpath(sys.modules[name].__file__) for name in application_modules()
             if getattr(sys.modules.get(name), "__file__", None)}
    for source in set(config.sources.values()):
        if source.startswith("file "):  # the TOML file that set some value
            files.add(os.path.realpath(source[5:]))
    return sorted(files)


def _stamp(path: str) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime, st.st_size


class Reloader:
    """Sends SIGHUP to this process when one of ``files`` changes; :meth:`stop` ends it.

    What changed is decided by the files' (mtime, size), recorded when the reloader is
    made; watchfiles only wakes the thread (at a change, or every :data:`POLL_INTERVAL`
    seconds), so a change made before its watch was set up is not missed.
    """

    def __init__(self, files: Iterable[str]) -> None:
        self.files = list(files)
        self._seen = {path: _stamp(path) for path in self.files}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netcore-reload", daemon=True)

    def start(self) -> None:
        log.info("master.reload_watching", files=len(self.files))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _check(self) -> None:
        for path in self.files:
            now = _stamp(path)
            if now != self._seen[path]:
                self._seen = {p: _stamp(p) for p in self.files}
                log.info("master.source_changed", file=path)
                os.kill(os.getpid(), signal.SIGHUP)
                return

    def _run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                                                  signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2})
        directories = sorted({os.path.dirname(path) for path in self.files})
        try:
            import watchfiles
        except ImportError:
            watchfiles = None
        if watchfiles is None or not directories:
            while not self._stop.wait(POLL_INTERVAL):
                self._check()
            return
        for _changes in watchfiles.watch(*directories, stop_event=self._stop, recursive=False,
                                         raise_interrupt=False, yield_on_timeout=True,
                                         rust_timeout=int(POLL_INTERVAL * 1000)):
            self._check()
