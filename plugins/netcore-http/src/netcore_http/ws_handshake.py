"""The WebSocket opening handshake (RFC 6455 section 4): check the request, write the answer.

Kept apart from the frames (websocket.py) because it is plain HTTP: the request head was
already parsed by the http protocol (httptools), so checking the few ``Sec-WebSocket-*``
fields here costs nothing more, where handing the head to a second HTTP parser (wsproto's
``WSConnection`` runs h11) would parse every upgrade twice. The accept token comes from
wsproto (``generate_accept_token``) and the extension negotiation from wsproto's own
``server_extensions_handshake``, so the RFC's arithmetic lives in one well-tested place.
"""

from __future__ import annotations

import base64
import binascii
from typing import Iterable

from wsproto.extensions import PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from netcore_http.responses import DATE, SERVER, STATUS_LINES

#: The one version RFC 6455 defines; a refusal names it (section 4.4).
VERSION = b"13"


class HandshakeError(Exception):
    """The request is not a WebSocket opening handshake this server accepts."""

    def __init__(self, status: int, message: str, headers: tuple = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Offer:
    """What the client asked for: its key, the subprotocols and the extensions it offers."""

    __slots__ = ("key", "subprotocols", "extensions")

    def __init__(self, key: bytes, subprotocols: list[str], extensions: list[str]) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions


def _tokens(values: Iterable[bytes]) -> list[str]:
    """The comma-separated list items of every field with one name (RFC 9110 5.6.1)."""
    items = []
    for value in values:
        for item in value.decode("latin-1").split(","):
            item = item.strip()
            if item:
                items.append(item)
    return items


def check_request(headers: list[tuple[bytes, bytes]]) -> Offer:
    """Check a GET's head for a WebSocket handshake (RFC 6455 4.2.1); raise HandshakeError.

    Refusals are 400, and 400 with ``Sec-WebSocket-Version: 13`` when the version is
    missing or another one (4.2.2 asks for the supported version in the answer; the
    status is any "appropriate" one, and 400 is what websockets-based servers send).
    """
    connection: list[bytes] = []
    upgrade: list[bytes] = []
    versions: list[bytes] = []
    keys: list[bytes] = []
    protocols: list[bytes] = []
    extensions: list[bytes] = []
    wanted = {b"connection": connection, b"upgrade": upgrade, b"sec-websocket-version": versions,
              b"sec-websocket-key": keys, b"sec-websocket-protocol": protocols,
              b"sec-websocket-extensions": extensions}
    for name, value in headers:
        found = wanted.get(name.lower())
        if found is not None:
            found.append(value)
    if "upgrade" not in (token.lower() for token in _tokens(connection)):
        raise HandshakeError(400, "a WebSocket handshake needs Connection: Upgrade")
    if "websocket" not in (token.lower() for token in _tokens(upgrade)):
        raise HandshakeError(400, "a WebSocket handshake needs Upgrade: websocket")
    if len(versions) != 1 or versions[0].strip() != VERSION:
        raise HandshakeError(400, "unsupported Sec-WebSocket-Version", ((b"Sec-WebSocket-Version", VERSION),))
    if len(keys) != 1:
        raise HandshakeError(400, "missing or repeated Sec-WebSocket-Key")
    key = keys[0].strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise HandshakeError(400, "invalid Sec-WebSocket-Key")
    return Offer(key, _tokens(protocols), _tokens(extensions))


def negotiate_extensions(offer: Offer, deflate: bool) -> tuple[list, bytes | None]:
    """The extensions to run and the ``Sec-WebSocket-Extensions`` value to answer with."""
    if not deflate or not offer.extensions:
        return [], None
    extension = PerMessageDeflate()
    accepted = server_extensions_handshake(offer.extensions, [extension])
    if accepted is None:
        return [], None
    return [extension], accepted


def _check_field(name: bytes, value: bytes) -> None:
    """An app's header must not smuggle a line break (response splitting) into the head."""
    for part in (name, value):
        if b"\r" in part or b"\n" in part or b"\0" in part:
            raise RuntimeError("a response header of the ASGI app contains CR, LF or NUL")
    if not name or b":" in name or b" " in name:
        raise RuntimeError(f"invalid response header name {name!r} from the ASGI app")


def _head(status_line: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    parts = [b"HTTP/1.1 ", status_line, b"\r\nServer: ", SERVER, b"\r\n", DATE.header(), b"\r\n"]
    for name, value in fields:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def accept_response(offer: Offer, subprotocol: str | None, extensions: bytes | None,
                    app_headers: Iterable) -> bytes:
    """``101 Switching Protocols`` with the accept token and what the app added."""
    fields = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
              (b"Sec-WebSocket-Accept", generate_accept_token(offer.key))]
    if subprotocol:
        fields.append((b"Sec-WebSocket-Protocol", subprotocol.encode("latin-1")))
    if extensions:
        fields.append((b"Sec-WebSocket-Extensions", extensions))
    for name, value in app_headers:
        name, value = bytes(name), bytes(value)
        _check_field(name, value)
        fields.append((name, value))
    return _head(b"101 Switching Protocols", fields)


def plain_response(status: int, message: str = "", headers: Iterable = ()) -> bytes:
    """A complete response that ends the connection: a refused handshake, 403, 500."""
    line = STATUS_LINES.get(status) or f"{status} Error".encode("latin-1")
    body = (message.encode("latin-1", "replace") + b"\n") if message else b""
    fields = list(headers)
    fields += [(b"Content-Type", b"text/plain; charset=latin-1"), (b"Content-Length", str(len(body)).encode()),
               (b"Connection", b"close")]
    return _head(line, fields) + body


def denial_head(status: int, app_headers: Iterable, length: int | None) -> bytes:
    """The head of an app's own denial response (``websocket.http.response.start``)."""
    if not 100 <= status < 600:
        raise RuntimeError(f"invalid HTTP status {status!r} in the ASGI app's denial response")
    line = STATUS_LINES.get(status) or f"{status} Error".encode("latin-1")
    fields = []
    for name, value in app_headers:
        name, value = bytes(name), bytes(value)
        _check_field(name, value)
        if name.lower() in (b"content-length", b"transfer-encoding", b"connection"):
            continue  # framing is the server's: the body ends with the connection or its length
        fields.append((name, value))
    if length is not None:
        fields.append((b"Content-Length", str(length).encode()))
    fields.append((b"Connection", b"close"))
    return _head(line, fields)
