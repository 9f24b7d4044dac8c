"""Chunked request bodies to RFC 9112 7.1's grammar: whitespace in extensions accepted,
everything outside the grammar refused (400 and a close), as strictly as llhttp did."""

from __future__ import annotations

import json

import pytest
from http_testing import raw_exchange, read_until_close, start
from netcore.testing.clients import connect

HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

ACCEPTED = {
    "space after the semicolon": b"5; name=value\r\nhello\r\n0\r\n\r\n",
    "spaces around both": b"5 ; a = b\r\nhello\r\n0\r\n\r\n",
    "tabs": b"5\t;\tflag\r\nhello\r\n0\r\n\r\n",
    "quoted value with a space": b'5;a="q v";b=c\r\nhello\r\n0\r\n\r\n',
    "quoted pair": b'5;a="x\\"y"\r\nhello\r\n0\r\n\r\n',
    "extension on the last chunk": b"5\r\nhello\r\n0; done\r\n\r\n",
    "trailer fields": b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:v\r\n\r\n",
    "upper-case hex and leading zeros": b"000A\r\nhellohello\r\n0\r\n\r\n",
}

REFUSED = {
    "space before CRLF without extension": b"5 \r\nhello\r\n0\r\n\r\n",
    "empty extension name": b"5;\r\nhello\r\n0\r\n\r\n",
    "empty extension value": b"5;a=\r\nhello\r\n0\r\n\r\n",
    "unterminated quote": b'5;a="open\r\nhello\r\n0\r\n\r\n',
    "bare LF after the size": b"5\nhello\r\n0\r\n\r\n",
    "bare CR in the size line": b"5\r;a\r\nhello\r\n0\r\n\r\n",
    "data longer than its size": b"5\r\nhelloX\r\n0\r\n\r\n",
    "seventeen hex digits": b"00000000000000005\r\nhello\r\n0\r\n\r\n",
    "negative size": b"-5\r\nhello\r\n0\r\n\r\n",
    "0x prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "obs-fold in a trailer": b"5\r\nhello\r\n0\r\nX-T: a\r\n folded\r\n\r\n",
    "space before a trailer colon": b"5\r\nhello\r\n0\r\nX-T : a\r\n\r\n",
    "control character in a trailer": b"5\r\nhello\r\n0\r\nX-T: a\x01b\r\n\r\n",
    "a size line that never ends": b"5;" + b"a" * 5000,
}


@pytest.fixture(scope="module", params=["inline", "pool"])
def server(request):
    proc = start(request.param, "--app", "http_apps:app")
    yield proc
    assert proc.stop() == 0


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_the_rfc_grammar_is_accepted(server, name):
    status, _, body, _ = raw_exchange(server.address, HEAD + ACCEPTED[name])
    assert status == 200
    assert json.loads(body)["body"] in ("hello", "hellohello")


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_is_outside_the_grammar_is_refused(server, name):
    status, headers, _, closed = raw_exchange(server.address, HEAD + REFUSED[name])
    assert status == 400 and headers.get("connection") == "close" and closed


def test_every_split_of_a_chunked_body_decodes_the_same(server):
    payload = (b"POST /echo?n=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3 ; x = \"y z\"\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
               b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    for offset in range(1, len(payload)):
        with connect(server.address) as sock:
            sock.sendall(payload[:offset])
            sock.sendall(payload[offset:])
            data = read_until_close(sock)
        assert data.count(b"HTTP/1.1 200 OK") == 2, (offset, data[-200:])
        assert b'"body": "abcde"' in data, offset
