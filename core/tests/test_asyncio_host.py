"""A netcore loop hosted by asyncio (and uvloop) behaves as the native loop does.

Every test of test_loop.py runs here again against hosted loops (the loop contract), and
the tests below check what only a hosted loop has: asyncio's API on the loop's thread,
work added from tasks outside an iteration, lifespan-like start and stop callables, and
the refusal of pollers with no kernel object.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from netcore.reactor.asyncio_host import AsyncioHost, new_asyncio_loop
from netcore.reactor.loop import EventLoop
from netcore.reactor.poller import EVENT_READ
from netcore.testing.loops import run_until

pytest.importorskip("netcore_pollers")
from netcore_pollers.epoll_poller import EpollPoller  # noqa: E402
from netcore_pollers.poll_poller import PollPoller  # noqa: E402
from netcore_pollers.select_poller import SelectPoller  # noqa: E402


def _sibling(name: str):
    """Load a test module beside this one (the suite runs with importlib import mode)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_hosted_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_loop = _sibling("test_loop")

KINDS = ["asyncio"]
try:
    import uvloop  # noqa: F401

    KINDS.append("uvloop")
except ImportError:  # pragma: no cover - uvloop is in the unit env's deps
    pass


@pytest.fixture(params=[(et, kind) for et in (False, True) for kind in KINDS],
                ids=lambda p: f"{'epoll-et' if p[0] else 'epoll-lt'}-{p[1]}")
def loop(request):
    edge, kind = request.param
    loop = EventLoop(EpollPoller(edge_triggered=edge))
    loop.host = AsyncioHost(kind)
    yield loop
    loop.close()


@pytest.fixture
def make_poller():
    return lambda: EpollPoller(edge_triggered=False)


# The native loop's contract, against hosted loops (this module's ``loop`` fixture).
for _name in dir(test_loop):
    if _name.startswith("test_") and _name not in {
        # These watch the native loop's poll timeouts (a spy poller) or its _run_prepare
        # calls; a hosted loop always polls with 0 and lets asyncio wait, which
        # test_prepare_cap_wakes_a_hosted_loop_in_time checks instead.
        "test_without_prepare_the_loop_never_calls_run_prepare",
        "test_prepare_return_value_caps_the_poll_timeout",
        "test_prepare_cap_never_lengthens_a_nearer_timer_or_ready_work",
        "test_prepare_runs_once_per_iteration_before_the_poll",
    }:
        globals()[_name] = getattr(test_loop, _name)


def test_asyncio_is_running_in_netcore_callbacks_and_tasks_share_the_thread(loop):
    seen = {}

    async def task():
        seen["task_thread"] = threading.get_ident()
        await asyncio.sleep(0.01)
        seen["slept"] = True

    def callback():
        seen["callback_loop"] = asyncio.get_running_loop()
        seen["callback_thread"] = threading.get_ident()
        asyncio.get_running_loop().create_task(task())

    loop.call_soon(callback)
    run_until(loop, lambda: seen.get("slept"), timeout=5)
    assert seen["callback_loop"] is not None
    assert seen["task_thread"] == seen["callback_thread"] == threading.get_ident()


def test_work_added_by_a_task_outside_an_iteration_runs(loop):
    """A task's call_soon / call_later touch only netcore's queues: the host must notice."""
    seen = []

    async def task():
        await asyncio.sleep(0.005)  # resumed by asyncio, outside any netcore iteration
        loop.call_soon(seen.append, "soon")
        loop.call_later(0.02, seen.append, "later")
        loop.call_later(0.06, loop.stop)

    loop.call_soon(lambda: asyncio.get_running_loop().create_task(task()))
    start = time.monotonic()
    loop.run_forever()
    assert seen == ["soon", "later"]
    assert 0.06 <= time.monotonic() - start < 2.0


def test_socket_readiness_reaches_netcore_handlers_under_asyncio(loop):
    """Bytes on a netcore-registered socket are delivered; edge-triggered strands nothing."""
    a, b = socket.socketpair()
    a.setblocking(False)
    got = bytearray()

    def on_read(_mask):
        while True:
            try:
                data = a.recv(7)  # short reads: an ET poller reports the data once
            except BlockingIOError:
                return
            if not data:
                return
            got.extend(data)

    loop.register(a.fileno(), EVENT_READ, on_read)
    payload = bytes(range(256)) * 64

    def feed():
        for i in range(0, len(payload), 1000):
            b.sendall(payload[i:i + 1000])

    threading.Thread(target=feed).start()
    run_until(loop, lambda: len(got) >= len(payload), timeout=10)
    loop.unregister(a.fileno())
    a.close()
    b.close()
    assert bytes(got) == payload


def test_start_and_stop_callables_run_around_serving(loop):
    order = []

    async def start():
        await asyncio.sleep(0)
        order.append("start")

    async def stop():
        await asyncio.sleep(0)
        order.append("stop")

    loop.host.on_start.append(start)
    loop.host.on_stop.append(stop)
    loop.call_soon(order.append, "serving")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["start", "serving", "stop"]


def test_a_failing_start_ends_run_forever_with_its_error_and_serves_nothing(loop):
    served = []

    async def start():
        raise RuntimeError("database unreachable")

    loop.host.on_start.append(start)
    loop.call_soon(served.append, 1)
    with pytest.raises(RuntimeError, match="database unreachable"):
        loop.run_forever()
    assert served == []
    assert not loop.is_running()


def test_tasks_still_pending_at_stop_are_cancelled(loop):
    cancelled = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def begin():
        asyncio.get_running_loop().create_task(forever())
        loop.call_later(0.01, loop.stop)

    loop.call_soon(begin)
    loop.run_forever()
    assert cancelled.is_set()
    # The loop's methods are its own again, and it runs natively afterwards.
    assert "call_soon" not in vars(loop)
    loop.host = None
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_prepare_runs_once_between_two_polls(loop):
    polls = []
    poll = loop.poller.poll
    loop.poller.poll = lambda timeout: polls.append(timeout) or poll(timeout)
    calls: list[int] = []

    def prepare():
        calls.append(len(polls))  # how many polls happened before this call
        if len(calls) == 3:
            loop.stop()

    loop.add_prepare(prepare)
    loop.call_later(0.01, lambda: None)
    loop.call_later(0.02, lambda: None)
    loop.run_forever()
    assert calls == [0, 1, 2]
    assert set(polls) == {0}  # asyncio waits; netcore's poll never does


def test_prepare_cap_wakes_a_hosted_loop_in_time(loop):
    """A prepare callback's cap (the accept mutex's "look again soon") brings the next
    iteration that soon even though nothing is ready and no timer is due."""
    calls = []

    def prepare():
        calls.append(time.monotonic())
        if len(calls) >= 6:
            loop.stop()
        return 0.01

    loop.add_prepare(prepare)
    start = time.monotonic()
    loop.run_forever()
    assert len(calls) == 6
    assert 0.04 <= time.monotonic() - start < 2.0


def test_stop_from_another_thread_ends_a_hosted_loop(loop):
    threading.Timer(0.05, loop.stop).start()
    start = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("poller", [SelectPoller, PollPoller], ids=["select", "poll"])
def test_pollers_without_a_kernel_object_are_refused(poller):
    loop = EventLoop(poller())
    loop.host = AsyncioHost("asyncio")
    try:
        with pytest.raises(RuntimeError, match="epoll-lt or epoll-et"):
            loop.run_forever()
    finally:
        loop.close()


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="auto, asyncio, uvloop"):
        AsyncioHost("trio")
    with pytest.raises(ValueError, match="allowed"):
        new_asyncio_loop("gevent")


def test_a_pipelined_reply_made_by_a_task_is_sent_at_once(loop):
    """Between its iterations a hosted loop writes nothing behind: a reply queued for the
    flush before the next poll would wait for whatever event comes next (loop.write_behind)."""
    from netcore.protocol import Protocol
    from netcore.reactor.worker import ReactorWorker

    seen = {}

    class AnswersFromATask(Protocol):
        def data_received(self, data):
            async def answer():
                await asyncio.sleep(0)  # resumed by asyncio, outside any netcore iteration
                self.connection.submit(lambda request: request, data, count=2)  # a pipelined read's reply
                seen["queued"] = self.connection.output_size

            asyncio.get_running_loop().create_task(answer())

    worker = ReactorWorker(loop, AnswersFromATask)
    server_side, client_side = socket.socketpair()
    client_side.settimeout(10)
    loop.call_soon(worker.add_connection, server_side, None)

    def client():
        client_side.sendall(b"pp")
        seen["reply"] = client_side.recv(16)

    thread = threading.Thread(target=client)
    thread.start()
    run_until(loop, lambda: "reply" in seen, timeout=10)
    thread.join(10)
    for connection in list(worker.connections):
        connection.abort()
    client_side.close()
    assert seen["reply"] == b"pp"
    assert seen["queued"] == 0, "the reply went to the kernel inside the task"
