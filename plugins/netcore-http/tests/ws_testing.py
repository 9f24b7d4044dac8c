"""Test-only pieces for the WebSocket suites: a netcore plugin and the ASGI apps they serve.

The plugin (loaded with ``-p ws_testing``) registers protocol ``wstest``: it reads one
request head, hands an ``Upgrade: websocket`` GET to ``netcore_http.websocket.upgrade``
exactly as the http protocol does for an ASGI app, and answers anything else with 404.
So the WebSocket layer is tested under a real ``netcore serve`` -- real sockets, the
asyncio host, every reactor scheme -- on its own, whatever the http protocol's ASGI side
does. The apps are plain ASGI callables (and one Starlette app), also used through
``--protocol http --interface asgi``.
"""

from __future__ import annotations

import asyncio
import importlib
import json

from netcore import hookimpl
from netcore.protocol import Protocol

HEAD_LIMIT = 65536


@hookimpl
def netcore_add_settings(settings):
    settings.add("wstest_app", "str", "ws_testing:echo_app", "the ASGI app protocol wstest serves",
                 metavar="MODULE:CALLABLE")


@hookimpl
def netcore_register_protocols(registry):
    registry.register("wstest", "ws_testing:WsTestProtocol", "test only: a request head, then a WebSocket")


def _load(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


class WsTestProtocol(Protocol):
    app = None
    options = None

    @classmethod
    def for_server(cls, server):
        from netcore.reactor.asyncio_host import AsyncioHost
        from netcore_http import access
        from netcore_http.websocket import WebSocketOptions

        access.configure(server.config)  # as the http protocol does: the access log, if asked for
        attributes = {"app": staticmethod(_load(server.config.get("wstest_app"))),
                      "options": WebSocketOptions.from_config(server.config),
                      "loop_host": staticmethod(lambda loop: AsyncioHost())}
        return type("WsTestProtocol", (cls,), attributes)

    def __init__(self, connection):
        super().__init__(connection)
        self.buffer = b""

    def data_received(self, data):
        from netcore_http.websocket import upgrade

        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > HEAD_LIMIT:
                self.connection.abort()
            return
        head, leftover = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
        self.buffer = b""
        lines = head.split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().encode("latin-1"), value.strip().encode("latin-1")))
        upgrading = any(name.lower() == b"upgrade" and b"websocket" in value.lower() for name, value in headers)
        if method != "GET" or not upgrading:
            self.connection.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.connection.close()
            return
        path, _, query = target.partition("?")
        peer = self.connection.peer
        scope = {"asgi": {"version": "3.0"}, "http_version": "1.1", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "", "headers": [(n.lower(), v) for n, v in headers],
                 "client": peer[:2] if isinstance(peer, tuple) else None, "server": None, "state": {},
                 "extensions": {}}
        upgrade(self.connection, self.app, scope, headers, leftover, self.options)


# -- the apps --------------------------------------------------------------------------------
def websocket_app(handler):
    """Wrap a WebSocket handler into an ASGI app that also speaks lifespan (``--interface
    asgi`` runs the lifespan protocol first, and an app that fails it stops the server)."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await handler(scope, receive, send)

    app.__name__ = app.__qualname__ = handler.__name__
    return app


@websocket_app
async def echo_app(scope, receive, send):
    """Echo every message, text as text and bytes as bytes; /scope answers with the scope first."""
    assert scope["type"] == "websocket"
    message = await receive()
    assert message["type"] == "websocket.connect"
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-app", b"echo")]})
    if scope["path"] == "/scope":
        await send({"type": "websocket.send", "text": json.dumps(
            {key: scope[key] for key in ("type", "scheme", "path", "query_string", "subprotocols", "http_version")},
            default=lambda value: value.decode("latin-1"))})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


@websocket_app
async def slow_accept_app(scope, receive, send):
    """Accept only after a while: a graceful stop can arrive while the handshake is open."""
    await receive()
    await asyncio.sleep(0.5)
    await send({"type": "websocket.accept"})
    message = await receive()
    assert message["type"] == "websocket.disconnect", message


@websocket_app
async def deny_app(scope, receive, send):
    """Close before accept: the handshake is refused with 403."""
    await receive()
    await send({"type": "websocket.close"})


@websocket_app
async def denial_response_app(scope, receive, send):
    """The websocket.http.response extension: the app's own refusal, with a body."""
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
    await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"are you?"})


@websocket_app
async def fail_before_accept_app(scope, receive, send):
    await receive()
    raise ValueError("the app failed before accepting")


@websocket_app
async def fail_after_accept_app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise ValueError("the app failed after accepting")


#: What flood_app has sent so far, per path (one process: the tests run it inline).
FLOOD = {"sent": 0, "blocked": False, "disconnected": None}
FLOOD_MESSAGE = b"f" * (256 * 1024)


@websocket_app
async def flood_app(scope, receive, send):
    """/flood: send FLOOD_MESSAGE until the client is gone; /stats: report how far it got."""
    await receive()
    await send({"type": "websocket.accept"})
    if scope["path"] == "/stats":
        await send({"type": "websocket.send", "text": json.dumps(FLOOD)})
        await send({"type": "websocket.close"})
        return
    try:
        while True:
            FLOOD["blocked"] = True
            await send({"type": "websocket.send", "bytes": FLOOD_MESSAGE})
            FLOOD["blocked"] = False
            FLOOD["sent"] += 1
    except OSError as exc:
        FLOOD["disconnected"] = type(exc).__name__


@websocket_app
async def slow_receiver_app(scope, receive, send):
    """Accept, then receive nothing until told over a second socket: reading must pause."""
    await receive()
    await send({"type": "websocket.accept"})
    if scope["path"] == "/release":
        SLOW["release"].set()
        await send({"type": "websocket.close"})
        return
    SLOW["release"] = SLOW.get("release") or asyncio.Event()
    await SLOW["release"].wait()
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        count += 1
        if message.get("text") == "last":
            await send({"type": "websocket.send", "text": str(count)})


SLOW: dict = {}


@websocket_app
async def close_app(scope, receive, send):
    """Accept, then close with the code and reason the query string names (code=4001)."""
    await receive()
    await send({"type": "websocket.accept"})
    code = int(scope["query_string"].decode().partition("=")[2] or 1000)
    await send({"type": "websocket.close", "code": code, "reason": "bye"})
    message = await receive()
    assert message["type"] == "websocket.disconnect", message
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except (OSError, RuntimeError) as exc:
        CLOSED_SEND.append(type(exc).__name__)


CLOSED_SEND: list = []


def _echo_endpoint(framework: str):
    """The endpoint both frameworks serve: each text message back, prefixed (FastAPI's
    WebSocket is Starlette's, so one endpoint does for both)."""
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def endpoint(websocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{framework}: {text}")
        except WebSocketDisconnect:
            pass

    # The annotation as an object, not a string: FastAPI resolves string annotations in
    # the module's globals (this module has ``from __future__ import annotations``).
    endpoint.__annotations__ = {"websocket": WebSocket, "return": None}
    return endpoint


def _starlette_app():
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    return Starlette(routes=[WebSocketRoute("/ws", _echo_endpoint("starlette"))])


def _fastapi_app():
    from fastapi import FastAPI

    app = FastAPI()
    app.websocket("/ws")(_echo_endpoint("fastapi"))
    return app


try:
    starlette_app = _starlette_app()
except ImportError:  # pragma: no cover - starlette is in the unit test deps
    starlette_app = None
try:
    fastapi_app = _fastapi_app()
except ImportError:  # pragma: no cover - fastapi is in the unit test deps
    fastapi_app = None


async def http_or_ws_app(scope, receive, send):
    """An ASGI app that answers http requests too (with ws = none an upgrade is one)."""
    if scope["type"] == "websocket":
        await echo_app(scope, receive, send)
        return
    if scope["type"] == "lifespan":
        await websocket_app(echo_app)(scope, receive, send)
        return
    body = f"plain HTTP for {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    """A WSGI app: an Upgrade request to it is an ordinary HTTP request."""
    body = f"plain HTTP for {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
