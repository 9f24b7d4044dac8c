"""Each poller against the core contract, plus what is particular to it and the plugin."""

from __future__ import annotations

import importlib.metadata
import os
import select
import socket

import netcore.hookspecs
import pluggy
import pytest
from netcore.reactor.poller import EVENT_READ, Poller, PollerLimitError
from netcore.registry import Registry
from netcore.testing.poller_contract import PollerContract
from netcore_pollers import plugin
from netcore_pollers.poll_like import PollLikePoller
from netcore_pollers.poll_poller import PollPoller
from netcore_pollers.select_poller import SelectPoller

needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux-only")


class TestSelect(PollerContract):
    def make_poller(self):
        return SelectPoller()

    def test_limit_error_says_what_to_use_instead(self):
        a, _ = self.socketpair()
        fd = self.high_fd(self.poller.max_fd + 5, a)
        with pytest.raises(PollerLimitError, match=r"--poller poll or --poller epoll-lt"):
            self.poller.register(fd, EVENT_READ)

    def test_limit_is_fd_setsize(self):
        assert self.poller.max_fd == getattr(select, "FD_SETSIZE", 1024)


class TestPoll(PollerContract):
    def make_poller(self):
        return PollPoller()


@needs_epoll
class TestEpollLevelTriggered(PollerContract):
    def make_poller(self):
        from netcore_pollers.epoll_poller import EpollPoller

        return EpollPoller()

    def test_fileno_is_an_epoll_instance_that_close_releases(self):
        fd = self.poller.fileno()
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"
        self.poller.close()
        with pytest.raises(OSError):
            os.fstat(fd)


@needs_epoll
class TestEpollEdgeTriggered(PollerContract):
    def make_poller(self):
        from netcore_pollers.epoll_poller import EpollPoller

        return EpollPoller(edge_triggered=True)


# -- one base, classes that differ by attributes ------------------------------------------
@needs_epoll
def test_edge_triggered_keyword_builds_the_edge_triggered_class():
    """The plugin registers ``epoll-et`` as ``EpollPoller(edge_triggered=True)``: one class,
    two registrations, while the mode itself is the subclass's attributes."""
    from netcore_pollers.epoll_poller import EpollETPoller, EpollPoller

    for poller, cls in (
        (EpollPoller(), EpollPoller),
        (EpollPoller(edge_triggered=False), EpollPoller),
        (EpollPoller(edge_triggered=True), EpollETPoller),
        (EpollETPoller(), EpollETPoller),
        (EpollETPoller(edge_triggered=True), EpollETPoller),
    ):
        try:
            assert type(poller) is cls
            assert poller.edge_triggered is cls.edge_triggered
        finally:
            poller.close()
    with pytest.raises(TypeError, match="EpollPoller"):
        EpollETPoller(edge_triggered=False)


def test_a_poller_whose_kernel_bits_differ_is_refused_at_import():
    """Returning the kernel's list untouched is right only where its bits are netcore's."""
    with pytest.raises(ImportError, match="event bits"):

        class Translating(PollLikePoller):  # noqa: F841 - defining it is the test
            name = "translating"
            _kernel_factory = select.poll
            _EVENT_READ = EVENT_READ << 1


def test_poll_returns_the_kernels_own_list():
    """The hot path: the list poll(2) built is the one the loop gets, not a copy."""
    calls = []

    class Recording:
        def __init__(self):
            self._poll = select.poll()

        def register(self, fd, mask):
            self._poll.register(fd, mask)

        def unregister(self, fd):
            self._poll.unregister(fd)

        def poll(self, timeout):
            calls.append(self._poll.poll(timeout))
            return calls[-1]

    class RecordingPoll(PollPoller):
        _kernel_factory = Recording

    poller = RecordingPoll()
    a, b = socket.socketpair()
    try:
        poller.register(a.fileno(), EVENT_READ)
        b.send(b"x")
        events = poller.poll(5)
        assert events is calls[0] and events == [(a.fileno(), EVENT_READ)]
    finally:
        a.close()
        b.close()
        poller.close()


# -- the plugin ------------------------------------------------------------------------
EXPECTED = {
    "select": ("netcore_pollers.select_poller:SelectPoller", {}, (), ("poller",)),
    "poll": ("netcore_pollers.poll_poller:PollPoller", {}, (), ("poller",)),
    "epoll-lt": ("netcore_pollers.epoll_poller:EpollPoller", {}, ("linux",), ("poller", "epoll")),
    "epoll-et": (
        "netcore_pollers.epoll_poller:EpollPoller",
        {"edge_triggered": True},
        ("linux",),
        ("poller", "epoll"),
    ),
}


def registered() -> Registry:
    """Call the hook the way the host does: through pluggy, against the real hookspecs."""
    pm = pluggy.PluginManager("netcore")
    pm.add_hookspecs(netcore.hookspecs)
    pm.register(plugin)
    registry = Registry("poller")
    pm.hook.netcore_register_pollers(registry=registry)
    return registry


def test_plugin_registers_exactly_the_four_pollers():
    registry = registered()
    assert registry.names() == sorted(EXPECTED)
    assert registry.problems == []
    for name, (target, kwargs, platforms, provides) in EXPECTED.items():
        entry = registry.get(name)
        assert (entry.target, entry.kwargs, entry.platforms, entry.provides) == (target, kwargs, platforms, provides)
        assert entry.summary and "\n" not in entry.summary
    assert "1023" in registry.get("select").notes
    assert "EAGAIN" in registry.get("epoll-et").notes


def test_plugin_hook_called_directly_registers_the_same():
    registry = Registry("poller")
    plugin.netcore_register_pollers(registry)
    assert registry.names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_targets_load_and_build_the_named_poller(name):
    entry = registered().get(name)
    if not entry.platform_ok():
        pytest.skip(f"{name} does not run on this platform")
    cls = entry.load()
    assert issubclass(cls, Poller)
    poller = cls(**entry.kwargs)
    try:
        assert poller.name == name
        assert poller.edge_triggered == (name == "epoll-et")
    finally:
        poller.close()


def test_entry_point_is_installed():
    points = importlib.metadata.entry_points(group="netcore")
    assert any(ep.name == "pollers" and ep.value == "netcore_pollers.plugin" for ep in points)
