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
