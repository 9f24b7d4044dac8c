"""Registers this distribution's dispatchers; nothing is imported until one is selected."""

from netcore import hookimpl


@hookimpl
def netcore_register_dispatchers(registry):
    registry.register(
        "inline", "netcore_dispatch.inline:InlineDispatcher",
        "single reactor: one thread, one event loop, handlers run inline",
        scheme=5, provides=("reactor",),
    )
