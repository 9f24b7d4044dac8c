"""Code that must run after every successful write command -- only while something needs it.

Commands write the keyspace's dicts directly, so there is no single place a write passes
through. Two features need one all the same, both only now and then: WATCH (mark the
clients watching the written keys, Redis's ``signalModifiedKey``) and blocking pops
(serve the clients blocked on a key once a command has put a list there, Redis's
``signalKeyAsReady`` -- after the command, so that ``LPUSH`` + ``DEL`` in one EXEC
wakes nobody, and whatever created the key: a push, RENAME, SORT ... STORE, ...).

:class:`WriteHooks` keeps the hooks; while at least one is registered, the write
commands of every table are wrapped to call them with the command's keys (by the key
positions of its Redis spec, or ``KEYS_OF`` where those say nothing); when the last
hook goes, the plain commands come back, so the clients of a server where nobody
watches or blocks pay nothing.
"""

from __future__ import annotations

from typing import Any, Callable

from netcore_resp.framing import string2ll
from netcore_resp.replies import Large

#: ``hook(keys, client, argv, reply)``: ``keys`` the written keys, None for "any key"
#: (FLUSHALL...); ``argv`` the command, ``reply`` its reply (not an error).
Hook = Callable[[Any, Any, list, bytes], None]


def _numkeys_at(position: int) -> Callable[[list], list]:
    """Keys of ``numkeys key...`` commands (LMPOP, ZUNIONSTORE ...) counted at ``position``."""
    def keys(argv: list) -> list:
        n = string2ll(argv[position]) if len(argv) > position else None
        return argv[position + 1:position + 1 + n] if n and n > 0 else []
    return keys


def _sort_keys(argv: list) -> list:
    """SORT writes only its STORE destination."""
    for i in range(2, len(argv) - 1):
        if argv[i].lower() == b"store":
            return [argv[i + 1]]
    return []


def _streams_keys(argv: list) -> list:
    """XREADGROUP's keys: the first half of what follows STREAMS."""
    for i in range(1, len(argv)):
        if argv[i].lower() == b"streams":
            rest = argv[i + 1:]
            return rest[:len(rest) // 2]
    return []


#: Commands whose written keys the spec's first/last/step cannot describe.
KEYS_OF: dict[str, Callable[[list], Any]] = {
    "lmpop": _numkeys_at(1), "blmpop": _numkeys_at(2), "zmpop": _numkeys_at(1), "bzmpop": _numkeys_at(2),
    "sort": _sort_keys, "xreadgroup": _streams_keys, "flushall": lambda argv: [], "flushdb": lambda argv: [],  # see Watches.flushing "zunionstore": lambda argv: [argv[1], *_numkeys_at(2)(argv)],
    "zinterstore": lambda argv: [argv[1], *_numkeys_at(2)(argv)],
    "zdiffstore": lambda argv: [argv[1], *_numkeys_at(2)(argv)],
}


class WriteHooks:
    def __init__(self, specs: dict[str, tuple], tables: list[dict[bytes, Any]]) -> None:
        self.specs = specs
        #: The command tables (all protocols, normal and queueing) whose writes are wrapped.
        self.tables = tables
        self.hooks: dict[str, Hook] = {}
        #: name -> ``before(keys, client) -> after()``: for what must look before the write
        #: (a key that did not exist: the ``new`` notification).
        self.befores: dict[str, Callable[[Any, Any], Callable[[], None]]] = {}
        self._plain: list[dict[bytes, Any]] | None = None

    def add(self, name: str, hook: Hook) -> None:
        if not self.hooks and not self.befores:
            self._wrap()
        self.hooks[name] = hook

    def add_before(self, name: str, before: Callable[[Any, Any], Callable[[], None]]) -> None:
        if not self.hooks and not self.befores:
            self._wrap()
        self.befores[name] = before

    def discard(self, name: str) -> None:
        found = self.hooks.pop(name, None) is not None
        found = self.befores.pop(name, None) is not None or found
        if found and not self.hooks and not self.befores:
            self._unwrap()

    def wrap_every(self, transform: Callable[[str, Callable], Callable]) -> None:
        """Replace every command (but the queueing ones) by ``transform(name, fn)``, for
        good: in the tables and in the plain commands :meth:`_unwrap` brings back."""
        for table in [*self.tables, *(self._plain or ())]:
            for name, fn in list(table.items()):
                if not getattr(fn, "queues", False):
                    table[name] = transform(name.decode("latin-1").lower(), fn)

    def _wrap(self) -> None:
        self._plain = [dict(table) for table in self.tables]
        for table in self.tables:
            for name, fn in list(table.items()):
                lower = name.decode("latin-1").lower()
                spec = self.specs.get(lower)
                if spec is not None and "write" in spec[1] and not getattr(fn, "queues", False):
                    table[name] = self._wrapped(fn, spec, KEYS_OF.get(lower))

    def _unwrap(self) -> None:
        if self._plain is None:
            return
        for table, plain in zip(self.tables, self._plain):
            for name, fn in plain.items():
                if not getattr(table.get(name), "queues", False):
                    table[name] = fn
        self._plain = None

    def _wrapped(self, fn: Callable, spec: tuple, keys_of: Callable[[list], Any] | None) -> Callable:
        _, _, first, last, step = spec
        hooks, befores = self.hooks, self.befores

        def keys_in(argv: list) -> Any:
            if keys_of is not None:
                return keys_of(argv)
            if first == 0:
                return None  # FLUSHALL, FLUSHDB, SWAPDB: every key
            return argv[first:(last + 1 if last > 0 else len(argv) + last + 1):step]

        def written(argv: list, client: Any, reply: bytes, afters: list) -> None:
            keys = keys_in(argv)
            for hook in list(hooks.values()):
                hook(keys, client, argv, reply)
            for after in afters:
                after()

        def run(argv: list, client: Any) -> bytes:
            afters = [before(keys_in(argv), client) for before in list(befores.values())] if befores else []
            try:
                reply = fn(argv, client)
            except Large as large:  # a long reply (LPOP of a big value...): written all the same
                written(argv, client, large.reply, afters)
                raise large from None
            if reply[:1] != b"-":  # an error wrote nothing, as in Redis
                written(argv, client, reply, afters)
            return reply

        return run
