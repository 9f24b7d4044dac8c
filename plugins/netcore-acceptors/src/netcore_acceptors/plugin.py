"""Entry point ``acceptors`` of group ``netcore``: registers the acceptors of this distribution.

One line per implementation and nothing imported until one is selected (the registry
imports ``target`` lazily), so that ``netcore plugins`` stays cheap. The one check,
``exclusive`` on a poller without ``EPOLLEXCLUSIVE``, runs before anything binds.
"""

from __future__ import annotations

import netcore


@netcore.hookimpl
def netcore_register_acceptors(registry):
    registry.register(
        "shared",
        "netcore_acceptors.shared:SharedAcceptor",
        "one listening socket, every worker polls it (the herd under prefork)",
        provides=("acceptor",),
    )
    registry.register(
        "mutex",
        "netcore_acceptors.mutex:MutexAcceptor",
        "shared socket; only the worker holding a cross-process lock polls it (nginx's accept_mutex)",
        provides=("acceptor",),
        notes="the lock moves after every accept: workers take turns",
    )
    registry.register(
        "exclusive",
        "netcore_acceptors.exclusive:ExclusiveAcceptor",
        "shared socket registered with EPOLLEXCLUSIVE: the kernel wakes one waiting worker",
        platforms=("linux",),
        provides=("acceptor",),
        notes="epoll pollers only",
    )
    registry.register(
        "reuseport",
        "netcore_acceptors.reuseport:ReuseportAcceptor",
        "a SO_REUSEPORT listening socket per worker: the kernel spreads connections",
        platforms=("linux",),
        provides=("acceptor",),
        notes="TCP addresses only (no unix:, fd:// or systemd sockets)",
    )


@netcore.hookimpl
def netcore_check_assembly(assembly):
    """``exclusive`` needs a poller with EVENT_EXCLUSIVE (the epoll ones); say so before binding."""
    if assembly.acceptor.name != "exclusive" or "blocking" in assembly.dispatch.provides:
        return None  # blocking schemes sleep in accept(), where the kernel wakes one anyway
    poller = assembly.poller
    try:
        supported = bool(getattr(poller.load(), "supports_exclusive", False))
    except Exception:  # cannot load: the host reports that itself; judge by what it provides
        supported = "epoll" in poller.provides
    if supported:
        return None
    from netcore_acceptors.exclusive import exclusive_problem

    return [exclusive_problem(poller.name)]
