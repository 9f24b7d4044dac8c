"""The fast path's request splitter: a whole read into commands, when it is safe to be quick.

Cutting requests out of the stream is most of a RESP server's Python work, so a read that
starts at a command boundary first goes to a *splitter*. Its contract: return the read's
commands (a list of lists of bytes) only when the read is, entirely, complete requests in
the canonical multibulk encoding (``*<argc>`` then ``$<len>`` headers, counts as Redis's
``string2ll`` reads them) within ``resp_max_bulk`` and ``resp_max_multibulk``; otherwise
return None, and the protocol hands the read to the reference parser
(:mod:`netcore_resp.framing`, the Python port of Redis's own), which answers inline
commands, partial reads and malformed input exactly as Redis does. A splitter never
produces an error; it only has to be sure.

Two splitters keep that contract:

* **compiled** (``netcore_resp._multibulk``, C, built when the plugin is installed where a
  C compiler and Python's headers are): one scan that only accepts the canonical
  encoding, so its answer is exact. 0.19 µs per pipelined SET against 0.96 µs for the
  hiredis route below (``bench/`` and docs/resp.md have the end-to-end figures).
* **hiredis** (where the extension could not be built: no compiler, or Debian's Python
  without ``python3-dev``): hiredis's ``Reader`` parses the read, and the result is taken
  only if its canonical encoding is exactly as long as the read (C-level sums, about
  0.56 µs per pipelined SET; comparing the encoding itself byte for byte costs 2.3 µs).
  hiredis is a *reply* parser, more lenient than a server (``+``, ``:``, nested arrays,
  RESP3 types, zero-padded counts). The length sum proves the read ended at a command
  boundary and that every element was a byte string, but a read with a reply-type header
  (``+``, ``~``, ``:`` ...) can keep the length -- by craft, or as the randomised test
  found, by chance in garbage -- and then runs as the commands hiredis read, where Redis
  answers other errors. No client sends such a read; docs/resp.md lists the difference.

:data:`COMPILED` says which one this process uses; the server logs it at start when the
compiled one is missing, since it costs about a third of pipelined throughput.
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable

import hiredis

try:
    from netcore_resp._multibulk import split as _compiled_split
except ImportError:  # not built here: the hiredis splitter keeps the same contract
    _compiled_split = None

#: Whether the C splitter is in use.
COMPILED = _compiled_split is not None

Splitter = Callable[[bytes], "list[list[bytes]] | None"]

#: Encoded length minus payload, by argument length / argument count: arguments or
#: commands beyond them take the reference path (which enforces the limits).
FAST_BULK_MAX = 65535
FAST_ARGS_MAX = 1024
_NOT_FAST = 1 << 62  # an impossible length: "*0" (ignored by Redis) goes the reference way
_BELOW_10 = bytes(range(10))
_BELOW_100 = bytes(range(100))
#: "*<argc>\r\n" followed by argc times "$<len>\r\n\r\n", to be %-formatted with the lengths.
_SINGLE_MAX = 64
_HEADERS = (b"",) + tuple(b"*%d\r\n" % n + b"$%d\r\n\r\n" * n for n in range(1, _SINGLE_MAX))
#: An aggregate header -- an array, or a RESP3 push or set, which hiredis also builds as a
#: list -- announcing a million elements or more. hiredis allocates the whole list when it
#: reads the header, before any element arrives (``*2147483647`` froze the server for
#: seconds, ``*1 ~2147483647`` for 2.8 s, and their release as long again); the reference
#: parser checks ``resp_max_multibulk`` first. Seven digits are beyond what the fast path
#: ever takes, so a read that matches loses nothing by going the reference way. Found in
#: two C passes over the read: every digit becomes ``0`` and ``>``/``~`` become ``*``,
#: then one substring search. (The compiled splitter never allocates a list that the rest
#: of the read cannot fill.)
_HUGE_AGGREGATE = b"*0000000"
_AGGREGATE_DIGITS = bytes.maketrans(b"0123456789>~", b"0000000000**")
_chain = itertools.chain.from_iterable


def splitter_factory(max_bulk: int, max_multibulk: int, recv_size: int) -> Callable[[], Splitter]:
    """What each new connection calls for its splitter (the compiled one is shared: it
    keeps no state; a hiredis splitter holds a reader per connection)."""
    if _compiled_split is not None:
        shared = functools.partial(_compiled_split, max_bulk, max_multibulk)
        return lambda: shared
    return functools.partial(HiredisSplitter, max_bulk, max_multibulk, recv_size)


class HiredisSplitter:
    """The splitter where the C one is not built (see the module's docstring)."""

    __slots__ = ("_reader", "_feed", "_gets", "_bulk_overhead", "_array_overhead", "_small_limits", "_single_ok")

    def __init__(self, max_bulk: int, max_multibulk: int, recv_size: int) -> None:
        self._reset()
        self._bulk_overhead, self._array_overhead = _overheads(max_bulk, max_multibulk)
        # Limits below 256 (bytes or arguments): the bytes-of-lengths check would not see them.
        self._small_limits = max_bulk < 256 or max_multibulk < 256
        # One read cannot hold a complete argument longer than recv_size.
        self._single_ok = max_bulk >= recv_size and max_multibulk >= _SINGLE_MAX

    def _reset(self) -> None:
        """hiredis may hold half a command (or be in an error state): start it afresh."""
        self._reader = hiredis.Reader()
        self._feed = self._reader.feed
        self._gets = self._reader.gets

    def __call__(self, data: bytes) -> list[list[bytes]] | None:
        if data[:1] != b"*" or _HUGE_AGGREGATE in data.translate(_AGGREGATE_DIGITS):
            return None
        self._feed(data)
        try:
            cmds = list(iter(self._gets, False))
            if len(cmds) == 1 and len(cmds[0]) < _SINGLE_MAX and self._single_ok:
                # One command (no pipelining): its headers formatted in one go are cheaper.
                cmd = cmds[0]
                size = len(_HEADERS[len(cmd)] % tuple(map(len, cmd))) + len(b"".join(cmd))
            else:
                size = self._batch_size(cmds)
        except (hiredis.ProtocolError, TypeError, IndexError):
            size = -1
        if size != len(data):
            self._reset()
            return None
        return cmds

    def _batch_size(self, cmds: list) -> int:
        """The canonical encoding's length of ``cmds``, or -1 when the fast path must not judge.

        Payload (the join also proves every element is bytes) + per argument
        "$<len>\\r\\n" and "\\r\\n" + per command "*<argc>\\r\\n". Digits are counted by
        deleting the lengths below 10 and 100 from a bytes object of lengths: a few C calls
        per read instead of one per argument.
        """
        flat = list(_chain(cmds))
        size = len(b"".join(flat))
        try:
            lens = bytes(map(len, flat))
            argcs = bytes(map(len, cmds))
        except ValueError:  # an argument or argument count >= 256: the table way
            return size + sum(map(self._bulk_overhead, map(len, flat))) + sum(map(self._array_overhead, map(len, cmds)))
        if 0 in argcs or self._small_limits:
            return -1  # "*0" (ignored by Redis), or limits small enough to matter here
        return (size + 6 * len(lens) + len(lens.translate(None, _BELOW_10)) + len(lens.translate(None, _BELOW_100))
                + 4 * len(argcs) + len(argcs.translate(None, _BELOW_10)) + len(argcs.translate(None, _BELOW_100)))


@functools.lru_cache(maxsize=8)
def _overheads(max_bulk: int, max_multibulk: int) -> tuple[Callable[[int], int], Callable[[int], int]]:
    """Encoded length minus payload by argument length and by argument count, up to the
    limits (an index beyond them raises IndexError: the reference path then judges)."""
    bulk = tuple(len(str(n)) + 5 for n in range(min(max_bulk, FAST_BULK_MAX) + 1))
    array = (_NOT_FAST,) + tuple(len(str(n)) + 3 for n in range(1, min(max_multibulk, FAST_ARGS_MAX) + 1))
    return bulk.__getitem__, array.__getitem__
