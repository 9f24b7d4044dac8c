"""List commands beyond push/pop/range (:mod:`netcore_resp.commands`), after Redis 7.0's
``t_list.c``. A list is a ``collections.deque``: O(1) at both ends, O(n) in the middle,
as Redis's quicklist is for the commands that walk it."""

from __future__ import annotations

import collections

from netcore_resp.context import Context
from netcore_resp.framing import LLONG_MIN, error_reply, string2ll
from netcore_resp.replies import MINUS_ONE, NOT_INTEGER, OK, SYNTAX, ZERO, Reply, bulk, integer, non_negative

NO_SUCH_KEY = error_reply("no such key")
OUT_OF_RANGE = error_reply("index out of range")


def _int(value: bytes) -> int:
    number = string2ll(value)
    if number is None:
        raise Reply(NOT_INTEGER)
    return number


def install(ctx: Context) -> None:
    ks, typed, register = ctx.ks, ctx.typed, ctx.register
    deque = collections.deque

    def get(key: bytes) -> collections.deque | None:
        return typed(key, deque)

    def drop_if_empty(key: bytes, items: collections.deque) -> None:
        if not items:
            ks.delete(key)

    def lindex(argv, client):
        items = get(argv[1])  # the key first, then the index, as Redis's lindexCommand
        if items is None:
            return ctx.nil
        index = _int(argv[2])
        if index < 0:
            index += len(items)
        return bulk(items[index]) if 0 <= index < len(items) else ctx.nil

    def lset(argv, client):
        items = get(argv[1])  # the key first, then the index, as Redis's lsetCommand
        if items is None:
            raise Reply(NO_SUCH_KEY)
        index = _int(argv[2])
        if index < 0:
            index += len(items)
        if not 0 <= index < len(items):
            raise Reply(OUT_OF_RANGE)
        items[index] = argv[3]
        return OK

    def linsert(argv, client):
        where = argv[2].lower()
        if where not in (b"before", b"after"):
            raise Reply(SYNTAX)
        items = get(argv[1])
        if items is None:
            return ZERO
        try:
            index = items.index(argv[3])
        except ValueError:
            return MINUS_ONE
        items.insert(index + (where == b"after"), argv[4])
        return integer(len(items))

    def lrem(argv, client):
        count = _int(argv[2])
        key, value = argv[1], argv[3]
        items = get(key)
        if items is None:
            return ZERO
        kept = list(items)
        removed = 0
        order = range(len(kept) - 1, -1, -1) if count < 0 else range(len(kept))
        limit = abs(count)
        drop = set()
        for i in order:
            if kept[i] == value:
                drop.add(i)
                removed += 1
                if limit and removed == limit:
                    break
        if removed:
            items.clear()
            items.extend(x for i, x in enumerate(kept) if i not in drop)
            drop_if_empty(key, items)
        return integer(removed)

    def ltrim(argv, client):
        start, stop = _int(argv[2]), _int(argv[3])
        key = argv[1]
        items = get(key)
        if items is None:
            return OK
        n = len(items)
        if start < 0:
            start = max(0, n + start)
        if stop < 0:
            stop += n
        if start > stop or start >= n:
            items.clear()
        else:
            stop = min(stop, n - 1)
            for _ in range(n - 1 - stop):
                items.pop()
            for _ in range(start):
                items.popleft()
        drop_if_empty(key, items)
        return OK

    def lpos(argv, client):
        rank, count, maxlen = 1, None, 0
        j = 3
        while j < len(argv):
            opt = argv[j].lower()  # the option's name first: an unknown one is a syntax error
            if j + 1 >= len(argv) or opt not in (b"rank", b"count", b"maxlen"):
                raise Reply(SYNTAX)
            if opt == b"rank":
                number = _int(argv[j + 1])
                if number == 0:
                    raise Reply(error_reply("RANK can't be zero: use 1 to start from the first match, 2 from the "
                                            "second ... or use negative to start from the end of the list"))
                # Redis 7.0 negates LLONG_MIN into itself, which every match count passes:
                # the first match from the tail, as RANK -1.
                rank = -1 if number == LLONG_MIN else number
            elif opt == b"count":
                count = non_negative(argv[j + 1], "COUNT")
            else:
                maxlen = non_negative(argv[j + 1], "MAXLEN")
            j += 2
        items = get(argv[1])
        found: list[int] = []
        if items:
            n = len(items)
            indexes = range(n) if rank > 0 else range(n - 1, -1, -1)
            skip = abs(rank) - 1
            for steps, i in enumerate(indexes):
                if maxlen and steps >= maxlen:
                    break
                if items[i] == argv[2]:
                    if skip:
                        skip -= 1
                        continue
                    found.append(i)
                    if count is None or (count and len(found) == count):
                        break
        if count is None:
            return integer(found[0]) if found else ctx.nil
        return b"*%d\r\n" % len(found) + b"".join(integer(i) for i in found)

    def pushx(argv, left):
        items = get(argv[1])
        if items is None:
            return ZERO
        if left:
            items.extendleft(argv[2:])
        else:
            items.extend(argv[2:])
        return integer(len(items))

    def move(source: bytes, destination: bytes, from_left: bool, to_left: bool) -> bytes:
        items = get(source)
        if items is None:
            return ctx.nil
        get(destination)  # checked before anything moves, as Redis does
        value = items.popleft() if from_left else items.pop()
        drop_if_empty(source, items)
        ctx.waiters.put(destination, value, to_left)
        return bulk(value)

    def side(word: bytes) -> bool:
        word = word.lower()
        if word not in (b"left", b"right"):
            raise Reply(SYNTAX)
        return word == b"left"

    def lmove(argv, client):
        return move(argv[1], argv[2], side(argv[3]), side(argv[4]))

    def rpoplpush(argv, client):
        return move(argv[1], argv[2], False, True)

    w, fw = ("write", "denyoom"), ("write", "denyoom", "fast")
    register("lindex", (3, ("readonly",), 1, 1, 1), lindex)
    register("lset", (4, w, 1, 1, 1), lset)
    register("linsert", (5, w, 1, 1, 1), linsert)
    register("lrem", (4, ("write",), 1, 1, 1), lrem)
    register("ltrim", (4, ("write",), 1, 1, 1), ltrim)
    register("lpos", (-3, ("readonly",), 1, 1, 1), lpos)
    register("lpushx", (-3, fw, 1, 1, 1), lambda argv, client: pushx(argv, True))
    register("rpushx", (-3, fw, 1, 1, 1), lambda argv, client: pushx(argv, False))
    register("lmove", (5, w, 1, 2, 1), lmove)
    register("rpoplpush", (3, w, 1, 2, 1), rpoplpush)
