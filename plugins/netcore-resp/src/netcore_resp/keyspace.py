"""One database of a server (SELECT's index): values, deadlines, and the expiry that removes them.

Values are ``bytes`` (a Redis string; ``bytearray`` once APPEND, SETRANGE or SETBIT has
changed it in place), ``collections.deque`` (a list: O(1) at both
ends), ``dict`` (a hash: insertion-ordered, as Redis's small hashes are), ``set`` or
:class:`netcore_resp.zsets.ZSet`. The type of
the Python object *is* the Redis type, so a type check is one ``__class__`` comparison.

Deadlines are Unix milliseconds, as in Redis (``EXPIREAT``-style arithmetic, overflow
checks and ``PXAT`` all work on the same numbers). A key past its deadline is removed
in two ways, as Redis does:

* **lazily**, when a command touches it (:meth:`Keyspace.alive`); a command never sees
  an expired key;
* **actively**, by :meth:`Keyspace.sweep` on a timer, so that keys nobody reads again
  do not hold memory forever. Redis samples random keys; Python's dict cannot sample
  cheaply, so deadlines also go into a heap, and a sweep pops the due ones. Each sweep
  removes at most ``limit`` keys (bounded pause, like Redis's active expire cycle) and
  says whether more are due, so the caller can run the next one soon.

Nothing here locks: the caller holds the server's keyspace lock (or runs on the only
thread there is) for a whole command, which is what makes each command atomic.
"""

from __future__ import annotations

import heapq
import time
from typing import Any


def now_ms() -> int:
    """Unix time in milliseconds: Redis's ``mstime()``."""
    return time.time_ns() // 1_000_000


class Keyspace:
    __slots__ = ("data", "expires", "_heap", "expired_keys", "on_expire", "scan_mirror")

    def __init__(self) -> None:
        #: key -> value (bytes, deque or dict)
        self.data: dict[bytes, Any] = {}
        #: key -> deadline in Unix ms, only for keys that have one
        self.expires: dict[bytes, int] = {}
        # (deadline, key) pairs; entries whose key has since changed deadline are stale
        # and skipped when popped.
        self._heap: list[tuple[int, bytes]] = []
        #: keys removed because their deadline passed (INFO's expired_keys)
        self.expired_keys = 0
        #: ``on_expire(key)`` after a key expired (keyspace notifications), or None
        self.on_expire: Any = None
        #: SCAN's netcore_resp.scan.Mirror of ``data`` (made by the first SCAN that needs one)
        self.scan_mirror: Any = None

    # -- reading ------------------------------------------------------------------------
    def alive(self, key: bytes) -> Any:
        """The value of ``key``, or None if it is missing or expired (then removed)."""
        value = self.data.get(key)
        if value is not None and self.expires and key in self.expires and self.expires[key] <= now_ms():
            self._expire(key)
            return None
        return value

    def _expire(self, key: bytes) -> None:
        del self.expires[key]
        del self.data[key]
        self.expired_keys += 1
        if self.on_expire is not None:
            self.on_expire(key)

    def deadline(self, key: bytes) -> int:
        """The key's deadline in Unix ms, or -1 for none."""
        return self.expires.get(key, -1)

    # -- writing ------------------------------------------------------------------------
    def set_deadline(self, key: bytes, when: int) -> None:
        expires = self.expires
        expires[key] = when
        heap = self._heap
        heapq.heappush(heap, (when, key))
        if len(heap) > 2 * len(expires) + 1024:
            # Mostly stale entries (keys deleted, overwritten, given new deadlines):
            # rebuild. At least len(expires) pushes happened since the last rebuild, so
            # this costs O(1) per push, amortised.
            self._heap = [(w, k) for k, w in expires.items()]
            heapq.heapify(self._heap)

    def persist(self, key: bytes) -> bool:
        return self.expires.pop(key, None) is not None

    def delete(self, key: bytes) -> bool:
        """Remove a live key; False if it was missing (or had just expired)."""
        if self.alive(key) is None:
            return False
        del self.data[key]
        if self.expires:
            self.expires.pop(key, None)
        return True

    def swap(self, other: Keyspace) -> None:
        """SWAPDB: exchange contents with ``other``, in place (the command tables hold
        these very dicts), and with them the deadlines."""
        for mine, theirs in ((self.data, other.data), (self.expires, other.expires)):
            kept = dict(mine)
            mine.clear()
            mine.update(theirs)
            theirs.clear()
            theirs.update(kept)
        self._heap, other._heap = other._heap, self._heap
        self.scan_mirror = other.scan_mirror = None  # the same key objects, in another dict

    def clear(self) -> None:
        self.data.clear()
        self.expires.clear()
        self._heap.clear()
        self.scan_mirror = None

    # -- active expiry ----------------------------------------------------------------
    def sweep(self, limit: int) -> bool:
        """Remove up to ``limit`` keys whose deadline has passed; True if more are due."""
        heap = self._heap
        if not heap:
            return False
        now = now_ms()
        if heap[0][0] > now:
            return False
        expires = self.expires
        pop = heapq.heappop
        for _ in range(limit):
            if not heap or heap[0][0] > now:
                return False
            when, key = pop(heap)
            if expires.get(key) == when:
                self._expire(key)
        return bool(heap) and heap[0][0] <= now

    def average_ttl(self) -> int:
        """Mean remaining time to live in ms of keys with a deadline (INFO's avg_ttl)."""
        if not self.expires:
            return 0
        now = now_ms()
        return max(0, sum(self.expires.values()) // len(self.expires) - now)
