"""Redis's glob patterns (``KEYS``, ``CONFIG GET``), compiled to regular expressions.

Redis's ``stringmatchlen`` is not :mod:`fnmatch`: a class is negated with ``^`` (not
``!``), a backslash escapes anywhere, a range may be written backwards (``[z-a]``), and
a ``[`` that is never closed takes the rest of the pattern as its class. The translation
below follows ``stringmatchlen`` case by case, byte by byte.
"""

from __future__ import annotations

import functools
import re

_STAR, _QUESTION, _OPEN, _CLOSE, _CARET, _BACKSLASH, _DASH = b"*?[]^\\-"


def _byte(c: int) -> bytes:
    return b"\\x%02x" % c


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            while i + 1 < n and pattern[i + 1] == _STAR:
                i += 1
            out.append(b".*")
        elif c == _QUESTION:
            out.append(b".")
        elif c == _OPEN:
            i += 1
            negate = i < n and pattern[i] == _CARET
            if negate:
                i += 1
            items = []
            while i < n:
                c = pattern[i]
                if c == _BACKSLASH and i + 1 < n:
                    items.append(_byte(pattern[i + 1]))
                    i += 2
                    continue
                if c == _CLOSE:
                    break
                if n - i >= 3 and pattern[i + 1] == _DASH:
                    lo, hi = sorted((c, pattern[i + 2]))
                    items.append(_byte(lo) + b"-" + _byte(hi))
                    i += 3
                    continue
                items.append(_byte(c))
                i += 1
            if items:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(items) + b"]")
            else:
                out.append(b"." if negate else b"(?!)")  # "[^]" matches any byte, "[]" none
        elif c == _BACKSLASH and i + 1 < n:
            i += 1
            out.append(_byte(pattern[i]))
        else:
            out.append(_byte(c))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


def matches(pattern: bytes, subject: bytes) -> bool:
    return compile_glob(pattern).fullmatch(subject) is not None
