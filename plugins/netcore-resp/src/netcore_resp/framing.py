"""Cutting RESP requests out of a byte stream, the way redis-server does, in Python.

This is the *reference* parser: a line-by-line port of Redis 7.0's
``processInlineBuffer`` and ``processMultibulkBuffer`` (``networking.c``), with their
exact error replies. The protocol's fast path hands whole reads to a splitter instead
(see :mod:`netcore_resp.splitting`); this parser takes over whenever that path
cannot be sure it saw exactly what Redis would have accepted: inline commands, a read
that ends inside a command, anything the splitter cannot prove canonical.

It is resumable, like Redis's own: the arguments of a half-received command are kept,
so a command arriving in many small reads is scanned once, and a large bulk string is
not looked at again until enough bytes for all of it are buffered.

Memory stays bounded by the limits: a header line longer than ``max_inline`` (Redis's
``PROTO_INLINE_MAX_SIZE``) or announcing a bulk longer than ``max_bulk`` (Redis's
``proto-max-bulk-len``) or more than ``max_multibulk`` arguments is refused as soon as
it is seen, before any byte of the payload it announces is buffered.

Where Redis has no answer, we give one: a NUL byte in a ``*``/``$`` header line makes
Redis wait (its ``strchr`` stops at the NUL, so the line never ends) until the line
exceeds 64 KiB; here it is refused at once with the error Redis gives for a malformed
count. Inline commands keep Redis's behaviour exactly (wait, then "too big inline
request").
"""

from __future__ import annotations

import re

#: Redis's ``PROTO_INLINE_MAX_SIZE``: the longest inline command or header line.
INLINE_MAX = 64 * 1024
#: Redis's ``proto-max-bulk-len`` default.
BULK_MAX = 512 * 1024 * 1024
INT_MAX = 2**31 - 1
LLONG_MIN, LLONG_MAX = -(2**63), 2**63 - 1

# Redis's string2ll(): no sign but '-', no leading zero, no blanks, no "-0", fits in 64 bits.
_STRICT_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")


def string2ll(text: bytes | bytearray) -> int | None:
    """The integer ``text`` spells in Redis's strict syntax, or None."""
    if _STRICT_INT.fullmatch(text) is None:
        return None
    value = int(text)
    return value if LLONG_MIN <= value <= LLONG_MAX else None


def error_reply(message: str | bytes) -> bytes:
    """``-ERR message``: as Redis's addReplyError, CR and LF become spaces."""
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    return b"-ERR " + message.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


def protocol_error(what: str) -> bytes:
    return error_reply("Protocol error: " + what)


INVALID_MULTIBULK = protocol_error("invalid multibulk length")
INVALID_BULK = protocol_error("invalid bulk length")
TOO_BIG_INLINE = protocol_error("too big inline request")
TOO_BIG_MULTIBULK = protocol_error("too big mbulk count string")
TOO_BIG_BULK = protocol_error("too big bulk count string")
UNBALANCED_QUOTES = protocol_error("unbalanced quotes in request")

_CR, _LF, _STAR, _DOLLAR, _NUL = 13, 10, 42, 36, b"\0"
# Complete CRLF-terminated inline lines that bytes.split() cuts exactly as sdssplitargs
# does: no quotes, no NUL, no lone CR/LF, no \v or \f, not starting with '*'.
_PLAIN_INLINE = re.compile(rb"(?:[^*\"'\0\r\n\x0b\x0c][^\"'\0\r\n\x0b\x0c]*\r\n)+")


class RequestParser:
    """Feed bytes, take complete commands (lists of bytes) and at most one error reply.

    After an error the parser is spent: the connection must answer the commands before
    it, then the error, then close (what Redis does with ``CLIENT_CLOSE_AFTER_REPLY``).
    """

    __slots__ = ("buf", "max_bulk", "max_multibulk", "max_inline", "_args", "_left", "_bulklen", "_need")

    def __init__(self, max_bulk: int = BULK_MAX, max_multibulk: int = 1024 * 1024,
                 max_inline: int = INLINE_MAX) -> None:
        self.buf = bytearray()
        self.max_bulk = max_bulk
        self.max_multibulk = max_multibulk
        self.max_inline = max_inline
        self._args: list[bytes] | None = None  # the multibulk command being read
        self._left = 0  # its arguments still to come
        self._bulklen = -1  # the announced length of the argument being read, or -1
        self._need = 0  # parse again only once the buffer holds this many bytes

    @property
    def idle(self) -> bool:
        """True at a command boundary with nothing buffered (the fast path may resume)."""
        return not self.buf and self._args is None

    def feed(self, data: bytes) -> tuple[list[list[bytes]], bytes | None]:
        if not self.buf and self._args is None and _PLAIN_INLINE.fullmatch(data):
            # Whole inline lines with nothing to unquote (redis-benchmark's PING_INLINE):
            # what the loop below would find, without the loop.
            return [args for args in map(bytes.split, data.split(b"\r\n")[:-1]) if args], None
        self.buf += data
        if len(self.buf) < self._need:
            return [], None  # still inside a large bulk string: nothing to look at yet
        return self._parse()

    def _parse(self) -> tuple[list[list[bytes]], bytes | None]:
        buf = self.buf
        end = len(buf)
        pos = 0
        cmds: list[list[bytes]] = []
        error = None
        self._need = 0
        while pos < end:
            if self._args is None:
                if buf[pos] != _STAR:
                    next_pos, error = self._inline(buf, pos, end, cmds)
                    if next_pos < 0:  # an error, or waiting for the rest of the line
                        break
                    pos = next_pos
                    continue
                # -- the multibulk count: "*<n>\r\n"
                newline = buf.find(b"\r", pos)
                if newline < 0:
                    if buf.find(_NUL, pos) >= 0:
                        error = INVALID_MULTIBULK
                    elif end - pos > self.max_inline:
                        error = TOO_BIG_MULTIBULK
                    break
                if newline + 1 >= end:
                    break  # Redis wants one byte after the CR before it reads the line
                count = string2ll(buf[pos + 1:newline])
                if count is None or count > INT_MAX or count > self.max_multibulk:
                    error = INVALID_MULTIBULK
                    break
                pos = newline + 2  # Redis skips CR and the byte after it, whatever it is
                if count <= 0:
                    continue  # "*0" and "*-1" are ignored
                self._args = []
                self._left = count
            # -- the arguments: "$<len>\r\n<bytes>\r\n"
            args = self._args
            while self._left:
                bulklen = self._bulklen
                if bulklen < 0:
                    newline = buf.find(b"\r", pos)
                    if newline < 0:
                        if buf.find(_NUL, pos) >= 0:
                            error = INVALID_BULK
                        elif end - pos > self.max_inline:
                            error = TOO_BIG_BULK
                        break
                    if newline + 1 >= end:
                        break
                    if buf[pos] != _DOLLAR:
                        error = protocol_error("expected '$', got '%s'" % chr(buf[pos]))
                        break
                    bulklen = string2ll(buf[pos + 1:newline])
                    if bulklen is None or bulklen < 0 or bulklen > self.max_bulk:
                        error = INVALID_BULK
                        break
                    pos = newline + 2
                    self._bulklen = bulklen
                if end - pos < bulklen + 2:
                    self._need = bulklen + 2  # relative to pos, which becomes 0 below
                    break
                # Through a view: bytes(buf[a:b]) would copy twice (a bytearray, then
                # bytes), and a 512 MB argument would peak at three times its size.
                with memoryview(buf) as view:
                    args.append(bytes(view[pos:pos + bulklen]))
                pos += bulklen + 2  # the trailing CRLF is skipped unchecked, as Redis does
                self._bulklen = -1
                self._left -= 1
            if error is not None:
                break
            if self._left:
                break
            cmds.append(args)
            self._args = None
        if pos == end:
            self.buf = bytearray()  # gives the memory of a large argument back at once
        else:
            del buf[:pos]
        return cmds, error

    @property
    def buffered(self) -> int:
        """Bytes held for a command not yet complete (Redis's query buffer)."""
        return len(self.buf)

    def _inline(self, buf: bytearray, pos: int, end: int, cmds: list) -> tuple[int, bytes | None]:
        """One inline command (``PING\\r\\n``); returns (new pos or -1 to wait, error)."""
        newline = buf.find(b"\n", pos)
        # Redis finds the end of line with strchr(), which stops at a NUL byte: a line
        # with a NUL before its LF never ends, and is refused once it is too long.
        if newline < 0 or buf.find(_NUL, pos, newline) >= 0:
            if end - pos > self.max_inline:
                return -1, TOO_BIG_INLINE
            return -1, None
        line_end = newline - 1 if newline > pos and buf[newline - 1] == _CR else newline
        argv = splitargs(bytes(buf[pos:line_end]))
        if argv is None:
            return -1, UNBALANCED_QUOTES
        if argv:
            cmds.append(argv)
        return newline + 1, None


# -- inline command lines ------------------------------------------------------------------

_PLAIN = re.compile(rb"[^\"'\x0b\x0c]*")  # no quotes, no blanks that split differently
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_WORD_END = b" \n\r\t"
_SPACE = b" \t\n\r\x0b\x0c"


def splitargs(line: bytes) -> list[bytes] | None:
    """Redis's ``sdssplitargs``: words, "double quotes" with escapes, 'single quotes'.

    None means unbalanced quotes (or a closing quote not followed by a blank), which
    Redis answers with a protocol error.
    """
    if _PLAIN.fullmatch(line):
        return line.split()
    args: list[bytes] = []
    n = len(line)
    i = 0
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_dq = in_sq = False
        while True:
            c = line[i] if i < n else 0
            if in_dq:
                if c == 92 and i + 3 < n + 0 and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], line[i:i + 1])
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif i >= n:
                    return None
                else:
                    current.append(c)
            elif in_sq:
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif i >= n:
                    return None
                else:
                    current.append(c)
            else:
                if i >= n or c in _WORD_END:
                    break
                if c == 34:
                    in_dq = True
                elif c == 39:
                    in_sq = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))
