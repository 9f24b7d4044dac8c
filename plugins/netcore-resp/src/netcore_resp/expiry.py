"""The active expiry sweep: a timer on an event loop, or a thread where there is no loop.

Lazy expiry (on access) alone would keep keys nobody reads again forever, so, as Redis's
``activeExpireCycle`` does ``hz`` times a second, a sweep runs every ``interval`` seconds
whether or not there is traffic, removes at most ``limit`` due keys under the keyspace
lock, and when more are due runs again at the next loop iteration instead of waiting the
full interval (Redis's "fast cycle"), so I/O still gets its turn between sweeps.

Where it runs is decided by the first connection, because only a connection knows its
loop: under the reactor schemes it is a timer on that connection's loop
(``loop.call_later`` is for the loop's own thread, which ``connection_made`` runs on);
under the blocking schemes there is no loop (``server.concurrency.event_loop`` is False,
and the protocol passes None) and a daemon thread does the same. Before the first
connection the keyspace is empty: nothing to sweep.
"""

from __future__ import annotations

import threading
from typing import Any

from netcore_resp.keyspace import Keyspace


class Sweeper:
    def __init__(self, keyspaces: list[Keyspace], lock: Any, interval: float, limit: int) -> None:
        self.keyspaces = keyspaces
        self.lock = lock
        self.interval = interval
        self.limit = limit
        self.started = False
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def attach(self, loop: Any) -> None:
        """Start sweeping on ``loop`` (None: on a thread) unless already started. Cheap after the first call."""
        if self.started:
            return
        with self._guard:  # multi-reactor: first connections may arrive on two loops at once
            if self.started:
                return
            self.started = True
        if loop is None:
            self._thread = threading.Thread(target=self._run_thread, name="netcore-resp-expire", daemon=True)
            self._thread.start()
        else:
            loop.call_later(self.interval, self._tick, loop)

    def sweep_once(self) -> bool:
        """One sweep of every database (each up to ``limit`` keys); True if more are due."""
        more = False
        with self.lock:
            for keyspace in self.keyspaces:
                if keyspace.expires:
                    more = keyspace.sweep(self.limit) or more
        return more

    def _tick(self, loop: Any) -> None:
        more = self.sweep_once()
        loop.call_later(0 if more else self.interval, self._tick, loop)

    def _run_thread(self) -> None:
        # Daemon: it holds no resource but the lock, and must not keep a stopped server alive.
        wait = threading.Event().wait
        while True:
            wait(self.interval)
            while self.sweep_once():
                pass
