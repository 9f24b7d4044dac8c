"""ASGI apps for the asgi tests: a raw ASGI 3 callable, a Starlette app and a FastAPI app.

``app`` routes by path prefix: ``/starlette/...`` to Starlette, ``/fastapi/...`` to
FastAPI, anything else to the raw callable. It speaks lifespan itself (the state it sets
reaches all three through ``scope["state"]``) and, when ``ASGI_TEST_PORT`` is set,
reports startup and shutdown as UDP datagrams to that port on 127.0.0.1 -- the tests
wait on those, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import os
import socket
from urllib.parse import parse_qs

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


def report(message: str, port: int | None = None) -> None:
    port = port or int(os.environ.get("ASGI_TEST_PORT", "0") or 0)
    if port:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), ("127.0.0.1", port))


def query(scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def respond(send, status: int, body: bytes, content_type: bytes = b"text/plain", headers=()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [[b"content-type", content_type], *headers]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive) -> tuple[bytes, int]:
    """The whole body and the number of http.request messages it came in."""
    parts, messages = [], 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        messages += 1
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), messages


# -- the raw ASGI callable ------------------------------------------------------------------
async def raw(scope, receive, send) -> None:
    path = scope["path"]
    q = query(scope)
    if path == "/":
        await respond(send, 200, b"Hello, ASGI!")
    elif path.startswith("/scope") or path.startswith("/mount/scope"):
        body, _ = await read_body(receive)
        info = {key: scope[key] for key in ("type", "http_version", "method", "scheme", "path", "root_path",
                                            "client", "server", "asgi")}
        info["raw_path"] = scope["raw_path"].decode("latin-1")
        info["query_string"] = scope["query_string"].decode("latin-1")
        info["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        info["state"] = scope.get("state", {}).get("greeting")
        info["extensions"] = scope.get("extensions", {})
        info["body"] = body.decode("latin-1")
        info["pid"] = os.getpid()
        await respond(send, 200, json.dumps(info).encode(), b"application/json")
    elif path == "/hash":
        # The body as it arrives: hashed, never held whole.
        digest, size, messages, largest = hashlib.sha256(), 0, 0, 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            largest = max(largest, len(chunk))
            messages += 1
            if not message.get("more_body", False):
                break
        await respond(send, 200, json.dumps({"sha256": digest.hexdigest(), "size": size, "messages": messages,
                                             "largest": largest}).encode(), b"application/json")
    elif path == "/stream":
        count, size = int(q.get("n", "10")), int(q.get("size", "1000"))
        await send({"type": "http.response.start", "status": 200, "headers": [[b"content-type", b"text/plain"]]})
        for i in range(count):
            await send({"type": "http.response.body", "body": (b"%d:" % i).ljust(size, b"x"), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/sleep":
        if "port" in q:
            report(f"sleeping {q.get('tag', '')}", int(q["port"]))
        await asyncio.sleep(int(q.get("ms", "100")) / 1000)
        await respond(send, 200, b"slept " + q.get("tag", "").encode())
    elif path == "/fail":
        raise RuntimeError("the app fails before its response")
    elif path == "/fail-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("the app fails after its response started")
    elif path == "/nothing":
        return
    elif path == "/framing":
        # A declared length the body does not keep, a status without a body, the app's
        # own Connection and Transfer-Encoding fields (the server's business).
        case = q["case"]
        if case == "short":
            await send({"type": "http.response.start", "status": 200, "headers": [[b"content-length", b"10"]]})
            await send({"type": "http.response.body", "body": b"12345"})
        elif case == "long":
            await send({"type": "http.response.start", "status": 200, "headers": [[b"content-length", b"3"]]})
            await send({"type": "http.response.body", "body": b"12345", "more_body": True})
            await send({"type": "http.response.body", "body": b"678"})
        elif case == "204":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b"ignored"})
        elif case == "hop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [[b"transfer-encoding", b"chunked"], [b"connection", b"close"]]})
            await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/disconnect":
        # Streams until the client is gone; receive() must say so.
        port = int(q["port"])
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
        report("streaming", port)
        message = await asyncio.wait_for(receive(), 30)
        report(f"received {message['type']}", port)
    elif path == "/context":
        # What an earlier request set must not be seen by this one (each request runs
        # in a context of its own); the count of tasks shows none outlives its connection.
        seen = REQUEST_TAG.get()
        REQUEST_TAG.set(q.get("tag", "set"))
        await asyncio.sleep(0)  # a real wait in between: the value must survive it
        assert REQUEST_TAG.get() == q.get("tag", "set")
        await respond(send, 200, json.dumps({"seen": seen, "tasks": len(asyncio.all_tasks())}).encode(),
                      b"application/json")
    else:
        await respond(send, 404, b"not found")


REQUEST_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("REQUEST_TAG", default=None)


# -- Starlette --------------------------------------------------------------------------------
async def st_json(request: Request):
    return JSONResponse({"framework": "starlette", "greeting": request.state.greeting})


async def st_item(request: Request):
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q")})


async def st_echo(request: Request):
    data = await request.json()
    return JSONResponse({"got": data})


async def st_stream(request: Request):
    async def numbers():
        for i in range(int(request.query_params.get("n", "5"))):
            yield f"{i}\n"
            await asyncio.sleep(0)

    return StreamingResponse(numbers(), media_type="text/plain")


starlette_app = Starlette(routes=[
    Route("/starlette/json", st_json),
    Route("/starlette/items/{item_id:int}", st_item),
    Route("/starlette/echo", st_echo, methods=["POST"]),
    Route("/starlette/stream", st_stream),
    Route("/starlette/text", lambda request: PlainTextResponse("plain")),
])


# -- FastAPI ----------------------------------------------------------------------------------
fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.get("/fastapi/json")
async def fa_json(request: Request):
    return {"framework": "fastapi", "greeting": request.state.greeting}


@fastapi_app.get("/fastapi/items/{item_id}")
async def fa_item(item_id: int, q: str | None = None):
    return {"id": item_id, "q": q}


@fastapi_app.post("/fastapi/items")
async def fa_create(item: Item):
    return {"name": item.name, "price": item.price, "total": item.price * 2}


# -- the router, with lifespan -----------------------------------------------------------------
async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello from startup"
                report(f"startup {os.getpid()}")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                report(f"shutdown {os.getpid()}")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.startswith("/starlette/"):
        await starlette_app(scope, receive, send)
    elif path.startswith("/fastapi/"):
        await fastapi_app(scope, receive, send)
    else:
        await raw(scope, receive, send)


# -- lifespan variants ---------------------------------------------------------------------------
async def failing_startup(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed",
                    "message": "Traceback (most recent call last):\n  ...\nConnectionRefusedError: no database"})
        return
    await respond(send, 200, b"never")


async def startup_fails_when_flagged(scope, receive, send) -> None:
    """Starts while the file ASGI_FAIL_FLAG names does not exist; fails once it does."""
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.path.exists(os.environ["ASGI_FAIL_FLAG"]):
                await send({"type": "lifespan.startup.failed", "message": "the database went away"})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await respond(send, 200, b"started")


async def raising_startup(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise ValueError("startup raised")
    await respond(send, 200, b"never")


async def no_lifespan(scope, receive, send) -> None:
    assert scope["type"] == "http", "only http here"
    await respond(send, 200, b"no lifespan needed")


@contextlib.asynccontextmanager
async def starlette_lifespan(app):
    report(f"startup {os.getpid()}")
    yield {"greeting": "from a Starlette lifespan"}
    report(f"shutdown {os.getpid()}")


starlette_with_lifespan = Starlette(routes=[Route("/starlette/json", st_json)], lifespan=starlette_lifespan)


class Asgi2App:
    """An ASGI 2 double callable: the class is called with the scope."""

    def __init__(self, scope) -> None:
        self.scope = scope

    async def __call__(self, receive, send) -> None:
        if self.scope["type"] == "http":
            await respond(send, 200, b"asgi2")
