"""The event loop over every installed poller: handlers, timers, cross-thread calls, signals."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
from netcore.reactor.poller import EVENT_READ
from netcore.reactor.timers import TimerHandle, TimerQueue


def test_call_soon_runs_in_order_and_stop_returns(loop):
    seen = []
    loop.call_soon(seen.append, 1)
    loop.call_soon(seen.append, 2)
    loop.call_soon(loop.stop)
    loop.call_soon(seen.append, 3)  # queued before stop took effect: runs in the same iteration
    loop.run_forever()
    assert seen == [1, 2, 3]


def test_timers_fire_in_deadline_order_and_cancel(loop):
    seen = []
    loop.call_later(0.03, seen.append, "late")
    early = loop.call_later(0.01, seen.append, "cancelled")
    loop.call_later(0.02, seen.append, "early")
    loop.call_later(0.05, loop.stop)
    early.cancel()
    start = time.monotonic()
    loop.run_forever()
    assert seen == ["early", "late"]
    assert time.monotonic() - start >= 0.045


def test_call_soon_threadsafe_wakes_a_blocked_loop(loop):
    ran = threading.Event()
    blocked = threading.Event()

    def other_thread():
        blocked.wait(5)
        loop.call_soon_threadsafe(ran.set)
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=other_thread)
    thread.start()
    loop.call_soon(blocked.set)  # the loop is about to block in poll(None)
    start = time.monotonic()
    loop.run_forever()
    thread.join(5)
    assert ran.is_set()
    assert time.monotonic() - start < 5


def test_fd_handler_gets_mask_and_unregister_stops_reports(loop):
    a, b = socket.socketpair()
    masks = []

    def on_ready(mask):
        masks.append(mask)
        a.recv(100)
        loop.unregister(a.fileno())
        loop.call_soon(loop.stop)

    loop.register(a.fileno(), EVENT_READ, on_ready)
    b.send(b"x")
    loop.run_forever()
    assert len(masks) == 1 and masks[0] & EVENT_READ
    assert not loop.is_registered(a.fileno())
    a.close()
    b.close()


def test_failing_handler_is_logged_and_silenced_loop_survives(loop, capsys):
    a, b = socket.socketpair()
    calls = []

    def broken(mask):
        calls.append(mask)
        raise RuntimeError("handler bug")

    loop.register(a.fileno(), EVENT_READ, broken)
    b.send(b"x")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert len(calls) == 1  # not reported again: the fd was unregistered
    assert not loop.is_registered(a.fileno())
    a.close()
    b.close()


def test_signal_handler_runs_on_the_loop(loop):
    seen = []

    def on_signal(name):
        seen.append((name, threading.current_thread() is threading.main_thread()))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert seen == [("usr1", True)]
    loop.remove_signal_handlers()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_callback_exception_does_not_stop_loop(loop):
    seen = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(seen.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["after"]


def test_timer_queue_drops_cancelled_and_keeps_fifo_for_ties():
    q = TimerQueue()
    a = q.push(TimerHandle(1.0, print, ()))
    b = q.push(TimerHandle(1.0, print, ()))
    c = q.push(TimerHandle(0.5, print, ()))
    c.cancel()
    assert q.next_deadline() == 1.0
    assert q.pop_due(2.0) == [a, b]
    assert q.next_deadline() is None


def test_close_releases_fds(make_poller):
    from netcore.reactor.loop import EventLoop

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        EventLoop(make_poller()).close()
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("delay", [0.0004, 0.002])
def test_short_timers_do_not_fire_early(loop, delay):
    fired = []
    start = time.monotonic()
    loop.call_later(delay, lambda: (fired.append(time.monotonic() - start), loop.stop()))
    loop.run_forever()
    assert fired and fired[0] >= delay


def test_cross_thread_calls_from_many_threads_are_never_lost(loop):
    """Wake-ups are coalesced; none may be lost (a lost one leaves the loop asleep)."""
    per_thread, threads = 3000, 4
    done = []

    def count():
        done.append(1)
        if len(done) == per_thread * threads:
            loop.stop()

    def producer():
        for _ in range(per_thread):
            loop.call_soon_threadsafe(count)

    workers = [threading.Thread(target=producer) for _ in range(threads)]
    watchdog = threading.Timer(20, loop.stop)  # stop() always wakes: ends a stuck test
    watchdog.start()
    for w in workers:
        w.start()
    loop.run_forever()
    watchdog.cancel()
    for w in workers:
        w.join()
    assert len(done) == per_thread * threads


# -- prepare callbacks (libev's prepare watchers) -------------------------------------------
class _CountingPoller:
    """Wraps the fixture's poller to record each poll's timeout: what prepare may cap."""

    def __init__(self, loop):
        self.timeouts: list[float | None] = []
        self._poll = loop.poller.poll
        loop.poller.poll = self.poll

    def poll(self, timeout):
        self.timeouts.append(timeout)
        return self._poll(timeout)


def test_prepare_runs_once_per_iteration_before_the_poll(loop):
    spy = _CountingPoller(loop)
    calls: list[int] = []

    def prepare():
        calls.append(len(spy.timeouts))  # how many polls happened before this call
        if len(calls) == 3:
            loop.stop()

    loop.add_prepare(prepare)
    loop.call_later(0.01, lambda: None)  # iterations that poll with a timer pending
    loop.call_later(0.02, lambda: None)
    loop.run_forever()
    # Before the first, second and third poll: always exactly one call per iteration.
    assert calls == [0, 1, 2]
    assert len(spy.timeouts) == 3


def test_prepare_return_value_caps_the_poll_timeout(loop):
    spy = _CountingPoller(loop)
    iterations = 0

    def prepare():
        nonlocal iterations
        iterations += 1
        if iterations == 4:
            loop.stop()
        return 0.005 if iterations < 3 else None

    loop.add_prepare(prepare)
    loop.add_prepare(lambda: 0.5)  # the smaller cap of several wins
    start = time.monotonic()
    loop.run_forever()
    # Nothing else is pending: without prepare the loop would block forever in poll(None).
    assert spy.timeouts[:2] == [0.005, 0.005]
    assert spy.timeouts[2] == 0.5
    assert time.monotonic() - start < 5


def test_prepare_cap_never_lengthens_a_nearer_timer_or_ready_work(loop):
    spy = _CountingPoller(loop)
    fired = []
    loop.add_prepare(lambda: 10.0)
    loop.call_later(0.01, fired.append, "timer")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert fired == ["timer"]
    assert all(t is not None and t <= 0.02 for t in spy.timeouts), spy.timeouts

    spy.timeouts.clear()

    def prepare_adds_work():
        loop.call_soon(loop.stop)  # work queued by prepare: this iteration must not block
        return 10.0

    loop.remove_prepare(loop._prepare[0])
    loop.add_prepare(prepare_adds_work)
    loop.run_forever()
    assert spy.timeouts == [0]


def test_remove_prepare_from_inside_and_unknown_callbacks(loop):
    seen = []

    def once():
        seen.append("once")
        loop.remove_prepare(once)

    def stop_on_second():
        seen.append("other")
        if seen.count("other") == 2:
            loop.stop()

    loop.add_prepare(once)
    loop.add_prepare(stop_on_second)
    loop.remove_prepare(print)  # never added: ignored
    loop.call_soon(lambda: None)  # keeps the first poll from blocking
    loop.run_forever()
    assert seen == ["once", "other", "other"]


def test_failing_prepare_is_logged_and_the_loop_goes_on(loop):
    import structlog

    runs = 0

    def broken():
        nonlocal runs
        runs += 1
        if runs == 2:
            loop.stop()
        raise RuntimeError("prepare bug")

    loop.add_prepare(broken)
    loop.add_prepare(lambda: 0.001)  # keeps iterations short after the failure
    with structlog.testing.capture_logs() as logs:
        loop.run_forever()
    assert runs == 2
    assert [e["event"] for e in logs] == ["loop.prepare_failed", "loop.prepare_failed"]


def test_without_prepare_the_loop_never_calls_run_prepare(loop, monkeypatch):
    """The per-iteration cost when unused is one truthiness check, never a call."""

    def fail():
        raise AssertionError("_run_prepare called with no prepare callback")

    monkeypatch.setattr(loop, "_run_prepare", fail)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
