"""MULTI/EXEC/DISCARD/WATCH/UNWATCH: per-connection queues, and WATCH across connections.

**Queueing costs the other clients nothing.** A client in MULTI gets a command table of
its own (:func:`queue_table`) in which every command queues itself (after Redis's
queue-time checks: unknown command, wrong arity -- either makes EXEC answer
``EXECABORT``) and EXEC, DISCARD, MULTI, WATCH and QUIT act at once. MULTI and EXEC
switch the client's table by raising :class:`~netcore_resp.replies.Switched`, as HELLO
does, so the executor picks the new table up for the next command of the same read.
EXEC runs the queue inside one command, so under the keyspace lock of a threaded
scheme (or alone on its loop) it is atomic, as Redis's is.

**WATCH costs nothing while nobody watches.** While at least one key is watched,
:class:`Watches` has a hook on the write commands (:mod:`netcore_resp.writes`) that marks
the clients watching the keys they name (Redis's ``signalModifiedKey``); when the last
watch goes, the hook goes. A command that answers an error is taken not to have
written, as in Redis. Deviations:
a write that leaves the value unchanged (SET NX on an existing key) still counts, and a
watched key that expires is not taken as modified.
"""

from __future__ import annotations

from typing import Any, Callable

from netcore_resp.framing import error_reply
from netcore_resp.replies import OK, Reply, Switched, arity_error
from netcore_resp.writes import WriteHooks

QUEUED = b"+QUEUED\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
NESTED = error_reply("MULTI calls can not be nested")
EXEC_WITHOUT = error_reply("EXEC without MULTI")
DISCARD_WITHOUT = error_reply("DISCARD without MULTI")
WATCH_IN_MULTI = error_reply("WATCH inside MULTI is not allowed")

#: Commands a client in MULTI runs at once instead of queueing.
IMMEDIATE = ("exec", "discard", "multi", "watch", "quit", "reset")


class Watches:
    """Which clients watch which keys; while any do, a hook on the write commands marks them."""

    def __init__(self, writes: WriteHooks, keyspaces: list[Any]) -> None:
        self.writes = writes
        self.keyspaces = keyspaces
        self.by_key: dict[tuple[int, bytes], set[Any]] = {}

    def watch(self, client: Any, keys: list[bytes]) -> None:
        if not self.by_key:
            self.writes.add("watch", self._written)
        ks = self.keyspaces[client.db]
        for key in keys:
            self.by_key.setdefault((client.db, key), set()).add(client)
            client.watching.add((client.db, key))
            if ks.alive(key) is not None:
                client.watched_alive.add((client.db, key))

    def expired_since(self, client: Any) -> bool:
        """A key that was there at WATCH and is gone without a write: it expired (Redis 7)."""
        return any(self.keyspaces[db].alive(key) is None for db, key in client.watched_alive)

    def flushing(self, dbs: Any) -> None:
        """FLUSHDB/FLUSHALL of ``dbs``: only the watched keys that exist are touched, as in Redis."""
        for (db, key), clients in self.by_key.items():
            if db in dbs and key in self.keyspaces[db].data:
                for client in clients:
                    client.dirty = True

    def unwatch(self, client: Any) -> None:
        by_key = self.by_key
        for key in client.watching:
            watchers = by_key.get(key)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del by_key[key]
        client.watching.clear()
        client.watched_alive.clear()
        client.dirty = False
        if not by_key:
            self.writes.discard("watch")

    def _written(self, keys: Any, client: Any, argv: list, reply: bytes) -> None:
        if keys is None:
            self.touch_all()
        else:
            self.touch(keys, client.db)

    def touch(self, keys: Any, db: int) -> None:
        """Keys of database ``db`` were written: their watchers' EXEC will fail."""
        by_key = self.by_key
        for key in keys:
            for client in by_key.get((db, key), ()):
                client.dirty = True

    def touch_all(self) -> None:
        for watchers in self.by_key.values():
            for client in watchers:
                client.dirty = True


def install(table: dict[bytes, Any], queueing: dict[bytes, Any], watches: Watches, *, nil_array: bytes,
            arity_of: Callable[[bytes], int | None], unknown: Callable[[list], bytes],
            after_exec: Callable[[], None] = lambda: None) -> None:
    """Add the transaction commands to ``table`` and fill ``queueing`` (same protocol).

    ``arity_of(name)`` is the command's Redis arity (None: unknown command).
    ``after_exec()`` runs once a transaction's commands have (the blocked clients its
    writes made ready are served then, as Redis does, not in the middle).
    """

    def register(target: dict, name: str, fn: Callable) -> None:
        target[name.encode()] = target[name.upper().encode()] = fn

    def multi(argv, client):
        if len(argv) != 1:
            return arity_error("multi")
        client.multi = []
        client.multi_error = False
        client.table = queueing
        raise Switched(OK)

    def refused(client, error: bytes) -> bytes:
        """A command refused before it ran (Redis's ``rejectCommand``): EXEC answers EXECABORT."""
        client.multi_error = True
        return error

    def exec_abort(client, error: bytes) -> bytes:
        """EXEC refused before it ran (Redis's ``execCommandAbort``): the transaction, if any,
        is discarded, every key unwatched, and the reason given after EXECABORT."""
        if client.multi is not None:
            leave(client)
        if client.watching:
            watches.unwatch(client)
        reason = error[5:] if error.startswith(b"-ERR ") else error[1:]
        raise Switched(b"-EXECABORT Transaction discarded because of: " + reason)

    def nested(argv, client):
        return NESTED if len(argv) == 1 else refused(client, arity_error("multi"))

    def exec_without(argv, client):
        return EXEC_WITHOUT if len(argv) == 1 else exec_abort(client, arity_error("exec"))

    def discard_without(argv, client):
        return DISCARD_WITHOUT if len(argv) == 1 else arity_error("discard")

    def watch(argv, client):
        if len(argv) < 2:
            return arity_error("watch")
        watches.watch(client, argv[1:])
        return OK

    def watch_in_multi(argv, client):
        return WATCH_IN_MULTI if len(argv) >= 2 else refused(client, arity_error("watch"))

    def unwatch(argv, client):
        if len(argv) != 1:
            return arity_error("unwatch")
        if client.watching:
            watches.unwatch(client)
        return OK

    def leave(client) -> list:
        queued = client.multi
        client.multi = None
        client.refresh_table()
        return queued

    def exec_(argv, client):
        if len(argv) != 1:
            return exec_abort(client, arity_error("exec"))
        failed = client.multi_error
        queued = leave(client)
        dirty = client.dirty or (client.watching and watches.expired_since(client))
        if client.watching:
            watches.unwatch(client)
        if failed:
            raise Switched(EXECABORT)
        if dirty:
            raise Switched(nil_array)
        replies = []
        client.in_exec = True  # blocking commands answer at once inside EXEC
        try:
            for command in queued:
                current = client.plain_table()  # a queued SELECT switches databases mid-way
                fn = current.get(command[0]) or current.get(command[0].lower())
                try:
                    replies.append(fn(command, client))
                except Reply as reply:
                    replies.append(reply.reply)
        finally:
            client.in_exec = False
            after_exec()
        raise Switched(b"*%d\r\n" % len(replies) + b"".join(replies))

    def discard(argv, client):
        if len(argv) != 1:
            return refused(client, arity_error("discard"))
        leave(client)
        if client.watching:
            watches.unwatch(client)
        raise Switched(OK)

    def queue(argv, client):
        arity = arity_of(argv[0].lower())
        if arity is None:
            client.multi_error = True
            return unknown(argv)
        n = len(argv)
        if not (n == arity if arity > 0 else n >= -arity):
            client.multi_error = True
            return arity_error(argv[0].lower().decode("latin-1"))
        client.multi.append(argv)
        return QUEUED

    queue.queues = True  # type: ignore[attr-defined]  # never wrapped by Watches
    for name, fn in (("multi", multi), ("exec", exec_without), ("discard", discard_without), ("watch", watch),
                     ("unwatch", unwatch)):
        register(table, name, fn)
    for name in list(table):
        queueing[name] = queue
    for name, fn in (("multi", nested), ("exec", exec_), ("discard", discard), ("watch", watch_in_multi)):
        fn.queues = True  # type: ignore[attr-defined]
        register(queueing, name, fn)
    if b"quit" in table:
        register(queueing, "quit", table[b"quit"])
    if b"reset" in table:
        reset = table[b"reset"]

        def reset_in_multi(argv, client):
            return reset(argv, client) if len(argv) == 1 else refused(client, arity_error("reset"))

        register(queueing, "reset", reset_in_multi)
