#!/usr/bin/env python3
"""Reference echo server of ``netcore bench``: an asyncio Protocol, on the stock asyncio
event loop or on uvloop.

    python3 -m netcore_bench.peers.asyncio_echo --loop asyncio|uvloop --port 0 [--certfile C --keyfile K]

With ``--certfile`` it serves TLS (``create_server(ssl=...)``, the stdlib context with its
defaults: what an asyncio user writes), the peer of ``netcore bench --tls``.

It accepts the arguments ``netcore serve`` gets from the bench (``serve``,
``--log-format json``, ``--bind HOST:PORT``), so that the bench starts it with the same
process runner (``netcore.testing.ServerProcess``). Once listening it prints, on stderr,
one JSON line in the same shape netcore uses:

    {"event": "server.started", "addresses": ["127.0.0.1:PORT"]}

It stops cleanly on SIGTERM or SIGINT.  Exit status 3 if uvloop is asked for
but not importable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # type: ignore[assignment]


async def serve(host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(EchoProtocol, host, port, backlog=1024, ssl=tls)
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
    ap.add_argument("--bind", metavar="HOST:PORT", help="netcore's spelling of --host/--port")
    ap.add_argument("--log-format", default="json", help="accepted for netcore compatibility; always json")
    ap.add_argument("command", nargs="?", choices=("serve",), help="accepted for netcore compatibility")
    ap.add_argument("--certfile", help="serve TLS with this certificate chain (PEM)")
    ap.add_argument("--keyfile", help="its private key (PEM)")
    args = ap.parse_args(argv)
    tls = None
    if args.certfile:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.certfile, args.keyfile)
    if args.bind:
        host, _, port = args.bind.rpartition(":")
        args.host, args.port = host.strip("[]"), int(port)

    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("only loopback addresses are allowed")

    if args.loop == "uvloop":
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError as exc:
            print(f"asyncio_echo: uvloop is not importable: {exc}", file=sys.stderr)
            return 3
        uvloop.run(serve(args.host, args.port, tls))
    else:
        asyncio.run(serve(args.host, args.port, tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
