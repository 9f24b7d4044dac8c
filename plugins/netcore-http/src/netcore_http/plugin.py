"""Registers the http protocol and its settings; nothing is imported until it is selected."""

from netcore import hookimpl
from netcore.errors import SettingError


@hookimpl
def netcore_add_settings(settings):
    add = settings.add
    add("app", "str", "",
        "WSGI or ASGI application served by the http protocol: module:callable, or module:factory() to "
        "call a factory once at start (empty: the built-in hello app)", metavar="MODULE:CALLABLE")
    add("interface", "choice", "auto",
        "what the app is (uvicorn's --interface): asgi (ASGI 3: async def app(scope, receive, send)), "
        "wsgi (PEP 3333), or auto: ASGI when the app or its __call__ is a coroutine function, else WSGI",
        choices=("auto", "asgi", "wsgi"))
    add("asyncio_loop", "choice", "auto",
        "the asyncio loop an ASGI app's coroutines run on, one per reactor thread or process "
        "(uvicorn's --loop): auto (uvloop where installed, else asyncio), asyncio, uvloop",
        choices=("auto", "asyncio", "uvloop"))
    add("lifespan", "choice", "auto",
        "ASGI lifespan events, run on every asyncio loop before it serves and after it drained "
        "(uvicorn's --lifespan): auto (an app that raises on the lifespan scope does without), on, off",
        choices=("auto", "on", "off"))
    add("access_log", "bool", False,
        "log one http.access event per HTTP request (off: per-request logging costs more than the request)")
    add("access_log_format", "str", "",
        "the access log's form: empty, an http.access event with fields (JSON stays JSON); 'combined' "
        "(Apache's, gunicorn's default) or 'common'; or gunicorn atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(B)s %(D)s'",
        metavar="FORMAT")
    add("access_log_file", "str", "",
        "append access log lines to this file (turns the access log on; format 'combined' unless "
        "access_log_format says otherwise); SIGUSR1 reopens it after rotation", metavar="PATH")
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
    # 1 GiB, waitress's max_request_body_size: bodies are streamed or spooled to disk,
    # so the limit guards the disk and the time a client can hold a worker, not memory.
    add("max_body_size", "int", 1 << 30,
        "largest HTTP request body in bytes; larger gets 413 (memory stays bounded by "
        "body_buffer_size whatever the size)", minimum=0, maximum=1 << 40, metavar="BYTES")
    # 512 KiB, waitress's inbuf_overflow: per connection, so 50 uploads cost 25 MiB of buffers.
    add("body_buffer_size", "int", 512 << 10,
        "bytes of an HTTP request body held in memory: beyond, reading pauses until the app "
        "consumes (schemes with handler threads) or the body spills to a temporary file "
        "(schemes that read it before the app runs)", minimum=4096, maximum=1 << 30, metavar="BYTES")
    add("header_timeout", "float", 10.0,
        "seconds from the first byte of an HTTP request to the end of its headers, however the bytes "
        "trickle in (slowloris); then 408 and close", minimum=0.01, maximum=3600, metavar="SECONDS")
    add("body_timeout", "float", 30.0,
        "seconds an HTTP request body may go without progress; then 408 and close",
        minimum=0.01, maximum=3600, metavar="SECONDS")
    add("keepalive_timeout", "float", 5.0,
        "seconds an idle HTTP keep-alive connection is kept open", minimum=0.01, maximum=3600,
        metavar="SECONDS")


    add("root_path", "str", "",
        "the path prefix a proxy mounts the app under: WSGI's SCRIPT_NAME, taken off the front of "
        "PATH_INFO when present; ASGI's root_path, put in front of path when absent (gunicorn's "
        "SCRIPT_NAME, uvicorn's --root-path)", metavar="PATH")
    add("forwarded_allow_ips", "str", "127.0.0.1",
        "peers (addresses or networks, comma-separated, or *) whose Forwarded / X-Forwarded-For / "
        "X-Forwarded-Proto set REMOTE_ADDR and wsgi.url_scheme; from others they are plain headers",
        metavar="ADDRESSES")
    # WebSockets of ASGI apps (websocket.py), with uvicorn's names and defaults.
    add("ws", "choice", "auto",
        "WebSocket support for ASGI apps: auto or wsproto (the same: frames by wsproto), or none "
        "(an Upgrade: websocket request is an ordinary HTTP request for the app)",
        choices=("auto", "wsproto", "none"))
    add("ws_max_size", "int", 16 << 20,
        "largest WebSocket message in bytes; a larger one closes the WebSocket with 1009",
        minimum=1, maximum=1 << 31, metavar="BYTES")
    add("ws_max_queue", "int", 32,
        "received WebSocket messages held for an app that is not receiving; beyond, reading pauses",
        minimum=1, maximum=1 << 20, metavar="N")
    add("ws_ping_interval", "float", 20.0,
        "seconds between the server's WebSocket keepalive pings (0: no pings)", minimum=0, maximum=86400,
        metavar="SECONDS")
    add("ws_ping_timeout", "float", 20.0,
        "seconds a WebSocket peer has to answer a ping before the server closes with 1011 (0: never)",
        minimum=0, maximum=86400, metavar="SECONDS")
    add("ws_per_message_deflate", "bool", True,
        "accept a client's offer of WebSocket permessage-deflate compression (RFC 7692)")


@hookimpl
def netcore_check_assembly(assembly):
    """Refuse, before anything binds, what the http settings cannot mean."""
    config = assembly.config
    problems = []
    app = config.get("app", "")
    if app and assembly.protocol.name != "http":
        problems.append(f"setting 'app' ({app!r}) names a WSGI app, which only protocol 'http' hosts, "
                        f"but setting 'protocol' is {assembly.protocol.name!r}: add --protocol http or drop --app")
    from netcore_http.proxy import check_spec

    def refuse(name: str, problem: str, allowed: str) -> None:
        # The same line as every other bad setting, with where the value came from.
        problems.append(str(SettingError(name, config.get(name), allowed, config.source(name), f" ({problem})")))

    problem = check_spec(config.get("forwarded_allow_ips", "127.0.0.1"))
    if problem:
        refuse("forwarded_allow_ips", problem, "IP addresses or networks, comma-separated, or *")
    from netcore_http.access import check_format

    problem = check_format(config.get("access_log_format", ""))
    if problem:
        refuse("access_log_format", problem,
               "combined, common, or gunicorn atoms such as %(h)s %(r)s %(s)s %(B)s %(D)s %({header}i)s")
    root = config.get("root_path", "")
    if root and not root.startswith("/"):
        refuse("root_path", "it must begin with '/'", "a path beginning with '/'")
    if config.get("interface", "auto") == "asgi" and assembly.protocol.name == "http":
        # Said outright: refused here. With auto, for_server refuses once the app is loaded.
        from netcore_http.hosting import assembly_problems

        problems += assembly_problems(assembly)
    return problems


@hookimpl
def netcore_server_started(server):
    _reopen_on_usr1()


@hookimpl
def netcore_worker_started(worker):
    _reopen_on_usr1()  # a forked worker: the master passes USR1 on to it


def _reopen_on_usr1():
    from netcore_http import access

    if access.current is not None:
        access.current.install_reopen_signal()


@hookimpl
def netcore_register_protocols(registry):
    registry.register("http", "netcore_http.protocol:HttpProtocol",
                      "HTTP/1.1 (httptools); with --app module:callable hosts a WSGI or ASGI app, else a hello app")


@hookimpl
def netcore_server_stopped(server, reason):
    # An ASGI app's lifespan startup failed on a loop that could not raise it itself (an
    # I/O thread): the server has stopped; now the command line hears of it (exit 2).
    import sys

    lifespan = sys.modules.get("netcore_http.lifespan")
    if lifespan is not None and lifespan.failure is not None:
        failure, lifespan.failure = lifespan.failure, None
        raise failure
