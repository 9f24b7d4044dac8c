"""RESP2 replies: the constant ones prebuilt, the rest encoded with as little work as possible.

Per-request formatting shows at the microsecond scale (measured on the plugin's prototypes), so every reply
that never changes is a module constant, and the ``$<len>\\r\\n`` header of a bulk string
shorter than :data:`HEADER_CACHE` comes from a table.
"""

from __future__ import annotations

from typing import Iterable

from netcore_resp.framing import error_reply, string2ll

CRLF = b"\r\n"
OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NIL = b"$-1\r\n"
NIL_ARRAY = b"*-1\r\n"
EMPTY_ARRAY = b"*0\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"
MINUS_ONE = b":-1\r\n"
MINUS_TWO = b":-2\r\n"

WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
NOT_INTEGER = error_reply("value is not an integer or out of range")
SYNTAX = error_reply("syntax error")
OVERFLOW = error_reply("increment or decrement would overflow")
DB_OUT_OF_RANGE = error_reply("DB index is out of range")
MUST_BE_POSITIVE = error_reply("value is out of range, must be positive")
STRING_TOO_LONG = error_reply("string exceeds maximum allowed size (proto-max-bulk-len)")

HEADER_CACHE = 4096
_BULK_HEADERS = tuple(b"$%d\r\n" % n for n in range(HEADER_CACHE))
_INTEGERS = tuple(b":%d\r\n" % n for n in range(1024))


class Reply(Exception):
    """Raised by a command to answer with ``reply`` (an error) and stop there."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply


class Switched(Reply):
    """Raised by HELLO when it changed the client's protocol: the rest of the batch must
    be run by the client's new command table (the executor looks it up again)."""


class Large(Reply):
    """Raised by a command whose reply (not an error) is at least :data:`SMALL_REPLY` bytes.

    The executor counts only these towards a batch's part size (netcore_resp.streaming):
    a batch of small replies then pays no per-command size check, and one of large ones
    still stops at one part's worth. Raising costs about a microsecond, noise beside
    producing a reply of that size.
    """


#: Replies shorter than this are never counted: a read's worth of commands (64 KiB, at
#: least 14 bytes each) can leave at most ~4,700 of them uncounted, under 5 MB.
SMALL_REPLY = 1024


WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"

# -- RESP3 (after HELLO 3) ------------------------------------------------------------------
NULL3 = b"_\r\n"


def maybe_bulk3(value: bytes | None) -> bytes:
    return NULL3 if value is None else bulk(value)


def array3(items: Iterable[bytes | None]) -> bytes:
    """An array of bulk strings (None items are RESP3 nulls)."""
    parts = [NULL3 if item is None else bulk(item) for item in items]
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def map3(items: list[tuple[bytes, bytes]]) -> bytes:
    """A RESP3 map of bulk strings: ``%<n>`` then key, value, key, value..."""
    return b"%%%d\r\n" % len(items) + b"".join(bulk(k) + bulk(v) for k, v in items)


def flat_pairs(items: list[tuple[bytes, bytes]]) -> bytes:
    """What RESP2 sends for a map: a flat array key, value, key, value..."""
    return b"*%d\r\n" % (2 * len(items)) + b"".join(bulk(k) + bulk(v) for k, v in items)


def verbatim(text: bytes) -> bytes:
    """A RESP3 verbatim string of format ``txt`` (what Redis answers INFO with)."""
    return b"=%d\r\ntxt:" % (len(text) + 4) + text + CRLF


class Quit(BaseException):
    """Raised by QUIT: answer +OK, run nothing after it, close the connection.

    A BaseException so that the per-command ``except Exception`` does not catch it.
    """


def bulk(value: bytes) -> bytes:
    n = len(value)
    return (_BULK_HEADERS[n] if n < HEADER_CACHE else b"$%d\r\n" % n) + value + CRLF


def maybe_bulk(value: bytes | None) -> bytes:
    return NIL if value is None else bulk(value)


def integer(n: int) -> bytes:
    return _INTEGERS[n] if 0 <= n < 1024 else b":%d\r\n" % n


def array(items: Iterable[bytes | None]) -> bytes:
    """An array of bulk strings (None items are nil)."""
    parts = [NIL if item is None else bulk(item) for item in items]
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def raw_array(encoded: list[bytes]) -> bytes:
    """An array whose elements are already encoded replies."""
    return b"*%d\r\n" % len(encoded) + b"".join(encoded)


def status(text: bytes) -> bytes:
    return b"+" + text + CRLF


def arity_error(name: str) -> bytes:
    return error_reply(f"wrong number of arguments for '{name}' command")


def cstr(value: bytes) -> bytes:
    """What C's ``%s`` prints of an argument: up to its first NUL byte."""
    return value.split(b"\0", 1)[0]


def non_negative(value: bytes, name: str) -> int:
    """Redis's ``getPositiveLongFromObjectOrReply`` with a message (LPOS's COUNT and
    MAXLEN, the LIMIT of SINTERCARD and ZINTERCARD): one text, "<name> can't be
    negative", for a negative number and for no number at all."""
    number = string2ll(value)
    if number is None or number < 0:
        raise Reply(error_reply(f"{name} can't be negative"))
    return number


def unknown_subcommand(argv: list[bytes]) -> bytes:
    return error_reply(b"unknown subcommand '%s'. Try %s HELP." % (cstr(argv[1])[:128], argv[0].upper()))


def check_subcommand(argv: list, arities: dict[bytes, int]) -> bytes:
    """A container command's subcommand (lower case), after Redis's checks of its name
    and its arity (both before the command runs, with these texts)."""
    sub = argv[1].lower()
    arity = arities.get(sub)
    if arity is None:
        raise Reply(unknown_subcommand(argv))
    if len(argv) != arity if arity > 0 else len(argv) < -arity:
        raise Reply(arity_error(f"{argv[0].lower().decode('latin-1')}|{sub.decode('latin-1')}"))
    return sub


def help_reply(command: bytes, lines: tuple[bytes, ...]) -> bytes:
    """Redis's ``addReplyHelp``: status lines, between its header and its HELP entry."""
    lines = (command + b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", *lines, b"HELP",
             b"    Prints this help.")
    return b"*%d\r\n" % len(lines) + b"".join(b"+" + line + b"\r\n" for line in lines)


def subcommand_syntax(argv: list) -> bytes:
    """Redis's ``addReplySubcommandSyntaxError``."""
    return error_reply(b"unknown subcommand or wrong number of arguments for '%s'. Try %s HELP."
                       % (cstr(argv[1])[:128], argv[0].upper()))
