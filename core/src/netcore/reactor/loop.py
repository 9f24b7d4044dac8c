"""The event loop: one thread, one poller, fd -> handler, timers, and a cross-thread queue.

The shape is muduo's ``EventLoop``: a loop belongs to the thread that runs it; other
threads hand it work with :meth:`EventLoop.call_soon_threadsafe`, which wakes the poller
through an eventfd. Per event the loop does one dict lookup and one call of a bound
method — no hook, no log call, no wrapper object — because this is the path every
message of every connection takes.
"""

from __future__ import annotations

import collections
import signal
import socket
import threading
import time
from typing import Any, Callable

import structlog

from netcore.reactor.poller import EVENT_READ, Poller
from netcore.reactor.timers import TimerHandle, TimerQueue
from netcore.reactor.waker import Waker

log = structlog.get_logger("netcore.loop")

#: A handler receives the event mask the poller reported for its fd.
Handler = Callable[[int], None]


class EventLoop:
    """Runs handlers for ready fds, due timers and queued callbacks until :meth:`stop`."""

    def __init__(self, poller: Poller, *, name: str = "loop") -> None:
        self.poller = poller
        self.name = name
        #: How many times the loop has asked the poller for events (the ``edge`` benchmark's figure).
        self.poll_calls = 0
        self._handlers: dict[int, Handler] = {}
        self._timers = TimerQueue()
        self._ready: collections.deque[tuple[Callable[..., Any], tuple]] = collections.deque()
        self._stopping = False
        self._running = False
        self._thread_id: int | None = None
        self._signals: dict[int, Any] = {}
        self._signal_wakeup: tuple[socket.socket, socket.socket, int] | None = None
        #: True while a wake-up is on its way: further cross-thread calls need not write
        #: the eventfd again (a pool answering thousands of requests a second would
        #: otherwise pay a write() and a poller report for each).
        self._wake_pending = False
        self._waker = Waker()
        self.register(self._waker.fileno(), EVENT_READ, self._on_wake)
        #: Prepare callbacks (libev's prepare watchers), run once per iteration before the
        #: poll. Empty for nearly every loop: the iteration then pays one truthiness check.
        self._prepare: list[Callable[[], float | None]] = []
        self._prepared = False  # run_once: the prepare callbacks ran after the last poll
        #: What runs this loop instead of :meth:`run_forever`'s own ``while``: ``None`` for
        #: nearly every loop; an :class:`netcore.reactor.asyncio_host.AsyncioHost` when the
        #: protocol's code needs an asyncio loop on this thread (ASGI apps). Set before the
        #: loop runs, by whoever makes the worker (``Server.new_reactor_worker``).
        self.host: Any = None
        #: The asyncio loop running this one while a host runs it (None otherwise).
        self.asyncio_loop: Any = None
        #: Connections with output written behind (see :meth:`write_behind`), flushed
        #: before the loop next waits; ``defers_writes``: whether a write may wait for
        #: that flush now (always under run_forever; under a host, inside run_once only).
        self.unflushed: list[Any] = []
        self.defers_writes = True

    # -- file descriptors ---------------------------------------------------------------
    def register(self, fd: int, events: int, handler: Handler) -> None:
        """Watch ``fd``; ``handler(mask)`` is called on the loop thread when it is ready."""
        self.poller.register(fd, events)
        self._handlers[fd] = handler

    def modify(self, fd: int, events: int) -> None:
        self.poller.modify(fd, events)

    def unregister(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def is_registered(self, fd: int) -> bool:
        return fd in self._handlers

    # -- callbacks and timers -------------------------------------------------------------
    def time(self) -> float:
        return time.monotonic()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the next iteration. Loop thread only."""
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread; callable from any thread or signal handler."""
        self._ready.append((callback, args))  # deque.append is atomic
        if not self._wake_pending:
            self._wake_pending = True
            self._waker.wake()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return self._timers.push(TimerHandle(time.monotonic() + delay, callback, args))

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return self._timers.push(TimerHandle(when, callback, args))

    def add_prepare(self, callback: Callable[[], float | None]) -> None:
        """Run ``callback()`` once per iteration, just before the loop polls. Loop thread only.

        libev's prepare watcher: the place for work that must happen every iteration and
        only there — the accept mutex tries its lock here, and gives it up after an
        iteration that accepted. A callback may return a number of seconds to cap this
        iteration's poll timeout (a worker that does not hold the lock must look again
        soon); ``None`` leaves the timeout alone. Callbacks added while the callbacks run
        start with the next iteration.
        """
        self._prepare.append(callback)

    def write_behind(self, connection: Any) -> None:
        """Have ``connection``'s queued output flushed just before this loop next waits.

        Redis's write path (``handleClientsWithPendingWrites`` before it sleeps), for the
        replies to pipelined reads (a submission standing for several requests, see
        ``Connection.submit``): such a reply is queued, not sent, and every one of an
        iteration leaves in one burst after all its events were handled. A send that
        wakes a client asleep in its own poll costs the sender the wake-up (an
        inter-processor interrupt, several µs on a virtual machine); sending while a
        client is still awake from the previous reply of the burst does not (measured:
        redis-benchmark -P 16, 1.38 -> 0.90 µs of server CPU per GET). A read that is one
        request gets its reply at once: for it queueing cost more than it saved (echo
        4.0 -> 4.6 µs per message, redis-benchmark -P 1 6.0 -> 6.7 µs per command). A
        connection's flush is its ordinary EPOLLOUT flush, so what the kernel does not
        take waits for writability as before, and a close waits for the queued bytes as
        for any.

        Only while :attr:`defers_writes`: a hosted loop's writes from asyncio tasks,
        between its iterations, are sent at once (waking the host for a flush costs an
        iteration more per task turn: measured, an ASGI hello 13 -> 16 µs).
        """
        self.unflushed.append(connection)

    def flush_behind(self) -> None:
        """Flush what :meth:`write_behind` queued (the loop does this before each wait)."""
        unflushed = self.unflushed
        for connection in unflushed:
            connection.flush_behind()
        unflushed.clear()

    def remove_prepare(self, callback: Callable[[], float | None]) -> None:
        """Stop running ``callback`` before each poll; a callback never added is ignored."""
        try:
            self._prepare.remove(callback)
        except ValueError:
            pass

    def is_running(self) -> bool:
        """True between the start and the end of :meth:`run_forever`."""
        return self._running

    def in_loop_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    # -- signals -----------------------------------------------------------------------
    def add_signal_handler(self, signum: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop when ``signum`` arrives. Main thread only.

        Python runs signal handlers in the main thread between bytecodes; an ``epoll_wait``
        interrupted by the signal is retried (PEP 475) after the handler has run, and the
        handler's wake-up makes that retry return at once.
        """

        def on_signal(_signum: int, _frame: Any) -> None:
            self.call_soon_threadsafe(callback, *args)

        previous = signal.signal(signum, on_signal)
        self._signals.setdefault(signum, previous)

    def remove_signal_handlers(self) -> None:
        for signum, previous in self._signals.items():
            signal.signal(signum, previous)
        self._signals.clear()

    def enable_signal_wakeup(self) -> None:
        """Make a signal wake this loop even if another thread received it. Main thread only.

        The kernel delivers a process-directed signal to *any* thread that does not block
        it. Python's C handler only sets a flag; its Python handler runs when the main
        thread next executes bytecode — never, while the main thread sleeps in
        ``epoll_wait``. ``signal.set_wakeup_fd`` makes the C handler also write a byte to
        a socket this loop watches, so the main thread wakes and runs the handler (what
        asyncio does). An eventfd cannot serve: the C handler writes one byte, eventfd
        takes eight.
        """
        if self._signal_wakeup is not None:
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._signal_wakeup = (reader, writer, previous)
        self.register(reader.fileno(), EVENT_READ, self._on_signal_wakeup)

    def _on_signal_wakeup(self, _mask: int) -> None:
        reader = self._signal_wakeup[0]
        try:
            while reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _disable_signal_wakeup(self) -> None:
        if self._signal_wakeup is None:
            return
        reader, writer, previous = self._signal_wakeup
        self._signal_wakeup = None
        try:
            signal.set_wakeup_fd(previous)
        except ValueError:  # not the main thread any more (interpreter shutting down)
            pass
        self.unregister(reader.fileno())
        reader.close()
        writer.close()

    # -- running ----------------------------------------------------------------------
    def stop(self) -> None:
        """Make :meth:`run_forever` return after the current iteration; thread-safe."""
        self._stopping = True
        self._wake_pending = True
        self._waker.wake()

    def run_forever(self) -> None:
        self._thread_id = threading.get_ident()
        self._running = True
        self._stopping = False
        if self.host is not None:
            try:
                self.host.run(self)
            finally:
                self._running = False
            return
        # Locals: each attribute lookup here would happen once per iteration.
        poll = self.poller.poll
        handlers = self._handlers
        get_handler = handlers.get
        ready = self._ready
        timers = self._timers
        heap = timers._heap  # read directly: a len() or method call per iteration is measurable
        monotonic = time.monotonic
        prepare = self._prepare
        unflushed = self.unflushed
        try:
            while not self._stopping:
                if unflushed:
                    self.flush_behind()
                if prepare:
                    timeout: float | None = self._run_prepare()
                elif ready:
                    timeout = 0
                elif heap:
                    deadline = timers.next_deadline()
                    timeout = None if deadline is None else max(0.0, deadline - monotonic())
                else:
                    timeout = None
                self.poll_calls += 1
                for fd, mask in poll(timeout):
                    handler = get_handler(fd)
                    if handler is not None:
                        try:
                            handler(mask)
                        except Exception:
                            self._handler_failed(fd, handler)
                if heap and heap[0][0] <= monotonic():
                    for handle in timers.pop_due(monotonic()):
                        if not handle.cancelled:  # an earlier callback may have cancelled it
                            self._run_callback(handle.callback, handle.args)
                if ready:
                    # Run here rather than through _run_callback: under a pool this is once
                    # per reply, and a call per reply is measurable.
                    for _ in range(len(ready)):
                        callback, args = ready.popleft()
                        try:
                            callback(*args)
                        except Exception:
                            log.exception("loop.callback_failed", loop=self.name, callback=repr(callback))
        finally:
            if unflushed:
                self.flush_behind()  # what the last iteration wrote still leaves
            self._running = False

    def run_once(self) -> float | None:
        """One iteration that does not wait: for a host that owns the thread's waiting.

        An :class:`~netcore.reactor.asyncio_host.AsyncioHost` calls this whenever the
        poller's own fd is readable (something is ready inside it) and when the timeout
        this returns has passed. It is :meth:`run_forever`'s body with a zero poll timeout,
        kept apart from it so that the native loop keeps its locals (a method call and a
        dozen attribute lookups per iteration are measurable there; here they are paid
        once per asyncio callback, which costs more anyway).

        Returns the seconds until this loop next has work of its own — 0 for now (queued
        callbacks), a timer's or a prepare callback's wait, or None: only when an fd is
        ready. After :meth:`stop` the value is meaningless: the host checks
        :attr:`stopping` first.
        """
        self.defers_writes = True
        if self._prepare and not self._prepared:
            self._run_prepare_callbacks()
        self.poll_calls += 1
        get_handler = self._handlers.get
        for fd, mask in self.poller.poll(0):
            handler = get_handler(fd)
            if handler is not None:
                try:
                    handler(mask)
                except Exception:
                    self._handler_failed(fd, handler)
        timers = self._timers
        if timers._heap and timers._heap[0][0] <= time.monotonic():
            for handle in timers.pop_due(time.monotonic()):
                if not handle.cancelled:
                    self._run_callback(handle.callback, handle.args)
        ready = self._ready
        for _ in range(len(ready)):
            callback, args = ready.popleft()
            self._run_callback(callback, args)
        if self.unflushed:
            self.flush_behind()
        self.defers_writes = False  # until the next iteration: see write_behind
        # The prepare callbacks run once between two polls, as in run_forever: here for
        # the wait that follows (the host's), and then not again before the next poll.
        cap = None
        self._prepared = bool(self._prepare) and not self._stopping
        if self._prepared:
            cap = self._run_prepare_callbacks()
        return self._next_timeout(cap)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called, until the loop runs again."""
        return self._stopping

    def _run_prepare_callbacks(self) -> float | None:
        """Run the prepare callbacks; returns the shortest wait one of them asked for."""
        cap: float | None = None
        for callback in tuple(self._prepare):  # a callback may remove itself
            try:
                wanted = callback()
            except Exception:
                log.exception("loop.prepare_failed", loop=self.name, callback=repr(callback))
                continue
            if wanted is not None and (cap is None or wanted < cap):
                cap = max(0.0, wanted)
        return cap

    def _run_prepare(self) -> float | None:
        """Run the prepare callbacks, then compute the poll timeout (they may add work)."""
        return self._next_timeout(self._run_prepare_callbacks())

    def _next_timeout(self, cap: float | None) -> float | None:
        """Seconds the next poll may wait: 0 with callbacks queued, else the next timer's
        wait, shortened to ``cap`` (a prepare callback's) if that is sooner."""
        if self._ready:
            return 0
        timeout = None
        deadline = self._timers.next_deadline() if self._timers._heap else None
        if deadline is not None:
            timeout = max(0.0, deadline - time.monotonic())
        if cap is not None and (timeout is None or cap < timeout):
            timeout = cap
        return timeout

    def close(self) -> None:
        self.remove_signal_handlers()
        self._disable_signal_wakeup()
        fd = self._waker.fileno()
        self.unregister(fd)
        self._waker.close()
        self.poller.close()
        self._handlers.clear()

    # -- errors ------------------------------------------------------------------------
    def _on_wake(self, _mask: int) -> None:
        # Drain first, then clear the flag, and both before this iteration runs the ready
        # queue. Cleared first, a wake-up written between the two (by another thread, or
        # by a signal handler running between these very lines) would be drained away
        # while the flag stayed set: no later call would ever wake the loop again.
        self._waker.drain()
        self._wake_pending = False

    def _run_callback(self, callback: Callable[..., Any], args: tuple) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("loop.callback_failed", loop=self.name, callback=repr(callback))

    def _handler_failed(self, fd: int, handler: Handler) -> None:
        # A handler is expected to catch its own I/O errors; reaching here is a bug in it.
        # Log it once and silence the fd so that a level-triggered poller does not report
        # the same failing event forever.
        log.exception("loop.handler_failed", loop=self.name, fd=fd, handler=repr(handler))
        try:
            self.unregister(fd)
        except (OSError, ValueError, KeyError):
            self._handlers.pop(fd, None)
