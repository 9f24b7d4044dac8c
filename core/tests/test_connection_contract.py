"""The connection contract (``netcore.reactor.base``) under each connection class.

``submit`` with ``count``, ``serial``, ``LATER``/``job_finished``, ``job_done``, ``send``
with flow control from a handler thread, deadlines and ``count_error``: each written once
here and run against the reactor connection (handlers inline), the deferred one (handlers
on a real pool of threads) and the blocking one (a thread per connection, blocking
sockets). Real loopback TCP, real threads; the client is a plain blocking socket.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import pytest
from netcore.protocol import LATER, Protocol
from netcore.reactor.blocking_connection import BlockingConnection
from netcore.reactor.deferred import DeferredConnection
from netcore.reactor.worker import ReactorWorker
from netcore.stats import WorkerStats
from netcore.testing.loops import run_until

executors = pytest.importorskip("netcore_dispatch.executors", reason="netcore-dispatch not installed")

TIMEOUT = 20.0




def client_socket(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(TIMEOUT)
    return sock


def read_until_eof(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class Owner:
    """A blocking connection's owner: counts what a BlockingWorker would."""

    def __init__(self):
        self.stats = WorkerStats()
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def connection_closed(self, connection):
        with self._lock:
            self.stats.requests += connection.requests
            self.stats.connections_closed += 1
        self.closed.set()

    def count_error(self):
        with self._lock:
            self.stats.errors += 1


class Harness:
    """Serves one connection of ``protocol`` with the chosen connection class.

    ``kind``: "inline" (reactor Connection), "pool" (DeferredConnection on four real
    threads) or "blocking" (BlockingConnection on a thread of its own).
    """

    def __init__(self, kind, loop, protocol, **options):
        self.kind = kind
        self.loop = loop
        self.protocol = protocol
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        self.port = self.listener.getsockname()[1]
        self.executor = None
        self.owner = Owner()
        options.setdefault("linger_timeout", 2.0)
        if kind == "blocking":
            self.options = options
            return
        self.worker = ReactorWorker(loop, protocol, connection_options=options)
        if kind == "pool":
            self.executor = executors.PoolExecutor(4, 1024)
            self.worker.connection_class = DeferredConnection
            self.worker.connection_options = {**options, "executor": self.executor, "max_pending": 64}

    def serve(self, client):
        """Run ``client(port)`` on a thread against one accepted connection; return its result."""
        result = {}

        def run():
            try:
                result["value"] = client(self.port)
            except BaseException as exc:  # reported below, on the test's thread
                result["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        sock, peer = self.listener.accept()
        if self.kind == "blocking":
            options = {k: v for k, v in self.options.items() if k in ("recv_size", "linger_timeout")}
            conn = BlockingConnection(sock, self.protocol, self.owner, peer=peer, **options)
            conn.serve()
            thread.join(TIMEOUT)
            stats = self.owner.stats
        else:
            self.worker.add_connection(sock, peer)
            run_until(self.loop, lambda: not thread.is_alive() and not self.worker.connections)
            stats = self.worker.stats
        assert not thread.is_alive()
        if "error" in result:
            raise result["error"]
        return result.get("value"), stats

    def close(self):
        self.listener.close()
        if self.executor is not None:
            self.executor.shutdown()


@pytest.fixture(params=["inline", "pool", "blocking"])
def kind(request):
    return request.param


@pytest.fixture
def harness(kind, loop):
    made = []

    def make(protocol, **options):
        h = Harness(kind, loop, protocol, **options)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


# -- submit(count) and serial -----------------------------------------------------------


class Batches(Protocol):
    """Each read is one submission standing for as many requests as it has lines."""

    serial = True

    def data_received(self, data):
        lines = data.count(b"\n")
        self.connection.submit(lambda request: request, data, count=lines)


def test_count_is_the_requests_statistic(harness):
    def client(port):
        sock = client_socket(port)
        sock.sendall(b"a\nb\nc\n")
        got = b""
        while len(got) < 6:
            got += sock.recv(100)
        sock.close()
        return got

    got, stats = harness(Batches).serve(client)
    assert got == b"a\nb\nc\n"
    assert stats.requests == 3


class Overlap(Protocol):
    """Records how many of one connection's handlers run at the same time."""

    serial = True
    lock = threading.Lock()
    running = 0
    most = 0

    def data_received(self, data):
        for line in data.splitlines(keepends=True):
            self.connection.submit(self.handle, line)

    @classmethod
    def handle(cls, line):
        with cls.lock:
            cls.running += 1
            cls.most = max(cls.most, cls.running)
        time.sleep(0.001)  # widens the window in which a second handler could overlap
        with cls.lock:
            cls.running -= 1
        return line


class Concurrent(Overlap):
    serial = False


def _pipeline(port, n=60):
    sock = client_socket(port)
    expected = b"".join(b"%d\n" % i for i in range(n))
    sock.sendall(expected)
    got = b""
    while len(got) < len(expected):
        data = sock.recv(65536)
        assert data, "EOF before every reply"
        got += data
    sock.close()
    return got == expected


@pytest.mark.parametrize("protocol", [Overlap, Concurrent], ids=["serial", "concurrent"])
def test_serial_protocol_has_one_handler_at_a_time(harness, kind, protocol):
    protocol.running = protocol.most = 0
    in_order, _stats = harness(protocol).serve(_pipeline)
    assert in_order
    if protocol.serial or kind != "pool":
        assert protocol.most == 1
    else:
        # The control: without serial, a real pool does run one connection's handlers at once.
        assert protocol.most > 1


# -- LATER / job_finished / job_done ---------------------------------------------------------


class FinishedLater(Protocol):
    """"slow" requests are finished from another thread; job_done is counted."""

    done = 0

    def data_received(self, data):
        for line in data.splitlines(keepends=True):
            self.connection.submit(self.handle, line)

    def handle(self, line):
        if line.startswith(b"slow"):
            timer = threading.Timer(0.05, self.connection_finish, (line.upper(),))
            timer.daemon = True
            timer.start()
            return LATER
        return line

    def connection_finish(self, reply):
        self.connection.job_finished(reply)  # from the timer's thread: the contract allows it

    def job_done(self):
        type(self).done += 1


def test_later_reply_is_written_in_order_before_what_came_after(harness, kind):
    if kind == "blocking":
        pytest.skip("a blocking connection's only thread is the one that would have to wait")
    FinishedLater.done = 0

    def client(port):
        sock = client_socket(port)
        sock.sendall(b"one\nslow\ntwo\nthree\n")
        want = b"one\nSLOW\ntwo\nthree\n"
        got = b""
        while len(got) < len(want):
            data = sock.recv(100)
            assert data
            got += data
        sock.close()
        return got

    got, stats = harness(FinishedLater).serve(client)
    assert got == b"one\nSLOW\ntwo\nthree\n"
    assert FinishedLater.done == 4
    assert stats.requests == 4


# -- send(): streaming from the handler with flow control -----------------------------------


STREAM = 8 << 20
PIECE = 64 * 1024


class Streamer(Protocol):
    """One request; the handler streams STREAM bytes with send() and checks output stays bounded."""

    serial = True
    most_queued = 0

    def data_received(self, data):
        self.connection.submit(self.handle, data)

    def handle(self, _request):
        block = bytes(range(256)) * (PIECE // 256)
        sent = 0
        connection = self.connection
        self.pieces = iter(range(STREAM // PIECE))
        self.suspended = False
        for _ in self.pieces:
            type(self).most_queued = max(type(self).most_queued, connection.output_size)
            sent += PIECE
            if not connection.send(block):
                self.suspended = True
                return LATER  # on the I/O thread: resume_writing goes on
        return b""

    def resume_writing(self):
        if not getattr(self, "suspended", False):
            return  # a handler thread is producing (it waits in send itself)
        self.suspended = False
        connection = self.connection
        block = bytes(range(256)) * (PIECE // 256)
        for _ in self.pieces:
            type(self).most_queued = max(type(self).most_queued, connection.output_size)
            if not connection.send(block):
                self.suspended = True
                return
        connection.job_finished(None)

    def job_done(self):
        self.connection.close()


def test_send_streams_a_large_reply_with_bounded_output(harness):
    Streamer.most_queued = 0

    def client(port):
        sock = client_socket(port, rcvbuf=16384)
        sock.sendall(b"go")
        digest = hashlib.sha256()
        total = 0
        while True:
            data = sock.recv(16384)
            if not data:
                break
            total += len(data)
            digest.update(data)
            if total % (1 << 20) < 16384:
                time.sleep(0.002)  # a slow reader, so output really backs up
        sock.close()
        return total, digest.hexdigest()

    (total, digest), _stats = harness(Streamer, high_water=128 * 1024, low_water=32 * 1024).serve(client)
    expected = hashlib.sha256((bytes(range(256)) * (PIECE // 256)) * (STREAM // PIECE)).hexdigest()
    assert total == STREAM and digest == expected
    # Never more queued than the high-water mark plus one piece and what was on its way.
    assert Streamer.most_queued <= 128 * 1024 + 2 * PIECE


# -- deadlines -------------------------------------------------------------------------------


class Deadline(Protocol):
    """A 0.3 s deadline from the first byte; every byte moves it 0.1 s later, at most to 0.6 s."""

    fired_after: list = []

    def connection_made(self):
        self.start = time.monotonic()

    def data_received(self, data):
        self.connection.set_deadline(min(self.start + 0.6, time.monotonic() + 0.3), self.expired)

    def expired(self):
        type(self).fired_after.append(time.monotonic() - self.start)
        self.connection.write(b"timeout\n")
        self.connection.close()


def test_deadline_fires_once_even_for_a_client_that_trickles(harness):
    Deadline.fired_after = []

    def client(port):
        sock = client_socket(port)
        got = b""
        end = time.monotonic() + 5
        # A byte every 50 ms: each moves the deadline later, but never past 0.6 s.
        while time.monotonic() < end:
            try:
                sock.send(b"x")
            except OSError:
                break
            sock.settimeout(0.05)
            try:
                data = sock.recv(100)
            except TimeoutError:
                continue
            finally:
                sock.settimeout(TIMEOUT)
            got += data
            if not data or got.endswith(b"timeout\n"):
                break
        sock.close()
        return got

    got, _stats = harness(Deadline).serve(client)
    assert got == b"timeout\n"
    assert len(Deadline.fired_after) == 1
    assert 0.55 <= Deadline.fired_after[0] < 2.0


class Cancelled(Protocol):
    """Sets a deadline, cancels it, and closes on the client's FIN."""

    fired = False

    def connection_made(self):
        self.connection.set_deadline(time.monotonic() + 0.1, self.expired)
        self.connection.cancel_deadline()

    def data_received(self, data):
        self.connection.submit(lambda request: request, data)

    def expired(self):
        type(self).fired = True


def test_cancelled_deadline_never_fires(harness):
    Cancelled.fired = False

    def client(port):
        sock = client_socket(port)
        time.sleep(0.3)  # three times the cancelled deadline: it would have fired by now
        sock.sendall(b"ping")
        got = sock.recv(100)
        sock.shutdown(socket.SHUT_WR)
        read_until_eof(sock)
        sock.close()
        return got

    got, _stats = harness(Cancelled).serve(client)
    assert got == b"ping"
    assert not Cancelled.fired


# -- count_error -----------------------------------------------------------------------------


class Failing(Protocol):
    """The handler counts an error (from whatever thread it runs on) and answers."""

    def data_received(self, data):
        self.connection.submit(self.handle, data)

    def handle(self, data):
        self.connection.count_error()
        return b"counted\n"


def test_count_error_from_the_handler_thread(harness):
    def client(port):
        sock = client_socket(port)
        sock.sendall(b"x")
        got = sock.recv(100)
        sock.close()
        return got

    got, stats = harness(Failing).serve(client)
    assert got == b"counted\n"
    assert stats.errors == 1


# -- post(): writes from another thread --------------------------------------------------------


class Poster(Protocol):
    """A request starts a thread that posts 200 numbered lines (as a publisher would)."""

    def data_received(self, data):
        connection = self.connection

        def publish():
            for i in range(200):
                connection.post(b"m%d\n" % i)

        self.thread = threading.Thread(target=publish, daemon=True)
        self.thread.start()


def test_post_from_another_thread_arrives_whole_and_in_order(harness):
    def client(port):
        sock = client_socket(port)
        sock.sendall(b"go")
        want = b"".join(b"m%d\n" % i for i in range(200))
        got = b""
        while len(got) < len(want):
            data = sock.recv(65536)
            assert data, "EOF before every posted line"
            got += data
        sock.close()
        return got == want

    in_order, _stats = harness(Poster).serve(client)
    assert in_order
