"""Request bodies framed in Python, where llhttp cannot frame them as HTTP/1.1 asks.

Two cases, both rare and both off the hot path: a chunked body (:class:`ChunkedBody`,
below), and the Content-Length body of a request that asks for an ``Upgrade`` the
server does not make (:class:`LengthBody`).

**Chunked bodies** are decoded to RFC 9112's grammar, where llhttp is stricter than it.

llhttp refuses whitespace in chunk extensions (``5; name=value``, ``5 ; a = b``), which
RFC 9112 7.1.1 allows (``chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
chunk-ext-val ] )``), and it has no leniency flag for it (``lenient_spaces_after_chunk_size``
covers only the space before ``;`` and also lets through ``5 \\r\\n``, which the grammar
does not). So once llhttp has parsed a chunked request's head, the protocol stops it and
this decoder frames the body; a fresh llhttp parser takes the bytes after it.

It is exactly as strict as the grammar, which is what keeps smuggling out: hex digits
only (at most 16), CRLF and nothing else after each size line and each chunk's data (a
bare CR or LF is refused), extensions that are tokens or quoted strings, trailer fields
that are field lines (no obs-fold, no control characters), and every line bounded.
Extensions and trailers are dropped: WSGI has no place for them.

**An Upgrade the server does not make** (``Upgrade: h2c``, which ``curl --http2``, Java's
HttpClient and Ktor send by default, or any other than a WebSocket for an ASGI app):
RFC 9110 7.8 lets a server ignore it and answer the request as HTTP/1.1, body included.
httptools tells llhttp that an upgrade request has no body (its ``on_headers_complete``
returns 1 whenever llhttp's upgrade flag is set), so llhttp would complete the request
without its body and leave the body's bytes to be parsed as the next request. The
protocol stops llhttp at the end of such a head instead, and :class:`LengthBody` counts
the body out; a fresh llhttp parser takes the bytes after it, as after a chunked body.

Both stand in for the parser (``protocol._parser``): ``data_received`` calls
``feed_data`` whatever parses, so the hot path pays nothing for them.
"""

from __future__ import annotations

import re
from typing import Any

import httptools

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t !-~\x80-\xff])*"'
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
                        + _QUOTED + rb"))?)*")
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([\t\x20-\x7e\x80-\xff]*)")
#: The longest size line (with its extensions) or trailer line accepted.
MAX_LINE = 4096

_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class ChunkedBody:
    """The decoder of one chunked body; ``protocol`` gets ``on_body``/``on_header``/``on_message_complete``."""

    __slots__ = ("protocol", "state", "left", "line")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.state = _SIZE
        self.left = 0
        self.line = b""

    def feed_data(self, data: bytes) -> None:
        """Decode what arrived; after the body, the rest goes to a fresh llhttp parser."""
        protocol = self.protocol
        view = memoryview(data)
        position = 0
        end = len(data)
        try:
            while position < end:
                state = self.state
                if state == _DATA:
                    take = min(self.left, end - position)
                    protocol.on_body(bytes(view[position:position + take]))
                    position += take
                    self.left -= take
                    if not self.left:
                        self.state = _DATA_END
                    continue
                line, position = self._line(data, position)
                if line is None:
                    return  # the line goes on in the next read
                if state == _SIZE:
                    match = _SIZE_LINE.fullmatch(line)
                    if match is None:
                        raise httptools.HttpParserError("Invalid chunk size line")
                    self.left = int(match.group(1), 16)
                    self.state = _DATA if self.left else _TRAILER
                elif state == _DATA_END:
                    if line:
                        raise httptools.HttpParserError("chunk data not followed by CRLF")
                    self.state = _SIZE
                elif line:  # a trailer field: checked, counted against the limits, dropped
                    match = _FIELD_LINE.fullmatch(line)
                    if match is None:
                        raise httptools.HttpParserError("Invalid trailer field")
                    protocol.on_header(match.group(1), match.group(2))
                else:
                    protocol.on_message_complete()
                    protocol.after_body(data[position:])
                    return
        except httptools.HttpParserError:
            raise
        except Exception as exc:  # a limit refused in a callback (413): the parser's way
            raise httptools.HttpParserCallbackError(str(exc)) from exc

    def _line(self, data: bytes, position: int) -> tuple[bytes | None, int]:
        """The next CRLF-ended line (without it) and where it ends; None if not complete yet."""
        newline = data.find(b"\n", position, position + MAX_LINE + 2 - len(self.line))
        if newline < 0:
            self.line += data[position:]
            if len(self.line) > MAX_LINE:
                raise httptools.HttpParserError("chunk line too long")
            return None, len(data)
        line = self.line + data[position:newline]
        self.line = b""
        if not line.endswith(b"\r") or b"\r" in line[:-1]:
            raise httptools.HttpParserError("bare CR or LF in chunked framing")
        return line[:-1], newline + 1

    # what the protocol asks of a parser between two feeds
    def should_keep_alive(self) -> bool:  # pragma: no cover - never asked mid-body
        return True


class LengthBody:
    """A Content-Length body counted out here; ``protocol`` gets ``on_body``/``on_message_complete``."""

    __slots__ = ("protocol", "left")

    def __init__(self, protocol: Any, length: int) -> None:
        self.protocol = protocol
        self.left = length

    def feed_data(self, data: bytes) -> None:
        """Pass on the body's bytes; after its last one, the rest goes to a fresh llhttp parser."""
        protocol = self.protocol
        try:
            take = min(self.left, len(data))
            if take:
                protocol.on_body(data if take == len(data) else data[:take])
                self.left -= take
            if not self.left:
                protocol.on_message_complete()
                protocol.after_body(data[take:])
        except httptools.HttpParserError:
            raise
        except Exception as exc:  # a limit refused in a callback (413): the parser's way
            raise httptools.HttpParserCallbackError(str(exc)) from exc

    def should_keep_alive(self) -> bool:  # pragma: no cover - never asked mid-body
        return True
