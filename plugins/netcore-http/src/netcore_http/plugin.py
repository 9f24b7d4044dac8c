"""Registers the http protocol and its settings; nothing is imported until it is selected."""

from netcore import hookimpl


@hookimpl
def netcore_add_settings(settings):
    add = settings.add
    add("app", "str", "",
        "WSGI application served by the http protocol: module:callable, or module:factory() to call "
        "a factory once at start (empty: the built-in hello app)", metavar="MODULE:CALLABLE")
    add("access_log", "bool", False,
        "log one http.access event per HTTP request (off: per-request logging costs more than the request)")
    add("max_request_line", "int", 8190,
        "longest HTTP request target in bytes; longer gets 414", minimum=64, maximum=1 << 20, metavar="BYTES")
    add("max_header_count", "int", 100,
        "most header fields in an HTTP request; more gets 431", minimum=1, maximum=10_000, metavar="N")
    add("max_header_field", "int", 8190,
        "longest single HTTP header field (name and value) in bytes; longer gets 431",
        minimum=64, maximum=1 << 20, metavar="BYTES")
    add("max_header_bytes", "int", 65536,
        "most bytes of all HTTP request header fields together; more gets 431",
        minimum=256, maximum=16 << 20, metavar="BYTES")
    add("max_body_size", "int", 10 << 20,
        "largest HTTP request body in bytes (it is read in full before the app runs); larger gets 413",
        minimum=0, maximum=1 << 40, metavar="BYTES")
    add("header_timeout", "float", 10.0,
        "seconds from the first byte of an HTTP request to the end of its headers, however the bytes "
        "trickle in (slowloris); then 408 and close", minimum=0.01, maximum=3600, metavar="SECONDS")
    add("body_timeout", "float", 30.0,
        "seconds an HTTP request body may go without progress; then 408 and close",
        minimum=0.01, maximum=3600, metavar="SECONDS")
    add("keepalive_timeout", "float", 5.0,
        "seconds an idle HTTP keep-alive connection is kept open", minimum=0.01, maximum=3600,
        metavar="SECONDS")


@hookimpl
def netcore_register_protocols(registry):
    registry.register("http", "netcore_http.protocol:HttpProtocol",
                      "HTTP/1.1 (httptools); with --app module:callable hosts a WSGI app, else a hello app")
