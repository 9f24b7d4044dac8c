"""CLIENT LIST / INFO / KILL with Redis's fields, and behind a PROXY header the original
client's address: a balancer's own address in ``addr=`` would make CLIENT KILL
ADDR and every monitoring view useless. ``laddr=`` stays the server's end of the socket.

The balancer is played by the test, writing a real v1 or v2 header
(``netcore.reactor.proxy_protocol``'s builders) before its first command.
"""

from __future__ import annotations

import socket
import time

import pytest
from netcore.reactor.proxy_protocol import build_v1, build_v2
from netcore.testing.server_process import ServerProcess

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 20.0
CLIENT = ("203.0.113.7", 56324)
CLIENT6 = ("2001:db8::7", 4242)
FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub", "ssub", "multi", "qbuf",
          "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl", "oll", "omem", "tot-mem", "events", "cmd", "user",
          "redir", "resp", "lib-name", "lib-ver"]


def command(sock: socket.socket, *args: bytes) -> bytes:
    """Send one command; read one reply (a bulk string or a line), bounded."""
    sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    data = b""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed after {data!r}")
        data += chunk
        if data[:1] == b"$":
            head, _, rest = data.partition(b"\r\n")
            if len(rest) >= int(head[1:]) + 2:
                return rest[:int(head[1:])]
        elif data.endswith(b"\r\n"):
            return data
    raise AssertionError(f"no reply within {PATIENCE}s: {data!r}")


def parse(line: bytes) -> dict[str, str]:
    return dict(field.split("=", 1) for field in line.decode().strip().split(" "))


@pytest.fixture(scope="module")
def proxied():
    with ServerProcess("--protocol", "resp", "--proxy-protocol", "any", "--dispatch", "inline") as server:
        yield server
        server.stop()


@pytest.mark.parametrize("header", ["v1", "v2", "v2-ipv6"])
def test_addr_is_the_original_client_behind_a_proxy_header(proxied, header):
    source = CLIENT6 if header.endswith("ipv6") else CLIENT
    destination = ("2001:db8::1", 6379) if header.endswith("ipv6") else ("192.0.2.1", 6379)
    prefix = build_v1(source, destination) if header == "v1" else build_v2(source, destination)
    expected = f"[{source[0]}]:{source[1]}" if ":" in source[0] else f"{source[0]}:{source[1]}"
    with socket.create_connection(proxied.address, timeout=PATIENCE) as sock:
        sock.sendall(prefix)
        assert command(sock, b"CLIENT", b"SETNAME", b"behind-proxy") == b"+OK\r\n"
        mine = parse(command(sock, b"CLIENT", b"INFO"))
        assert list(mine) == FIELDS
        assert mine["addr"] == expected
        local = sock.getpeername()
        assert mine["laddr"] == f"{local[0]}:{local[1]}"  # the server's end of this very socket
        assert mine["name"] == "behind-proxy" and mine["cmd"] == "client|list"
        # The same line in CLIENT LIST, seen from a client without a header of its own.
        with socket.create_connection(proxied.address, timeout=PATIENCE) as other:
            other.sendall(build_v1(("198.51.100.9", 1000), ("192.0.2.1", 6379)))
            listed = [parse(line) for line in command(other, b"CLIENT", b"LIST").splitlines()]
            assert [entry["addr"] for entry in listed if entry["name"] == "behind-proxy"] == [expected]
            # CLIENT KILL ADDR takes the address CLIENT LIST shows.
            assert command(other, b"CLIENT", b"KILL", b"ADDR", expected.encode()) == b":1\r\n"
        sock.settimeout(PATIENCE)
        assert sock.recv(100) == b""  # killed


def test_client_list_kill_and_info_without_a_proxy():
    with ServerProcess("--protocol", "resp", "--dispatch", "pool", "--threads", "2") as server:
        main = redis.Redis(*server.address, socket_timeout=PATIENCE, protocol=3)
        # The victim is a plain socket: a client library would reconnect and hide the kill.
        with socket.create_connection(server.address, timeout=PATIENCE) as victim_sock:
            assert command(victim_sock, b"CLIENT", b"SETNAME", b"victim") == b"+OK\r\n"
            entries = {entry["name"]: entry for entry in main.client_list()}
            victim, me = entries["victim"], entries[""]
            assert victim["addr"] == "%s:%d" % victim_sock.getsockname()
            assert victim["laddr"] == "%s:%d" % server.address
            assert victim["flags"] == "N" and victim["db"] == "0" and victim["resp"] == "2"
            assert me["resp"] == "3" and me["cmd"] == "client|list"
            assert main.client_list(_type="pubsub") == []
            assert main.execute_command("CLIENT", "KILL", "ID", victim["id"]) == 1
            try:
                assert victim_sock.recv(100) == b""  # closed by the kill
            except ConnectionResetError:
                pass  # closed at once, unsent output and all, as Redis frees a killed client
        assert main.execute_command("CLIENT", "KILL", "ID", victim["id"]) == 0
        with pytest.raises(redis.ResponseError, match="No such client"):
            main.execute_command("CLIENT", "KILL", "127.0.0.1:1")
        info = main.info()
        assert info["connected_clients"] >= 1 and info["total_connections_received"] >= 2
        assert info["total_commands_processed"] >= 3
        for name in ("used_cpu_user", "used_memory", "role", "rdb_changes_since_last_save"):
            assert name in info, name
        main.close()
        server.stop()
