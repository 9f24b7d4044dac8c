"""The pollers netcore ships with: ``select``, ``poll``, ``epoll-lt`` and ``epoll-et``.

Each is a few lines over the kernel call of the same name, behind
:class:`netcore.reactor.poller.Poller`. Nothing here is imported until a poller is
selected: :mod:`netcore_pollers.plugin` registers them by ``"module:Class"`` strings.
"""
