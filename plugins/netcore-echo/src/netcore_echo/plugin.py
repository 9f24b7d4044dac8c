"""Registers the echo protocol and its settings; nothing is imported until it is selected."""

from netcore import hookimpl


@hookimpl
def netcore_add_settings(settings):
    settings.add("echo_delay", "float", 0.0,
                 "seconds each echo handler blocks (time.sleep) before replying: a slow, I/O-bound "
                 "handler, to show what each dispatch scheme does with one", minimum=0, maximum=60,
                 metavar="SECONDS")
    settings.add("echo_burn", "float", 0.0,
                 "seconds of CPU each echo handler burns before replying: a slow, CPU-bound handler",
                 minimum=0, maximum=60, metavar="SECONDS")


@hookimpl
def netcore_register_protocols(registry):
    registry.register("echo", "netcore_echo.protocol:EchoProtocol",
                      "RFC 862 echo: every chunk received is a request, its reply the same bytes")
