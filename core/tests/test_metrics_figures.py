"""netcore.metrics without a server: adding figures up, the exposition, the address setting."""

from __future__ import annotations

import socket
import sys
import threading

import pytest
from netcore.errors import SettingError
from netcore.metrics.figures import Monotonic, ProtocolFigures, Snapshot, add_counters, worker_counters
from netcore.metrics.listener import parse_metrics_bind
from netcore.stats import COUNTERS, WorkerStats

prometheus_client = pytest.importorskip("prometheus_client")
from netcore.metrics.exposition import Exposition  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


class _Conn:
    def __init__(self, received: int, sent: int, requests: int) -> None:
        self.bytes_received, self.bytes_sent, self.requests = received, sent, requests


class _Worker:
    def __init__(self, stats: WorkerStats, connections) -> None:
        self.stats = stats
        self.connections = connections


def test_open_connections_count_with_their_worker():
    stats = WorkerStats(connections_accepted=3, connections_closed=1, requests=10, bytes_received=100)
    blocking = _Worker(WorkerStats(requests=1), lambda: [_Conn(5, 6, 7)])  # a method, as the blocking schemes'
    totals = worker_counters([_Worker(stats, {_Conn(1, 2, 3), _Conn(10, 20, 30)}), blocking])
    assert totals["requests"] == 10 + 3 + 30 + 1 + 7
    assert totals["bytes_received"] == 100 + 1 + 10 + 5
    assert totals["bytes_sent"] == 2 + 20 + 6
    assert totals["connections_accepted"] == 3 and set(totals) == set(COUNTERS)


def test_a_workers_message_adds_only_what_it_knows():
    total = {"requests": 1}
    add_counters(total, {"requests": 2, "errors": 1, "protocol": {"x": 1}, "bogus": 5, "bytes_sent": "7"})
    assert total["requests"] == 3 and total["errors"] == 1 and "bogus" not in total and total.get("bytes_sent", 0) == 0


def test_protocol_figures_merge_over_workers_and_redeclare_to_the_same_family():
    figures = ProtocolFigures()
    counter = figures.counter("t_responses", "help", "class", ("2xx", "5xx"))
    histogram = figures.histogram("t_seconds", "help", (0.1, 1.0))
    assert figures.counter("t_responses", "help", "class", ("2xx", "5xx")) is counter
    with pytest.raises(ValueError, match="differently"):
        figures.histogram("t_seconds", "help", (0.5,))
    counter.values["2xx"] += 2
    histogram.observe(0.05)
    histogram.observe(0.1)  # on a bound: in that bucket (le)
    histogram.observe(5.0)
    one = figures.dump()
    assert one["t_seconds"]["b"] == [2, 0, 1]
    merged = figures.merged([one, one, {"t_seconds": {"b": [1]}}, "junk"])  # other buckets: ignored
    assert merged["t_responses"] == {"2xx": 4, "5xx": 0}
    assert merged["t_seconds"]["b"] == [4, 0, 2] and merged["t_seconds"]["s"] == pytest.approx(2 * 5.15)


def test_tallies_count_beside_the_dict_and_the_same_key_shares_one_tally():
    counter = ProtocolFigures().counter("t_responses", "help", "class", ("2xx",))
    ok, again, new = counter.tally("2xx"), counter.tally("2xx"), counter.tally("4xx")
    assert ok is again
    for _ in range(6):
        next(ok)
    next(new)
    counter.values["2xx"] += 2  # the first spelling, still counted
    assert counter.dump() == {"2xx": 8, "4xx": 1}
    assert counter.dump() == {"2xx": 8, "4xx": 1}  # reading does not count
    assert counter.empty() == {"2xx": 0, "4xx": 0}


def test_tallies_lose_nothing_from_racing_threads():
    # Threads switching every microsecond: a tally's next() is one C call under the GIL,
    # so the totals must be exact.
    figures = ProtocolFigures()
    counter = figures.counter("t_responses", "help", "class", ("2xx",))
    histogram = figures.histogram("t_seconds", "help", (0.1,))
    ok, bucket = counter.tally("2xx"), histogram.tallies[1]
    threads, each = 4, 50_000

    def count() -> None:
        for _ in range(each):
            next(ok)
            next(bucket)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=count) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    finally:
        sys.setswitchinterval(previous)
    assert counter.dump()["2xx"] == threads * each
    assert histogram.dump()["b"] == [0, threads * each]


def test_no_counter_goes_back_between_scrapes():
    values = iter([({"requests": 5}, {"2xx": 3}, [1, 2], 0.5), ({"requests": 4}, {"2xx": 2}, [0, 3], 0.25),
                   ({"requests": 9}, {"2xx": 4}, [2, 3], 0.75)])

    def source():
        counters, classes, buckets, total = next(values)
        return Snapshot(counters=dict(counters), protocol={"c": dict(classes), "h": {"b": list(buckets), "s": total}})

    monotonic = Monotonic(source)
    seen = [monotonic.snapshot() for _ in range(3)]
    assert [s.counters["requests"] for s in seen] == [5, 5, 9]
    assert [s.protocol["c"]["2xx"] for s in seen] == [3, 3, 4]
    assert [s.protocol["h"]["b"] for s in seen] == [[1, 2], [1, 3], [2, 3]]
    assert [s.protocol["h"]["s"] for s in seen] == [0.5, 0.5, 0.75]


def test_the_exposition_parses_and_its_histogram_is_cumulative():
    figures = ProtocolFigures()
    figures.counter("t_responses", "Responses.", "class", ("2xx",)).values["2xx"] += 3
    histogram = figures.histogram("t_seconds", "Durations.", (0.1, 1.0))
    for value in (0.05, 0.5, 0.7, 3.0):
        histogram.observe(value)
    snap = Snapshot(counters={"requests": 4, "connections_accepted": 2, "connections_closed": 1},
                    protocol=figures.dump(), workers_alive=2, ready=False)
    body, content_type = Exposition(lambda: snap, figures, {"dispatch": "inline"}).render(None)
    assert content_type.startswith("text/plain")
    samples = {(s.name, s.labels.get("le", s.labels.get("class", ""))): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert samples[("netcore_requests_total", "")] == 4
    assert samples[("netcore_connections_active", "")] == 1
    assert samples[("netcore_ready", "")] == 0 and samples[("netcore_workers", "")] == 2
    assert samples[("t_responses_total", "2xx")] == 3
    assert [samples[("t_seconds_bucket", le)] for le in ("0.1", "1.0", "+Inf")] == [1, 3, 4]
    assert samples[("t_seconds_count", "")] == 4


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1:9100", (socket.AF_INET, "127.0.0.1", 9100)),
    ("0.0.0.0:0", (socket.AF_INET, "0.0.0.0", 0)),
    ("[::1]:9100", (socket.AF_INET6, "::1", 9100)),
    ("localhost:9100", (socket.AF_INET, "localhost", 9100)),
])
def test_metrics_bind_accepts(value, expected):
    assert parse_metrics_bind(value) == expected


@pytest.mark.parametrize("value", ["9100", ":9100", "127.0.0.1:", "127.0.0.1:65536", "::1:9100", "[::1]:x",
                                   "[nonsense]:1", "a b:1", "unix:/tmp/x"])
def test_metrics_bind_refuses_in_one_line(value):
    with pytest.raises(SettingError, match="metrics_bind"):
        parse_metrics_bind(value)
