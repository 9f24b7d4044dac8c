"""Graceful stop with an ASGI app: what is in flight finishes, nothing accepted is lost.

The same checks the WSGI drain tests make, under every scheme that hosts ASGI: a TERM
while a request sleeps in the app, an idle keep-alive connection, and keep-alive
clients that count every request they send and every response they read (a request
answered by EOF or a reset is a loss; a connection may end only after a response that
says ``Connection: close``, or by a refused connect once the server is gone).
"""

from __future__ import annotations

import threading

import pytest
from http_testing import Datagrams, read_response, read_until_close
from netcore.testing.clients import TIMEOUT, connect
from test_asgi import start_asgi


class CountingClients:
    """``count`` keep-alive clients in threads sending ``target``; nothing is retried."""

    def __init__(self, address, count: int, target: bytes) -> None:
        self.address = address
        self.request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"sent": 0, "received": 0, "told_to_close": 0, "refused": 0}
        self.lost: list[str] = []
        self.received = threading.Condition(self.lock)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1
            self.received.notify_all()

    def wait_for(self, responses: int) -> None:
        with self.lock:
            assert self.received.wait_for(lambda: self.counts["received"] >= responses or self.lost, TIMEOUT), \
                self.counts
            assert not self.lost, self.lost

    def _run(self) -> None:
        for _ in range(100_000):  # bounded; ends when told to stop or the server is gone
            try:
                sock = connect(self.address)
            except OSError:
                self._add("refused")
                return
            with sock, sock.makefile("rb") as stream:
                while True:
                    if self.done.is_set():
                        return
                    try:
                        sock.sendall(self.request)
                    except OSError:
                        break  # the server closed first: nothing was sent on this connection
                    self._add("sent")
                    try:
                        status, headers, _ = read_response(stream)
                    except (ConnectionError, OSError, ValueError) as exc:
                        with self.lock:
                            self.lost.append(repr(exc))
                        return
                    self._add("received")
                    if status != 200:
                        with self.lock:
                            self.lost.append(f"status {status}")
                        return
                    if headers.get("connection") == "close":
                        self._add("told_to_close")
                        break

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads), "a client hung"


#: Each scheme once, the pollers alternating: the drain is the worker's (one code path for
#: both epoll modes, which test_asgi.py runs in full); 4.6 s per combination.
DRAIN_COMBINATIONS = [pytest.param(("inline", "epoll-et"), id="epoll-et-inline"),
                      pytest.param(("multi-reactor", "epoll-lt"), id="epoll-lt-multi-reactor"),
                      pytest.param(("prefork", "epoll-et"), id="epoll-et-prefork")]


@pytest.mark.parametrize("combination", DRAIN_COMBINATIONS)
def test_term_lets_a_sleeping_request_finish_and_loses_no_request(combination):
    scheme, poller = combination
    udp = Datagrams()
    server = start_asgi(scheme, poller)
    try:
        idle = connect(server.address)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with idle.makefile("rb") as stream:
            assert read_response(stream)[0] == 200
        busy = connect(server.address)
        busy.sendall(b"GET /sleep?ms=1500&tag=busy&port=%d HTTP/1.1\r\nHost: x\r\n\r\n" % udp.port)
        udp.wait_for(lambda m: m == "sleeping busy")
        clients = CountingClients(server.address, 8, b"/sleep?ms=5")
        clients.wait_for(100)
        server.proc.terminate()
        with busy.makefile("rb") as stream:
            status, headers, body = read_response(stream)
        assert (status, body) == (200, b"slept busy"), "the request in flight finished"
        assert headers.get("connection") == "close" or read_until_close(busy) == b""
        try:
            assert read_until_close(idle) == b"", "an idle keep-alive connection is closed"
        except TimeoutError:
            pytest.fail("the idle connection was not closed")
        assert server.stop() == 0, server.describe()
        clients.stop()
        assert not clients.lost, (clients.lost, clients.counts)
        assert clients.counts["sent"] == clients.counts["received"], clients.counts
        assert clients.counts["told_to_close"] >= 1, clients.counts
        idle.close()
        busy.close()
    finally:
        if server.proc.poll() is None:
            server.stop()
        udp.close()
