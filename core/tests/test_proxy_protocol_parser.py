"""The PROXY protocol header parser (reactor/proxy_protocol.py): versions 1 and 2, byte by byte."""

from __future__ import annotations

import struct

import pytest
from netcore.reactor.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeaderError,
    build_v1,
    build_v2,
    parse,
    signature_state,
    wanted,
)


def test_v1_tcp4():
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n"
    header = parse(data)
    assert header.size == data.index(b"GET")
    assert header.version == 1
    assert header.source == ("203.0.113.7", 56324)
    assert header.destination == ("192.0.2.1", 443)


def test_v1_tcp6_and_unknown():
    header = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 1000 80\r\n")
    assert header.source == ("2001:db8::7", 1000, 0, 0)
    header = parse(b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n")
    assert header.source is None and header.size == len(b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n")
    assert parse(b"PROXY UNKNOWN\r\n").source is None


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n",          # a field missing
    b"PROXY TCP4 203.0.113.777 192.0.2.1 1 2\r\n",           # not an address
    b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",             # the wrong family
    b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 2\r\n",         # port out of range
    b"PROXY TCP4 203.0.113.7 192.0.2.1 01 2\r\n",            # leading zero
    b"PROXY TCP4  203.0.113.7 192.0.2.1 1 2\r\n",            # two spaces
    b"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",             # not a stream protocol
    b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n",               # LF alone
    b"PROXY " + b"x" * 120 + b"\r\n",                        # longer than 107 bytes
])
def test_v1_malformed(line):
    with pytest.raises(ProxyHeaderError):
        parse(line)


def test_v1_incomplete_asks_for_more_but_never_past_107_bytes():
    line = build_v1(("203.0.113.7", 1), ("192.0.2.1", 2))
    for cut in range(1, len(line)):
        assert parse(line[:cut]) is None
        assert 1 <= wanted(line[:cut]) <= 107 - cut
    assert parse(line).size == len(line)


def test_v2_inet_inet6_unix_local_and_tlvs():
    v4 = build_v2(("203.0.113.7", 56324), ("192.0.2.1", 443), tlvs=b"\x04\x00\x01x")
    header = parse(v4 + b"rest")
    assert (header.version, header.size) == (2, len(v4))
    assert header.source == ("203.0.113.7", 56324) and header.destination == ("192.0.2.1", 443)
    v6 = build_v2(("2001:db8::7", 1), ("2001:db8::1", 2))
    assert parse(v6).source == ("2001:db8::7", 1, 0, 0)
    local = build_v2(None)
    assert parse(local).source is None and parse(local).size == 16
    unix = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x31, 216) + b"/run/a".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0")
    assert parse(unix).source == "/run/a"
    unspec = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x00, 3) + b"abc"
    assert parse(unspec).source is None and parse(unspec).size == 19


def test_v2_incomplete_wants_exactly_the_rest():
    header = build_v2(("203.0.113.7", 1), ("192.0.2.1", 2))
    for cut in range(1, len(header)):
        assert parse(header[:cut]) is None
        # The length is known from the 16th byte on; before, only the fixed part is asked for.
        assert wanted(header[:cut]) == (16 - cut if cut < 16 else len(header) - cut)


@pytest.mark.parametrize("data", [
    V2_SIGNATURE + struct.pack("!BBH", 0x11, 0x11, 12) + bytes(12),   # version 1 in a v2 header
    V2_SIGNATURE + struct.pack("!BBH", 0x22, 0x11, 12) + bytes(12),   # command 2
    V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, 4) + bytes(4),     # address block too short
    V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x41, 12) + bytes(12),   # family 4
])
def test_v2_malformed(data):
    with pytest.raises(ProxyHeaderError):
        parse(data)


def test_versions_and_no_header():
    assert signature_state(b"GET / HTTP/1.1\r\n") == 0
    assert signature_state(b"\x16\x03\x01") == 0  # a TLS ClientHello
    assert signature_state(b"PRO") is None and signature_state(b"\r\n\r\n") is None
    with pytest.raises(ProxyHeaderError):
        parse(build_v1(("203.0.113.7", 1), ("192.0.2.1", 2)), version=2)
    with pytest.raises(ProxyHeaderError):
        parse(build_v2(None), version=1)
    with pytest.raises(ProxyHeaderError):
        parse(b"GET / HTTP/1.1\r\n")
