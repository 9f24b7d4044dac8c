"""Registers the four pollers, one call each; nothing is imported until one is selected."""

from __future__ import annotations

import netcore


@netcore.hookimpl
def netcore_register_pollers(registry):
    registry.register(
        "select",
        "netcore_pollers.select_poller:SelectPoller",
        "select(2): portable, rebuilds its answer on every call",
        provides=("poller",),
        notes="at most 1023 fds (FD_SETSIZE)",
    )
    registry.register(
        "poll",
        "netcore_pollers.poll_poller:PollPoller",
        "poll(2): no fd limit, the kernel scans every fd on every call",
        provides=("poller",),
    )
    registry.register(
        "epoll-lt",
        "netcore_pollers.epoll_poller:EpollPoller",
        "epoll(7), level-triggered: reports an fd for as long as it is ready",
        platforms=("linux",),
        provides=("poller", "epoll"),
    )
    registry.register(
        "epoll-et",
        "netcore_pollers.epoll_poller:EpollPoller",
        "epoll(7), edge-triggered: reports an fd once per change of readiness",
        kwargs={"edge_triggered": True},
        platforms=("linux",),
        provides=("poller", "epoll"),
        notes="reads and writes until the kernel says EAGAIN",
    )
