#!/usr/bin/env python3
"""The echo load generator of ``netcore bench --tls``: the C client's modes, over TLS.

    python3 -m netcore_bench.tls_echo_client --host H --port P --cacert CA.pem -c N -s S -w W -d D
        [--idle K] [--reconnect] [--rcvbuf B] [--sndbuf B]

Why Python and not the C client: the C client (``loadgen/echo_client.c``) is built with
nothing but a compiler, on any machine; TLS would make it need OpenSSL's headers as well
(``libssl-dev``), and every echo row of every bench would then depend on them. This client
speaks the same command line, prints the same ``warm``/``done`` lines on stderr and the same
JSON object on stdout, so the runner treats it exactly like the C one.

It runs on one thread, asyncio with uvloop where installed (the stock loop otherwise), with
an ``asyncio.Protocol`` per connection: no thread per connection, so 64 connections do not
fight over the GIL. It is still slower than the C client: **the generator, not the
server, can limit messages per second** in these rows
(flagged GEN-SATURATED when it used over 90 % of its CPU). What stays comparable between
netcore and the peers is the server's CPU time per message, which is the figure ``--tls``
echo rows are for.

Every message is checked byte for byte and counted; a connection that ends or errs while a
message is outstanding fails the run (exit 1), as in the C client: a client that retried
would hide losses. ``--reconnect`` makes each message a new connection with a full
handshake plus the echo (asyncio offers no saved session, so every handshake is a full one);
failed connects are counted in ``connect_errors`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import sys
import time

#: A message is a slice of this pattern at an offset that changes per message, so an echo
#: that returns an older message, or bytes of another connection, does not compare equal.
_PERIOD = 251


class _Run:
    """Counters of one run; ``measuring`` flips at the end of the warm-up."""

    def __init__(self, size: int, reconnect: bool) -> None:
        self.size = size
        self.reconnect = reconnect
        self.pattern = bytes(i % _PERIOD for i in range(size + _PERIOD))
        self.measuring = False
        self.stopping = False
        self.messages = 0
        self.latencies_ns: list[int] = []
        self.errors = 0
        self.last_error = ""
        self.connections_done = 0
        self.connect_errors = 0
        self.failed = asyncio.Event()

    def fail(self, why: str) -> None:
        self.errors += 1
        self.last_error = self.last_error or why
        self.failed.set()


class _Pinger(asyncio.Protocol):
    """One connection: send a message, wait for all of it back, check it, send the next."""

    def __init__(self, run: _Run, done: asyncio.Future | None, started_ns: int = 0) -> None:
        self.run = run
        #: reconnect mode: when the connect began (its latency includes connect and handshake)
        self.started_ns = started_ns
        #: reconnect mode: set when this connection's one message has come back
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.seq = 0
        self.expect = b""
        self.got = bytearray()
        self.sent_ns = 0
        self.closing = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self._send()

    def _send(self) -> None:
        offset = self.seq % _PERIOD
        self.seq += 1
        self.expect = self.run.pattern[offset:offset + self.run.size]
        self.got.clear()
        self.sent_ns = self.started_ns or time.perf_counter_ns()
        self.started_ns = 0
        self.transport.write(self.expect)

    def data_received(self, data: bytes) -> None:
        self.got += data
        if len(self.got) < len(self.expect):
            return
        run = self.run
        if self.got != self.expect:
            run.fail("wrong bytes echoed")
            self._close()
            return
        if run.measuring:
            run.messages += 1
            run.latencies_ns.append(time.perf_counter_ns() - self.sent_ns)
        if self.done is not None:
            self._close()
            if not self.done.done():
                self.done.set_result(None)
        elif run.stopping:
            self._close()
        else:
            self._send()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and not self.run.stopping:
            self.run.fail(f"connection lost with a message outstanding: {exc or 'EOF'}")
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("lost"))


async def _connect(args, ctx: ssl.SSLContext, factory):
    """A socket with the asked buffer sizes, connected, then TLS on it (handshake awaited)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if args.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        if args.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await loop.sock_connect(sock, (args.host, args.port))
        # No handshake time-out of its own before the run ends: a server that takes a
        # connection late (iterative serves one at a time) is measured as it is, as the C
        # client's connects that wait in the backlog are.
        return await loop.create_connection(factory, sock=sock, ssl=ctx, server_hostname=args.host,
                                            ssl_handshake_timeout=args.warmup + args.duration + 30)
    except BaseException:
        sock.close()
        raise


async def _pingpong(args, ctx, run: _Run, pingers: list[_Pinger]) -> None:
    """One slot of ping-pong: connect and handshake, then the pinger runs on its callbacks."""
    try:
        _, proto = await _connect(args, ctx, lambda: _Pinger(run, None))
    except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
        run.fail(f"connect: {exc}")
        return
    pingers.append(proto)


async def _reconnecting(args, ctx, run: _Run, _pingers: list[_Pinger]) -> None:
    """One slot of ``--reconnect``: connect, handshake, one message, close; again."""
    loop = asyncio.get_running_loop()
    while not run.stopping:
        done = loop.create_future()
        started = time.perf_counter_ns()
        try:
            await _connect(args, ctx, lambda done=done, started=started: _Pinger(run, done, started))
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            if run.measuring:
                run.connect_errors += 1
            run.last_error = run.last_error or f"connect: {exc}"
            await asyncio.sleep(0.01)  # as the C client: a failed slot retries after 10 ms
            continue
        try:
            await done
        except ConnectionError:
            return
        if run.measuring:
            run.connections_done += 1


def _percentile(sorted_ns: list[int], p: float) -> float:
    if not sorted_ns:
        return 0.0
    return sorted_ns[min(len(sorted_ns) - 1, int(p * len(sorted_ns)))] / 1000.0


async def main_async(args) -> int:
    ctx = ssl.create_default_context(cafile=args.cacert)
    run = _Run(args.size, args.reconnect)
    idle = []
    t_idle = time.monotonic()
    for _ in range(args.idle):
        transport, _ = await _connect(args, ctx, asyncio.Protocol)
        idle.append(transport)
    idle_connect_s = time.monotonic() - t_idle
    pingers: list[_Pinger] = []
    slot = _reconnecting if args.reconnect else _pingpong
    # Every slot connects at once, and the clock starts meanwhile, as in the C client.
    tasks = [asyncio.ensure_future(slot(args, ctx, run, pingers)) for _ in range(args.connections)]
    failed = asyncio.ensure_future(run.failed.wait())
    await asyncio.wait([failed], timeout=args.warmup)
    run.measuring = True
    sys.stderr.write("warm\n")
    sys.stderr.flush()
    t0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.wait([failed], timeout=args.duration)
    t1, cpu1 = time.monotonic(), time.process_time()
    run.measuring = False
    sys.stderr.write("done\n")
    sys.stderr.flush()
    run.stopping = True
    failed.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for p in pingers:
        p._close()
    for t in idle:
        t.close()
    await asyncio.sleep(0)  # let the transports send close_notify before the loop ends
    secs = t1 - t0
    lat = sorted(run.latencies_ns)
    out = {"mode": "reconnect" if args.reconnect else "pingpong", "tls": True, "messages": run.messages,
           "seconds": round(secs, 6), "messages_per_s": run.messages / secs if secs > 0 else 0.0,
           "p50_us": _percentile(lat, 0.50), "p90_us": _percentile(lat, 0.90), "p99_us": _percentile(lat, 0.99),
           "p999_us": _percentile(lat, 0.999), "max_us": lat[-1] / 1000.0 if lat else 0.0,
           "mean_us": sum(lat) / len(lat) / 1000.0 if lat else 0.0, "errors": run.errors,
           "connections_done": run.connections_done, "connect_errors": run.connect_errors, "delayed_1s": 0,
           "unfinished": 0, "last_connect_error": run.last_error, "cpu_seconds": round(cpu1 - cpu0, 4),
           "cpu_percent": 100.0 * (cpu1 - cpu0) / secs if secs > 0 else 0.0, "connections": args.connections,
           "idle": args.idle, "idle_connect_s": round(idle_connect_s, 3), "size": args.size,
           "warmup_s": args.warmup, "duration_s": args.duration,
           "loop": type(asyncio.get_running_loop()).__module__}
    print(json.dumps(out), flush=True)
    return 1 if run.errors else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cacert", required=True, help="the CA the server's certificate is checked against")
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("-s", "--size", type=int, default=64)
    ap.add_argument("-w", "--warmup", type=float, default=1.0)
    ap.add_argument("-d", "--duration", type=float, default=5.0)
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("-r", "--reconnect", action="store_true")
    ap.add_argument("--rcvbuf", type=int)
    ap.add_argument("--sndbuf", type=int)
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1"):
        ap.error("loopback only (127.0.0.1 or ::1)")
    if args.connections < 1 or args.size < 1 or args.idle < 0 or args.duration <= 0 or args.warmup < 0:
        ap.error("counts must be positive and the duration above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(main_async(args))
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
