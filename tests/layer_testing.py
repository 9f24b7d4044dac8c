"""What the TLS and PROXY protocol tests share: the scheme combinations they run under.

Every poller under ``inline``, then the schemes TLS must serve: a reactor with handler
threads, several loops in threads, several loops in processes, a thread per connection,
and blocking worker processes.
"""

from __future__ import annotations

COMBOS = [
    ("--poller", "select"),
    ("--poller", "poll"),
    ("--poller", "epoll-lt"),
    ("--poller", "epoll-et"),
    ("--dispatch", "pool", "--threads", "4"),
    ("--dispatch", "multi-reactor", "--workers", "2"),
    ("--dispatch", "prefork", "--workers", "2"),
    ("--dispatch", "threading"),
    ("--dispatch", "prefork-blocking", "--workers", "2"),
]
#: Test ids: the poller or the scheme.
IDS = [combo[1] for combo in COMBOS]


def pick(*names: str) -> list[tuple[str, ...]]:
    """The combinations called ``names`` (test ids), for a parametrize that needs only some."""
    return [COMBOS[IDS.index(name)] for name in names]
