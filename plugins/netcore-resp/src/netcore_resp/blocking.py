"""BLPOP, BRPOP, BLMOVE, BRPOPLPUSH: waiting for a list without holding a thread.

A client that must wait is registered on its keys and its batch is left open: the
command raises :class:`Blocked`, the executor keeps what the batch answered so far and
the commands after it on the client (``block_head``, ``block_rest``), and the handler
returns ``LATER``. Nothing waits on a thread: a push to a key that has waiters serves
them at once, in the order they blocked (Redis's FIFO), under the keyspace lock -- the
value moves then, so no other client can take it -- and hands the reply to the waiter's
I/O thread, where the rest of its batch runs. The timeout is the connection's deadline
(the contract's ``set_deadline``); timeout 0 waits for ever. Inside EXEC the commands
do not block (they answer as if the timeout had passed), as in Redis.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from netcore_resp.context import Context
from netcore_resp.floats import string2ld, times_int_ceil
from netcore_resp.framing import LLONG_MAX, error_reply, string2ll
from netcore_resp.keyspace import now_ms
from netcore_resp.replies import SYNTAX, WRONGTYPE, Reply, bulk

NOT_A_TIMEOUT = error_reply("timeout is not a float or out of range")
NEGATIVE_TIMEOUT = error_reply("timeout is negative")
TIMEOUT_OUT_OF_RANGE = error_reply("timeout is out of range")


#: What a client blocked on a list waits for (``how[0]``; sorted sets: netcore_resp.zsets).
LIST_WAITS = ("pop", "mpop", "move")


class Blocked(BaseException):
    """Raised by a blocking command that must wait: the executor leaves the batch open."""


class Waiters:
    """Clients blocked on keys, in the order they blocked (touched under the keyspace lock).

    While any client is blocked, a hook on the write commands (:mod:`netcore_resp.writes`)
    serves the keys a command wrote, after that command -- or, inside EXEC, after the
    whole transaction (:meth:`after_exec`) -- as Redis's ``handleClientsBlockedOnKeys``.
    """

    def __init__(self, db: int = 0) -> None:
        #: The database whose keys these are: a write elsewhere serves nobody here.
        self.db = db
        self.by_key: dict[bytes, collections.deque] = {}
        self._writes: Any = None
        #: Keys written inside EXEC that have waiters, served once it ends.
        self._ready: dict[bytes, None] = {}
        self._servers: list[Any] = []
        #: ``touch(keys, db)``: WATCH's marking (a served BLMOVE writes two keys).
        self.touch: Any = lambda keys, db: None

    def attach(self, writes: Any, touch: Any) -> None:
        self._writes = writes
        self.touch = touch

    def block(self, client: Any, keys: list[bytes], how: tuple, timeout: float) -> None:
        if not self.by_key and self._writes is not None:
            self._writes.add(f"ready{self.db}", self._written)
        client.blocked = (tuple(dict.fromkeys(keys)), how, timeout)
        client.block_reply = None
        for key in client.blocked[0]:
            self.by_key.setdefault(key, collections.deque()).append(client)

    def drop(self, client: Any) -> None:
        if client.blocked is None:
            return
        for key in client.blocked[0]:
            queue = self.by_key.get(key)
            if queue is not None:
                try:
                    queue.remove(client)
                except ValueError:
                    pass
                if not queue:
                    del self.by_key[key]
        client.blocked = None
        if not self.by_key and self._writes is not None:
            self._writes.discard(f"ready{self.db}")

    def _written(self, keys: Any, client: Any, argv: list, reply: bytes) -> None:
        if client.db != self.db:
            return
        by_key = self.by_key
        ready = [key for key in (list(by_key) if keys is None else keys) if key in by_key]
        if not ready:
            return
        if client.in_exec:
            self._ready.update(dict.fromkeys(ready))
            return
        for key in ready:
            self.serve(key)

    def after_exec(self) -> None:
        ready, self._ready = self._ready, {}
        for key in ready:
            self.serve(key)

    def add_server(self, serve: Any) -> None:
        """``serve(key)`` hands what ``key`` now holds to the waiters of its type (once per type)."""
        # Each table of the keyspace (RESP2, RESP3) offers its own; they answer alike.
        name = (serve.__module__, serve.__qualname__)
        if name not in {(s.__module__, s.__qualname__) for s in self._servers}:
            self._servers.append(serve)

    def serve(self, key: bytes) -> None:
        for serve in self._servers:
            if key in self.by_key:
                serve(key)


def parse_timeout(value: bytes) -> float:
    """Seconds, as Redis 7.0's ``getTimeoutFromObjectOrReply`` reads them: a long double
    (strtold: hex too, no underscores or blanks), times 1000 rounded up to whole
    milliseconds (0.0001 waits 1 ms, -0.0001 is 0: for ever); past long long (``1e16``,
    ``1e400``, ``inf``) C's conversion gives LLONG_MIN, so Redis calls it negative. A
    deadline in Unix milliseconds past LLONG_MAX is out of range (Redis 7.2's check).
    """
    seconds = string2ld(value)
    if seconds is None:
        raise Reply(NOT_A_TIMEOUT)
    ms = times_int_ceil(seconds, 1000)
    if ms is None or ms < 0:
        raise Reply(NEGATIVE_TIMEOUT)
    if ms > LLONG_MAX - now_ms():
        raise Reply(TIMEOUT_OUT_OF_RANGE)
    return ms / 1000


#: LMPOP's ends: LEFT is True.
LIST_ENDS = {b"left": True, b"right": False}


def parse_mpop(argv: list, first: int, ends: dict[bytes, bool]) -> tuple[list[bytes], bool, int]:
    """``numkeys key... END [COUNT n]`` from ``argv[first]`` on (LMPOP, ZMPOP and their
    blocking forms); ``ends`` maps the END words (LEFT/RIGHT, MIN/MAX) to a flag."""
    numkeys = string2ll(argv[first])
    if numkeys is None or numkeys <= 0:
        raise Reply(error_reply("numkeys should be greater than 0"))
    keys = argv[first + 1:first + 1 + numkeys]
    rest = argv[first + 1 + numkeys:]
    if len(keys) < numkeys or not rest or rest[0].lower() not in ends:
        raise Reply(SYNTAX)
    count = 1
    if len(rest) == 3 and rest[1].lower() == b"count":
        count = string2ll(rest[2])
        if count is None or count <= 0:
            raise Reply(error_reply("count should be greater than 0"))
    elif len(rest) != 1:
        raise Reply(SYNTAX)
    return keys, ends[rest[0].lower()], count


def mpop_commands(ctx: Context, waiters: Waiters, ends: dict[bytes, bool], pop_now: Any, kind: str) -> tuple:
    """The ``*MPOP`` command and its blocking ``B*MPOP`` (lists or sorted sets):
    ``pop_now(keys, end, count)`` pops from the first key that has something, or None."""
    def mpop(argv, client):
        keys, end, count = parse_mpop(argv, 1, ends)
        reply = pop_now(keys, end, count)
        return ctx.nil_array if reply is None else reply

    def bmpop(argv, client):
        timeout = parse_timeout(argv[1])
        keys, end, count = parse_mpop(argv, 2, ends)
        reply = pop_now(keys, end, count)
        if reply is not None:
            return reply
        if client.in_exec:
            return ctx.nil_array
        waiters.block(client, keys, (kind, end, count), timeout)
        raise Blocked
    return mpop, bmpop


def install(ctx: Context, waiters: Waiters) -> None:
    ks, data, typed, register = ctx.ks, ctx.data, ctx.typed, ctx.register
    deque = collections.deque

    def take(key: bytes, left: bool) -> bytes | None:
        items = typed(key, deque)
        if not items:
            return None
        value = items.popleft() if left else items.pop()
        if not items:
            ks.delete(key)
        return value

    def put(key: bytes, value: bytes, left: bool) -> None:
        """Push one value; its waiters are served after the command (``Waiters._written``)."""
        items = typed(key, deque)
        if items is None:
            items = data[key] = deque()
        if left:
            items.appendleft(value)
        else:
            items.append(value)

    def answer(how: tuple, key: bytes, value: bytes) -> bytes:
        if how[0] == "pop":
            return b"*2\r\n" + bulk(key) + bulk(value)
        if how[0] == "mpop":
            values = [value]
            while len(values) < how[2]:
                more = take(key, how[1])
                if more is None:
                    break
                values.append(more)
            return mpop_reply(key, values)
        put(how[1], value, how[3])
        waiters.touch((how[1],), waiters.db)
        if how[1] in waiters.by_key:
            serve(how[1])  # the value moved on: the destination's own waiters are next
        return bulk(value)

    def serve(key: bytes) -> None:
        """Values arrived in ``key``: give them to its waiters, first come first served.

        A key that no longer holds a list (deleted, or set to a string since) serves
        nobody; a BLMOVE whose destination holds another type is answered WRONGTYPE and
        leaves the value where it is, for the next waiter, as in Redis.
        """
        queue = waiters.by_key.get(key)
        while queue:
            items = data.get(key)
            if items.__class__ is not deque or not ks.alive(key):
                return
            client = next((c for c in queue if c.blocked[1][0] in LIST_WAITS), None)
            if client is None:
                return
            how = client.blocked[1]
            if how[0] == "move":
                target = ks.alive(how[1])
                if target is not None and target.__class__ is not deque:
                    waiters.drop(client)
                    client.block_reply = WRONGTYPE
                    client.connection.run_on_io_thread(client.wake_soon)
                    queue = waiters.by_key.get(key)
                    continue
            value = take(key, how[2] if how[0] == "move" else how[1])
            if value is None:
                return
            waiters.drop(client)
            waiters.touch((key,), waiters.db)
            client.block_reply = answer(how, key, value)
            client.connection.run_on_io_thread(client.wake_soon)
            queue = waiters.by_key.get(key)

    waiters.add_server(serve)
    waiters.put = put  # type: ignore[attr-defined]  # one value onto a list (LMOVE)

    def check_types(keys) -> None:
        for key in keys:
            typed(key, deque)  # WRONGTYPE before anything blocks, as Redis checks

    def blpop(argv, client, left: bool):
        timeout = parse_timeout(argv[-1])
        keys = argv[1:-1]
        for key in keys:
            value = take(key, left)
            if value is not None:
                return b"*2\r\n" + bulk(key) + bulk(value)
        check_types(keys)
        if client.in_exec:
            return ctx.nil_array
        waiters.block(client, keys, ("pop", left), timeout)
        raise Blocked

    def side(word: bytes) -> bool:
        word = word.lower()
        if word not in (b"left", b"right"):
            raise Reply(SYNTAX)
        return word == b"left"

    def blmove(argv, client, from_left: bool, to_left: bool, timeout_arg: bytes):
        timeout = parse_timeout(timeout_arg)
        source, destination = argv[1], argv[2]
        if typed(source, deque):  # the destination's type matters only once there is a value
            typed(destination, deque)
            value = take(source, from_left)
            put(destination, value, to_left)
            return bulk(value)
        if client.in_exec:
            return ctx.nil
        waiters.block(client, [source], ("move", destination, from_left, to_left), timeout)
        raise Blocked

    def mpop_reply(key: bytes, values: list[bytes]) -> bytes:
        return b"*2\r\n" + bulk(key) + b"*%d\r\n" % len(values) + b"".join(map(bulk, values))

    def mpop_now(keys: list[bytes], left: bool, count: int) -> bytes | None:
        check_types(keys)
        for key in keys:
            value = take(key, left)
            if value is not None:
                return answer(("mpop", left, count), key, value)
        return None

    lmpop, blmpop = mpop_commands(ctx, waiters, LIST_ENDS, mpop_now, "mpop")

    register("lmpop", (-4, ("write",), 0, 0, 0), lmpop)
    register("blmpop", (-5, ("write", "noscript"), 0, 0, 0), blmpop)
    register("blpop", (-3, ("write", "noscript"), 1, -2, 1), lambda argv, client: blpop(argv, client, True))
    register("brpop", (-3, ("write", "noscript"), 1, -2, 1), lambda argv, client: blpop(argv, client, False))
    register("blmove", (6, ("write", "denyoom", "noscript"), 1, 2, 1),
             lambda argv, client: blmove(argv, client, side(argv[3]), side(argv[4]), argv[5]))
    register("brpoplpush", (4, ("write", "denyoom", "noscript"), 1, 2, 1),
             lambda argv, client: blmove(argv, client, False, True, argv[3]))


def deadline_of(timeout: float) -> float | None:
    return None if timeout == 0 else time.monotonic() + timeout
