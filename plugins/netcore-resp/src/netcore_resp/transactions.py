"""MULTI/EXEC/DISCARD/WATCH/UNWATCH: per-connection queues, and WATCH across connections.

**Queueing costs the other clients nothing.** A client in MULTI gets a command table of
its own (:func:`queue_table`) in which every command queues itself (after Redis's
queue-time checks: unknown command, wrong arity -- either makes EXEC answer
``EXECABORT``) and EXEC, DISCARD, MULTI, WATCH and QUIT act at once. MULTI and EXEC
switch the client's table by raising :class:`~netcore_resp.replies.Switched`, as HELLO
does, so the executor picks the new table up for the next command of the same read.
EXEC runs the queue inside one command, so under the keyspace lock of a threaded
scheme (or alone on its loop) it is atomic, as Redis's is.

**WATCH costs nothing while nobody watches.** Commands write the keyspace's dicts
directly, so there is no single place a write passes through. While at least one key is
watched, the write commands of every table are wrapped (:class:`Watches`) to mark the
clients watching the keys they name (Redis's ``signalModifiedKey``, keyed by the
command's key positions); when the last watch goes, the plain commands come back. A
command that answers an error is taken not to have written, as in Redis. Deviations:
a write that leaves the value unchanged (SET NX on an existing key) still counts, and a
watched key that expires is not taken as modified.
"""

from __future__ import annotations

from typing import Any, Callable

from netcore_resp.framing import error_reply
from netcore_resp.replies import OK, Reply, Switched, arity_error

QUEUED = b"+QUEUED\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
NESTED = error_reply("MULTI calls can not be nested")
EXEC_WITHOUT = error_reply("EXEC without MULTI")
DISCARD_WITHOUT = error_reply("DISCARD without MULTI")
WATCH_IN_MULTI = error_reply("WATCH inside MULTI is not allowed")

#: Commands a client in MULTI runs at once instead of queueing.
IMMEDIATE = ("exec", "discard", "multi", "watch", "quit", "reset")


class Watches:
    """Which clients watch which keys, and the wrapping of write commands while any do."""

    def __init__(self, specs: dict[str, tuple], tables: list[dict[bytes, Any]]) -> None:
        self.specs = specs
        #: The command tables (all protocols, normal and queueing) whose writes are wrapped.
        self.tables = tables
        self.by_key: dict[bytes, set[Any]] = {}
        self._plain: list[dict[bytes, Any]] | None = None

    def watch(self, client: Any, keys: list[bytes]) -> None:
        if not self.by_key:
            self._wrap()
        for key in keys:
            self.by_key.setdefault(key, set()).add(client)
            client.watching.add(key)

    def unwatch(self, client: Any) -> None:
        by_key = self.by_key
        for key in client.watching:
            watchers = by_key.get(key)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del by_key[key]
        client.watching.clear()
        client.dirty = False
        if not by_key:
            self._unwrap()

    def touch(self, keys: Any) -> None:
        by_key = self.by_key
        for key in keys:
            for client in by_key.get(key, ()):
                client.dirty = True

    def touch_all(self) -> None:
        for watchers in self.by_key.values():
            for client in watchers:
                client.dirty = True

    # -- wrapping the write commands ------------------------------------------------------
    def _wrap(self) -> None:
        self._plain = [dict(table) for table in self.tables]
        for table in self.tables:
            for name, fn in list(table.items()):
                spec = self.specs.get(name.decode("latin-1").lower())
                if spec is not None and "write" in spec[1] and not getattr(fn, "queues", False):
                    table[name] = self._watching(fn, spec)

    def _unwrap(self) -> None:
        if self._plain is None:
            return
        for table, plain in zip(self.tables, self._plain):
            for name, fn in plain.items():
                if not getattr(table.get(name), "queues", False):
                    table[name] = fn
        self._plain = None

    def _watching(self, fn: Callable, spec: tuple) -> Callable:
        _, _, first, last, step = spec
        touch = self.touch

        def run(argv: list, client: Any) -> bytes:
            reply = fn(argv, client)
            if reply[:1] != b"-" and self.by_key:
                if first == 0:
                    self.touch_all()  # FLUSHALL, FLUSHDB, SWAPDB: every key
                else:
                    touch(argv[first:(last + 1 if last > 0 else len(argv) + last + 1):step])
            return reply

        return run


def install(table: dict[bytes, Any], queueing: dict[bytes, Any], watches: Watches, *, nil_array: bytes,
            arity_of: Callable[[bytes], int | None], unknown: Callable[[list], bytes]) -> None:
    """Add the transaction commands to ``table`` and fill ``queueing`` (same protocol).

    ``arity_of(name)`` is the command's Redis arity (None: unknown command).
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

    def nested(argv, client):
        return NESTED if len(argv) == 1 else arity_error("multi")

    def exec_without(argv, client):
        return EXEC_WITHOUT if len(argv) == 1 else arity_error("exec")

    def discard_without(argv, client):
        return DISCARD_WITHOUT if len(argv) == 1 else arity_error("discard")

    def watch(argv, client):
        if len(argv) < 2:
            return arity_error("watch")
        watches.watch(client, argv[1:])
        return OK

    def watch_in_multi(argv, client):
        return WATCH_IN_MULTI if len(argv) >= 2 else arity_error("watch")

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
            client.multi_error = True
            return arity_error("exec")
        failed = client.multi_error
        queued = leave(client)
        dirty = client.dirty
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
                fn = table.get(command[0]) or table.get(command[0].lower())
                try:
                    replies.append(fn(command, client))
                except Reply as reply:
                    replies.append(reply.reply)
        finally:
            client.in_exec = False
        raise Switched(b"*%d\r\n" % len(replies) + b"".join(replies))

    def discard(argv, client):
        if len(argv) != 1:
            return arity_error("discard")
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
    for name in ("quit", "reset"):
        if name.encode() in table:
            register(queueing, name, table[name.encode()])
