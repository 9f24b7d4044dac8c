"""The combination matrix of the integration suites.

A tox factor narrows it through ``NCTEST_POLLER`` / ``NCTEST_DISPATCH`` /
``NCTEST_PROTOCOL`` (comma-separated); unset means every value.
"""

from __future__ import annotations

import os

ALL_POLLERS = ("select", "poll", "epoll-lt", "epoll-et")
#: In-process reactor dispatchers (those that use a poller).
ALL_DISPATCHES = ("inline",)
ALL_PROTOCOLS = ("echo",)


def _from_env(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(name)
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else default


POLLERS = _from_env("NCTEST_POLLER", ALL_POLLERS)
DISPATCHES = _from_env("NCTEST_DISPATCH", ALL_DISPATCHES)
PROTOCOLS = _from_env("NCTEST_PROTOCOL", ALL_PROTOCOLS)
