"""A peer's FIN while reading is paused and a reply is held (LATER): heard, without spinning.

A held reply behind paused reading is a RESP client blocked in BLPOP whose queue or output
is full. Read interest cannot stay on (a level-triggered poller would report the unread
input on every iteration), so the connection asks for EPOLLRDHUP/POLLRDHUP instead and
calls the protocol's ``eof_pending()`` once. ``select`` cannot report it: there the FIN is
read, in order, when reading resumes, as before. Real loopback TCP, every poller.
"""

from __future__ import annotations

import socket
import threading
import time

from netcore.protocol import Protocol
from netcore.reactor.base import LATER
from netcore.reactor.worker import ReactorWorker
from netcore.testing.loops import run_until

#: The pollers that can report a FIN without read interest (Linux's EPOLLRDHUP, POLLRDHUP).
REPORTING = {"poll", "epoll-lt", "epoll-et"}


def reports_rdhup(loop) -> bool:
    reports = loop.poller.name in REPORTING
    assert getattr(loop.poller, "reports_rdhup", False) == reports
    return reports


class Holds(Protocol):
    """The first read is held (LATER) with reading paused; everything else is recorded."""

    instances: list = []
    abort_on_eof_pending = False

    def __init__(self, connection):
        super().__init__(connection)
        self.events: list = []
        self.lost = "open"
        Holds.instances.append(self)

    def data_received(self, data):
        self.events.append(("data", data))
        if len(self.events) == 1:
            self.connection.submit(lambda request: LATER, data)
            self.connection.pause_reading()
            self.connection.write(b"held\n")

    def eof_pending(self):
        self.events.append(("eof_pending",))
        if self.abort_on_eof_pending:
            self.connection.abort()

    def eof_received(self):
        self.events.append(("eof",))

    def connection_lost(self, exc):
        self.lost = exc


class AbortsOnEofPending(Holds):
    abort_on_eof_pending = True


def serve(loop, protocol):
    Holds.instances = []
    listener = socket.create_server(("127.0.0.1", 0))
    worker = ReactorWorker(loop, protocol)

    def accept(_mask):
        sock, peer = listener.accept()
        worker.add_connection(sock, peer)

    loop.register(listener.fileno(), 1, accept)
    return worker, listener


def client(port, result):
    """Send, wait until the server holds it, send more and FIN; read to EOF."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(b"first")
    got = b""
    while not got.endswith(b"held\n"):
        chunk = sock.recv(100)
        if not chunk:
            break
        got += chunk
    sock.sendall(b"second")  # unread: reading is paused
    sock.shutdown(socket.SHUT_WR)
    while True:
        try:
            chunk = sock.recv(100)
        except ConnectionResetError:  # an abort with "second" unread is an RST
            result["reset"] = True
            break
        if not chunk:
            break
        got += chunk
    result["got"] = got
    sock.close()


def events_over(loop, connection, seconds: float) -> int:
    """How often the connection's handler runs in ``seconds`` of loop time (busy loop: thousands)."""
    calls = [0]
    handler = loop._handlers[connection.fd]

    def counting(mask):
        calls[0] += 1
        handler(mask)

    loop._handlers[connection.fd] = counting
    end = time.monotonic() + seconds
    run_until(loop, lambda: time.monotonic() >= end)
    if loop._handlers.get(connection.fd) is counting:
        loop._handlers[connection.fd] = handler
    return calls[0]


def test_fin_behind_paused_input_is_reported_once_and_read_in_order_later(loop):
    worker, listener = serve(loop, Holds)
    result: dict = {}
    thread = threading.Thread(target=client, args=(listener.getsockname()[1], result), daemon=True)
    try:
        thread.start()
        run_until(loop, lambda: Holds.instances and Holds.instances[0].events)
        proto = Holds.instances[0]
        conn = proto.connection
        reports = reports_rdhup(loop)
        if reports:
            run_until(loop, lambda: ("eof_pending",) in proto.events)
        # No spinning on the unread input or on the FIN (level-triggered pollers report
        # both for as long as they last if asked): a few events at most.
        assert events_over(loop, conn, 0.3) <= 3
        assert proto.events.count(("eof_pending",)) == (1 if reports else 0)
        assert not conn.closed and proto.lost == "open"  # a FIN alone closes nothing: replies are owed
        conn.resume_reading()
        conn.job_finished(b"done\n")
        run_until(loop, lambda: not thread.is_alive() and conn.closed)
        assert [e for e in proto.events if e != ("eof_pending",)] == [("data", b"first"), ("data", b"second"),
                                                                       ("eof",)]
        assert result["got"] == b"held\ndone\n"
        assert proto.lost is None
    finally:
        loop.unregister(listener.fileno())
        listener.close()
        for conn in list(worker.connections):
            conn.abort()


def test_a_protocol_may_close_at_once_on_eof_pending(loop):
    if not reports_rdhup(loop):
        return  # select: nothing to report it with (the test above checks that it stays as before)
    worker, listener = serve(loop, AbortsOnEofPending)
    result: dict = {}
    thread = threading.Thread(target=client, args=(listener.getsockname()[1], result), daemon=True)
    try:
        thread.start()
        run_until(loop, lambda: Holds.instances and Holds.instances[0].lost != "open")
        proto = Holds.instances[0]
        assert proto.events == [("data", b"first"), ("eof_pending",)]
        assert proto.lost is None and proto.connection.closed
        run_until(loop, lambda: not thread.is_alive())
        assert result["got"] == b"held\n"  # then EOF, or RST: "second" was never read
        assert not worker.connections
    finally:
        loop.unregister(listener.fileno())
        listener.close()
        for conn in list(worker.connections):
            conn.abort()
