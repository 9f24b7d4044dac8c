"""A warning logged at most once per interval per cause, with a count of the ones skipped.

For failures a client can cause at will (a flood of bad TLS handshakes, garbage instead
of a PROXY header): each costs its own connection and a counter increment, and the log
says once per cause and interval that it is happening, so a flood cannot fill the disk
or spend the server's CPU on rendering log lines.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

#: Seconds between two lines of the same cause.
LOG_INTERVAL = 10.0


class RateLimitedLog:
    """``warning(event, cause, **fields)``: logged unless that cause was logged less than ``interval`` ago.

    One per kind of failure a peer can cause (TLS handshakes, PROXY headers, accept
    errors); ``context`` fields go on every line (the accepting thread's ``worker``).
    """

    __slots__ = ("interval", "logger", "context", "_last", "_suppressed")

    def __init__(self, logger_name: str = "netcore", interval: float = LOG_INTERVAL, **context: Any) -> None:
        self.interval = interval
        self.logger = structlog.get_logger(logger_name)
        self.context = context
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def warning(self, event: str, cause: str = "", **fields: Any) -> bool:
        """Log ``event`` with ``cause`` as a warning unless that pair was logged within the
        interval; True if logged. ``exc_info=True`` attaches the traceback being handled."""
        key = (event, cause)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            fields["suppressed"] = suppressed
        if cause:
            fields["cause"] = cause
        self.logger.warning(event, **self.context, **fields)
        return True


__all__ = ["LOG_INTERVAL", "RateLimitedLog"]
