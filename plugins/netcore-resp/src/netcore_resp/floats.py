"""Numbers as Redis 7.0 reads them with C's ``strtod``/``strtold``, and its long double arithmetic.

Python's ``float()`` is not ``strtod``: it takes underscores (``1_0``) and blanks on both
sides, refuses hexadecimal (``0x10``, ``0x1.8p3``), and gives ``inf`` or ``0`` where
``strtod`` reports ERANGE. Each Redis caller checks ``strtod`` its own way, hence one
function per way:

* :func:`string2d` (``ZADD``, ``ZINCRBY``, ``WEIGHTS``): the whole argument, no leading
  blank, ERANGE refused when the result overflowed or underflowed to zero.
* :func:`range_double` (score ranges, Redis's ``zslParseRange``): leading blanks skipped,
  the text read up to its first NUL, no ERANGE check (``1e400`` is ``inf``), only NaN refused.
* :func:`sort_double` (``SORT``'s weights): as a range, but any ERANGE refused.
* :func:`string2ld` (``INCRBYFLOAT``, ``HINCRBYFLOAT``, timeouts): ``strtold``'s x87 80-bit long
  double (64-bit significand, exponents to +-16383), emulated exactly with Python
  integers; :func:`add_ld` and :func:`format_ld` (Redis's ``%.17Lf``
  without trailing zeros) complete INCRBYFLOAT. ``1e400`` is a long double, so Redis
  accepts it there and prints all its 401 digits.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: strtod's syntax (C99, "C" locale): decimal, hexadecimal, infinity, NaN.
_NUMBER = re.compile(
    rb"(?P<sign>[+-]?)(?:"
    rb"0[xX](?P<hint>[0-9a-fA-F]*)(?:\.(?P<hfrac>[0-9a-fA-F]*))?(?:[pP](?P<hexp>[+-]?[0-9]+))?"
    rb"|(?P<dint>[0-9]*)(?:\.(?P<dfrac>[0-9]*))?(?:[eE](?P<dexp>[+-]?[0-9]+))?"
    rb"|(?P<inf>(?i:inf|infinity))"
    rb"|(?P<nan>(?i:nan)(?:\([0-9A-Za-z_]*\))?))")
_BLANKS = b" \t\n\v\f\r"

#: A long double: ``(m, q)`` for ``m * 2**q`` exactly, or +-inf as a float.
LongDouble = tuple[int, int] | float
_MANT = 64
_MIN_EXP = -16382 - (_MANT - 1)  # the quantum of subnormals: 2**-16445
_OVERFLOW_BITS = 16384  # a rounded magnitude of 2**16384 or more is inf
_DBL_MIN = 2.2250738585072014e-308  # below it a double is subnormal (strtod sets ERANGE)
#: strtold's buffer in Redis's string2ld (MAX_LONG_DOUBLE_CHARS): longer text is refused.
_LD_MAX_CHARS = 5 * 1024


def _exact(text: bytes) -> tuple[tuple[int, int] | float, bool] | None:
    """``text`` (all of it) as strtod's syntax reads it: (magnitude as numerator and
    denominator, or inf/nan as a float; negative).

    None: not a number in that syntax (or with no digit). The value of a huge exponent
    is not built: it is returned as a float inf (overflow) or 0.0 (underflow) for the
    caller's range check, so ``1e999999999`` costs nothing.
    """
    m = _NUMBER.fullmatch(text)
    if m is None:
        return None
    negative = m["sign"] == b"-"
    if m["inf"] is not None:
        return math.inf, negative
    if m["nan"] is not None:
        return math.nan, negative
    if m["hint"] is not None:
        digits, frac, exp, base = m["hint"] or b"", m["hfrac"] or b"", m["hexp"], 16
        if not digits and not frac:
            return None  # "0x" alone: strtod reads "0" and stops at the x
    else:
        digits, frac, exp, base = m["dint"] or b"", m["dfrac"] or b"", m["dexp"], 10
        if not digits and not frac:
            return None
    significant = (digits + frac).lstrip(b"0")
    mantissa = _int(significant, base)
    exponent = int(exp) if exp is not None and len(exp) < 12 else (0 if exp is None else (
        -(10 ** 12) if exp.startswith(b"-") else 10 ** 12))  # a longer exponent is far out of range
    if mantissa == 0:
        return (0, 1), negative
    if base == 16:
        exponent2 = exponent - 4 * len(frac)
        magnitude = mantissa.bit_length() + exponent2  # about log2
        if magnitude > 16400:
            return math.inf, negative
        if magnitude < -16500:
            return 0.0, negative
        return ((mantissa << exponent2, 1) if exponent2 >= 0 else (mantissa, 1 << -exponent2)), negative
    exponent10 = exponent - len(frac)
    magnitude = len(significant) + exponent10  # about log10
    if magnitude > 4940:
        return math.inf, negative
    if magnitude < -4960:
        return 0.0, negative
    return ((mantissa * 10 ** exponent10, 1) if exponent10 >= 0 else (mantissa, 10 ** -exponent10)), negative


def _int(digits: bytes, base: int) -> int:
    """``int(digits, base)`` past Python's 4300-digit limit on decimal text (5119 digits fit
    Redis's buffer)."""
    if base != 10 or len(digits) <= 4000:
        return int(digits or b"0", base)
    value = 0
    for i in range(0, len(digits), 4000):
        chunk = digits[i:i + 4000]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


_CHUNK = 10 ** 4000
_E17 = 10 ** 17


def _decimal(n: int) -> bytes:
    """``b"%d" % n`` past Python's 4300-digit limit (a long double has up to 4950)."""
    if n < _CHUNK:
        return b"%d" % n
    high, low = divmod(n, _CHUNK)
    return _decimal(high) + (b"%d" % low).rjust(4000, b"0")


def _double(text: bytes) -> tuple[float, bool] | None:
    """(strtod's double of all of ``text``, whether it set ERANGE), or None.

    ``float()`` and ``float.fromhex()`` round correctly, as glibc does; the regex first
    keeps out what strtod would not read (underscores, blanks)."""
    m = _NUMBER.fullmatch(text)
    if m is None:
        return None
    if m["inf"] is not None:
        return float(text), False
    if m["nan"] is not None:
        return math.nan, False
    if m["hint"] is not None:
        digits = (m["hint"] or b"") + (m["hfrac"] or b"")
        if not digits:
            return None
        try:
            result = float.fromhex(text.decode("ascii"))
        except OverflowError:
            return (-math.inf if m["sign"] == b"-" else math.inf), True
    else:
        digits = (m["dint"] or b"") + (m["dfrac"] or b"")
        if not digits:
            return None
        result = float(text)
        if math.isinf(result):
            return result, True
    if result == 0.0:
        return result, digits.strip(b"0") != b""
    return result, abs(result) < _DBL_MIN


def string2d(value: bytes) -> float | None:
    """Redis's ``string2d``: all of ``value``, no leading blank; None where Redis refuses."""
    if not value or value[0] in _BLANKS:
        return None
    parsed = _double(value)
    if parsed is None:
        return None
    number, erange = parsed
    if math.isnan(number) or (erange and (math.isinf(number) or number == 0.0)):
        return None
    return number


def _prefix(value: bytes) -> bytes | None:
    """What ``strtod(s, &end)`` with ``*end == '\\0'`` required reads: leading blanks skipped,
    up to the first NUL. None: blanks only (strtod converts nothing, end stays at the blank)."""
    value = value.split(b"\0", 1)[0]
    stripped = value.lstrip(_BLANKS)
    if not stripped:
        return b"0" if not value else None  # "" converts nothing, and end is at its NUL
    return stripped


def range_double(value: bytes) -> float | None:
    """A score range bound as Redis's ``zslParseRange`` reads it (NaN refused, nothing else checked)."""
    text = _prefix(value)
    parsed = None if text is None else _double(text)
    if parsed is None or math.isnan(parsed[0]):
        return None
    return parsed[0]


def sort_double(value: bytes) -> float | None:
    """A SORT weight as Redis's ``sortCommand`` reads it: as a range bound, but ERANGE refused."""
    text = _prefix(value)
    parsed = None if text is None else _double(text)
    if parsed is None or math.isnan(parsed[0]) or parsed[1]:
        return None
    return parsed[0]


# -- long double ------------------------------------------------------------------------
def _round(n: int, d: int, negative: bool) -> LongDouble:
    """The x87 long double nearest ``n / d`` (ties to even), or +-inf past the largest."""
    if n == 0:
        return (0, 0)
    e = n.bit_length() - d.bit_length()
    if (n << -e if e < 0 else n) < (d << e if e > 0 else d):
        e -= 1  # now 2**e <= n/d < 2**(e+1)
    q = max(e - (_MANT - 1), _MIN_EXP)
    num, den = (n, d << q) if q >= 0 else (n << -q, d)
    m, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and m & 1):
        m += 1
    if m.bit_length() + q > _OVERFLOW_BITS:
        return -math.inf if negative else math.inf
    return (-m if negative else m, q)


def string2ld(value: bytes) -> LongDouble | None:
    """Redis's ``string2ld``: all of ``value`` as strtold reads it; None where Redis refuses
    (a leading blank, anything after the number, NaN, overflow, underflow to zero).

    A finite long double is ``(m, q)``, the value ``m * 2**q`` (``|m| < 2**64``); an
    infinite one is a float."""
    if not value or len(value) >= _LD_MAX_CHARS or value[0] in _BLANKS:
        return None
    parsed = _exact(value)
    if parsed is None:
        return None
    exact, negative = parsed
    if exact.__class__ is float:
        if math.isnan(exact):
            return None
        if math.isinf(exact) and _NUMBER.fullmatch(value)["inf"] is not None:
            return -math.inf if negative else math.inf
        return None  # a huge exponent: ERANGE with inf or zero
    n, d = exact
    rounded = _round(n, d, negative)
    if rounded.__class__ is float or (rounded[0] == 0 and n != 0):
        return None  # ERANGE: HUGE_VALL, or underflow to zero
    return rounded


def add_ld(a: LongDouble, b: LongDouble) -> LongDouble:
    """``a + b`` in long double (nan when inf meets -inf)."""
    if a.__class__ is float or b.__class__ is float:
        if a.__class__ is float and b.__class__ is float:
            return a + b
        return a if a.__class__ is float else b
    (m1, q1), (m2, q2) = a, b
    low = min(q1, q2)
    total = (m1 << (q1 - low)) + (m2 << (q2 - low))
    if total == 0:
        return (0, 0)
    return _round(abs(total) << low, 1, total < 0) if low >= 0 else _round(abs(total), 1 << -low, total < 0)


def is_finite_ld(value: LongDouble) -> bool:
    return value.__class__ is not float


def format_ld(value: tuple[int, int]) -> bytes:
    """Redis's ``ld2string(LD_STR_HUMAN)``: ``%.17Lf`` (exact, rounded half to even), then the
    trailing zeros and dot removed; ``-0`` is ``0``."""
    m, q = value
    n = abs(m)
    if q >= 0:
        text = _decimal(n << q)
    else:
        scaled = n * _E17
        shift = -q
        whole = scaled >> shift
        rest = scaled - (whole << shift)
        half = 1 << (shift - 1)
        if rest > half or (rest == half and whole & 1):
            whole += 1
        high, low = divmod(whole, _E17)
        text = (_decimal(high) + b".%017d" % low).rstrip(b"0").rstrip(b".")
    if m < 0 and text != b"0":
        text = b"-" + text
    return text


def times_int_ceil(value: LongDouble, k: int) -> int | None:
    """``(long long) ceill(value * k)`` as Redis 7.0's x86-64 build computes it: the product
    rounded to a long double, then rounded up; None where C's conversion has no value
    (inf, or outside long long: the CPU's answer there is LLONG_MIN)."""
    if value.__class__ is float:
        return None
    m, q = value
    product = _round(abs(m) * k << q, 1, m < 0) if q >= 0 else _round(abs(m) * k, 1 << -q, m < 0)
    if product.__class__ is float:
        return None
    pm, pq = product
    n = pm << pq if pq >= 0 else -((-pm) >> -pq)
    return n if -(1 << 63) <= n < (1 << 63) else None


def install(ctx: Any) -> None:
    """INCRBYFLOAT in long double, as Redis computes and prints it (``incrbyfloatCommand``).

    Registered after :mod:`netcore_resp.strings`, whose float64 INCRBYFLOAT it replaces."""
    from netcore_resp.framing import error_reply
    from netcore_resp.replies import Reply, bulk

    not_float = error_reply("value is not a valid float")
    nan_or_inf = error_reply("increment would produce NaN or Infinity")
    data, string_value = ctx.data, ctx.string_value

    def incrbyfloat(argv, client):
        key = argv[1]
        old = string_value(key)
        current = (0, 0) if old is None else string2ld(bytes(old))
        increment = string2ld(argv[2])
        if current is None or increment is None:
            raise Reply(not_float)
        value = add_ld(current, increment)
        if value.__class__ is float:
            raise Reply(nan_or_inf)
        encoded = format_ld(value)
        data[key] = encoded  # the TTL stays, as Redis's dbReplaceValue keeps it
        return bulk(encoded)

    ctx.register("incrbyfloat", (3, ("write", "denyoom", "fast"), 1, 1, 1), incrbyfloat)
