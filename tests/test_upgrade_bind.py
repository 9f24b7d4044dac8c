"""Inherited listening sockets and ``--bind``: a USR2 upgrade and systemd socket activation.

Both hand a new process its listening sockets (``LISTEN_FDS``, descriptors from 3 up).
An address of ``--bind`` that an inherited socket already listens on is that socket;
binding it again failed with EADDRINUSE (the port is taken by the very socket handed
over), so an upgrade never worked for a server that names its address. An inherited
socket that no ``--bind`` names is served as well.

Real ``netcore serve`` processes on fixed loopback ports (port 0 asks for a new port,
so it never names an inherited socket), real signals; the systemd side is a small
launcher that binds the socket, puts it on descriptor 3 and executes netcore, as
systemd does.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import sys
import textwrap

import pytest
from deployment_testing import free_port
from netcore.testing.clients import connect, recv_exactly
from netcore.testing.server_process import ServerProcess, wait_gone

# systemd's part: listen on argv[1] (a port, or unix:PATH), hand the socket over as fd 3
# with LISTEN_FDS/LISTEN_PID naming this process, then become `python -m netcore ARGS`.
LAUNCHER = textwrap.dedent("""
    import os, socket, sys
    where, args = sys.argv[1], sys.argv[2:]
    if where.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(where[len("unix:"):])
    else:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(where)))
    sock.listen(128)
    if sock.fileno() != 3:
        os.dup2(sock.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(sys.executable, [sys.executable, "-m", "netcore", *args])
""")


def activated(where: str, *args: str, bind: str) -> ServerProcess:
    """``netcore serve ARGS --bind BIND`` started the way systemd starts a socket-activated unit."""
    return ServerProcess(*args, bind=bind, executable=[sys.executable, "-c", LAUNCHER, where])


def get(address) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def echo(address, payload: bytes = b"ping") -> bytes:
    with connect(address) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def unix_echo(path: str, payload: bytes = b"ping") -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


# -- USR2 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ["prefork", "prefork-blocking"])
def test_usr2_successor_serves_the_bound_address_it_inherited(dispatch, tmp_path):
    pidfile = tmp_path / "netcore.pid"
    port = free_port()
    with ServerProcess("--protocol", "http", "--dispatch", dispatch, "--workers", "1", "--pid", str(pidfile),
                       bind=f"127.0.0.1:{port}") as server:
        server.wait_events("worker.started", 1)
        os.kill(server.pid, signal.SIGUSR2)
        new = server.wait_event("master.upgrade", 10)["new_master"]
        outcome = server.wait_first(("server.started", {"pid": new}), ("master.successor_exited", {}), timeout=30)
        assert outcome["event"] == "server.started", server.describe()
        assert outcome["addresses"] == [f"127.0.0.1:{port}"]  # the one socket, not bound twice
        server.wait_events("worker.started", 2, timeout=30)
        os.kill(server.pid, signal.SIGTERM)  # keep the new master
        assert server.proc.wait(30) == 0
        assert get(("127.0.0.1", port))[0] == 200
        assert pidfile.read_text().strip() == str(new)
        assert not server.events_named("master.successor_exited")
        os.kill(new, signal.SIGTERM)
        assert wait_gone([new], 30) == []


def test_usr2_successor_on_a_unix_socket_it_inherited(tmp_path):
    path = tmp_path / "s.sock"
    with ServerProcess("--dispatch", "prefork", "--workers", "1", bind=f"unix:{path}") as server:
        server.wait_events("worker.started", 1)
        os.kill(server.pid, signal.SIGUSR2)
        new = server.wait_event("master.upgrade", 10)["new_master"]
        outcome = server.wait_first(("server.started", {"pid": new}), ("master.successor_exited", {}), timeout=30)
        assert outcome["event"] == "server.started", server.describe()
        assert outcome["addresses"] == [f"unix:{path}"]
        server.wait_events("worker.started", 2, timeout=30)
        os.kill(server.pid, signal.SIGTERM)
        assert server.proc.wait(30) == 0
        assert unix_echo(str(path)) == b"ping"  # served by the new master alone now
        os.kill(new, signal.SIGTERM)
        assert wait_gone([new], 30) == []


# -- systemd socket activation ---------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ["inline", "prefork"])
def test_socket_activation_with_bind_naming_the_socket(dispatch):
    port = free_port()
    with activated(str(port), "--dispatch", dispatch, "--workers", "1", bind=f"127.0.0.1:{port}") as server:
        assert server.addresses == [f"127.0.0.1:{port}"]
        assert echo(("127.0.0.1", port)) == b"ping"
        assert server.stop() == 0


def test_socket_activation_with_bind_naming_a_unix_socket(tmp_path):
    path = tmp_path / "activated.sock"
    with activated(f"unix:{path}", "--dispatch", "inline", bind=f"unix:{path}") as server:
        assert server.addresses == [f"unix:{path}"]
        assert unix_echo(str(path)) == b"ping"
        assert server.stop() == 0
    assert path.exists()  # systemd's file: left where it was


def test_socket_activation_serves_an_inherited_socket_no_bind_names_too():
    inherited, named = free_port(), free_port()
    with activated(str(inherited), "--dispatch", "inline", bind=f"127.0.0.1:{named}") as server:
        assert server.addresses == [f"127.0.0.1:{inherited}", f"127.0.0.1:{named}"]
        assert echo(("127.0.0.1", inherited)) == b"ping"
        assert echo(("127.0.0.1", named)) == b"ping"
        assert server.stop() == 0


def test_socket_activation_keeps_tls_of_the_address_that_names_the_socket(tmp_path):
    pytest.importorskip("cryptography", reason="the certificates are made with cryptography")
    from netcore.testing.certs import make_test_pki

    (tmp_path / "pki").mkdir()
    pki = make_test_pki(tmp_path / "pki")
    port = free_port()
    with activated(str(port), "--dispatch", "inline", "--certfile", str(pki.server_cert),
                   "--keyfile", str(pki.server_key), bind=f"tls:127.0.0.1:{port}") as server:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                 server_hostname="localhost") as sock:
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
        assert server.stop() == 0
