"""The opening handshake's checks and answers (ws_handshake.py), on their own: no I/O to mock,
these are pure functions of a request head."""

from __future__ import annotations

import pytest

pytest.importorskip("wsproto")

from netcore_http.ws_handshake import (  # noqa: E402
    HandshakeError,
    accept_response,
    check_request,
    denial_head,
    negotiate_extensions,
    plain_response,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example


def head(**fields):
    base = {b"Host": b"server.example.com", b"Upgrade": b"websocket", b"Connection": b"Upgrade",
            b"Sec-WebSocket-Key": KEY, b"Sec-WebSocket-Version": b"13"}
    for name, value in fields.items():
        name = name.replace("_", "-").encode()
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return list(base.items())


def test_rfc_example_accept_token_and_tokens_in_lists():
    offer = check_request(head(Connection=b"keep-alive, Upgrade", Upgrade=b"WebSocket"))
    response = accept_response(offer, None, None, ())
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response  # RFC 6455 1.3
    assert response.endswith(b"\r\n\r\n")


def test_subprotocols_and_extensions_from_repeated_fields():
    headers = head() + [(b"sec-websocket-protocol", b"chat, superchat"), (b"Sec-WebSocket-Protocol", b"v2"),
                        (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")]
    offer = check_request(headers)
    assert offer.subprotocols == ["chat", "superchat", "v2"]
    extensions, answer = negotiate_extensions(offer, deflate=True)
    assert len(extensions) == 1 and answer.startswith(b"permessage-deflate")
    assert negotiate_extensions(offer, deflate=False) == ([], None)
    response = accept_response(offer, "chat", answer, [(b"x-one", b"1")])
    assert b"\r\nSec-WebSocket-Protocol: chat\r\n" in response and b"\r\nx-one: 1\r\n" in response


@pytest.mark.parametrize(("fields", "version_header"), [
    ({"Sec_WebSocket_Key": None}, False),
    ({"Sec_WebSocket_Key": b"dG9vc2hvcnQ="}, False),  # decodes to 8 bytes, not 16
    ({"Sec_WebSocket_Key": b"not base64 at all!!!!!=="}, False),
    ({"Sec_WebSocket_Version": b"8"}, True),
    ({"Sec_WebSocket_Version": None}, True),
    ({"Connection": b"keep-alive"}, False),
    ({"Upgrade": b"h2c"}, False),
])
def test_refusals(fields, version_header):
    with pytest.raises(HandshakeError) as refused:
        check_request(head(**fields))
    assert refused.value.status == 400
    response = plain_response(refused.value.status, refused.value.message, refused.value.headers)
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert (b"\r\nSec-WebSocket-Version: 13\r\n" in response) is version_header
    assert b"\r\nConnection: close\r\n" in response


def test_app_headers_cannot_split_the_response():
    offer = check_request(head())
    for name, value in ((b"x-a", b"1\r\nSet-Cookie: evil=1"), (b"x\nb", b"1"), (b"", b"1"), (b"a b", b"1")):
        with pytest.raises(RuntimeError):
            accept_response(offer, None, None, [(name, value)])
        with pytest.raises(RuntimeError):
            denial_head(403, [(name, value)], 0)


def test_denial_framing_is_the_servers():
    response = denial_head(401, [(b"Content-Length", b"999"), (b"Transfer-Encoding", b"chunked"),
                                 (b"WWW-Authenticate", b"Bearer")], 5)
    assert b"999" not in response and b"chunked" not in response
    assert b"\r\nContent-Length: 5\r\n" in response and b"\r\nConnection: close\r\n" in response
    assert b"Content-Length" not in denial_head(401, [], None)  # streamed: ends with the connection
    with pytest.raises(RuntimeError):
        denial_head(99, [], 0)
