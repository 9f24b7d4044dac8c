"""Python calls per message or request on the server side, by scheme: how long the hot path is.

Counted, not timed, so it is exact and repeatable on a noisy machine: one client thread
sends requests one at a time (ping-pong) to a connection served in this process by the
real loop, connection and protocol; ``sys.setprofile``/``threading.setprofile`` count
every Python function call on every thread except the client's (C functions are not
counted). Warm-up requests run first; the figure is calls / requests.

    python bench/frames.py                      # echo, http hello, wsgi hello; inline and pool
    python bench/frames.py --protocol echo --dispatch pool --requests 5000

It complements ``netcore bench`` (CPU per request against peers): a frame saved here is a
few tenths of a microsecond there.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import types

from netcore.reactor.deferred import DeferredConnection
from netcore.reactor.loop import EventLoop
from netcore.reactor.poller import EVENT_READ
from netcore.reactor.worker import ReactorWorker

HELLO_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def _wsgi_hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]


def _protocol_factory(protocol: str, multithread: bool):
    if protocol == "echo":
        from netcore_echo.protocol import EchoProtocol

        return EchoProtocol, b"x" * 64, 64
    from netcore_http.protocol import HttpProtocol

    settings = {"app": f"{__name__}:_wsgi_hello"} if protocol == "wsgi" else {}
    config = types.SimpleNamespace(get=lambda name, default=None: settings.get(name, default))
    concurrency = types.SimpleNamespace(multithread=multithread, multiprocess=False, event_loop=True)
    # dispatcher: what protocols read before server.concurrency existed (for before/after counts)
    server = types.SimpleNamespace(config=config, concurrency=concurrency, dispatcher=concurrency)
    return HttpProtocol.for_server(server), HELLO_REQUEST, -1  # -1: learnt from the first reply


def measure(protocol: str, dispatch: str, requests: int) -> float:
    from netcore_pollers.epoll_poller import EpollPoller

    counted = [0]
    client_thread: list[int] = []

    def profile(_frame, event, _arg):
        if event == "call" and threading.get_ident() not in client_thread:
            counted[0] += 1

    # Profile every thread started from now on (the pool's threads included).
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        factory, request, reply_length = _protocol_factory(protocol, multithread=dispatch == "pool")
        loop = EventLoop(EpollPoller())
        worker = ReactorWorker(loop, factory)
        executor = None
        if dispatch == "pool":
            from netcore_dispatch.executors import PoolExecutor

            executor = PoolExecutor(4, 1024)
            worker.connection_class = DeferredConnection
            worker.connection_options = {"executor": executor, "max_pending": 64}
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        port = listener.getsockname()[1]

        def accept(_mask):
            try:
                sock, peer = listener.accept()
            except BlockingIOError:
                return
            worker.add_connection(sock, peer)

        loop.register(listener.fileno(), EVENT_READ, accept)
        result = {}

        def client():
            client_thread.append(threading.get_ident())
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            length = reply_length

            def one():
                nonlocal length
                sock.sendall(request)
                data = sock.recv(65536)
                if length < 0:
                    length = len(data)
                got = len(data)
                while got < length:
                    got += len(sock.recv(65536))

            for _ in range(200):
                one()
            counted[0] = 0
            for _ in range(requests):
                one()
            result["calls"] = counted[0]
            sock.close()

        thread = threading.Thread(target=client, daemon=True)
        thread.start()

        def check():
            if thread.is_alive():
                loop.call_later(0.05, check)
            else:
                loop.stop()

        loop.call_soon(check)
        loop.run_forever()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    for conn in list(worker.connections):
        conn.abort()
    loop.close()
    listener.close()
    if executor is not None:
        executor.shutdown()
    # The loop's own 50 ms check timer runs a few times: a handful of calls in thousands.
    return result["calls"] / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=("echo", "http", "wsgi"), action="append")
    parser.add_argument("--dispatch", choices=("inline", "pool"), action="append")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    for protocol in args.protocol or ("echo", "http", "wsgi"):
        for dispatch in args.dispatch or ("inline", "pool"):
            calls = measure(protocol, dispatch, args.requests)
            print(f"{protocol:5} {dispatch:7} {calls:6.1f} Python calls per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
