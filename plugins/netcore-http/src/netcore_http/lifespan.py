"""ASGI lifespan: the app's startup before an asyncio loop serves, its shutdown after the drain.

Why per loop: what an app creates at startup -- a database pool, an HTTP client, a
queue -- is bound to the asyncio loop it was created on (its futures and sockets belong
to that loop), so every loop that serves requests needs its own. netcore runs one
asyncio loop per reactor (``inline``: one; ``multi-reactor``: one per I/O thread;
``prefork``: one per worker process), and :class:`Lifespan` runs the protocol once on
each: ``startup`` through :class:`~netcore.reactor.asyncio_host.AsyncioHost`'s
``on_start`` (before the loop serves a connection; connections accepted meanwhile wait
in the backlog), ``shutdown`` through ``on_stop`` (after a graceful stop has drained
every connection). The ``state`` the app fills at startup is that loop's; each request
gets a shallow copy (the ASGI spec's ``scope["state"]``).

The modes are uvicorn's ``--lifespan``:

* ``auto``: an app that raises before it asked for the first event, or that returns
  without one, does not speak lifespan: serve without it (logged at info, once per
  loop). An app that received ``lifespan.startup`` and then raised did speak it: that is
  a failed startup.
* ``on``: any failure to start is fatal; ``off``: the lifespan scope is never called.

A failed startup (``lifespan.startup.failed``, or an exception) ends the server with exit
status 2 and the app's message on one line (the last line of a multi-line message:
Starlette sends a whole traceback, whose last line is the error). How that reaches the
command line depends on where the loop runs -- see :meth:`Lifespan.startup_failed`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import structlog
from netcore.errors import UsageError

from netcore_http.waiting import settle

log = structlog.get_logger("netcore.http")

#: A startup failure met on a loop that cannot raise it to the command line itself (an
#: I/O thread of multi-reactor): raised by the ``netcore_server_stopped`` hook instead.
failure: LifespanStartupFailed | None = None


class LifespanStartupFailed(UsageError):
    """The app's lifespan startup failed: exit status 2, the app's message on one line."""


def one_line(message: str) -> str:
    """The line of ``message`` that says what went wrong: its last non-empty one."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Lifespan:
    """The lifespan protocol with ``app`` on one asyncio loop (see the module docstring)."""

    def __init__(self, app: Any, mode: str, state: dict, *, loop: Any = None, server: Any = None,
                 shutdown_timeout: float = 30.0) -> None:
        self.app = app
        #: Seconds the app's shutdown may take (the server's graceful_timeout): a stop must end.
        self.shutdown_timeout = shutdown_timeout
        self.mode = mode
        self.state = state
        #: The netcore loop this one belongs to, and the server (to stop it from a thread).
        self.loop = loop
        self.server = server
        self._task: asyncio.Task | None = None
        self._events: asyncio.Queue | None = None
        self._started: asyncio.Future | None = None
        self._stopped: asyncio.Future | None = None
        self._asked = False  # the app called receive() at least once
        self.supported = False

    # -- what the app sees ------------------------------------------------------------------
    async def _receive(self) -> dict:
        self._asked = True
        return await self._events.get()

    async def _send(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            settle(self._started, None)
        elif kind == "lifespan.startup.failed":
            settle(self._started, one_line(message.get("message", "")) or "lifespan.startup.failed")
        elif kind == "lifespan.shutdown.complete":
            settle(self._stopped, None)
        elif kind == "lifespan.shutdown.failed":
            settle(self._stopped, one_line(message.get("message", "")) or "lifespan.shutdown.failed")
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - any exit of the app settles both waits
            if not self._started.done():
                if self._asked or self.mode == "on":
                    settle(self._started, f"{type(exc).__name__}: {exc}")
                else:
                    settle(self._started, _UNSUPPORTED)
            elif not self._stopped.done():
                settle(self._stopped, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
        finally:
            # Returned (or raised) without a word: in auto mode that is "not supported".
            settle(self._started, _UNSUPPORTED if self.mode != "on" else "the app returned during startup")
            settle(self._stopped, None)

    # -- what the host runs -------------------------------------------------------------------
    async def startup(self) -> None:
        """``AsyncioHost.on_start``: run the app's startup; a failure ends the server."""
        aloop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._started = aloop.create_future()
        self._stopped = aloop.create_future()
        self._events.put_nowait({"type": "lifespan.startup"})
        self._task = aloop.create_task(self._main())
        outcome = await self._started
        if outcome is None:
            self.supported = True
            return
        if outcome is _UNSUPPORTED:
            log.info("lifespan.unsupported", pid=os.getpid(),
                     reason="the app does not take the lifespan scope; serving without it")
            return
        self.startup_failed(outcome)

    def startup_failed(self, message: str) -> None:
        """End the server: exit status 2 with ``message`` (or, in a worker process, a boot error).

        * On the main thread (``inline``) the error is raised: out of the loop, out of
          ``serve``, to the command line.
        * In a worker process (``prefork``) it is raised too, out of the worker's
          loop: the master hears the reason, and ends the server with it if no worker
          has served yet (later, a worker that cannot start is backed off).
        * On an I/O thread (``multi-reactor``) an exception would end only that thread:
          the loop is stopped without serving, the whole server is asked to stop, and
          the ``netcore_server_stopped`` hook raises the error (:data:`failure`).
        """
        global failure
        error = LifespanStartupFailed(f"the app's lifespan startup failed: {message}")
        log.error("lifespan.startup_failed", pid=os.getpid(), message=message)
        if threading.current_thread() is threading.main_thread() or self.loop is None:
            raise error
        if failure is None:
            failure = error
        self.loop.stop()
        if self.server is not None:
            self.server.request_stop("lifespan startup failed", graceful=False)

    async def shutdown(self) -> None:
        """``AsyncioHost.on_stop``: the app's shutdown, after the loop drained; failures logged."""
        task = self._task
        if task is None or not self.supported or task.done():
            return
        self._events.put_nowait({"type": "lifespan.shutdown"})
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._stopped), self.shutdown_timeout)
        except asyncio.TimeoutError:
            outcome = f"no lifespan.shutdown.complete within {self.shutdown_timeout:g}s"
        if outcome is not None:
            log.error("lifespan.shutdown_failed", pid=os.getpid(), message=outcome)
        if not task.done():
            # It returns after shutdown.complete; what it still awaits is cancelled with the loop.
            await asyncio.wait({task}, timeout=1.0)


#: The outcome of a startup the app does not take part in.
_UNSUPPORTED: Any = object()
