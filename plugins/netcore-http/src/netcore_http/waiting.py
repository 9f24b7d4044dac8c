"""Ending an asyncio wait from the loop's own thread: the one helper the ASGI modules share.

A future that a task awaits is resolved by a protocol callback (bytes arrived, output
drained, the client left) -- or was cancelled meanwhile by the task's own cancel scope.
"""

from __future__ import annotations

from typing import Any


def settle(future: Any, value: Any = None) -> None:
    """Resolve ``future`` with ``value`` unless it is None or already done (cancelled)."""
    if future is not None and not future.done():
        future.set_result(value)
