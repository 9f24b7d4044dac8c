"""Redis's glob patterns (``KEYS``, ``SCAN MATCH``, ``CONFIG GET``), matched in linear time.

Redis's ``stringmatchlen`` is not :mod:`fnmatch`: a class is negated with ``^`` (not
``!``), a backslash escapes anywhere, a range may be written backwards (``[z-a]``), a
``[`` that is never closed takes the rest of the pattern as its class, and a pattern
never matches the empty string unless it is empty itself.

**Why not one regular expression.** ``*a*a*a*...b`` compiled to ``.*a.*a.*...b`` makes
a backtracking engine try every way of splitting the subject among the stars:
exponential in their number. One such ``KEYS`` against a 3,000-byte key kept a server
at 100% CPU, deaf to every client and to SIGTERM. Two matchers here instead:

* :func:`stringmatchlen`, a line-by-line port of Redis's own function (``util.c``),
  including its ``skipLongerMatches`` cut (once the rest of the pattern after a star
  matches nowhere in the rest of the subject, no earlier star can help) and its nesting
  limit of 1000 stars. It is the reference; its Python loop over bytes is too slow to
  run over a whole keyspace.
* :func:`matches`, used by the commands: the pattern is cut at its stars into segments
  of fixed width (every other token matches exactly one byte), each compiled to a
  regular expression *without* a star. The first segment must match at the start, the
  last at the end, the others are found leftmost in between, one after the other:
  taking the leftmost occurrence of each is always safe (any later one leaves less room
  for the rest), so there is no backtracking across segments and the cost is at most
  subject length times pattern length, in C. The tests check it against the port on
  crafted and random patterns.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

_STAR, _QUESTION, _OPEN, _CLOSE, _CARET, _BACKSLASH, _DASH = b"*?[]^\\-"

#: Redis gives up (no match) below this many nested stars.
MAX_NESTING = 1000


def stringmatchlen(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    """Redis's ``stringmatchlen`` (Redis 7.2 ``util.c``), ported with its pointer arithmetic.

    C reads the NUL after an sds pattern where Python would index past the end; those
    reads are the ``p < plen`` guards below. Recursion depth is the number of stars, so
    patterns deeper than Python's recursion limit are refused (as Redis does beyond 1000).
    """
    skip = [False]
    try:
        return _match(pattern, 0, subject, 0, nocase, skip, 0)
    except RecursionError:
        return False


def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def _match(pattern: bytes, p: int, string: bytes, s: int, nocase: bool, skip: list, nesting: int) -> bool:
    if nesting > MAX_NESTING:
        return False
    plen, slen = len(pattern), len(string)
    while p < plen and s < slen:
        c = pattern[p]
        if c == _STAR:
            while p + 1 < plen and pattern[p + 1] == _STAR:
                p += 1
            if p + 1 == plen:
                return True
            while s < slen:
                if _match(pattern, p + 1, string, s, nocase, skip, nesting + 1):
                    return True
                if skip[0]:
                    return False
                s += 1
            skip[0] = True
            return False
        if c == _QUESTION:
            s += 1
        elif c == _OPEN:
            p += 1
            negate = p < plen and pattern[p] == _CARET
            if negate:
                p += 1
            matched = False
            x = string[s]
            while True:
                if p >= plen:
                    p -= 1
                    break
                c = pattern[p]
                if c == _BACKSLASH and plen - p >= 2:
                    p += 1
                    if pattern[p] == x:
                        matched = True
                elif c == _CLOSE:
                    break
                elif plen - p >= 3 and pattern[p + 1] == _DASH:
                    start, end = sorted((c, pattern[p + 2]))
                    y = x
                    if nocase:
                        start, end, y = _lower(start), _lower(end), _lower(x)
                    p += 2
                    if start <= y <= end:
                        matched = True
                elif c == x or (nocase and _lower(c) == _lower(x)):
                    matched = True
                p += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            s += 1
        else:
            if c == _BACKSLASH and plen - p >= 2:
                p += 1
                c = pattern[p]
            x = string[s]
            if c != x and not (nocase and _lower(c) == _lower(x)):
                return False
            s += 1
        p += 1
        if s == slen:
            while p < plen and pattern[p] == _STAR:
                p += 1
            break
    return p == plen and s == slen


# -- the compiled matcher --------------------------------------------------------------

def _byte(c: int) -> bytes:
    return b"\\x%02x" % c


def _tokens(pattern: bytes) -> list[bytes | None]:
    """The pattern as regex pieces of one byte each, None for a run of stars.

    The class parsing follows the port above step by step (unclosed ``[``, escapes,
    backwards ranges), so a class here holds exactly the bytes Redis's would accept.
    """
    out: list[bytes | None] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            while i + 1 < n and pattern[i + 1] == _STAR:
                i += 1
            out.append(None)
        elif c == _QUESTION:
            out.append(b".")
        elif c == _OPEN:
            i += 1
            negate = i < n and pattern[i] == _CARET
            if negate:
                i += 1
            items = []
            while True:
                if i >= n:
                    i -= 1
                    break
                c = pattern[i]
                if c == _BACKSLASH and n - i >= 2:
                    i += 1
                    items.append(_byte(pattern[i]))
                elif c == _CLOSE:
                    break
                elif n - i >= 3 and pattern[i + 1] == _DASH:
                    lo, hi = sorted((c, pattern[i + 2]))
                    items.append(_byte(lo) + b"-" + _byte(hi))
                    i += 2
                else:
                    items.append(_byte(c))
                i += 1
            if items:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(items) + b"]")
            else:
                out.append(b"." if negate else b"(?!)")  # "[^]" matches any byte, "[]" none
        else:
            if c == _BACKSLASH and n - i >= 2:
                i += 1
            out.append(_byte(pattern[i]))
        i += 1
    return out


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """A predicate ``subject -> bool`` equal to ``stringmatchlen(pattern, subject, nocase)``."""
    if pattern == b"*":
        return bool  # matches everything but the empty string, as Redis's does
    flags = re.DOTALL | (re.IGNORECASE if nocase else 0)
    segments: list[list[bytes]] = [[]]
    for token in _tokens(pattern):
        if token is None:
            segments.append([])
        else:
            segments[-1].append(token)
    if len(segments) - 1 > MAX_NESTING:
        return lambda subject: False  # Redis gives up on patterns nested this deep
    compiled = [(re.compile(b"".join(seg), flags), len(seg)) for seg in segments]
    if len(compiled) == 1:
        whole = compiled[0][0].fullmatch
        return lambda subject: whole(subject) is not None
    (head, head_len), middle, (tail, tail_len) = compiled[0], compiled[1:-1], compiled[-1]
    head_match, tail_match = head.match, tail.fullmatch

    def match(subject: bytes) -> bool:
        n = len(subject)
        if not n or n < head_len + tail_len or head_match(subject) is None:
            return False
        pos = head_len
        end = n - tail_len
        for regex, width in middle:
            if width:
                found = regex.search(subject, pos, end)
                if found is None:
                    return False
                pos = found.end()
        return tail_match(subject, end) is not None

    return match


def matches(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    return compile_glob(pattern, nocase)(subject)
