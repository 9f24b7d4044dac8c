"""The figures as Prometheus text (and OpenMetrics, when the scraper asks for it).

prometheus-client does the format: names, ``# HELP``/``# TYPE``, escaping, the
cumulative ``_bucket``/``_sum``/``_count`` series of a histogram, and the choice of
format from the scraper's ``Accept`` header -- the parts that are easy to get subtly
wrong by hand and that every scraper parses strictly. Its own metric objects are not
used: their ``inc``/``observe`` take a lock per call, and the workers count in plain
attributes instead (:mod:`netcore.metrics.figures`). A custom collector reads those at
scrape time, which is the library's documented way to export figures kept elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from netcore.metrics.figures import Histogram, ProtocolFigures, Snapshot

#: counter -> (metric name, help). ``_total`` is added by the format.
COUNTER_METRICS = {
    "connections_accepted": ("netcore_connections_accepted", "Connections accepted."),
    "connections_closed": ("netcore_connections_closed", "Connections closed."),
    "requests": ("netcore_requests", "Requests (HTTP requests, RESP commands, echo reads) handled."),
    "bytes_received": ("netcore_received_bytes", "Bytes read from clients."),
    "bytes_sent": ("netcore_sent_bytes", "Bytes written to clients."),
    "errors": ("netcore_errors", "Errors counted by connections, protocols and acceptors."),
    "accept_wakeups": ("netcore_accept_wakeups", "Times a listener was reported readable to a worker."),
    "accept_eagain": ("netcore_accept_eagain",
                      "Accept wake-ups that found no connection (the thundering herd)."),
    "poll_calls": ("netcore_poll_calls", "Times a reactor asked its poller for events."),
}


class _FiguresCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot], families: ProtocolFigures, info: dict[str, str]) -> None:
        self.snapshot = snapshot
        self.families = families
        self.info = info

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot()
        counters = snap.counters
        for key, (name, help_text) in COUNTER_METRICS.items():
            yield CounterMetricFamily(name, help_text, value=counters.get(key, 0))
        yield GaugeMetricFamily("netcore_connections_active", "Connections open now.",
                                value=max(0, counters.get("connections_accepted", 0)
                                          - counters.get("connections_closed", 0)))
        yield GaugeMetricFamily("netcore_workers", "Workers (loops, threads or processes) serving now.",
                                value=snap.workers_alive)
        yield CounterMetricFamily("netcore_worker_restarts",
                                  "Worker processes started in a slot that had one before "
                                  "(crash, kill, reload, max-requests).", value=snap.worker_restarts)
        yield GaugeMetricFamily("netcore_ready", "1 while the server takes new work; 0 once a stop began.",
                                value=1 if snap.ready else 0)
        info = GaugeMetricFamily("netcore_info", "The combination this server runs.", labels=list(self.info))
        info.add_metric(list(self.info.values()), 1)
        yield info
        for name, family in self.families.families.items():
            values = snap.protocol.get(name) or family.empty()
            if isinstance(family, Histogram):
                yield _histogram(family, values)
            else:
                metric = CounterMetricFamily(name, family.help, labels=[family.label])
                for key, value in sorted(values.items()):
                    metric.add_metric([key], value)
                yield metric


def _histogram(family: Histogram, values: dict[str, Any]) -> HistogramMetricFamily:
    buckets = []
    running = 0
    for bound, count in zip((*family.bounds, float("inf")), values["b"]):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
    return HistogramMetricFamily(family.name, family.help, buckets=buckets, sum_value=values["s"])


class Exposition:
    """Renders a scrape: ``render(accept_header) -> (body, content type)``."""

    def __init__(self, snapshot: Callable[[], Snapshot], families: ProtocolFigures, info: dict[str, str]) -> None:
        # A registry of our own, not the library's global one: nothing else (a WSGI app
        # using prometheus-client in the same process) mixes in, and nothing is exported
        # twice when a test builds several servers in one process.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_FiguresCollector(snapshot, families, info))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
