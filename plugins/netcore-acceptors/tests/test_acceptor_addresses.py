"""The ``--bind`` forms: what parses, what is refused, and the one-line message."""

from __future__ import annotations

import os
import socket

import pytest
from netcore.errors import SettingError, UsageError
from netcore_acceptors.addresses import ALLOWED, format_sockname, parse_address


@pytest.mark.parametrize(
    "text, kind, host, port, family",
    [
        ("127.0.0.1:2007", "tcp", "127.0.0.1", 2007, socket.AF_INET),
        ("127.0.0.1:0", "tcp", "127.0.0.1", 0, socket.AF_INET),
        ("0.0.0.0:65535", "tcp", "0.0.0.0", 65535, socket.AF_INET),
        (":8080", "tcp", "0.0.0.0", 8080, socket.AF_INET),
        ("*:8080", "tcp", "0.0.0.0", 8080, socket.AF_INET),
        ("localhost:0", "tcp", "localhost", 0, socket.AF_UNSPEC),
        ("echo.example.org:7", "tcp", "echo.example.org", 7, socket.AF_UNSPEC),
        ("[::1]:2007", "tcp", "::1", 2007, socket.AF_INET6),
        ("[::]:0", "tcp", "::", 0, socket.AF_INET6),
        ("[fe80::1%lo]:80", "tcp", "fe80::1%lo", 80, socket.AF_INET6),
    ],
)
def test_tcp_forms(text, kind, host, port, family):
    address = parse_address(text)
    assert (address.kind, address.host, address.port, address.family) == (kind, host, port, family)
    assert address.text == text


@pytest.mark.parametrize(
    "text, path, abstract",
    [
        ("unix:/run/echo.sock", "/run/echo.sock", False),
        ("unix:relative.sock", "relative.sock", False),
        ("unix:@netcore-test", "@netcore-test", True),
    ],
)
def test_unix_forms(text, path, abstract):
    address = parse_address(text)
    assert address.kind == "unix"
    assert address.path == path
    assert address.abstract is abstract
    assert address.unix_bind_target() == ("\0netcore-test" if abstract else path)


def test_fd_form():
    address = parse_address("fd://3")
    assert (address.kind, address.fd) == ("fd", 3)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:+1",
        "127.0.0.1:http",
        "127.0.0.1:２００７",  # full-width digits: str.isdigit() says yes, int() too
        " 127.0.0.1:2007",
        "127.0.0.1:2007 ",
        "256.1.1.1:80",
        "127.1:80",
        "bad host:80",
        "::1:2007",
        "[::1]",
        "[::1]2007",
        "[::1]:",
        "[127.0.0.1]:80",
        "[not-an-address]:80",
        "tcp://127.0.0.1:80",
        "unix:",
        "unix:@",
        "fd://",
        "fd://x",
        "fd://-1",
    ],
)
def test_bad_forms_name_the_setting_and_the_allowed_forms(text):
    with pytest.raises(SettingError) as info:
        parse_address(text)
    err = info.value
    assert isinstance(err, UsageError)  # exit status 2, no traceback
    assert (err.name, err.value, err.allowed) == ("bind", text, ALLOWED)
    assert str(err) == (
        f"setting 'bind': {text!r} is not allowed; allowed: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"
    )


def test_format_sockname_ipv4():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert format_sockname(sock) == f"127.0.0.1:{sock.getsockname()[1]}"


def test_format_sockname_ipv6():
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind ::1 here: {exc}")
        assert format_sockname(sock) == f"[::1]:{sock.getsockname()[1]}"


def test_format_sockname_unix(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        assert format_sockname(sock) == "unix"  # not bound: no name
        sock.bind(path)
        assert format_sockname(sock) == f"unix:{path}"
    os.unlink(path)


def test_format_sockname_abstract():
    name = f"netcore-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("\0" + name)
        assert format_sockname(sock) == f"unix:@{name}"
