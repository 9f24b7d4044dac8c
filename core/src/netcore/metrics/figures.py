"""What the metrics count, and how the figures of several workers add up.

A worker's figures are its :class:`~netcore.stats.WorkerStats` plus what its open
connections have counted in their own slots and not yet folded in (they fold in when
they close), so a long keep-alive connection shows up while it is open, and the sum
does not jump when it closes. They are read from another thread (the metrics
listener's; under ``inline`` the loop's own) without a lock: each is a plain int that
only grows, and a figure a few microseconds old is what a scrape means anyway.

Everything here is plain data (dicts of ints and lists) so that a prefork worker can
send its figures to its master as one JSON line of its status pipe.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from typing import Any, Iterable

import attrs

from netcore.stats import COUNTERS

#: Counted on each connection and folded into the worker's counters when it closes.
CONNECTION_SLOTS = ("bytes_received", "bytes_sent", "requests")


def worker_counters(workers: Iterable[Any], more_stats: Iterable[Any] = ()) -> dict[str, int]:
    """The live counters of ``workers`` (anything with ``.stats``), added up, and of
    ``more_stats``: counters kept outside any worker (multi-reactor's acceptor loop).

    ``connections`` may be a set or a method returning one (the blocking schemes');
    ``list()`` copies it in one C call, so a loop thread adding a connection meanwhile
    cannot break the iteration.
    """
    totals = dict.fromkeys(COUNTERS, 0)
    for stats in more_stats:
        for name in COUNTERS:
            totals[name] += getattr(stats, name)
    for worker in workers:
        stats = worker.stats
        for name in COUNTERS:
            totals[name] += getattr(stats, name)
        loop = getattr(worker, "loop", None)
        if loop is not None:
            # The worker copies it into its stats only as it closes.
            totals["poll_calls"] += getattr(loop, "poll_calls", 0) - stats.poll_calls
        conns = getattr(worker, "connections", ())
        if callable(conns):
            conns = conns()
        for _ in range(3):
            try:
                open_now = list(conns)
                break
            except RuntimeError:  # changed size during the copy (a set of another thread)
                open_now = []
        for conn in open_now:
            for name in CONNECTION_SLOTS:
                totals[name] += getattr(conn, name, 0)
    return totals


def add_counters(total: dict[str, int], more: dict[str, Any]) -> None:
    """Add the counters of ``more`` (a worker's message: unknown keys ignored) to ``total``."""
    for name in COUNTERS:
        value = more.get(name, 0)
        if type(value) is int:
            total[name] = total.get(name, 0) + value


class LabeledCounter:
    """A counter per label value (HTTP responses by status class).

    Two ways to count, both added up by :meth:`dump`:

    * ``next(tally)`` where ``tally = counter.tally(key)``, an ``itertools.count``: one
      call of a C function. It is the cheaper -- ``values[key] += 1`` costs two dict
      lookups, an add and a new int, about 500 machine instructions per count on CPython
      3.11 (callgrind), ``next()`` about 200 (a bound ``tally.__next__`` would be slower:
      a method wrapper is called the generic way) -- and, being one C call, it is
      atomic under the GIL by construction, whatever the interpreter's thread-switch
      points;
    * ``values[key] += 1`` on the plain dict: the first spelling, kept working. It is
      several bytecodes: an interpreter that switched threads between them (a
      free-threaded build) could lose a count racing another thread.
    """

    kind = "counter"

    def __init__(self, name: str, help: str, label: str, keys: Iterable[str] = ()) -> None:
        self.name, self.help, self.label = name, help, label
        self.values: dict[str, int] = dict.fromkeys(keys, 0)
        self._tallies: dict[str, itertools.count] = {}

    def tally(self, key: str) -> itertools.count:
        """What counts one for ``key`` with ``next(tally)`` (the same tally for the same key)."""
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = itertools.count()
            self.values.setdefault(key, 0)
        return tally

    def dump(self) -> dict[str, int]:
        values = dict(self.values)
        for key, tally in list(self._tallies.items()):
            values[key] = values.get(key, 0) + tally_of(tally)
        return values

    def empty(self) -> dict[str, int]:
        return dict.fromkeys(self.values, 0)

    @staticmethod
    def merge(total: dict[str, int], more: Any) -> None:
        if isinstance(more, dict):
            for key, value in more.items():
                if type(value) is int:
                    total[key] = total.get(key, 0) + value


def tally_of(tally: itertools.count) -> int:
    """How many times ``tally`` has counted: an ``itertools.count`` shows its next value
    only in its repr (``count(5)``), and reading it there does not advance it."""
    return int(repr(tally)[6:-1])


class Histogram:
    """Observations in cumulative-at-exposition buckets: ``observe`` is a bisect, a count and an add.

    ``next(tallies[i])`` counts one in bucket ``i`` (a C call, atomic under the GIL: see
    :class:`LabeledCounter`); ``counts[i] += 1`` is the first spelling, still added up.
    The sum is a float added without a lock: from handler threads two observations
    racing may, rarely, lose one's seconds (never its count).
    """

    kind = "histogram"

    def __init__(self, name: str, help: str, bounds: Iterable[float]) -> None:
        self.name, self.help = name, help
        self.bounds = tuple(sorted(bounds))
        #: counts[i]: observations <= bounds[i] and > bounds[i-1]; the last: above them all.
        self.counts = [0] * (len(self.bounds) + 1)
        #: next(tallies[i]): one observation in bucket i (``bisect_left(bounds, value)``).
        self.tallies = tuple(itertools.count() for _ in self.counts)
        #: [sum of the observations]: a list, so that a protocol's own closure over
        #: ``tallies``, ``bounds`` and ``sums`` can observe without an attribute store.
        self.sums = [0.0]

    def observe(self, value: float) -> None:
        next(self.tallies[bisect.bisect_left(self.bounds, value)])
        self.sums[0] += value

    def dump(self) -> dict[str, Any]:
        return {"b": [count + tally_of(tally) for count, tally in zip(self.counts, self.tallies)],
                "s": self.sums[0]}

    def empty(self) -> dict[str, Any]:
        return {"b": [0] * len(self.counts), "s": 0.0}

    @staticmethod
    def merge(total: dict[str, Any], more: Any) -> None:
        if not isinstance(more, dict) or not isinstance(more.get("b"), list):
            return
        counts = total["b"]
        if len(more["b"]) != len(counts):
            return  # another build's buckets: not comparable
        for i, value in enumerate(more["b"]):
            counts[i] += value
        total["s"] += float(more.get("s", 0.0))


class ProtocolFigures:
    """The per-protocol families of one server, declared by the protocol at assembly.

    A protocol asks for them in ``for_server`` only when ``server.metrics`` is not None
    (metrics on), so with metrics off there is nothing to increment at all. Under the
    process schemes the master's copy (made by the same ``for_server`` before any fork)
    never counts: it names the families and adds up what the workers report.
    """

    def __init__(self) -> None:
        self.families: dict[str, LabeledCounter | Histogram] = {}

    def counter(self, name: str, help: str, label: str, keys: Iterable[str] = ()) -> LabeledCounter:
        return self._add(LabeledCounter(name, help, label, keys))

    def histogram(self, name: str, help: str, bounds: Iterable[float]) -> Histogram:
        return self._add(Histogram(name, help, bounds))

    def _add(self, family: Any) -> Any:
        """Declare ``family``; the same declaration again returns the first one.

        A protocol's ``for_server`` may run twice in one process (in the master, then in a
        worker that loads the app itself): both must count into the family the
        exposition reads. A different family under a taken name is a bug.
        """
        known = self.families.get(family.name)
        if known is not None:
            if type(known) is not type(family) or vars(known).keys() != vars(family).keys() or (
                    isinstance(known, Histogram) and known.bounds != family.bounds):
                raise ValueError(f"metric {family.name!r} is declared twice, differently")
            return known
        self.families[family.name] = family
        return family

    def dump(self) -> dict[str, Any]:
        return {name: family.dump() for name, family in self.families.items()}

    def merged(self, dumps: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The families' values added up over ``dumps`` (one per worker process)."""
        total = {name: family.empty() for name, family in self.families.items()}
        for dump in dumps:
            if not isinstance(dump, dict):
                continue
            for name, family in self.families.items():
                if name in dump:
                    family.merge(total[name], dump[name])
        return total


@attrs.define
class Snapshot:
    """Everything one scrape shows."""

    counters: dict[str, int]
    #: family name -> its values (see :meth:`ProtocolFigures.dump`).
    protocol: dict[str, Any] = attrs.field(factory=dict)
    workers_alive: int = 0
    worker_restarts: int = 0
    ready: bool = True


class Monotonic:
    """Wraps a snapshot source so that no counter ever goes down between two scrapes.

    The figures are read without stopping the workers, so a scrape can land between two
    steps that move a count from one place to another -- a closing connection's bytes
    added to its worker before the connection leaves the worker's set, a reaped worker
    process taken off the master's table before its last figures join the retired ones
    -- and count something twice or not at all for that instant. A counter that then
    went back down would read as a restart to Prometheus (``rate()`` would see a reset).
    Each counter is shown as the largest value seen so far, which the true value
    reaches again a moment later. The lock is the scrapes' only (two at once), never the
    workers'.
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._high: dict[str, int] = {}
        self._restarts = 0

    def snapshot(self) -> Snapshot:
        snap = self.source()
        with self._lock:
            _clamp(snap.counters, self._high, "")
            for name, values in snap.protocol.items():
                if isinstance(values, dict) and isinstance(values.get("b"), list):  # a histogram
                    _clamp_list(values["b"], self._high, f"{name}\0b")
                    values["s"] = self._high[f"{name}\0s"] = max(values["s"], self._high.get(f"{name}\0s", 0.0))
                elif isinstance(values, dict):  # a labelled counter
                    _clamp(values, self._high, f"{name}\0")
            self._restarts = snap.worker_restarts = max(self._restarts, snap.worker_restarts)
        return snap


def _clamp(values: dict[str, Any], high: dict[str, Any], prefix: str) -> None:
    for key, value in values.items():
        seen = high.get(prefix + key, 0)
        if value < seen:
            values[key] = seen
        else:
            high[prefix + key] = value


def _clamp_list(values: list, high: dict[str, Any], prefix: str) -> None:
    for index, value in enumerate(values):
        key = f"{prefix}{index}"
        seen = high.get(key, 0)
        if value < seen:
            values[index] = seen
        else:
            high[key] = value
