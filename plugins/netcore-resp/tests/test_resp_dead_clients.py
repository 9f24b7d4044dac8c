"""A client that closes while blocked (BLPOP, BZPOPMIN, BLMOVE...) is dropped at once, as in Redis.

Before, the connection stayed half-closed, waiting to answer: INFO counted it connected
and blocked, the next push handed its value to the departed client (lost), and with
timeout 0 its fd was held for ever. Every wait here is a bounded poll of INFO.
"""

from __future__ import annotations

import socket
import time

import pytest
from netcore.testing.server_process import ServerProcess, open_fds

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 10.0
#: A low high-water mark: a reply of 200 KB the client does not read pauses its reading.
SERVER_ARGS = ["--high-water", "16384", "--low-water", "4096"]

#: Loaded by the servers of this module: listening sockets get a 4 KB send buffer, which
#: accepted sockets inherit, so that the kernel cannot absorb such a reply on loopback
#: (its send buffer grows to megabytes there).
SMALL_SEND_BUFFERS = """
import socket
_listen = socket.socket.listen
def listen(self, *args):
    self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return _listen(self, *args)
socket.socket.listen = listen
"""


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    directory = tmp_path_factory.mktemp("small_send_buffers")
    (directory / "sitecustomize.py").write_text(SMALL_SEND_BUFFERS)
    return {"PYTHONPATH": str(directory)}


#: The conftest's schemes (inline, pool, multi-reactor).
SCHEMES = {
    "inline": ["--dispatch", "inline", "--poller", "epoll-lt"],
    "pool": ["--dispatch", "pool", "--threads", "4", "--poller", "epoll-lt"],
    "multi-reactor": ["--dispatch", "multi-reactor", "--workers", "2", "--poller", "epoll-lt"],
}


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def scheme_server(request, server_env):
    """One server per scheme, with the small send buffers above."""
    with ServerProcess("--protocol", "resp", *SERVER_ARGS, *SCHEMES[request.param], env=server_env) as server:
        yield server
        server.stop()


def info_clients(client) -> tuple[int, int]:
    info = client.info("clients")
    return info["connected_clients"], info["blocked_clients"]


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {PATIENCE}s: {what}")
        time.sleep(0.01)  # polling a server's state, not waiting for it: bounded by the deadline


@pytest.fixture
def control(scheme_server):
    host, port = scheme_server.address
    client = redis.Redis(host=host, port=port, socket_timeout=PATIENCE, protocol=2)
    client.flushall()
    yield client
    client.close()


def block_and_leave(address, command: bytes) -> socket.socket:
    """Send ``command`` (which blocks) on a new connection; return it, still open."""
    sock = socket.create_connection(address, timeout=PATIENCE)
    sock.sendall(command)
    return sock


@pytest.mark.parametrize("command, push, check", [
    (b"BLPOP q 0\r\n", ("rpush", "q", "x"), ("lrange", "q", 0, -1)),
    (b"BLPOP q 60\r\n", ("rpush", "q", "x"), ("lrange", "q", 0, -1)),
    (b"BZPOPMIN z 0\r\n", ("zadd", "z", {"m": 1}), ("zrange", "z", 0, -1)),
    (b"BLMOVE src dst LEFT RIGHT 0\r\n", ("rpush", "src", "x"), ("lrange", "src", 0, -1)),
], ids=["blpop-0", "blpop-60", "bzpopmin", "blmove"])
def test_a_blocked_client_that_closes_is_dropped_and_the_push_stays(scheme_server, control, command, push, check):
    connected, _ = info_clients(control)
    sock = block_and_leave(scheme_server.address, command)
    wait_for(lambda: info_clients(control) == (connected + 1, 1), "the client blocks")
    sock.close()
    wait_for(lambda: info_clients(control) == (connected, 0), "the departed client is dropped")
    getattr(control, push[0])(*push[1:])
    assert getattr(control, check[0])(*check[1:]) == [b"x" if push[0] != "zadd" else b"m"]
    if check[1] == "src":
        assert control.lrange("dst", 0, -1) == []  # the departed client's move did not run


def test_twenty_departed_blocked_clients_hold_no_descriptor(scheme_server, control):
    connected, _ = info_clients(control)
    baseline = len([fd for fd in open_fds(scheme_server.pid) if fd.startswith("socket:")])
    socks = [block_and_leave(scheme_server.address, b"BLPOP never%d 0\r\n" % i) for i in range(20)]
    wait_for(lambda: info_clients(control) == (connected + 20, 20), "20 clients block")
    for sock in socks:
        sock.close()
    wait_for(lambda: info_clients(control) == (connected, 0), "all 20 are dropped")
    wait_for(lambda: len([fd for fd in open_fds(scheme_server.pid) if fd.startswith("socket:")]) <= baseline,
             "their sockets are closed")


def test_a_blocked_client_whose_fin_waits_behind_unread_output_is_dropped(scheme_server, control):
    """Its connection is not reading (the reply before BLPOP passes the high-water mark and
    it reads nothing), so the FIN can only come from EPOLLRDHUP: the core's paused path."""
    connected, _ = info_clients(control)
    control.set("big", b"v" * (200 * 1024))  # below the part size that would stream it
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(PATIENCE)
    sock.connect(scheme_server.address)
    try:
        sock.sendall(b"GET big\r\nBLPOP q 0\r\n")
        wait_for(lambda: info_clients(control) == (connected + 1, 1), "the client blocks")
        sock.shutdown(socket.SHUT_WR)  # FIN only: with unread input close() would send RST
        wait_for(lambda: info_clients(control) == (connected, 0), "the departed client is dropped")
        control.rpush("q", "x")
        assert control.lrange("q", 0, -1) == [b"x"]
    finally:
        sock.close()


@pytest.mark.parametrize("poller", ["poll", "epoll-et"])
def test_the_paused_path_under_the_other_pollers(poller, server_env):
    with ServerProcess("--protocol", "resp", "--dispatch", "inline", "--poller", poller, *SERVER_ARGS,
                       env=server_env) as server:
        host, port = server.address
        control = redis.Redis(host=host, port=port, socket_timeout=PATIENCE, protocol=2)
        test_a_blocked_client_whose_fin_waits_behind_unread_output_is_dropped(server, control)
        control.close()
        server.stop()
