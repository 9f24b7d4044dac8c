"""Timers for the event loop: a heap of deadlines with lazy cancellation.

Cancelling marks the handle and leaves it in the heap; it is dropped when it reaches the
top. That keeps ``cancel()`` O(1), which matters because idle and deadline timers (HTTP
keep-alive, slowloris) are cancelled far more often than they fire.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any, Callable


class TimerHandle:
    """A callback scheduled at a monotonic time; ``cancel()`` stops it from running."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = self.args = None  # drop references early

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"at {self.when:.3f}"
        return f"<TimerHandle {state}>"


class TimerQueue:
    """Deadlines ordered by time; ties run in the order they were scheduled."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()

    def push(self, handle: TimerHandle) -> TimerHandle:
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
        return handle

    def __len__(self) -> int:
        return len(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None; drops cancelled handles on the way."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float | None = None) -> list[TimerHandle]:
        """Remove and return the live handles whose time has come, earliest first."""
        if now is None:
            now = time.monotonic()
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            handle = heapq.heappop(heap)[2]
            if not handle.cancelled:
                due.append(handle)
        return due
