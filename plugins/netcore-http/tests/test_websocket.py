"""WebSockets of ASGI apps (netcore_http.websocket) under real ``netcore serve`` processes.

Clients are the ``websockets`` library's sync client with its default settings (it offers
permessage-deflate, answers pings, replies to close frames) and, where a test needs to
see or withhold single frames, a raw socket speaking through wsproto's client side. The
server is protocol ``wstest`` (ws_testing.py: a request head, then ``upgrade()``), which
tests the WebSocket layer on its own; once the http protocol hands ASGI upgrades over,
the same tests run through ``--protocol http --interface asgi`` too (``FRONTS``).
Every message sent is counted and must come back; an EOF with messages owed fails.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

import pytest

websockets = pytest.importorskip("websockets")
pytest.importorskip("wsproto")

from http_testing import require_scheme, server_env  # noqa: E402
from netcore.testing.clients import connect  # noqa: E402
from netcore.testing.schemes import scheme_args  # noqa: E402
from netcore.testing.server_process import ServerProcess  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402
from wsproto.connection import Connection as FrameConnection  # noqa: E402
from wsproto.connection import ConnectionType  # noqa: E402
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage  # noqa: E402
from wsproto.extensions import PerMessageDeflate  # noqa: E402

NETCORE = [sys.executable, "-m", "netcore", "-p", "ws_testing"]
SCHEMES = ("inline", "multi-reactor", "prefork")
POLLERS = ("epoll-lt", "epoll-et")
TIMEOUT = 20.0


#: Which protocol hands the upgrade over. The http protocol does for ASGI apps, which is
#: what users run; ``wstest`` (ws_testing.py: a request head, then websocket.upgrade) drove
#: websocket.py before the http side existed, and drives it still with NETCORE_WS_FRONTS=all
#: (CI time: every test here would run twice for the same code).
FRONTS = ("wstest", "http") if os.environ.get("NETCORE_WS_FRONTS") == "all" else ("http",)


@pytest.fixture(params=FRONTS)
def front(request):
    """Which protocol hands the upgrade over: wstest (ws_testing.py) or http --interface asgi."""
    return request.param


def serve(app: str, *extra: str, dispatch: str = "inline", poller: str = "epoll-lt",
          front: str = "wstest") -> ServerProcess:
    require_scheme(dispatch)
    args = [*scheme_args(dispatch), "--poller", poller]
    if front == "wstest":
        args += ["--protocol", "wstest", "--wstest-app", f"ws_testing:{app}"]
    else:
        args += ["--protocol", "http", "--interface", "asgi", "--app", f"ws_testing:{app}"]
    return _ServingProcess(*args, *extra, env=server_env(), executable=NETCORE)


class _ServingProcess(ServerProcess):
    """Started once every worker serves, not at ``server.started``: under prefork the
    master says that before its workers fork and import the app, and a client's opening
    handshake (websockets gives it 10 s) then waited for a worker started under load."""

    def start(self) -> ServerProcess:
        super().start()
        self.wait_events("worker.started", self.started.get("workers", 1), TIMEOUT)
        return self


def uri(server: ServerProcess, path: str = "/") -> str:
    host, port = server.address
    return f"ws://{host}:{port}{path}"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RawClient:
    """A WebSocket client on a plain socket: the handshake by hand, frames by wsproto."""

    def __init__(self, address, path="/", *, headers=None, bufsize=None, timeout=TIMEOUT, deflate=False,
                 before_response=None):
        self.sock = connect(address, bufsize=bufsize, timeout=timeout)
        fields = {"Host": "localhost", "Upgrade": "websocket", "Connection": "Upgrade",
                  "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13"}
        extension = None
        if deflate:
            extension = PerMessageDeflate()
            fields["Sec-WebSocket-Extensions"] = f"permessage-deflate; {extension.offer()}"
        fields.update(headers or {})
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
        self.sock.sendall(head.encode() + b"\r\n")
        if before_response is not None:
            before_response()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split()[1]) if self.head else 0
        self.rest = rest
        extensions = []
        for line in self.head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if extension is not None and name.lower() == "sec-websocket-extensions":
                extension.finalize(value.strip())
                extensions.append(extension)
        self.frames = FrameConnection(ConnectionType.CLIENT, extensions)
        self.events: collections.deque = collections.deque()
        if self.status == 101 and rest:
            self.frames.receive_data(rest)

    def send(self, event) -> None:
        self.sock.sendall(self.frames.send(event))

    def next_event(self):
        """The next frame event, or None at EOF."""
        while True:
            for event in self.frames.events():
                self.events.append(event)
            if self.events:
                return self.events.popleft()
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.frames.receive_data(data)

    def read_to_eof(self) -> bytes:
        parts = [self.rest]
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def close(self) -> None:
        self.sock.close()


def echo_round_trips(ws, messages) -> None:
    """Send each message and require it back, counted: every one sent is answered."""
    sent = received = 0
    for message in messages:
        ws.send(message)
        sent += 1
        reply = ws.recv(timeout=TIMEOUT)
        received += 1
        assert reply == message
    assert sent == received


# -- echo under every scheme that hosts ASGI, both epoll modes ---------------------------------------
@pytest.mark.parametrize("poller", POLLERS)
@pytest.mark.parametrize("dispatch", SCHEMES)
def test_echo_large_fragmented_pings_limits_and_term(dispatch, poller, front):
    with serve("echo_app", "--ws-max-size", str(2 << 20), "--ws-ping-interval", "0.2",
               dispatch=dispatch, poller=poller, front=front) as server:
        large_text = "ü" * (1 << 19)  # 1 MiB of UTF-8
        for compression in ("deflate", None):
            # 1 MiB is the client's default max_size, which it applies to the frame as
            # received: deflated random bytes grow a little, so compressed, they are text-like.
            large_bytes = os.urandom(1 << 20) if compression is None else b"0123456789abcdef" * (1 << 16)
            with ws_connect(uri(server, "/echo"), compression=compression) as ws:
                echo_round_trips(ws, ["hello", b"\x00\xff" * 8, large_text, large_bytes, "", b""])
                # Fragmented messages: the client sends an iterator as continuation frames.
                for fragments in (["fr", "ag", "mented"], [os.urandom(70000), os.urandom(5), os.urandom(200000)]):
                    ws.send(iter(fragments))
                    reply = ws.recv(timeout=TIMEOUT)
                    assert reply == type(fragments[0])().join(fragments)
                assert ws.ping(b"are you there").wait(TIMEOUT), "no pong for the client's ping"
        # The server's keepalive pings (the connection's one deadline), answered by hand;
        # then a message over ws_max_size: close 1009.
        client = RawClient(server.address)
        try:
            for _ in range(2):
                event = client.next_event()
                assert isinstance(event, Ping), event
                client.send(event.response())
            client.send(BytesMessage(data=bytes((2 << 20) + 1)))
            event = client.next_event()
            while isinstance(event, Ping):
                event = client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1009, event
        finally:
            client.close()
        # Several WebSockets at once (they spread over the workers), then a graceful stop:
        # each gets close 1001, the server exits 0.
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(ws_connect(uri(server, f"/open{i}"))) for i in range(4)]
            for i, ws in enumerate(clients):
                echo_round_trips(ws, [f"before the stop {i}"])
            stopper = threading.Thread(target=lambda: server.stop(signal.SIGTERM, timeout=TIMEOUT))
            stopper.start()
            for ws in clients:
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=TIMEOUT)
                assert closed.value.rcvd is not None, "no close frame from the server"
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutting down")
            stopper.join(TIMEOUT + 5)
        assert server.returncode == 0, server.describe()
        assert server.stopped_event()["stats"]["errors"] == 0, server.describe()


def test_scope_subprotocol_headers_and_access_log(front):
    with serve("echo_app", "--access-log", front=front) as server:
        with ws_connect(uri(server, "/scope?x=1"), subprotocols=["chat", "superchat"]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response.headers["x-app"] == "echo"
            scope = json.loads(ws.recv(timeout=TIMEOUT))
            assert scope == {"type": "websocket", "scheme": "ws", "path": "/scope", "query_string": "x=1",
                             "subprotocols": ["chat", "superchat"], "http_version": "1.1"}
            ws.send("not in any log")
            assert ws.recv(timeout=TIMEOUT) == "not in any log"
        # One access record per handshake answer; the messages are never logged.
        record = server.wait_event("http.access", TIMEOUT, status=101)
        assert record["target"] == "/scope?x=1" and record["method"] == "GET", record
        assert server.stop() == 0
        assert "not in any log" not in "\n".join(map(json.dumps, server.events)) + "\n".join(server.other_lines)


def test_message_over_max_size_closes_1009(front):
    with serve("echo_app", "--ws-max-size", "1000", front=front) as server:
        for message in ("x" * 1000, b"y" * 1000):
            with ws_connect(uri(server)) as ws:
                echo_round_trips(ws, [message])  # exactly the limit passes
        for message in ("é" * 501, b"y" * 1001, iter([b"z" * 600, b"z" * 600])):
            with ws_connect(uri(server)) as ws:
                ws.send(message)
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=TIMEOUT)
                assert closed.value.rcvd.code == 1009


def test_compression_bomb_and_a_storm_of_fragments(front):
    """A deflated message that inflates past ws_max_size is refused (1009) without the
    server ever holding much more than that; a text message in 20,000 one-character
    fragments arrives whole."""
    with serve("echo_app", "--ws-max-size", str(1 << 20), front=front) as server:
        baseline = rss_kib(server.pid)
        client = RawClient(server.address, deflate=True)
        try:
            assert "permessage-deflate" in client.head
            client.send(BytesMessage(data=bytes(64 << 20)))  # 64 MiB of zeros: about 64 KiB deflated
            event = client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1009, event
            assert rss_kib(server.pid) - baseline < 48 * 1024
        finally:
            client.close()
        with ws_connect(uri(server)) as ws:
            ws.send(iter(["é"] * 20_000))
            assert ws.recv(timeout=TIMEOUT) == "é" * 20_000


def test_server_pings_are_answered_by_the_client(front):
    """The websockets client answers the server's keepalive pings (seen in its debug log)."""
    records: list[str] = []
    got_pong = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            records.append(text)
            if "> PONG" in text:
                got_pong.set()

    logger = logging.getLogger("test_websocket.client")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Watch())
    with serve("echo_app", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "2", front=front) as server:
        with ws_connect(uri(server), logger=logger) as ws:
            assert got_pong.wait(TIMEOUT), records
            echo_round_trips(ws, ["still open after the pings"])


def test_unanswered_ping_closes_1011(front):
    """A raw client sees the server's pings, answers one, then goes silent: close 1011, EOF."""
    with serve("echo_app", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.4", front=front) as server:
        client = RawClient(server.address)
        try:
            assert client.status == 101
            event = client.next_event()
            assert isinstance(event, Ping), event
            started = time.monotonic()
            client.send(event.response())
            event = client.next_event()  # the next ping: the interval re-armed after the pong
            assert isinstance(event, Ping), event
            event = client.next_event()  # not answered
            assert isinstance(event, CloseConnection) and event.code == 1011, event
            assert time.monotonic() - started < 5
            assert client.next_event() is None  # then the server closes
        finally:
            client.close()


def test_client_ping_and_close_handshake(front):
    with serve("close_app", front=front) as server:
        client = RawClient(server.address, "/?code=4001")
        try:
            event = client.next_event()
            assert isinstance(event, CloseConnection) and (event.code, event.reason) == (4001, "bye"), event
            client.send(event.response())
            assert client.next_event() is None
        finally:
            client.close()
    with serve("echo_app", front=front) as server:
        client = RawClient(server.address)
        try:
            client.send(Ping(b"p1"))
            event = client.next_event()
            assert isinstance(event, Pong) and event.payload == b"p1"
            client.send(TextMessage(data="after the ping"))
            event = client.next_event()
            assert isinstance(event, TextMessage) and event.data == "after the ping"
            client.send(CloseConnection(code=1000, reason="done"))
            event = client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1000
            assert client.next_event() is None
        finally:
            client.close()
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0


def test_send_after_close_raises_for_the_app(front):
    with serve("close_app", front=front) as server:
        with ws_connect(uri(server, "/?code=1000")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=TIMEOUT)
            assert closed.value.rcvd.code == 1000
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0


def test_broken_frames_fail_the_connection(front):
    """An unmasked client frame is a protocol error (1002); invalid UTF-8 in text is 1007."""
    with serve("echo_app", front=front) as server:
        for frame, code in ((b"\x81\x02hi", 1002), (b"\x81\x82" + b"\0\0\0\0" + b"\xc3\x28", 1007)):
            client = RawClient(server.address)
            try:
                client.sock.sendall(frame)
                event = client.next_event()
                assert isinstance(event, CloseConnection) and event.code == code, event
                assert client.next_event() is None
            finally:
                client.close()
        with ws_connect(uri(server)) as ws:
            echo_round_trips(ws, ["the server serves on"])


def test_graceful_stop_bounds_a_peer_that_never_answers_the_close(front):
    """TERM: the close frame 1001 goes out; a peer that never answers it (nor closes) is
    cut at graceful_timeout, and the server still exits 0."""
    with serve("echo_app", "--graceful-timeout", "1", front=front) as server:
        client = RawClient(server.address)
        try:
            client.send(TextMessage(data="hello"))
            assert client.next_event().data == "hello"
            started = time.monotonic()
            assert server.stop(signal.SIGTERM, timeout=TIMEOUT) == 0
            assert time.monotonic() - started < 10
            event = client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1001, event
            assert client.next_event() is None
        finally:
            client.close()


def test_graceful_stop_during_the_handshake(front):
    """TERM while the app has not accepted yet: the 101 still comes, then close 1001."""
    with serve("slow_accept_app", front=front) as server:
        # The app sleeps 0.5 s before accepting: the stop arrives while the handshake is open.
        client = RawClient(server.address, before_response=lambda: server.proc.send_signal(signal.SIGTERM))
        try:
            assert client.status == 101, client.head
            event = client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1001, event
            client.send(event.response())
            assert client.next_event() is None
        finally:
            client.close()
        assert server.stop(timeout=TIMEOUT) == 0


# -- the handshake ------------------------------------------------------------------------------
def test_invalid_handshakes_are_refused_with_400(front):
    with serve("echo_app", front=front) as server:
        cases = [({"Sec-WebSocket-Key": None}, None), ({"Sec-WebSocket-Key": "dG9vc2hvcnQ="}, None),
                 ({"Sec-WebSocket-Version": "8"}, "13"), ({"Sec-WebSocket-Version": None}, "13")]
        if front == "wstest":
            # The http protocol takes Upgrade without Connection: upgrade for a plain request
            # (RFC 9110 7.8: the Upgrade field is then ignored); wstest hands it over anyway.
            cases.append(({"Connection": "keep-alive"}, None))
        for headers, version in cases:
            client = RawClient(server.address, headers=headers)
            try:
                assert client.status == 400, (headers, client.head)
                if version:
                    assert f"Sec-WebSocket-Version: {version}" in client.head
                client.read_to_eof()  # and the connection ends
            finally:
                client.close()


def test_close_before_accept_is_403(front):
    with serve("deny_app", "--access-log", front=front) as server:
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(uri(server))
        assert refused.value.response.status_code == 403
        server.wait_event("http.access", TIMEOUT, status=403)


def test_denial_response_extension(front):
    with serve("denial_response_app", front=front) as server:
        client = RawClient(server.address)
        try:
            assert client.status == 401
            assert "www-authenticate: Bearer" in client.head
            assert client.read_to_eof() == b"who are you?"
        finally:
            client.close()


def test_app_failures_500_before_accept_1011_after(front):
    with serve("fail_before_accept_app", front=front) as server:
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(uri(server))
        assert refused.value.response.status_code == 500
        server.wait_event("http.websocket_app_failed", TIMEOUT, accepted=False)
    with serve("fail_after_accept_app", front=front) as server:
        with ws_connect(uri(server)) as ws:
            ws.send("make it fail")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=TIMEOUT)
            assert closed.value.rcvd.code == 1011
        server.wait_event("http.websocket_app_failed", TIMEOUT, accepted=True)
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 1
        assert "make it fail" not in "\n".join(map(json.dumps, server.events)) + "\n".join(server.other_lines)


@pytest.mark.parametrize("framework", ("starlette", "fastapi"))
def test_framework_endpoints(front, framework):
    pytest.importorskip(framework)
    with serve(f"{framework}_app", front=front) as server:
        with ws_connect(uri(server, "/ws")) as ws:
            for i in range(50):
                ws.send(f"message {i}")
                assert ws.recv(timeout=TIMEOUT) == f"{framework}: message {i}"
        # The client goes: the endpoint sees WebSocketDisconnect, nothing is counted as failed.
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0


# -- backpressure -------------------------------------------------------------------------------
def _stats(server) -> dict:
    with ws_connect(uri(server, "/stats")) as ws:
        return json.loads(ws.recv(timeout=TIMEOUT))


@pytest.mark.parametrize(("dispatch", "poller"), [("inline", "epoll-lt"), ("inline", "epoll-et"),
                                                  ("multi-reactor", "epoll-et")])
def test_client_that_stops_reading_blocks_the_apps_send(front, dispatch, poller):
    """The app sends 256 KiB messages to a client that reads nothing: its send blocks and
    the server's memory stays bounded; when the client goes, the send raises OSError.
    (One process: the app's progress is read over a second WebSocket, /stats.)"""
    with serve("flood_app", dispatch=dispatch, poller=poller, front=front) as server:
        baseline = rss_kib(server.pid)
        client = RawClient(server.address, "/flood", bufsize=65536)
        try:
            assert client.status == 101
            deadline = time.monotonic() + TIMEOUT
            previous = None
            while True:  # until the app is blocked in send and has stopped making progress
                stats = _stats(server)
                if stats["blocked"] and previous == stats["sent"]:
                    break
                previous = stats["sent"]
                assert time.monotonic() < deadline, stats
            # high_water (256 KiB) + the kernel's socket buffers, in 256 KiB messages
            assert stats["sent"] < 40, stats
            assert rss_kib(server.pid) - baseline < 48 * 1024
        finally:
            client.close()
        deadline = time.monotonic() + TIMEOUT
        while _stats(server)["disconnected"] is None:
            assert time.monotonic() < deadline
        assert _stats(server)["disconnected"] == "ClientDisconnected"


def test_app_that_stops_receiving_pauses_reading(front):
    """Messages the app does not receive wait, at most ws_max_queue of them; then reading
    pauses and the client's sends stall. Released, the app gets every message."""
    with serve("slow_receiver_app", "--ws-max-queue", "4", front=front) as server:
        client = RawClient(server.address, "/slow")
        message = client.frames.send(BytesMessage(data=b"m" * (256 * 1024)))
        count = 100
        progress = {"sent": 0}

        def sender():
            for _ in range(count):
                client.sock.sendall(message)
                progress["sent"] += 1
            client.send(TextMessage(data="last"))

        thread = threading.Thread(target=sender, daemon=True)
        try:
            thread.start()
            deadline = time.monotonic() + TIMEOUT
            previous = -1
            while progress["sent"] != previous:  # until the sender stalls
                previous = progress["sent"]
                thread.join(0.3)
                assert time.monotonic() < deadline
            assert thread.is_alive() and progress["sent"] < count // 2, progress
            baseline = rss_kib(server.pid)
            release = RawClient(server.address, "/release")
            release.close()
            thread.join(TIMEOUT)
            assert not thread.is_alive()
            event = client.next_event()
            assert isinstance(event, TextMessage) and event.data == str(count + 1), event
            assert rss_kib(server.pid) - baseline < 32 * 1024
        finally:
            client.close()


# -- apps that are not ASGI, and ws=none ----------------------------------------------------------
def test_wsgi_app_answers_an_upgrade_request_as_plain_http():
    require_scheme("inline")
    with ServerProcess("--protocol", "http", "--app", "ws_testing:wsgi_app", env=server_env()) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
        try:
            conn.request("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                                                "Sec-WebSocket-Version": "13"})
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"plain HTTP for /ws"
        finally:
            conn.close()


def test_ws_none_makes_an_upgrade_plain_http():
    """With ws = none the ASGI app gets an ordinary http scope for an upgrade request."""
    with serve("http_or_ws_app", "--ws", "none", front="http") as server:
        client = RawClient(server.address, "/plain")
        try:
            assert client.status == 200, client.head
            assert client.read_to_eof().endswith(b"plain HTTP for /plain")
        finally:
            client.close()


def test_eof_and_reset_without_close_frame(front):
    """A client that vanishes (FIN or RST, no close frame) costs its connection only."""
    with serve("echo_app", front=front) as server:
        client = RawClient(server.address)
        client.send(TextMessage(data="bye"))
        assert client.next_event().data == "bye"
        client.sock.shutdown(socket.SHUT_WR)
        assert client.next_event() is None
        client.close()
        client = RawClient(server.address)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        client.close()  # RST
        with ws_connect(uri(server)) as ws:
            echo_round_trips(ws, ["others are served"])
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0


@pytest.mark.parametrize("dispatch", ("inline", "prefork"))
def test_wss_over_tls(tmp_path, dispatch, front):
    """Over TLS the scope's scheme is wss, and large messages cross the TLS layer's buffering."""
    pytest.importorskip("cryptography")
    import ssl

    from netcore.testing.certs import make_test_pki

    pki = make_test_pki(tmp_path)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    with serve("echo_app", "--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key),
               dispatch=dispatch, front=front) as server:
        host, port = server.address
        with ws_connect(f"wss://localhost:{port}/scope", ssl=context,
                        sock=socket.create_connection((host, port), timeout=TIMEOUT)) as ws:
            assert json.loads(ws.recv(timeout=TIMEOUT))["scheme"] == "wss"
            echo_round_trips(ws, ["over TLS", b"t" * (1 << 20), "é" * 100_000])
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0
