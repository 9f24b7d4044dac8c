"""The hook implementations: one setting and one protocol registration.

This module is what the entry point names, so it is imported for every ``netcore``
command: keep it to these few lines. The protocol module itself is imported only when
``--protocol uppercase`` is selected (or when ``netcore plugins`` checks that it loads).
"""

from netcore import hookimpl


@hookimpl
def netcore_add_settings(settings):
    settings.add("uppercase_max_line", "int", 65536,
                 "uppercase protocol: longest line in bytes, newline excluded; a longer one is "
                 "answered 'ERR line too long' and the connection is closed",
                 minimum=1, metavar="BYTES")


@hookimpl
def netcore_register_protocols(registry):
    registry.register("uppercase", "netcore_uppercase.protocol:UppercaseProtocol",
                      "line protocol: each line ending in \\n comes back upper-cased")
