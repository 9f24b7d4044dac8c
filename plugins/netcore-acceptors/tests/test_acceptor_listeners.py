"""Opening, adopting and closing listening sockets — all on real sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from acceptor_testing import open_fds
from netcore.errors import SettingError, UsageError
from netcore_acceptors.listeners import (
    DEFAULT_BIND,
    FD_ALLOWED,
    close_listeners,
    default_backlog,
    open_listeners,
)

BACKLOG = 64


def _ipv6_loopback_or_skip() -> None:
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind [::1] here: {exc}")


def test_default_backlog_is_somaxconn():
    with open("/proc/sys/net/core/somaxconn") as f:
        assert default_backlog() == int(f.read())


def test_tcp_ipv4_port_zero_gives_the_real_port():
    (listener,) = open_listeners(["127.0.0.1:0"], BACKLOG, use_systemd=False)
    try:
        sock = listener.sock
        host, port = sock.getsockname()
        assert port != 0
        assert listener.address == f"127.0.0.1:{port}"
        assert (listener.kind, listener.path, listener.inherited) == ("tcp", None, False)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert os.get_blocking(sock.fileno()) is False
        assert sock.get_inheritable() is False  # close-on-exec; fork still shares it
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        close_listeners([listener])
    assert listener.sock.fileno() == -1


def test_tcp_ipv6():
    _ipv6_loopback_or_skip()
    (listener,) = open_listeners(["[::1]:0"], BACKLOG, use_systemd=False)
    try:
        port = listener.sock.getsockname()[1]
        assert listener.address == f"[::1]:{port}"
        assert listener.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        with socket.create_connection(("::1", port), timeout=5):
            pass
    finally:
        close_listeners([listener])


def test_ipv6_any_is_v6only_so_ipv4_can_take_the_same_port():
    _ipv6_loopback_or_skip()
    (v6,) = open_listeners(["[::]:0"], BACKLOG, use_systemd=False)
    try:
        port = v6.sock.getsockname()[1]
        (v4,) = open_listeners([f"0.0.0.0:{port}"], BACKLOG, use_systemd=False)
        close_listeners([v4])
    finally:
        close_listeners([v6])


def test_host_name_is_resolved():
    (listener,) = open_listeners(["localhost:0"], BACKLOG, use_systemd=False)
    try:
        assert listener.address.endswith(f":{listener.sock.getsockname()[1]}")
    finally:
        close_listeners([listener])


def test_address_in_use_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError) as info:
            open_listeners([f"127.0.0.1:{port}"], BACKLOG, use_systemd=False)
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use"
    assert "\n" not in str(info.value)


def test_unresolvable_host_is_a_usage_error():
    with pytest.raises(UsageError, match=r"^cannot listen on no-such-host\.invalid:0: "):
        open_listeners(["no-such-host.invalid:0"], BACKLOG, use_systemd=False)


def test_a_later_failure_closes_what_was_opened(tmp_path):
    path = tmp_path / "first.sock"
    before = open_fds()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError):
            open_listeners(["127.0.0.1:0", f"unix:{path}", f"127.0.0.1:{port}"], BACKLOG, use_systemd=False)
    assert open_fds() == before
    assert not path.exists()


def test_a_bad_address_is_refused_before_anything_is_opened(tmp_path):
    path = tmp_path / "never.sock"
    with pytest.raises(SettingError):
        open_listeners([f"unix:{path}", "not an address"], BACKLOG, use_systemd=False)
    assert not path.exists()


# -- Unix sockets -------------------------------------------------------------------------


def test_unix_socket_created_and_removed_on_close(tmp_path):
    path = str(tmp_path / "echo.sock")
    (listener,) = open_listeners([f"unix:{path}"], BACKLOG, use_systemd=False)
    try:
        assert (listener.kind, listener.path, listener.address) == ("unix", path, f"unix:{path}")
        assert os.path.exists(path)
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(path)
    finally:
        close_listeners([listener])
    assert not os.path.exists(path)
    close_listeners([listener])  # idempotent


def test_unix_relative_path_is_removed_from_where_it_was_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (listener,) = open_listeners(["unix:rel.sock"], BACKLOG, use_systemd=False)
    assert listener.path == str(tmp_path / "rel.sock")
    monkeypatch.chdir("/")
    close_listeners([listener])
    assert not (tmp_path / "rel.sock").exists()


def test_stale_unix_socket_is_replaced(tmp_path):
    path = str(tmp_path / "stale.sock")
    crashed = socket.socket(socket.AF_UNIX)
    crashed.bind(path)
    crashed.listen()
    crashed.close()  # as after a crash: the file stays, nobody listens
    assert os.path.exists(path)
    (listener,) = open_listeners([f"unix:{path}"], BACKLOG, use_systemd=False)
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(path)
    finally:
        close_listeners([listener])


def test_live_unix_socket_is_not_stolen(tmp_path):
    path = str(tmp_path / "live.sock")
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)
        other.listen()
        with pytest.raises(UsageError, match="another server is listening"):
            open_listeners([f"unix:{path}"], BACKLOG, use_systemd=False)
        assert os.path.exists(path)
    os.unlink(path)


def test_non_socket_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    with pytest.raises(UsageError) as info:
        open_listeners([f"unix:{path}"], BACKLOG, use_systemd=False)
    assert str(info.value) == (
        f"cannot listen on unix:{path}: {path} exists and is not a socket; remove it or choose another path"
    )
    assert path.read_text() == "keep me"


def test_abstract_unix_socket():
    name = f"netcore-acceptors-test-{os.getpid()}"
    (listener,) = open_listeners([f"unix:@{name}"], BACKLOG, use_systemd=False)
    try:
        assert listener.address == f"unix:@{name}"
        assert listener.path is None  # nothing on disk to remove
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect("\0" + name)
    finally:
        close_listeners([listener])


def test_forked_worker_closing_does_not_remove_the_masters_socket_file(tmp_path):
    path = str(tmp_path / "shared.sock")
    (listener,) = open_listeners([f"unix:{path}"], BACKLOG, use_systemd=False)
    try:
        pid = os.fork()
        if pid == 0:  # the worker: closes its copies, exits
            try:
                close_listeners([listener])
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.path.exists(path)
    finally:
        close_listeners([listener])
    assert not os.path.exists(path)


# -- fd://N -------------------------------------------------------------------------------


def test_fd_adoption():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    os.set_inheritable(sock.fileno(), True)  # as a parent hands it over
    fd = sock.detach()  # the listener owns it from now on
    (listener,) = open_listeners([f"fd://{fd}"], BACKLOG, use_systemd=False)
    try:
        assert listener.fileno() == fd
        assert (listener.address, listener.kind, listener.inherited) == (f"127.0.0.1:{port}", "tcp", True)
        assert os.get_blocking(fd) is False
        assert os.get_inheritable(fd) is False
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        close_listeners([listener])


def test_fd_that_is_not_listening_is_refused_and_left_open():
    with socket.socket() as sock:
        with pytest.raises(UsageError) as info:
            open_listeners([f"fd://{sock.fileno()}"], BACKLOG, use_systemd=False)
        assert str(info.value) == (f"setting 'bind': 'fd://{sock.fileno()}' is not allowed (it is a stream socket "
                                   f"that is not listening); allowed: {FD_ALLOWED}")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM  # still open


def test_fd_that_is_a_datagram_socket_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(UsageError, match=rf"^setting 'bind': 'fd://{sock.fileno()}' is not allowed \(it is a non-stream socket"):
            open_listeners([f"fd://{sock.fileno()}"], BACKLOG, use_systemd=False)


def test_fd_that_is_not_a_socket_is_refused_and_left_open():
    r, w = os.pipe()
    try:
        with pytest.raises(UsageError, match=rf"^setting 'bind': 'fd://{r}' is not allowed \(.*Socket operation on non-socket.*; allowed: fd://N "):
            open_listeners([f"fd://{r}"], BACKLOG, use_systemd=False)
        os.fstat(r)  # still open
    finally:
        os.close(r)
        os.close(w)


def test_fd_that_is_not_open_is_refused():
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(UsageError, match=rf"^setting 'bind': 'fd://{fd}' is not allowed \(.*Bad file descriptor\); allowed: fd://N "):
        open_listeners([f"fd://{fd}"], BACKLOG, use_systemd=False)


# -- systemd socket activation -------------------------------------------------------------

# Runs in a child: fd 3 is the child's own, so dup2 onto it cannot clobber pytest's files.
_SYSTEMD_CHILD = textwrap.dedent(
    """
    import json, os, socket, sys
    from netcore_acceptors.listeners import DEFAULT_BIND, close_listeners, open_listeners

    handed = int(sys.argv[1])
    mode = sys.argv[2]
    os.dup2(handed, 3)
    os.close(handed)
    os.environ["LISTEN_PID"] = str(os.getpid() + (1 if mode == "other-pid" else 0))
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_FDNAMES"] = "echo"
    # Port 0, not the default address, where the default would be bound for real.
    addresses = [DEFAULT_BIND] if mode == "default" else ["127.0.0.1:0"]
    listeners = open_listeners(addresses, 16, use_systemd=(mode != "disabled"))
    report = {
        "listeners": [
            {"fd": l.fileno(), "address": l.address, "inherited": l.inherited} for l in listeners
        ],
        "env": {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")},
        "cloexec": not os.get_inheritable(3) if any(l.fileno() == 3 for l in listeners) else None,
    }
    # The adopted socket really is the parent's listener: a connection reaches it.
    for l in listeners:
        if l.inherited:
            host, port = l.sock.getsockname()
            with socket.create_connection((host, port), timeout=5):
                l.sock.setblocking(True)
                l.sock.settimeout(5)
                conn, _ = l.sock.accept()
                conn.close()
    close_listeners(listeners)
    print(json.dumps(report))
    """
)


def _run_systemd_child(mode: str) -> tuple[dict, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-c", _SYSTEMD_CHILD, str(sock.fileno()), mode],
            pass_fds=[sock.fileno()],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        sock.close()
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), port


def test_systemd_sockets_replace_the_default_bind():
    report, port = _run_systemd_child("default")
    assert report["listeners"] == [{"fd": 3, "address": f"127.0.0.1:{port}", "inherited": True}]
    assert report["env"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
    assert report["cloexec"] is True


def test_systemd_sockets_join_explicit_addresses():
    report, port = _run_systemd_child("explicit")
    assert len(report["listeners"]) == 2
    assert report["listeners"][0] == {"fd": 3, "address": f"127.0.0.1:{port}", "inherited": True}
    assert report["listeners"][1]["inherited"] is False
    assert report["env"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}


def test_systemd_variables_for_another_process_are_ignored_and_removed():
    report, _port = _run_systemd_child("other-pid")
    assert [entry["inherited"] for entry in report["listeners"]] == [False]
    assert report["env"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}


def test_systemd_can_be_turned_off():
    report, _port = _run_systemd_child("disabled")
    assert [entry["inherited"] for entry in report["listeners"]] == [False]
    assert report["env"]["LISTEN_FDS"] == "1"  # untouched: not ours to consume


def test_default_bind_constant():
    assert DEFAULT_BIND == "127.0.0.1:2007"
