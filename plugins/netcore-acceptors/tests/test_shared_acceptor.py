"""The ``shared`` acceptor end to end, and its registration through the plugin hook."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import threading

import netcore.hookspecs
import pluggy
import pytest
from acceptor_testing import run_once, run_until
from netcore.acceptor import Acceptor
from netcore.registry import Registry
from netcore.stats import WorkerStats
from netcore_acceptors import plugin
from netcore_acceptors.shared import SharedAcceptor


def _registry() -> Registry:
    pm = pluggy.PluginManager("netcore")
    pm.add_hookspecs(netcore.hookspecs)
    pm.register(plugin, name="acceptors")
    registry = Registry("acceptor")
    pm.hook.netcore_register_acceptors(registry=registry)
    return registry


def test_registration():
    registry = _registry()
    entry = registry.get("shared")
    assert entry is not None
    assert entry.target == "netcore_acceptors.shared:SharedAcceptor"
    assert entry.provides == ("acceptor",)
    assert "herd" in entry.summary
    assert entry.load() is SharedAcceptor
    assert entry.availability() == (True, "")
    assert registry.problems == []


def test_entry_point():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="netcore") if ep.name == "acceptors"]
    assert ep.value == "netcore_acceptors.plugin"
    assert ep.dist.name == "netcore-acceptors"
    assert ep.load() is plugin


def test_shared_acceptor_serves_stops_and_closes(loop, tmp_path):
    acceptor = SharedAcceptor(config=None)
    assert isinstance(acceptor, Acceptor) and acceptor.name == "shared"
    path = str(tmp_path / "shared.sock")
    listeners = acceptor.bind(["127.0.0.1:0", f"unix:{path}"], 16)
    tcp, unix = listeners
    accepted: list[socket.socket] = []
    stats = WorkerStats()
    try:
        acceptor.start(loop, listeners, lambda sock, peer: accepted.append(sock), stats)
        port = tcp.sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5), socket.socket(socket.AF_UNIX) as uc:
            uc.settimeout(5)
            uc.connect(path)
            for _ in range(10):  # bounded; one iteration is normally enough
                if len(accepted) == 2:
                    break
                run_once(loop)
        assert len(accepted) == 2
        assert stats.accept_wakeups >= 2

        acceptor.stop_accepting()
        acceptor.stop_accepting()  # idempotent
        assert not loop.is_registered(tcp.fileno()) and not loop.is_registered(unix.fileno())
        # Stopping is not closing: other workers may still accept from these sockets.
        assert tcp.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        for sock in accepted:
            sock.close()
        acceptor.close(listeners)
    assert not os.path.exists(path)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_close_without_stop_accepting_unregisters_first(loop):
    acceptor = SharedAcceptor(config=None)
    listeners = acceptor.bind(["127.0.0.1:0"], 16)
    acceptor.start(loop, listeners, lambda sock, peer: sock.close(), WorkerStats())
    fd = listeners[0].fileno()
    acceptor.close(listeners)
    assert not loop.is_registered(fd)
    run_once(loop)  # nothing reported for a closed, unregistered descriptor


def test_stop_accepting_from_another_thread_is_queued_to_the_running_loop(loop):
    acceptor = SharedAcceptor(config=None)
    listeners = acceptor.bind(["127.0.0.1:0"], 16)
    fd = listeners[0].fileno()
    acceptor.start(loop, listeners, lambda sock, peer: sock.close(), WorkerStats())
    thread = threading.Thread(target=run_until, args=(loop, lambda: not loop.is_registered(fd), 10))
    running = threading.Event()
    loop.call_soon_threadsafe(running.set)
    thread.start()
    try:
        assert running.wait(10)
        acceptor.stop_accepting()
    finally:
        thread.join(15)
    assert not thread.is_alive()
    assert not loop.is_registered(fd)
    acceptor.close(listeners)


def test_stop_accepting_on_a_loop_thread_stops_that_loop_only(make_loop):
    """Two reactors in two threads share one acceptor; one stops gracefully, one serves on."""
    loop_a, loop_b = make_loop(), make_loop()
    acceptor = SharedAcceptor(config=None)
    listeners = acceptor.bind(["127.0.0.1:0"], 16)
    fd = listeners[0].fileno()
    for loop in (loop_a, loop_b):
        acceptor.start(loop, listeners, lambda sock, peer: sock.close(), WorkerStats())
    stopped_a = threading.Event()

    def stop_a():
        acceptor.stop_accepting()
        stopped_a.set()

    thread_a = threading.Thread(target=run_until, args=(loop_a, stopped_a.is_set, 10))
    thread_b = threading.Thread(target=run_until, args=(loop_b, stopped_a.is_set, 10))
    loop_a.call_soon(stop_a)
    thread_a.start()
    thread_b.start()
    thread_a.join(15)
    thread_b.join(15)
    assert not thread_a.is_alive() and not thread_b.is_alive()
    assert not loop_a.is_registered(fd)
    assert loop_b.is_registered(fd)
    assert [c.loop for c in acceptor.channels] == [loop_b]
    acceptor.close(listeners)  # from the test thread: stops the rest
    assert not loop_b.is_registered(fd)
