"""Driving a real event loop from a test: run it until something has happened.

Tests of loop-level parts (connections, acceptors, deadlines) run the loop in the test's
own thread and the peer in another; they wait for an *event* -- a predicate becoming
true -- checked every few milliseconds, never for a fixed time.
"""

from __future__ import annotations

import time
from typing import Any, Callable


def run_until(loop: Any, predicate: Callable[[], Any], timeout: float = 20.0, *, check: bool = True) -> bool:
    """Run ``loop`` until ``predicate()`` holds or ``timeout`` seconds pass.

    With ``check`` (the default) a predicate still false at the end fails the test;
    otherwise its last value is returned.
    """
    deadline = time.monotonic() + timeout

    def look() -> None:
        if predicate() or time.monotonic() >= deadline:
            loop.stop()
        else:
            loop.call_later(0.002, look)

    loop.call_soon(look)
    loop.run_forever()
    result = bool(predicate())
    if check:
        assert result, "condition not reached within %.0fs" % timeout
    return result
