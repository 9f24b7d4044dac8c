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
import math
import time
from typing import Any

from netcore_resp.context import Context
from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import SYNTAX, Reply, bulk

NOT_A_TIMEOUT = error_reply("timeout is not a float or out of range")
NEGATIVE_TIMEOUT = error_reply("timeout is negative")


class Blocked(BaseException):
    """Raised by a blocking command that must wait: the executor leaves the batch open."""


class Waiters:
    """Clients blocked on keys, in the order they blocked (touched under the keyspace lock)."""

    def __init__(self) -> None:
        self.by_key: dict[bytes, collections.deque] = {}

    def block(self, client: Any, keys: list[bytes], how: tuple, timeout: float) -> None:
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


def parse_timeout(value: bytes) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise Reply(NOT_A_TIMEOUT) from None
    if math.isnan(seconds) or math.isinf(seconds):
        raise Reply(NOT_A_TIMEOUT)
    if seconds < 0:
        raise Reply(NEGATIVE_TIMEOUT)
    return seconds


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
        items = typed(key, deque)
        if items is None:
            items = data[key] = deque()
        if left:
            items.appendleft(value)
        else:
            items.append(value)
        if key in waiters.by_key:
            serve(key)

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
        return bulk(value)

    def serve(key: bytes) -> None:
        """Values arrived in ``key``: give them to its waiters, first come first served."""
        queue = waiters.by_key.get(key)
        while queue:
            client = queue[0]
            how = client.blocked[1]
            value = take(key, how[2] if how[0] == "move" else how[1])
            if value is None:
                return
            waiters.drop(client)
            client.block_reply = answer(how, key, value)
            client.connection.run_on_io_thread(client.wake_soon)
            queue = waiters.by_key.get(key)

    waiters.serve = serve  # type: ignore[attr-defined]  # what pushes call
    waiters.put = put  # type: ignore[attr-defined]  # one value onto a list, serving its waiters

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
        typed(destination, deque)
        value = take(source, from_left)
        if value is not None:
            put(destination, value, to_left)
            return bulk(value)
        check_types([source])
        if client.in_exec:
            return ctx.nil
        waiters.block(client, [source], ("move", destination, from_left, to_left), timeout)
        raise Blocked

    def mpop_reply(key: bytes, values: list[bytes]) -> bytes:
        return b"*2\r\n" + bulk(key) + b"*%d\r\n" % len(values) + b"".join(map(bulk, values))

    def parse_mpop(argv: list, first: int) -> tuple[list[bytes], bool, int]:
        """LMPOP's ``numkeys key... LEFT|RIGHT [COUNT n]`` from ``argv[first]`` on."""
        numkeys = string2ll(argv[first])
        if numkeys is None or numkeys <= 0:
            raise Reply(error_reply("numkeys should be greater than 0"))
        keys = argv[first + 1:first + 1 + numkeys]
        rest = argv[first + 1 + numkeys:]
        if len(keys) < numkeys or not rest:
            raise Reply(SYNTAX)
        left = side(rest[0])
        count = 1
        if len(rest) == 3 and rest[1].lower() == b"count":
            count = string2ll(rest[2])
            if count is None or count <= 0:
                raise Reply(error_reply("count should be greater than 0"))
        elif len(rest) != 1:
            raise Reply(SYNTAX)
        return keys, left, count

    def mpop_now(keys: list[bytes], left: bool, count: int) -> bytes | None:
        check_types(keys)
        for key in keys:
            value = take(key, left)
            if value is not None:
                return answer(("mpop", left, count), key, value)
        return None

    def lmpop(argv, client):
        keys, left, count = parse_mpop(argv, 1)
        reply = mpop_now(keys, left, count)
        return ctx.nil_array if reply is None else reply

    def blmpop(argv, client):
        timeout = parse_timeout(argv[1])
        keys, left, count = parse_mpop(argv, 2)
        reply = mpop_now(keys, left, count)
        if reply is not None:
            return reply
        if client.in_exec:
            return ctx.nil_array
        waiters.block(client, keys, ("mpop", left, count), timeout)
        raise Blocked

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
