#!/usr/bin/env python3
"""Reference echo server for the netcore benchmark: asyncio Protocol, on the
stock asyncio event loop or on uvloop.

    python3 bench/peers/asyncio_echo.py --loop asyncio|uvloop --port 0

Once listening it prints, on stderr, one JSON line in the same shape netcore
uses, so that bench/echo.py starts every server the same way:

    {"event": "server.started", "addresses": ["127.0.0.1:PORT"]}

It stops cleanly on SIGTERM or SIGINT.  Exit status 3 if uvloop is asked for
but not importable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # type: ignore[assignment]


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(EchoProtocol, host, port, backlog=1024)
    addresses = []
    for sock in server.sockets:
        h, p = sock.getsockname()[:2]
        addresses.append(f"[{h}]:{p}" if ":" in h else f"{h}:{p}")
    sys.stderr.write(
        json.dumps(
            {
                "event": "server.started",
                "addresses": addresses,
                "loop": type(loop).__module__ + "." + type(loop).__name__,
            }
        )
        + "\n"
    )
    sys.stderr.flush()
    try:
        await stop
    finally:
        server.close()
        await server.wait_closed()
        sys.stderr.write(json.dumps({"event": "server.stopped"}) + "\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    args = ap.parse_args(argv)

    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("only loopback addresses are allowed")

    if args.loop == "uvloop":
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError as exc:
            print(f"asyncio_echo: uvloop is not importable: {exc}", file=sys.stderr)
            return 3
        uvloop.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
