"""Sorted sets: ZADD and the rank, score and lex ranges, the set algebra, pops (blocking too).

**Why sortedcontainers.** A sorted set needs member -> score in O(1) and order by
(score, member) with O(log n) insert, delete, rank and range search. Redis uses a hash
table plus a skip list. ``sortedcontainers.SortedList`` (pure Python, well kept, the
structure CPython core developers point to) gives the ordered half in O(log n) with
lists of lists that stay cache-friendly, measured faster than a hand-written skip list
or a ``bisect.insort`` list beyond a few thousand members; the dict is the other half.

Scores are floats ordered as Redis orders them: by score, then by member bytes. Replies
give scores in the shortest form that reads back to the same double (Redis 7.2's
``fpconv``: ``1.5``, ``0.1``, ``inf``; integers without a dot); RESP3 clients get
doubles (``,1.5``) and WITHSCORES as [member, score] pairs, as Redis 7 sends them.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterable

from sortedcontainers import SortedList

from netcore_resp.blocking import Blocked, mpop_commands, parse_timeout
from netcore_resp.context import Context
from netcore_resp.floats import range_double
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.hashes import pick_random, random_count
from netcore_resp.replies import (
    EMPTY_ARRAY,
    MUST_BE_POSITIVE,
    NOT_INTEGER,
    NULL3,
    SYNTAX,
    WRONGTYPE,
    ZERO,
    Reply,
    bulk,
    integer,
    non_negative,
)
from netcore_resp.scan import EMPTY_SCAN
from netcore_resp.scan import open_collection as open_scan
from netcore_resp.scan import page as scan_page
from netcore_resp.scan import reply as scan_reply
from netcore_resp.strings import parse_float

NOT_FLOAT = error_reply("value is not a valid float")
MINMAX_NOT_FLOAT = error_reply("min or max is not a float")
MINMAX_NOT_LEX = error_reply("min or max not valid string range item")
NAN_SCORE = error_reply("resulting score is not a number (NaN)")
WEIGHT_NOT_FLOAT = error_reply("weight value is not a float")
#: ZMPOP's ends: MAX (the highest scores) is True.
ZSET_ENDS = {b"min": False, b"max": True}


class _Top:
    """Greater than every member: ``(score, TOP)`` sorts after each entry of that score."""

    __slots__ = ()

    def __lt__(self, other: Any) -> bool:
        return False

    def __gt__(self, other: Any) -> bool:
        return other is not self


TOP: Any = _Top()


class ZSet:
    """member -> score (``scores``) and the (score, member) pairs in order (``order``)."""

    __slots__ = ("scores", "order")

    def __init__(self, items: Iterable[tuple[bytes, float]] = ()) -> None:
        self.scores: dict[bytes, float] = dict(items)
        self.order = SortedList((score, member) for member, score in self.scores.items())

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Any:
        return iter(self.scores)

    def add(self, member: bytes, score: float) -> None:
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            self.order.remove((old, member))
        self.scores[member] = score
        self.order.add((score, member))

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove((score, member))
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        return None if score is None else self.order.index((score, member))

    def copy(self) -> ZSet:
        return ZSet(self.scores.items())

    # -- ranges: (start, stop) indexes into ``order``, stop exclusive -------------------
    def score_span(self, low: float, low_open: bool, high: float, high_open: bool) -> tuple[int, int]:
        order = self.order
        start = order.bisect_left((low, TOP) if low_open else (low,))
        stop = order.bisect_left((high,) if high_open else (high, TOP))
        return start, max(start, stop)

    def lex_span(self, low: Any, high: Any) -> tuple[int, int]:
        """Members between two lex bounds (``(member, open)``, or None for - / +).

        Redis requires equal scores for lex ranges and searches its skip list by member
        as if the members were in order along it; so does this binary search by member
        over the positions, which gives Redis's answer whether or not scores are equal.
        """
        order = self.order
        n = len(order)

        def first_past(bound: bytes, inclusive: bool) -> int:
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                member = order[mid][1]
                if member < bound or (not inclusive and member == bound):
                    lo = mid + 1
                else:
                    hi = mid
            return lo

        start = 0 if low is None else (n if low[0] is TOP else first_past(low[0], not low[1]))
        stop = n if high is None else first_past(high[0], high[1])
        return start, max(start, stop)


def format_score(score: float) -> bytes:
    """The shortest text that reads back to ``score`` (Redis 7.2's fpconv_dtoa)."""
    if score == math.inf:
        return b"inf"
    if score == -math.inf:
        return b"-inf"
    if score == int(score) and abs(score) < 1e17:
        return b"%d" % int(score)
    return repr(score).encode()


def parse_bound(value: bytes) -> tuple[float, bool]:
    """A score bound: ``1.5``, ``(1.5`` (open), ``-inf``, ``+inf``."""
    is_open = value[:1] == b"("
    number = range_double(value[1:] if is_open else value)  # strtod as zslParseRange checks it
    if number is None:
        raise Reply(MINMAX_NOT_FLOAT)
    return number, is_open


def parse_lex(value: bytes) -> Any:
    """A lex bound: ``-`` / ``+`` (None: unbounded, with the side known from the caller),
    ``[member`` (closed) or ``(member`` (open) as ``(member, open)``."""
    head = value[:1]
    if value in (b"-", b"+"):
        return value
    if head == b"[":
        return (value[1:], False)
    if head == b"(":
        return (value[1:], True)
    raise Reply(MINMAX_NOT_LEX)


def _lex_low(bound: Any) -> Any:
    """A low bound: ``-`` is unbounded, ``+`` is past everything."""
    if bound == b"-":
        return None
    if bound == b"+":
        return (TOP, False)
    return bound


def _lex_high(bound: Any) -> Any:
    if bound == b"+":
        return None
    if bound == b"-":
        return (b"", True)  # below every member
    return bound


def install(ctx: Context) -> None:
    ks, data, resp3, register, waiters = ctx.ks, ctx.data, ctx.resp3, ctx.register, ctx.waiters

    def get(key: bytes) -> ZSet | None:
        value = ctx.alive(key)
        if value is None:
            return None
        if value.__class__ is not ZSet:
            raise Reply(WRONGTYPE)
        return value

    def source(key: bytes) -> Any:
        """An input of the set algebra: a sorted set, or a set (every score 1), or None."""
        value = ctx.alive(key)
        if value is None or value.__class__ is ZSet:
            return value
        if value.__class__ is set:
            return ZSet((member, 1.0) for member in value)
        raise Reply(WRONGTYPE)

    def score_reply(score: float | None, proto3: bool = resp3) -> bytes:
        if score is None:
            return NULL3 if proto3 else b"$-1\r\n"
        if proto3:
            text = format_score(score)
            return b",%s\r\n" % text
        return bulk(format_score(score))

    def with_scores(pairs: list[tuple[float, bytes]], scores: bool, proto3: bool = resp3) -> bytes:
        """Members (and scores) of ``(score, member)`` pairs, in the protocol's shape."""
        if not scores:
            return b"*%d\r\n" % len(pairs) + b"".join(bulk(member) for _, member in pairs)
        if proto3:
            return b"*%d\r\n" % len(pairs) + b"".join(
                b"*2\r\n" + bulk(member) + score_reply(score, True) for score, member in pairs)
        return b"*%d\r\n" % (2 * len(pairs)) + b"".join(
            bulk(member) + bulk(format_score(score)) for score, member in pairs)

    def store(key: bytes, zset: ZSet) -> None:
        """Replace ``key`` by ``zset`` (deleted when empty), dropping any deadline."""
        ks.delete(key)
        if zset:
            data[key] = zset

    # -- ZADD, ZINCRBY, ZREM ------------------------------------------------------------
    def zadd_generic(argv: list, incr_only: bool) -> bytes:
        nx = xx = gt = lt = ch = incr = False
        j = 2
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"nx":
                nx = True
            elif opt == b"xx":
                xx = True
            elif opt == b"gt":
                gt = True
            elif opt == b"lt":
                lt = True
            elif opt == b"ch":
                ch = True
            elif opt == b"incr":
                incr = True
            else:
                break
            j += 1
        incr = incr or incr_only
        rest = argv[j:]
        if not rest or len(rest) % 2:
            raise Reply(SYNTAX)
        if nx and xx:
            raise Reply(error_reply("XX and NX options at the same time are not compatible"))
        if (gt and nx) or (lt and nx) or (gt and lt):
            raise Reply(error_reply("GT, LT, and/or NX options at the same time are not compatible"))
        if incr and len(rest) > 2:
            raise Reply(error_reply("INCR option supports a single increment-element pair"))
        pairs = []
        for i in range(0, len(rest), 2):
            try:
                pairs.append((parse_float(rest[i]), rest[i + 1]))
            except Reply:
                raise Reply(NOT_FLOAT) from None
        key = argv[1]
        zset = get(key)
        if zset is None:
            if xx:
                return ctx.nil if incr else ZERO
            zset = ZSet()
            data[key] = zset
        added = changed = 0
        result: float | None = None
        for score, member in pairs:
            old = zset.scores.get(member)
            if old is None:
                if xx:
                    continue
                if incr and math.isnan(score):
                    raise Reply(NAN_SCORE)
                zset.add(member, score)
                added += 1
                result = score
                continue
            if nx:
                continue
            new = old + score if incr else score
            if math.isnan(new):
                if not zset:
                    ks.delete(key)
                raise Reply(NAN_SCORE)
            if (gt and new <= old) or (lt and new >= old):
                continue
            result = new
            if new != old:
                zset.add(member, new)
                changed += 1
        if not zset:
            ks.delete(key)
        if incr:
            return score_reply(result)
        return integer(added + changed if ch else added)

    def zadd(argv, client):
        return zadd_generic(argv, False)

    def zincrby(argv, client):
        return zadd_generic([argv[0], argv[1], argv[2], argv[3]], True)

    def zrem(argv, client):
        key = argv[1]
        zset = get(key)
        if zset is None:
            return ZERO
        removed = sum(1 for member in argv[2:] if zset.remove(member))
        if not zset:
            ks.delete(key)
        return integer(removed)

    # -- reading ------------------------------------------------------------------------
    def zcard(argv, client):
        zset = get(argv[1])
        return integer(len(zset)) if zset else ZERO

    def zscore(argv, client):
        zset = get(argv[1])
        return score_reply(zset.scores.get(argv[2]) if zset else None)

    def zmscore(argv, client):
        zset = get(argv[1])
        scores = zset.scores if zset else {}
        return b"*%d\r\n" % (len(argv) - 2) + b"".join(score_reply(scores.get(m)) for m in argv[2:])

    def rank_generic(argv, reverse: bool) -> bytes:
        withscore = False
        if len(argv) == 4:
            if argv[3].lower() != b"withscore":
                raise Reply(SYNTAX)
            withscore = True
        elif len(argv) > 4:
            raise Reply(SYNTAX)
        zset = get(argv[1])
        rank = zset.rank(argv[2]) if zset else None
        if rank is None:
            return ctx.nil_array if withscore else ctx.nil
        if reverse:
            rank = len(zset) - 1 - rank
        if withscore:
            return b"*2\r\n" + integer(rank) + score_reply(zset.scores[argv[2]])
        return integer(rank)

    def zcount(argv, client):
        low, low_open = parse_bound(argv[2])
        high, high_open = parse_bound(argv[3])
        zset = get(argv[1])
        if not zset:
            return ZERO
        start, stop = zset.score_span(low, low_open, high, high_open)
        return integer(stop - start)

    def zlexcount(argv, client):
        low, high = parse_lex(argv[2]), parse_lex(argv[3])
        zset = get(argv[1])
        if not zset:
            return ZERO
        start, stop = zset.lex_span(_lex_low(low), _lex_high(high))
        return integer(stop - start)

    # -- ranges -------------------------------------------------------------------------
    def select_range(key: bytes, by: str, first: bytes, second: bytes, reverse: bool,
                     limit: tuple[int, int] | None) -> tuple[ZSet | None, list[tuple[float, bytes]]]:
        """The sorted set at ``key`` and the (score, member) pairs of one range request, in
        reply order. The range is read before the key is looked up, as Redis's
        ``zrangeGenericCommand`` and ``zremrangeGenericCommand`` do: a bad range is refused
        whatever the key holds."""
        if by == "rank":
            start, stop = string2ll(first), string2ll(second)
            if start is None or stop is None:
                raise Reply(NOT_INTEGER)
        elif by == "score":
            low, low_open = parse_bound(second if reverse else first)
            high, high_open = parse_bound(first if reverse else second)
        else:
            low, high = parse_lex(second if reverse else first), parse_lex(first if reverse else second)
        zset = get(key)
        if not zset:
            return zset, []
        if by == "rank":
            n = len(zset)
            if start < 0:
                start += n
            if stop < 0:
                stop += n
            start = max(start, 0)
            if start > stop or start >= n:
                return zset, []
            stop = min(stop, n - 1)
            if reverse:
                return zset, list(zset.order.islice(n - 1 - stop, n - start, reverse=True))
            return zset, list(zset.order.islice(start, stop + 1))
        if by == "score":
            start, stop = zset.score_span(low, low_open, high, high_open)
        else:
            start, stop = zset.lex_span(_lex_low(low), _lex_high(high))
        offset, count = limit if limit is not None else (0, -1)
        if offset < 0:
            return zset, []
        if reverse:
            hi = stop - offset
            lo = start if count < 0 else max(start, hi - count)
            return zset, list(zset.order.islice(lo, max(lo, hi), reverse=True))
        lo = start + offset
        hi = stop if count < 0 else min(stop, lo + count)
        return zset, list(zset.order.islice(lo, max(lo, hi)))

    def parse_range_options(argv: list, first: int, by: str, reverse: bool, allow: bool, store: bool = False
                            ) -> tuple[str, bool, tuple[int, int] | None, bool]:
        """ZRANGE's [BYSCORE|BYLEX] [REV] [LIMIT o c] [WITHSCORES] (``allow``: the first two,
        each at most once, as Redis takes them only while still undecided; ``store``:
        ZRANGESTORE, where WITHSCORES is a syntax error at once)."""
        limit = None
        scores = False
        pick_by = pick_direction = allow
        j = first
        while j < len(argv):
            opt = argv[j].lower()
            if opt == b"withscores" and not store:
                scores = True
            elif opt == b"limit" and j + 2 < len(argv):
                offset, count = string2ll(argv[j + 1]), string2ll(argv[j + 2])
                if offset is None or count is None:
                    raise Reply(NOT_INTEGER)
                limit = (offset, count)
                j += 2
            elif pick_by and opt in (b"byscore", b"bylex"):
                by = "score" if opt == b"byscore" else "lex"
                pick_by = False
            elif pick_direction and opt == b"rev":
                reverse = True
                pick_direction = False
            else:
                raise Reply(SYNTAX)
            j += 1
        if limit is not None and by == "rank":
            raise Reply(error_reply("syntax error, LIMIT is only supported in combination with either BYSCORE or "
                                    "BYLEX"))
        if scores and by == "lex":
            raise Reply(error_reply("syntax error, WITHSCORES not supported in combination with BYLEX"))
        return by, reverse, limit, scores

    def range_command(by: str, reverse: bool, allow: bool) -> Callable:
        def run(argv, client):
            how, rev, limit, scores = parse_range_options(argv, 4, by, reverse, allow)
            return with_scores(select_range(argv[1], how, argv[2], argv[3], rev, limit)[1], scores)
        return run

    def zrangestore(argv, client):
        how, rev, limit, _ = parse_range_options(argv, 5, "rank", False, True, store=True)
        pairs = select_range(argv[2], how, argv[3], argv[4], rev, limit)[1]
        store(argv[1], ZSet((member, score) for score, member in pairs))
        return integer(len(pairs))

    def remrange(by: str) -> Callable:
        def run(argv, client):
            key = argv[1]
            zset, pairs = select_range(key, by, argv[2], argv[3], False, None)
            for _, member in pairs:
                zset.remove(member)
            if zset is not None and not zset:
                ks.delete(key)
            return integer(len(pairs))
        return run

    # -- set algebra --------------------------------------------------------------------
    def parse_algebra(argv: list, first: int, name: str, weights_ok: bool
                      ) -> tuple[list[bytes], list[float], str, bool, int | None]:
        numkeys = string2ll(argv[first])
        if numkeys is None:
            raise Reply(NOT_INTEGER)
        if numkeys < 1:
            raise Reply(error_reply(f"at least 1 input key is needed for '{name}' command"))
        keys = argv[first + 1:first + 1 + numkeys]
        if len(keys) < numkeys:
            raise Reply(SYNTAX)
        weights = [1.0] * numkeys
        aggregate, scores, limit = "sum", False, None
        j = first + 1 + numkeys
        while j < len(argv):
            opt = argv[j].lower()
            if weights_ok and opt == b"weights" and j + numkeys < len(argv):
                try:
                    weights = [parse_float(w) for w in argv[j + 1:j + 1 + numkeys]]
                except Reply:
                    raise Reply(WEIGHT_NOT_FLOAT) from None
                j += numkeys
            elif weights_ok and opt == b"aggregate" and j + 1 < len(argv):
                aggregate = argv[j + 1].lower().decode("latin-1")
                if aggregate not in ("sum", "min", "max"):
                    raise Reply(SYNTAX)
                j += 1
            elif opt == b"withscores" and not name.endswith("store") and name != "zintercard":
                scores = True
            elif opt == b"limit" and name == "zintercard" and j + 1 < len(argv):
                limit = non_negative(argv[j + 1], "LIMIT")
                j += 1
            else:
                raise Reply(SYNTAX)
            j += 1
        return keys, weights, aggregate, scores, limit

    def combine(op: str, keys: list[bytes], weights: list[float], aggregate: str) -> ZSet:
        inputs = [source(key) for key in keys]  # every type checked first, as Redis does
        if op == "diff":
            first = inputs[0]
            if not first:
                return ZSet()
            others = [z for z in inputs[1:] if z]
            return ZSet((m, s) for m, s in first.scores.items() if not any(m in z.scores for z in others))
        pick = {"sum": lambda a, b: a + b, "min": min, "max": max}[aggregate]

        def weighted(score: float, weight: float) -> float:
            value = score * weight
            return 0.0 if math.isnan(value) else value

        def merged(a: float, b: float) -> float:
            value = pick(a, b)
            return 0.0 if math.isnan(value) else value  # inf + -inf: Redis takes 0

        if op == "union":
            result: dict[bytes, float] = {}
            for zset, weight in zip(inputs, weights):
                if not zset:
                    continue
                for member, score in zset.scores.items():
                    value = weighted(score, weight)
                    result[member] = merged(result[member], value) if member in result else value
            return ZSet(result.items())
        if any(not z for z in inputs):
            return ZSet()
        smallest = min(range(len(inputs)), key=lambda i: len(inputs[i]))
        result = {}
        for member in inputs[smallest].scores:
            if all(member in z.scores for z in inputs):
                value = None
                for zset, weight in zip(inputs, weights):
                    part = weighted(zset.scores[member], weight)
                    value = part if value is None else merged(value, part)
                result[member] = value
        return ZSet(result.items())

    def algebra(op: str, name: str) -> Callable:
        def run(argv, client):
            keys, weights, aggregate, scores, _ = parse_algebra(argv, 1, name, op != "diff")
            result = combine(op, keys, weights, aggregate)
            return with_scores(list(result.order), scores)
        return run

    def algebra_store(op: str, name: str) -> Callable:
        def run(argv, client):
            keys, weights, aggregate, _, _ = parse_algebra(argv, 2, name, op != "diff")
            result = combine(op, keys, weights, aggregate)
            store(argv[1], result)
            return integer(len(result))
        return run

    def zintercard(argv, client):
        keys, _, _, _, limit = parse_algebra(argv, 1, "zintercard", False)
        n = len(combine("inter", keys, [1.0] * len(keys), "sum"))
        return integer(min(n, limit) if limit else n)

    # -- random and pops ----------------------------------------------------------------
    def zrandmember(argv, client):
        zset = get(argv[1])
        if len(argv) == 2:
            return ctx.maybe_bulk(random.choice(tuple(zset.scores)) if zset else None)
        count, scores = random_count(argv, b"withscores")
        if not zset:
            return EMPTY_ARRAY
        chosen = pick_random(tuple(zset.scores), count)
        return with_scores([(zset.scores[m], m) for m in chosen], scores)

    def pop(key: bytes, highest: bool, count: int) -> list[tuple[float, bytes]]:
        zset = get(key)
        if not zset:
            return []
        taken = []
        for _ in range(min(count, len(zset))):
            score, member = zset.order.pop(-1 if highest else 0)
            del zset.scores[member]
            taken.append((score, member))
        if not zset:
            ks.delete(key)
        return taken

    def zpop(highest: bool) -> Callable:
        def run(argv, client):
            if len(argv) > 3:
                raise Reply(SYNTAX)
            count = 1
            if len(argv) == 3:
                count = string2ll(argv[2])
                if count is None or count < 0:
                    raise Reply(MUST_BE_POSITIVE)
            taken = pop(argv[1], highest, count)
            if len(argv) == 2 and resp3:  # no count: one flat [member, score]
                return EMPTY_ARRAY if not taken else b"*2\r\n" + bulk(taken[0][1]) + score_reply(taken[0][0])
            return with_scores(taken, True)
        return run

    def bpop_reply(key: bytes, taken: list, proto3: bool) -> bytes:
        score, member = taken[0]
        return b"*3\r\n" + bulk(key) + bulk(member) + score_reply(score, proto3)

    def mpop_reply(key: bytes, taken: list, proto3: bool) -> bytes:
        body = b"*%d\r\n" % len(taken) + b"".join(
            b"*2\r\n" + bulk(member) + score_reply(score, proto3) for score, member in taken)
        return b"*2\r\n" + bulk(key) + body

    def bzpop(highest: bool) -> Callable:
        def run(argv, client):
            timeout = parse_timeout(argv[-1])
            keys = argv[1:-1]
            for key in keys:
                get(key)  # WRONGTYPE first
            for key in keys:
                taken = pop(key, highest, 1)
                if taken:
                    return bpop_reply(key, taken, resp3)
            if client.in_exec:
                return ctx.nil_array
            waiters.block(client, keys, ("zpop", highest, 1), timeout)
            raise Blocked
        return run

    def mpop_now(keys: list[bytes], highest: bool, count: int) -> bytes | None:
        for key in keys:
            get(key)
        for key in keys:
            taken = pop(key, highest, count)
            if taken:
                return mpop_reply(key, taken, resp3)
        return None

    zmpop, bzmpop = mpop_commands(ctx, waiters, ZSET_ENDS, mpop_now, "zmpop")

    def serve(key: bytes) -> None:
        """A write left a sorted set at ``key``: serve its BZPOP* waiters in order."""
        queue = waiters.by_key.get(key)
        while queue:
            zset = ctx.alive(key)
            if zset.__class__ is not ZSet:
                return
            client = next((c for c in queue if c.blocked[1][0] in ("zpop", "zmpop")), None)
            if client is None:
                return
            how = client.blocked[1]
            taken = pop(key, how[1], how[2])
            waiters.drop(client)
            waiters.touch((key,), waiters.db)
            proto3 = client.proto == 3
            client.block_reply = bpop_reply(key, taken, proto3) if how[0] == "zpop" else \
                mpop_reply(key, taken, proto3)
            client.connection.run_on_io_thread(client.wake_soon)
            queue = waiters.by_key.get(key)

    waiters.add_server(serve)

    def zscan(argv, client):
        opened = open_scan(argv, get)
        if opened is None:
            return EMPTY_SCAN
        zset, cursor, count, match = opened
        nxt, names = scan_page(zset.scores, cursor, count)
        if match is not None:
            names = list(filter(match, names))
        return scan_reply(nxt, [x for name in names for x in (name, format_score(zset.scores[name]))])

    w, wf, r, rf = ("write", "denyoom"), ("write", "denyoom", "fast"), ("readonly",), ("readonly", "fast")
    register("zadd", (-4, wf, 1, 1, 1), zadd)
    register("zincrby", (4, wf, 1, 1, 1), zincrby)
    register("zrem", (-3, ("write", "fast"), 1, 1, 1), zrem)
    register("zcard", (2, rf, 1, 1, 1), zcard)
    register("zscore", (3, rf, 1, 1, 1), zscore)
    register("zmscore", (-3, rf, 1, 1, 1), zmscore)
    register("zrank", (-3, rf, 1, 1, 1), lambda argv, client: rank_generic(argv, False))
    register("zrevrank", (-3, rf, 1, 1, 1), lambda argv, client: rank_generic(argv, True))
    register("zcount", (4, rf, 1, 1, 1), zcount)
    register("zlexcount", (4, rf, 1, 1, 1), zlexcount)
    register("zrange", (-4, r, 1, 1, 1), range_command("rank", False, True))
    register("zrevrange", (-4, r, 1, 1, 1), range_command("rank", True, False))
    register("zrangebyscore", (-4, r, 1, 1, 1), range_command("score", False, False))
    register("zrevrangebyscore", (-4, r, 1, 1, 1), range_command("score", True, False))
    register("zrangebylex", (-4, r, 1, 1, 1), range_command("lex", False, False))
    register("zrevrangebylex", (-4, r, 1, 1, 1), range_command("lex", True, False))
    register("zrangestore", (-5, w, 1, 2, 1), zrangestore)
    register("zremrangebyscore", (4, ("write",), 1, 1, 1), remrange("score"))
    register("zremrangebyrank", (4, ("write",), 1, 1, 1), remrange("rank"))
    register("zremrangebylex", (4, ("write",), 1, 1, 1), remrange("lex"))
    for op in ("union", "inter", "diff"):
        register(f"z{op}", (-3, r, 0, 0, 0), algebra(op, f"z{op}"))
        register(f"z{op}store", (-4, w, 1, 1, 1), algebra_store(op, f"z{op}store"))
    register("zintercard", (-3, rf, 0, 0, 0), zintercard)
    register("zrandmember", (-2, r, 1, 1, 1), zrandmember)
    register("zpopmin", (-2, ("write", "fast"), 1, 1, 1), zpop(False))
    register("zpopmax", (-2, ("write", "fast"), 1, 1, 1), zpop(True))
    register("bzpopmin", (-3, ("write", "noscript", "fast"), 1, -2, 1), bzpop(False))
    register("bzpopmax", (-3, ("write", "noscript", "fast"), 1, -2, 1), bzpop(True))
    register("zmpop", (-4, ("write",), 0, 0, 0), zmpop)
    register("bzmpop", (-5, ("write",), 0, 0, 0), bzmpop)
    register("zscan", (-3, r, 1, 1, 1), zscan)
