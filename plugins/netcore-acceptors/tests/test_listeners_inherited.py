"""Inherited sockets matched to the addresses of ``bind`` (a USR2 successor, systemd).

Each case runs in a child whose descriptors from 3 up are the handed-over sockets, as
systemd and a USR2 predecessor leave them; the child reports what ``open_listeners``
made of them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent(
    """
    import fcntl, json, os, sys
    from netcore_acceptors.listeners import close_listeners, open_listeners

    # Out of the way first, so that no move onto 3.. overwrites another handed-over one.
    handed = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 100) for fd in sys.argv[1].split(",")]
    addresses = json.loads(sys.argv[2])
    for index, fd in enumerate(handed):
        os.dup2(fd, 3 + index)
        os.close(fd)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = str(len(handed))
    listeners = open_listeners(addresses, 16)
    print(json.dumps([{"fd": l.fileno(), "address": l.address, "inherited": l.inherited, "tls": l.tls}
                      for l in listeners]))
    close_listeners(listeners)
    """
)


def _handed_over(addresses: list[str], *sockets: socket.socket) -> list[dict]:
    fds = [sock.fileno() for sock in sockets]
    result = subprocess.run([sys.executable, "-c", _CHILD, ",".join(map(str, fds)), json.dumps(addresses)],
                            pass_fds=fds, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _tcp(host: str = "127.0.0.1", family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_an_address_an_inherited_socket_listens_on_is_that_socket():
    with _tcp() as first, _tcp() as second:
        a, b = first.getsockname()[1], second.getsockname()[1]
        listeners = _handed_over([f"127.0.0.1:{b}", f"tls:127.0.0.1:{a}"], first, second)
    assert listeners == [
        {"fd": 4, "address": f"127.0.0.1:{b}", "inherited": True, "tls": False},
        {"fd": 3, "address": f"127.0.0.1:{a}", "inherited": True, "tls": True},
    ]


def test_ipv6_and_a_host_name_are_matched_on_what_they_resolve_to():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    # The first address of localhost here is the one binding localhost:PORT would take.
    family, _type, _proto, _canon, sockaddr = socket.getaddrinfo(
        "localhost", 0, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
    with _tcp(sockaddr[0], family) as by_name, _tcp("::1", socket.AF_INET6) as six:
        pn, p6 = by_name.getsockname()[1], six.getsockname()[1]
        listeners = _handed_over([f"[::1]:{p6}", f"localhost:{pn}"], by_name, six)
    assert [(entry["fd"], entry["inherited"]) for entry in listeners] == [(4, True), (3, True)]


def test_port_zero_names_no_inherited_socket():
    with _tcp() as handed:
        port = handed.getsockname()[1]
        listeners = _handed_over(["127.0.0.1:0"], handed)
    assert [entry["address"] for entry in listeners][0] == f"127.0.0.1:{port}"
    assert [entry["inherited"] for entry in listeners] == [True, False]


def test_unix_paths_relative_or_absolute_and_abstract_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.sock"
    name = f"netcore-inherit-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as on_disk, socket.socket(socket.AF_UNIX) as abstract:
        on_disk.bind(str(path))
        on_disk.listen()
        abstract.bind("\0" + name)
        abstract.listen()
        # The child runs in tmp_path too (inherited cwd): "s.sock" is the same file.
        listeners = _handed_over([f"unix:@{name}", "unix:s.sock"], on_disk, abstract)
    assert [(entry["fd"], entry["inherited"]) for entry in listeners] == [(4, True), (3, True)]
    assert path.exists()  # not unlinked and bound anew


def test_fd_address_of_an_inherited_descriptor_is_adopted_once():
    with _tcp() as handed:
        listeners = _handed_over(["fd://3"], handed)
    assert [(entry["fd"], entry["inherited"]) for entry in listeners] == [(3, True)]
