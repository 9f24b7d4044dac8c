"""A netcore loop run by an asyncio loop on the same thread: for protocols whose code is coroutines.

An ASGI app's libraries use asyncio directly — ``asyncio.sleep``, ``create_task``,
database drivers that open their own connections with ``loop.create_connection`` — so
the thread that runs the app must have a running asyncio loop with all of its API. A
netcore loop needs much less from whoever waits for it: "tell me when one of my fds is
ready, and when my next timer is due". The poller's own kernel object says the first: an
epoll fd is readable whenever an fd registered in it is ready. So the asyncio loop
watches that single fd for netcore, and each time it is readable (or a netcore timer is
due) runs one netcore iteration that does not wait (:meth:`EventLoop.run_once`). Netcore's
connections, timers and cross-thread queue work exactly as under their own loop, and the
app's tasks run between its iterations on the same thread: a reply written by a task
goes straight to the socket, with no hand-off between threads.

Why this way round: the other — netcore's loop driving asyncio's — would need asyncio's
private ``_run_once`` and would not work with uvloop. Twisted's asyncio reactor makes the
same choice. The price is one more ``epoll_wait`` per wake-up (asyncio's, then netcore's
with a zero timeout), shared by every event that wake-up handles.

Edge-triggered pollers stay correct: asyncio watches the epoll fd level-triggered, so it
is reported while the inner ready list is not empty, and netcore's edge-triggered
connections read to ``EAGAIN`` as they always do. ``select`` and ``poll`` keep no kernel
object, so they cannot be hosted: :meth:`AsyncioHost.run` refuses them, and a protocol
that needs a host should refuse them at start (its ``netcore_check_assembly``).

Work that a task adds to netcore's loop outside an iteration — a callback for the next
iteration, a timer — touches only the loop's own queues, which asyncio cannot see; the
host therefore replaces ``call_soon``, ``call_later`` and ``call_at`` on the loop it runs
with versions that also make asyncio run the next iteration in time. Anything that
changes what the kernel watches (a write that must wait for ``EPOLLOUT``, a new
registration) needs nothing: the epoll fd's readiness follows.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import structlog

from netcore.reactor.timers import TimerHandle

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop

log = structlog.get_logger("netcore.asyncio_host")

#: What ``kind`` may be: uvloop where it is installed (auto), or one of the two by name.
KINDS = ("auto", "asyncio", "uvloop")


def new_asyncio_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh asyncio loop of ``kind`` (see :data:`KINDS`); ``uvloop`` must be importable."""
    if kind not in KINDS:
        raise ValueError(f"asyncio loop kind {kind!r}: allowed: {', '.join(KINDS)}")
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class AsyncioHost:
    """Runs one :class:`EventLoop` inside an asyncio loop it makes on the calling thread.

    Attach it as ``loop.host`` before the loop runs; :meth:`EventLoop.run_forever` then
    calls :meth:`run`. ``on_start`` and ``on_stop`` hold zero-argument async callables
    (ASGI lifespan): the first run, in order, before the netcore loop serves anything —
    connections accepted meanwhile wait — and an exception from one ends :meth:`run`
    with it; the second run after the netcore loop has stopped (a graceful stop has
    drained every connection by then), their failures logged.
    """

    def __init__(self, kind: str = "auto") -> None:
        if kind not in KINDS:
            raise ValueError(f"asyncio loop kind {kind!r}: allowed: {', '.join(KINDS)}")
        self.kind = kind
        self.on_start: list[Callable[[], Awaitable[Any]]] = []
        self.on_stop: list[Callable[[], Awaitable[Any]]] = []
        #: The asyncio loop while :meth:`run` runs (also set as ``loop.asyncio_loop``).
        self.asyncio_loop: asyncio.AbstractEventLoop | None = None
        self._loop: EventLoop | None = None
        self._soon = False  # an iteration is queued in asyncio already
        self._serving = False  # between the start callables and the stop callables
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0

    def run(self, loop: EventLoop) -> None:
        fd = loop.poller.fileno()
        if fd < 0:
            raise RuntimeError(
                f"the {loop.poller.name} poller keeps no kernel object that asyncio could watch; "
                "a protocol that needs an asyncio loop (ASGI) runs with --poller epoll-lt or epoll-et")
        aloop = new_asyncio_loop(self.kind)
        self.asyncio_loop = aloop
        self._loop = loop
        loop.asyncio_loop = aloop
        asyncio.set_event_loop(aloop)
        # Instance attributes shadow the methods for this loop only: see the module docstring.
        loop.call_soon = self._call_soon
        loop.call_later = self._call_later
        loop.call_at = self._call_at
        try:
            for start in self.on_start:
                aloop.run_until_complete(start())
            aloop.add_reader(fd, self._iterate)
            # The first iteration (what was queued before the loop ran: accepting, signals)
            # from inside the running asyncio loop: its callbacks may create tasks.
            self._soon = True
            aloop.call_soon(self._iterate)
            self._serving = True
            aloop.run_forever()
            self._serving = False  # an iteration queued before the stop must not run now
            aloop.remove_reader(fd)
            for stop in self.on_stop:
                try:
                    aloop.run_until_complete(stop())
                except Exception:
                    log.exception("asyncio_host.stop_failed", loop=loop.name)
        finally:
            self._serving = False
            for name in ("call_soon", "call_later", "call_at"):
                loop.__dict__.pop(name, None)
            self._cancel_timer()
            try:
                _cancel_remaining_tasks(aloop)
                aloop.run_until_complete(aloop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                aloop.close()
                loop.asyncio_loop = None
                self.asyncio_loop = None

    # -- one netcore iteration per asyncio callback ----------------------------------------
    def _iterate(self) -> None:
        self._soon = False
        if not self._serving:
            return
        loop = self._loop
        timeout = loop.run_once()
        if loop.stopping:
            # Once: uvloop remembers a second stop() for its next run (the clean-up's).
            self._serving = False
            self.asyncio_loop.stop()
        elif timeout is not None:
            self._wake_in(timeout)

    def _wake_in(self, delay: float) -> None:
        """Make asyncio run the next iteration within ``delay`` seconds."""
        aloop = self.asyncio_loop
        if delay <= 0:
            if not self._soon:
                self._soon = True
                aloop.call_soon(self._iterate)
            return
        when = aloop.time() + delay
        if self._timer is not None:
            if self._timer_when <= when:
                return  # an earlier wake-up is set: that iteration computes the next one
            self._timer.cancel()
        self._timer_when = when
        self._timer = aloop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._iterate()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the loop's queue methods while hosted -------------------------------------------
    def _call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        loop._ready.append((callback, args))
        if not self._soon and self.asyncio_loop is not None:
            self._soon = True
            self.asyncio_loop.call_soon(self._iterate)

    def _call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        loop = self._loop
        handle = loop._timers.push(TimerHandle(when, callback, args))
        if self.asyncio_loop is not None:
            self._wake_in(when - loop.time())
        return handle

    def _call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return self._call_at(self._loop.time() + delay, callback, *args)


def _cancel_remaining_tasks(aloop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending when the loop ends and let them unwind (asyncio.run's way)."""
    tasks = [task for task in asyncio.all_tasks(aloop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    aloop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("asyncio_host.task_failed_at_exit", task=repr(task), error=repr(task.exception()))
