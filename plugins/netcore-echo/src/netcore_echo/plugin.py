"""Registers the echo protocol; nothing is imported until it is selected."""

from netcore import hookimpl


@hookimpl
def netcore_register_protocols(registry):
    registry.register("echo", "netcore_echo.protocol:EchoProtocol",
                      "RFC 862 echo: every chunk received is a request, its reply the same bytes")
