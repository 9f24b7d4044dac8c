"""The PROXY protocol header (HAProxy's, versions 1 and 2): parsing only, no I/O.

A load balancer that terminates nothing but forwards bytes (HAProxy ``send-proxy`` /
``send-proxy-v2``, nginx ``proxy_protocol on``, cloud L4 balancers) writes one header
before the client's first byte, saying who the client was. It is read exactly once per
connection, before TLS and before the protocol, so nothing here is on the per-message
path.

Why the parser reports how many bytes it needs rather than taking "whatever arrived":
the bytes after the header belong to the next layer (a TLS ClientHello, an HTTP request),
and an ``SSLSocket`` cannot be handed bytes already read from its socket. So callers
consume exactly the header and nothing more (:func:`wanted` says how much to read next).

* Version 1: one text line, ``PROXY TCP4|TCP6|UNKNOWN src dst sport dport\\r\\n``, at
  most 107 bytes. ``UNKNOWN`` keeps the socket's own peer.
* Version 2: a 12-byte signature, a version/command byte, a family/transport byte, a
  16-bit length, then the addresses and optional TLVs (ignored). Command ``LOCAL`` (a
  health check of the balancer itself) and family ``UNSPEC`` keep the socket's own peer.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

import attrs

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest version-1 line, CRLF included.
V1_MAX = 107
#: Fixed part of a version-2 header: signature, ver/cmd, fam, length.
V2_FIXED = 16

_V2_ADDRESS_SIZES = {0x1: 12, 0x2: 36, 0x3: 216}


class ProxyHeaderError(ValueError):
    """The header is malformed (or not a header where one is required)."""


@attrs.frozen
class ProxyHeader:
    """A parsed header: its size on the wire, its version, and who the client was."""

    #: Bytes the header took, to be consumed from the socket.
    size: int
    #: 1 or 2.
    version: int
    #: The original client as a socket peer looks (``(host, port)``, ``(host, port, 0, 0)``
    #: for IPv6, a path for Unix), or None to keep the socket's own peer (LOCAL, UNKNOWN,
    #: UNSPEC).
    source: Any = None
    #: The address the client connected to on the balancer (same form), or None.
    destination: Any = None


def signature_state(data: bytes) -> int | None:
    """Which version ``data`` starts like: 1, 2, 0 (neither, so no header), None (too short to say)."""
    for version, signature in ((1, V1_PREFIX), (2, V2_SIGNATURE)):
        n = min(len(data), len(signature))
        if data[:n] == signature[:n]:
            return version if len(data) >= len(signature) else None
    return 0


def wanted(data: bytes) -> int:
    """How many more bytes may be read without reading past the header (at least 1).

    Version 1 has no length field, so the caller peeks and reads only up to the line's end;
    this returns the most that can still belong to the line.
    """
    state = signature_state(data)
    if state == 2:
        if len(data) < V2_FIXED:
            return V2_FIXED - len(data)
        return max(1, V2_FIXED + struct.unpack_from("!H", data, 14)[0] - len(data))
    if state is None and data[:1] == V2_SIGNATURE[:1]:
        return V2_FIXED - len(data)
    return max(1, V1_MAX - len(data))


def parse(data: bytes, version: int | None = None) -> ProxyHeader | None:
    """Parse a header at the start of ``data``; None if more bytes are needed.

    ``version`` (1 or 2) refuses the other one. Raises :class:`ProxyHeaderError` if
    ``data`` cannot be the start of an acceptable header.
    """
    state = signature_state(data)
    if state == 0 or (state is not None and version is not None and state != version):
        raise ProxyHeaderError("no PROXY protocol header" if state == 0 else f"not a v{version} PROXY header")
    if state is None:
        return None
    if state == 1:
        return _parse_v1(data)
    return _parse_v2(data)


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data[: V1_MAX]:
            raise ProxyHeaderError("PROXY v1 line too long or not ended by CRLF")
        return None
    line = data[:end]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    parts = text.split(" ")
    size = end + 2
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(size=size, version=1)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("PROXY v1 line malformed")
    _, proto, src, dst, sport, dport = parts
    family = socket.AF_INET if proto == "TCP4" else socket.AF_INET6
    source = _v1_endpoint(src, sport, family)
    destination = _v1_endpoint(dst, dport, family)
    return ProxyHeader(size=size, version=1, source=source, destination=destination)


def _v1_endpoint(host: str, port: str, family: int) -> tuple:
    if not port.isascii() or not port.isdigit() or (len(port) > 1 and port[0] == "0") or int(port) > 65535:
        raise ProxyHeaderError("PROXY v1 port malformed")
    try:
        address = ipaddress.IPv4Address(host) if family == socket.AF_INET else ipaddress.IPv6Address(host)
    except ValueError:
        raise ProxyHeaderError("PROXY v1 address malformed") from None
    return _endpoint(family, str(address), int(port))


def _endpoint(family: int, host: str, port: int) -> tuple:
    """A peer in the shape ``accept()`` returns for that family."""
    return (host, port) if family == socket.AF_INET else (host, port, 0, 0)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_FIXED:
        return None
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise ProxyHeaderError("PROXY v2 version is not 2")
    command = ver_cmd & 0x0F
    if command > 1:
        raise ProxyHeaderError("PROXY v2 command unknown")
    size = V2_FIXED + length
    if len(data) < size:
        return None
    if command == 0:  # LOCAL: the balancer's own connection (a health check)
        return ProxyHeader(size=size, version=2)
    family, transport = fam >> 4, fam & 0x0F
    if family == 0 or transport == 0:  # UNSPEC: nothing to say about the client
        return ProxyHeader(size=size, version=2)
    need = _V2_ADDRESS_SIZES.get(family)
    if need is None or transport > 2:
        raise ProxyHeaderError("PROXY v2 address family unknown")
    if length < need:
        raise ProxyHeaderError("PROXY v2 address block too short")
    body = data[V2_FIXED : V2_FIXED + need]
    if family == 0x1:
        src, dst, sport, dport = struct.unpack("!4s4sHH", body)
        source = _endpoint(socket.AF_INET, socket.inet_ntop(socket.AF_INET, src), sport)
        destination = _endpoint(socket.AF_INET, socket.inet_ntop(socket.AF_INET, dst), dport)
    elif family == 0x2:
        src, dst, sport, dport = struct.unpack("!16s16sHH", body)
        source = _endpoint(socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, src), sport)
        destination = _endpoint(socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, dst), dport)
    else:
        source = body[:108].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        destination = body[108:].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return ProxyHeader(size=size, version=2, source=source, destination=destination)


def build_v1(source: tuple, destination: tuple) -> bytes:
    """A version-1 header (for tests and tools that speak to a netcore behind a balancer)."""
    proto = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {proto} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def build_v2(source: tuple | None, destination: tuple | None = None, *, tlvs: bytes = b"") -> bytes:
    """A version-2 header; ``source`` None makes a LOCAL one."""
    if source is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, len(tlvs)) + tlvs
    destination = destination or source
    if ":" in source[0]:
        family, fam, fmt = socket.AF_INET6, 0x21, "!16s16sHH"
    else:
        family, fam, fmt = socket.AF_INET, 0x11, "!4s4sHH"
    body = struct.pack(fmt, socket.inet_pton(family, source[0]), socket.inet_pton(family, destination[0]),
                       source[1], destination[1]) + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, fam, len(body)) + body
