"""What a module of commands gets from :func:`netcore_resp.commands.build`: one protocol's
encoders, the keyspace's accessors, and ``register`` (with Redis's arity check)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from netcore_resp.replies import arity_error

#: name -> (arity, flags, first key, last key, key step), shared with commands.SPECS.
Spec = tuple[int, tuple[str, ...], int, int, int]


@dataclass
class Context:
    ks: Any
    data: dict
    alive: Callable[[bytes], Any]
    typed: Callable[[bytes, type], Any]
    string_value: Callable[[bytes], Any]
    resp3: bool
    nil: bytes
    nil_array: bytes
    array: Callable[[Any], bytes]
    maybe_bulk: Callable[[Any], bytes]
    pairs: Callable[[list], bytes]
    table: dict
    specs: dict
    #: netcore_resp.blocking.Waiters: pushes serve the clients blocked on the key.
    waiters: Any = None
    #: The database this table serves, and the server (commands.ServerInfo: every database).
    db: int = 0
    info: Any = None

    def register(self, name: str, spec: Spec, fn: Callable[[list, Any], bytes]) -> None:
        """Add command ``name`` behind the arity check of ``spec`` (which goes into SPECS)."""
        self.specs[name] = spec
        arity = spec[0]
        error = arity_error(name)
        if arity > 0:
            def run(argv: list, client: Any) -> bytes:
                return fn(argv, client) if len(argv) == arity else error
        else:
            least = -arity

            def run(argv: list, client: Any) -> bytes:
                return fn(argv, client) if len(argv) >= least else error
        run.__name__ = name
        self.table[name] = run
