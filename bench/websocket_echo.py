#!/usr/bin/env python3
"""WebSocket echo messages/s: netcore's http protocol hosting an ASGI app against uvicorn.

    python3 bench/websocket_echo.py --connections 64 --size 64 --duration 10 --rounds 3
    python3 bench/websocket_echo.py --servers netcore-inline,netcore-prefork,uvicorn-websockets --workers 2

Every server runs the same raw ASGI echo app (``app`` below): netcore (``--protocol http
--interface asgi``) under the dispatch schemes named, and uvicorn (httptools, uvloop)
with its ``websockets`` and its ``wsproto`` backend. The load is this script's own
client: N connections, each with one message in flight (send, wait for the echo, send
again), no compression offered (so no server compresses), every message sent and every
echo received counted -- an echo missing at the end, or a connection that ends early,
is reported as a loss, never hidden. The server is pinned to CPU 0 and the client to
CPU 1 where there are two; rounds alternate the servers (A B A B) and the median round
is reported, with the server's CPU per message from /proc and the ratio to uvicorn.
"""

from __future__ import annotations

import argparse
import base64
import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import time

from netcore.testing.server_process import child_pids, cpu_seconds

HERE = os.path.dirname(os.path.abspath(__file__))


async def app(scope, receive, send):
    """The echo app every server runs: bytes back as bytes, text as text (lifespan is off)."""
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


# -- servers ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and os.path.exists("/usr/bin/taskset") else []


def server_command(name: str, port: int, workers: int) -> list[str]:
    if name.startswith("netcore-"):
        dispatch = name[len("netcore-"):]
        command = [sys.executable, "-m", "netcore", "serve", "--protocol", "http", "--interface", "asgi",
                   "--app", "websocket_echo:app", "--bind", f"127.0.0.1:{port}", "--dispatch", dispatch,
                   "--poller", "epoll-lt", "--lifespan", "off", "--log-level", "warning"]
        if dispatch in ("multi-reactor", "prefork"):
            command += ["--workers", str(workers)]
        return command
    if name.startswith("uvicorn-"):
        return [sys.executable, "-m", "uvicorn", "websocket_echo:app", "--host", "127.0.0.1", "--port", str(port),
                "--ws", name[len("uvicorn-"):], "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
                "--no-access-log",
                "--log-level", "warning"]
    raise SystemExit(f"unknown server {name!r}: netcore-<dispatch>, uvicorn-websockets or uvicorn-wsproto")


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


def process_tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its children (prefork workers), from /proc."""
    total = 0.0
    for each in [pid, *child_pids(pid)]:
        try:
            total += cpu_seconds(each)
        except OSError:
            pass  # gone meanwhile
    return total


# -- the client -------------------------------------------------------------------------------------
def handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head[:100]!r}")
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise ConnectionError("frames before the first message")
    sock.setblocking(False)
    return sock


def masked_frame(payload: bytes) -> bytes:
    """One binary client frame (RFC 6455 5.3: clients mask). A load generator may reuse
    one masking key: the server unmasks whatever key it is given."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x82, 0x80 | n)) if n < 126 else (struct.pack("!BBH", 0x82, 0xFE, n) if n < 65536
                                                     else struct.pack("!BBQ", 0x82, 0xFF, n))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def reply_size(n: int) -> int:
    return n + (2 if n < 126 else 4 if n < 65536 else 10)


def run_load(port: int, connections: int, size: int, warmup: float, duration: float) -> dict:
    """Echo for ``warmup + duration`` seconds; counts of the measured part and the losses."""
    frame = masked_frame(b"m" * size)
    expect = reply_size(size)
    selector = selectors.DefaultSelector()
    socks = [handshake(port) for _ in range(connections)]
    got = {}
    sent = received = 0
    for sock in socks:
        sock.send(frame)
        sent += 1
        got[sock] = 0
        selector.register(sock, selectors.EVENT_READ)
    start = time.monotonic()
    measure_from = start + warmup
    end = measure_from + duration
    counted = None
    ended_early = 0
    sending = True
    drain_until = None
    while True:
        now = time.monotonic()
        if counted is None and now >= measure_from:
            counted = (received, now)
        if sending and now >= end:
            sending = False
            drain_until = now + 5.0
        if not sending and (received == sent or now >= drain_until):
            break
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                ended_early += 1
                continue
            total = got[sock] + len(data)
            done, got[sock] = divmod(total, expect)
            received += done
            if done and sending:
                sock.send(frame)
                sent += 1
    measured_end = min(time.monotonic(), end)
    for sock in socks:
        sock.close()
    first_received, first_at = counted if counted is not None else (0, start)
    return {"messages": received - first_received, "seconds": measured_end - first_at,
            "lost": sent - received, "ended_early": ended_early}


def one_round(name: str, args: argparse.Namespace, cpus: int) -> dict:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(pin(0 if cpus > 1 else None) + server_command(name, port, args.workers), cwd=HERE,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_listening(port, proc)
        cpu_before = process_tree_cpu(proc.pid)
        result = run_load(port, args.connections, args.size, args.warmup, args.duration)
        cpu = process_tree_cpu(proc.pid) - cpu_before
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    result["rate"] = result["messages"] / result["seconds"] if result["seconds"] > 0 else 0.0
    # CPU over warmup and drain too: per message of the whole run, a slight overestimate for all alike.
    result["cpu_us"] = cpu / max(1, result["messages"]) * 1e6
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="netcore-inline,uvicorn-websockets,uvicorn-wsproto")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--size", type=int, default=64, help="message bytes")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="for netcore-multi-reactor and netcore-prefork")
    args = parser.parse_args(argv)
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    cpus = len(os.sched_getaffinity(0))
    if cpus > 1:
        os.sched_setaffinity(0, {1})  # the client; servers get CPU 0
    results: dict[str, list[dict]] = {name: [] for name in servers}
    for round_number in range(args.rounds):
        for name in servers:
            result = one_round(name, args, cpus)
            results[name].append(result)
            print(f"round {round_number + 1} {name}: {result['rate']:,.0f} msg/s, {result['cpu_us']:.1f} µs CPU/msg, "
                  f"lost {result['lost']}, connections ended early {result['ended_early']}", file=sys.stderr)
    medians = {name: statistics.median(r["rate"] for r in rounds) for name, rounds in results.items()}
    base_name = "uvicorn-websockets" if "uvicorn-websockets" in medians else servers[0]
    base = medians[base_name] or 1.0
    print(f"\n{args.connections} connections, {args.size}-byte messages, {args.duration:g} s x {args.rounds} rounds")
    print(f"| server | msg/s (median) | CPU µs/msg | vs {base_name} | lost |")
    print("|---|---:|---:|---:|---:|")
    for name, rounds in results.items():
        cpu = statistics.median(r["cpu_us"] for r in rounds)
        lost = sum(r["lost"] + r["ended_early"] for r in rounds)
        print(f"| {name} | {medians[name]:,.0f} | {cpu:.1f} | {medians[name] / base:.2f}x | {lost} |")
    return 1 if any(r["lost"] or r["ended_early"] for rounds in results.values() for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
