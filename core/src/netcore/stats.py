"""Counters a worker keeps and the ``server.stopped`` event reports.

Connections count their own bytes and requests in their own slots and fold them into
their worker's :class:`WorkerStats` when they close, so the per-message path touches one
object, not two.
"""

from __future__ import annotations

import attrs

#: The counters, in the order the ``server.stopped`` event lists them.
COUNTERS = (
    "connections_accepted",
    "connections_closed",
    "bytes_received",
    "bytes_sent",
    "requests",
    "errors",
    "accept_wakeups",
    "accept_eagain",
    "poll_calls",
)


@attrs.define
class WorkerStats:
    """One worker's counters. Mutated only by the worker's own loop thread."""

    worker: int = 0
    pid: int = 0
    connections_accepted: int = 0
    connections_closed: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    requests: int = 0
    errors: int = 0
    #: Times a listener was reported readable to this worker.
    accept_wakeups: int = 0
    #: ... of which the first accept() found no connection: the thundering herd.
    accept_eagain: int = 0
    #: Times the worker's loop asked its poller for events (events per wait = batching).
    poll_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> WorkerStats:
        known = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def summarize(workers: list[WorkerStats]) -> dict:
    """The ``stats`` field of ``server.stopped``: totals plus the per-worker list."""
    totals: dict = {name: sum(getattr(w, name) for w in workers) for name in COUNTERS}
    totals["workers"] = [w.as_dict() for w in workers]
    return totals
