"""INFO commandstats, counted only once somebody asks for them.

Counting every call (and timing it) would cost every command on the hot path, which
takes no per-command bookkeeping. So the first ``INFO`` (of any section: a client that
reads INFO at all is one that watches figures) wraps every command of every table to
count its calls, time and failures from then on (about 0.2 µs per command); a server
nobody asks -- a benchmark, most applications -- pays nothing. The figures therefore
start at that first INFO, not at start-up; docs/resp.md lists it among the differences
from Redis.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from netcore_resp.replies import Large, Reply, Switched


class CommandStats:
    def __init__(self) -> None:
        self.on = False
        #: name -> [calls, nanoseconds, failed calls]
        self.calls: dict[str, list[int]] = {}
        self._enable: Callable[[], None] | None = None

    def attach(self, writes: Any) -> None:
        """``writes``: the server's netcore_resp.writes.WriteHooks, which knows every table."""
        self._enable = lambda: writes.wrap_every(self._counted)

    def start(self) -> None:
        if not self.on and self._enable is not None:
            self.on = True
            self._enable()

    def _counted(self, name: str, fn: Callable[[list, Any], bytes]) -> Callable[[list, Any], bytes]:
        calls = self.calls
        clock = time.perf_counter_ns

        def run(argv: list, client: Any) -> bytes:
            entry = calls.get(name)
            if entry is None:
                entry = calls[name] = [0, 0, 0]
            entry[0] += 1  # before the call: an INFO sees itself, as the calls before it
            started = clock()
            failed = 0
            try:
                reply = fn(argv, client)
                failed = reply[:1] == b"-"
                return reply
            except Reply as answer:
                failed = answer.__class__ not in (Large, Switched) and answer.reply[:1] == b"-"
                raise
            finally:
                entry[1] += clock() - started
                entry[2] += failed

        return run

    def lines(self) -> list[str]:
        out = []
        for name, (count, ns, failed) in sorted(self.calls.items()):
            usec = ns // 1000
            out.append(f"cmdstat_{name}:calls={count},usec={usec},usec_per_call={usec / count:.2f},"
                       f"rejected_calls=0,failed_calls={failed}")
        return out

    def reset(self) -> None:
        self.calls.clear()
