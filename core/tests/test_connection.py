"""Connection behaviour over real loopback TCP, on every installed poller (LT and ET).

The server side runs on the test's loop in the main thread; the client runs in a plain
thread with blocking sockets, as a real peer would.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
from netcore.protocol import Protocol
from netcore.reactor.base import LATER
from netcore.reactor.connection import WRITE_BEHIND_MAX
from netcore.reactor.worker import ReactorWorker
from netcore.testing.loops import run_until


class Recorder(Protocol):
    """Echo, and remember what happened to the connection."""

    instances: list = []

    def __init__(self, connection):
        super().__init__(connection)
        self.eof = False
        self.lost = "open"
        self.paused_seen = False
        self.max_output = 0
        Recorder.instances.append(self)

    def data_received(self, data):
        self.connection.submit(lambda request: request, data)
        self.max_output = max(self.max_output, self.connection.output_size)
        if not self.connection.reading:
            self.paused_seen = True

    def eof_received(self):
        self.eof = True

    def connection_lost(self, exc):
        self.lost = exc


@pytest.fixture
def server(loop):
    Recorder.instances = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # inherited by accepted sockets
    worker = ReactorWorker(loop, Recorder, connection_options={"high_water": 64 * 1024, "low_water": 16 * 1024,
                                                               "linger_timeout": 5.0})

    def accept(worker=worker):
        sock, peer = listener.accept()
        worker.add_connection(sock, peer)

    def start_client(target):
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        run_until(loop, lambda: worker.stats.connections_accepted >= 1)
        return thread

    listener.setblocking(True)
    worker.accept = accept
    worker.port = listener.getsockname()[1]
    loop.register(listener.fileno(), 1, lambda mask: accept())
    worker.start_client = start_client
    yield worker
    loop.unregister(listener.fileno())
    listener.close()
    for conn in list(worker.connections):
        conn.abort()


def connect(port, rcvbuf=None):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(20)
    return sock


def recv_exactly(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(1 << 20, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_large_payload_survives_partial_writes_and_water_marks(server, loop):
    payload = os.urandom(3 * 1024 * 1024)
    result = {}

    def client():
        sock = connect(server.port, rcvbuf=4096)
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        time.sleep(0)  # let the sender fill buffers before reading starts
        result["data"] = recv_exactly(sock, len(payload))
        sender.join()
        sock.close()

    thread = server.start_client(client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert result["data"] == payload
    proto = Recorder.instances[0]
    assert proto.paused_seen, "reading should pause while output is above the high-water mark"
    assert proto.max_output <= 64 * 1024 + 65536 * 2
    assert server.stats.bytes_received == server.stats.bytes_sent == len(payload)


def test_half_close_gets_every_byte_owed(server, loop):
    payload = os.urandom(512 * 1024)
    result = {}

    def client():
        sock = connect(server.port)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        result["data"] = recv_exactly(sock, len(payload) + 1)  # +1: must end with EOF
        sock.close()

    thread = server.start_client(client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert result["data"] == payload
    assert Recorder.instances[0].eof
    assert Recorder.instances[0].lost is None


def test_reset_mid_stream_closes_only_that_connection(server, loop):
    good_result = {}

    def rude_client():
        sock = connect(server.port, rcvbuf=4096)
        sock.sendall(os.urandom(1024 * 1024 // 4))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST while the server still has echo output queued

    thread = server.start_client(rude_client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert isinstance(Recorder.instances[0].lost, OSError)

    def good_client():
        sock = connect(server.port)
        sock.sendall(b"still here")
        good_result["data"] = recv_exactly(sock, 10)
        sock.close()

    thread = server.start_client(good_client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert good_result["data"] == b"still here"


class LateReplies(Recorder):
    """Answers 20 ms later, as a pool would: the handler returns LATER, a timer finishes it."""

    def data_received(self, data):
        conn = self.connection

        def handler(request):
            conn.loop.call_later(0.02, conn.job_finished, request.upper())
            return LATER

        conn.submit(handler, data)


def test_fin_before_late_reply_still_gets_the_reply(server, loop):
    server.protocol_factory = LateReplies
    result = {}

    def client():
        sock = connect(server.port)
        sock.sendall(b"late")
        sock.shutdown(socket.SHUT_WR)
        result["data"] = recv_exactly(sock, 5)
        sock.close()

    thread = server.start_client(client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert result["data"] == b"LATE"


class CloseAfterFirst(Recorder):
    def data_received(self, data):
        self.connection.write(b"bye\n")
        self.connection.close()


def test_local_close_lingers_so_reply_is_not_destroyed_by_rst(server, loop):
    """The client keeps sending after the server decided to close: it must still read 'bye'."""
    server.protocol_factory = CloseAfterFirst
    result = {}

    def client():
        sock = connect(server.port)
        sock.sendall(b"hello")
        try:
            for _ in range(50):
                sock.sendall(b"x" * 1000)
        except OSError:
            pass
        result["data"] = recv_exactly(sock, 5)
        sock.close()

    thread = server.start_client(client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert result["data"] == b"bye\n"


class Explodes(Recorder):
    def data_received(self, data):
        raise ValueError("protocol bug")


def test_protocol_error_closes_only_its_connection_and_counts(server, loop):
    server.protocol_factory = Explodes
    result = {}

    def client():
        sock = connect(server.port)
        sock.sendall(b"boom")
        try:
            result["data"] = sock.recv(10)
        except ConnectionResetError:
            result["data"] = b""
        sock.close()

    thread = server.start_client(client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert result["data"] == b""
    assert server.stats.errors == 1
    assert isinstance(Recorder.instances[0].lost, ValueError)


def test_graceful_stop_answers_what_arrived_then_closes(server, loop):
    result = {}
    sent = threading.Event()

    def client():
        sock = connect(server.port)
        sock.sendall(b"in flight")
        sent.set()
        result["data"] = recv_exactly(sock, 100)
        sock.close()

    thread = server.start_client(client)
    sent.wait(5)
    loop.call_soon(server.stop, True)
    loop.run_forever()  # returns when the worker's last connection has closed
    thread.join(10)
    assert result["data"] == b"in flight"
    assert server.stats.connections_closed == 1


class WritesBehind(Recorder):
    """Per read: one submission standing for ``count`` requests (2 for ``p...``, a
    pipelined read; else 1) whose reply is ``len(data)`` bytes, or ``big...``: a pipelined
    reply larger than WRITE_BEHIND_MAX."""

    seen: list = []

    def data_received(self, data):
        connection = self.connection
        if data.startswith(b"big"):
            reply = b"B" * (WRITE_BEHIND_MAX + 1)
            connection.submit(lambda request: reply, data, count=2)
        else:
            connection.submit(lambda request: request, data, count=2 if data.startswith(b"p") else 1)
        WritesBehind.seen.append((data[:3], connection.output_size))


def test_a_pipelined_reply_waits_for_the_loops_flush_and_a_single_one_does_not(server, loop):
    server.protocol_factory = WritesBehind
    WritesBehind.seen = []
    result = {}

    def client():
        sock = connect(server.port)
        sock.sendall(b"one")
        result["one"] = recv_exactly(sock, 3)
        sock.sendall(b"pp")  # nothing more is sent until it arrived: the loop flushed it
        result["pp"] = recv_exactly(sock, 2)
        sock.sendall(b"big")
        result["big"] = recv_exactly(sock, WRITE_BEHIND_MAX + 1)
        sock.close()

    thread = server.start_client(client)
    run_until(loop, lambda: not thread.is_alive() and not server.connections)
    assert (result["one"], result["pp"]) == (b"one", b"pp")
    assert result["big"] == b"B" * (WRITE_BEHIND_MAX + 1)
    one, pipelined, big = WritesBehind.seen
    assert one == (b"one", 0), "a single request's reply went to the kernel inside the callback"
    assert pipelined == (b"pp", 2), "a pipelined read's reply was queued for the loop's flush"
    assert big[0] == b"big" and big[1] < WRITE_BEHIND_MAX + 1, "a large reply goes to the kernel at once"
