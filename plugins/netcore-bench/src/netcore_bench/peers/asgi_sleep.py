"""An ASGI app that awaits a 1 ms ``asyncio.sleep`` per request: where the schemes that
host ASGI (inline, multi-reactor, prefork) differ once the app waits rather than computes.
Run it with ``netcore bench --protocol http --set app=netcore_bench.peers.asgi_sleep:app``."""

import asyncio

from netcore_bench.peers.asgi_hello import app as hello


async def app(scope, receive, send):
    if scope["type"] == "http":
        await asyncio.sleep(0.001)
    await hello(scope, receive, send)
