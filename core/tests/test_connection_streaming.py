"""pause_writing/resume_writing: a protocol producing a long reply is told when to stop.

Real loopback TCP, every installed poller; the client is a plain thread with a small
receive buffer, so output really backs up in the connection.
"""

from __future__ import annotations

import hashlib
import socket
import threading

from netcore.protocol import Protocol
from netcore.reactor.worker import ReactorWorker
from netcore.testing.loops import run_until


def connect(port, rcvbuf):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(20)
    return sock


HIGH, LOW, CHUNK, TOTAL = 64 * 1024, 16 * 1024, 16 * 1024, 8 * 1024 * 1024
#: The client starts reading once output has backed up (or after 20 s, and then fails).
READ = threading.Event()


class Producer(Protocol):
    """Writes TOTAL bytes in CHUNK pieces, stopping while the connection says writing is paused."""

    instances: list = []

    def __init__(self, connection):
        super().__init__(connection)
        self.sent = 0
        self.pauses = self.resumes = 0
        self.paused = False
        self.max_output = 0
        self.digest = hashlib.sha256()
        Producer.instances.append(self)

    def connection_made(self):
        self.produce()

    def data_received(self, data):
        pass

    def produce(self):
        conn = self.connection
        while not self.paused and self.sent < TOTAL:
            chunk = bytes([self.sent // CHUNK % 251]) * CHUNK
            self.digest.update(chunk)
            conn.write(chunk)
            self.sent += CHUNK
            self.max_output = max(self.max_output, conn.output_size)
            assert self.paused == conn.writing_paused
        if self.sent >= TOTAL and not self.paused:
            conn.close()

    def pause_writing(self):
        assert not self.paused, "pause_writing twice without resume_writing"
        self.paused = True
        self.pauses += 1
        READ.set()

    def resume_writing(self):
        assert self.paused, "resume_writing without pause_writing"
        assert self.connection.output_size <= LOW
        self.paused = False
        self.resumes += 1
        self.produce()


class Bare:
    """A protocol not derived from Protocol: no pause_writing/resume_writing at all."""

    def __init__(self, connection):
        self.connection = connection

    def connection_made(self):
        self.connection.write(b"z" * TOTAL)
        self.connection.close()

    def data_received(self, data):
        pass

    def eof_received(self):
        pass

    def connection_lost(self, exc):
        pass


def serve_one(loop, factory):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # inherited by the accepted socket
    worker = ReactorWorker(loop, factory, connection_options={"high_water": HIGH, "low_water": LOW})
    result = {}

    def client():
        sock = connect(listener.getsockname()[1], rcvbuf=16384)
        READ.wait(20)
        digest, size = hashlib.sha256(), 0
        while True:
            data = sock.recv(65536)
            if not data:
                break
            digest.update(data)
            size += len(data)
        result["digest"], result["size"] = digest.hexdigest(), size
        sock.close()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    sock, peer = listener.accept()
    worker.add_connection(sock, peer)
    run_until(loop, lambda: not thread.is_alive() and not worker.connections)
    listener.close()
    return result


def test_producer_is_paused_and_resumed_and_output_stays_bounded(loop):
    Producer.instances = []
    READ.clear()
    result = serve_one(loop, Producer)
    producer = Producer.instances[0]
    assert result["size"] == TOTAL and result["digest"] == producer.digest.hexdigest()
    assert producer.pauses >= 1 and producer.resumes == producer.pauses
    assert producer.max_output <= HIGH + CHUNK, "the producer must stop at the high-water mark"


def test_protocol_without_the_methods_still_works(loop):
    READ.set()
    result = serve_one(loop, Bare)
    assert result["size"] == TOTAL
