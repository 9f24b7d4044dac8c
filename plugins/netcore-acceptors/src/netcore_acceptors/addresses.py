"""The ``--bind`` ADDR forms, parsed into a value before anything is opened.

Parsing is separate from opening so that a typo in the third ``--bind`` is reported
(exit status 2, one line) before the first two addresses are bound, and so that the
forms are written down in one place:

* ``HOST:PORT`` — an IPv4 literal or a host name; an empty host (``:2007``) means every
  IPv4 interface. A bare IPv6 literal is refused: ``::1:2007`` is ambiguous, which is
  why the bracketed form exists.
* ``[IPv6]:PORT`` — an IPv6 literal, optionally with a zone (``[fe80::1%eth0]:2007``).
* ``unix:PATH`` — a Unix stream socket; ``unix:@NAME`` is Linux's abstract namespace,
  which has no file to create or remove.
* ``fd://N`` — an already listening socket inherited as file descriptor N.
* ``tls:`` before any of them — that listener speaks TLS (docs/tls.md); without any
  ``tls:`` address, setting ``certfile`` makes every listener TLS.

Port 0 is allowed everywhere a port is: the kernel picks a free one, and
:func:`format_sockname` shows the real one afterwards.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import attrs
from netcore.errors import SettingError

#: The ``allowed`` part of every bad-address message.
ALLOWED = "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"

# A DNS name (or a single label such as ``localhost``): letters, digits, '-', '.', '_'.
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@attrs.frozen
class Address:
    """One parsed ADDR. ``kind`` says which of the other fields mean something."""

    #: ``tcp``, ``unix`` or ``fd``.
    kind: str
    #: What the user wrote, for messages.
    text: str
    #: ``tcp``: the host to bind ('' never appears: an empty host becomes ``0.0.0.0``).
    host: str | None = None
    #: ``tcp``: 0-65535; 0 lets the kernel choose.
    port: int | None = None
    #: ``tcp``: AF_INET, AF_INET6, or AF_UNSPEC for a host name resolved at bind time.
    family: int = socket.AF_UNSPEC
    #: ``unix``: the path as given (``@name`` for the abstract namespace).
    path: str | None = None
    #: ``fd``: the inherited descriptor.
    fd: int | None = None
    #: Written ``tls:ADDR``: the listener speaks TLS.
    tls: bool = False

    @property
    def abstract(self) -> bool:
        """A Linux abstract-namespace Unix socket: nothing on disk to check or remove."""
        return self.kind == "unix" and bool(self.path) and self.path.startswith("@")

    def unix_bind_target(self) -> str:
        """The string ``bind()`` takes: ``\\0name`` for ``@name``, else the path."""
        assert self.path is not None
        return "\0" + self.path[1:] if self.abstract else self.path


def _bad(value: str) -> SettingError:
    return SettingError("bind", value, ALLOWED)


def _port(text: str, value: str) -> int:
    # isdigit() alone would accept '²' and friends; int() would accept ' 1' and '+1'.
    if not text or not text.isascii() or not text.isdigit():
        raise _bad(value)
    port = int(text)
    if port > 65535:
        raise _bad(value)
    return port


def parse_address(value: str) -> Address:
    """Parse one ADDR; raise :class:`~netcore.errors.SettingError` naming ``bind`` if it is bad."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise _bad(value)
    if value.startswith("tls:"):
        inner = value[len("tls:"):]
        if inner.startswith("tls:"):
            raise _bad(value)
        return attrs.evolve(parse_address(inner), text=value, tls=True)

    if value.startswith("fd://"):
        digits = value[len("fd://") :]
        if not digits.isascii() or not digits.isdigit():
            raise _bad(value)
        return Address(kind="fd", text=value, fd=int(digits))

    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if not path or path == "@" or "\0" in path:
            raise _bad(value)
        return Address(kind="unix", text=value, path=path)

    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise _bad(value)
        port = _port(rest[1:], value)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(value) from None
        return Address(kind="tcp", text=value, host=host, port=port, family=socket.AF_INET6)

    host, sep, port_text = value.rpartition(":")
    if not sep or ":" in host:  # no port at all, or an unbracketed IPv6 literal
        raise _bad(value)
    port = _port(port_text, value)
    if host in ("", "*"):
        return Address(kind="tcp", text=value, host="0.0.0.0", port=port, family=socket.AF_INET)
    if re.fullmatch(r"[0-9.]+", host):
        # All digits and dots: it must be a dotted-quad, not a name getaddrinfo would
        # read in some surprising legacy way ("127.1", "2130706433").
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _bad(value) from None
        return Address(kind="tcp", text=value, host=host, port=port, family=socket.AF_INET)
    if not _HOSTNAME.match(host) or len(host) > 253:
        raise _bad(value)
    return Address(kind="tcp", text=value, host=host, port=port, family=socket.AF_UNSPEC)


def format_sockname(sock: socket.socket) -> str:
    """What users see for a bound socket: ``127.0.0.1:41234``, ``[::1]:2007``, ``unix:/path``.

    Taken from ``getsockname()`` rather than from what was asked, so that port 0 shows
    the port the kernel chose and an inherited socket shows where it really listens.
    """
    name = sock.getsockname()
    if sock.family == socket.AF_INET:
        return f"{name[0]}:{name[1]}"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    if sock.family == socket.AF_UNIX:
        if isinstance(name, bytes):  # the abstract namespace comes back as bytes
            if name.startswith(b"\0"):
                return "unix:@" + name[1:].decode("utf-8", "backslashreplace")
            name = name.decode("utf-8", "surrogateescape")
        return f"unix:{name}" if name else "unix"
    return repr(name)
