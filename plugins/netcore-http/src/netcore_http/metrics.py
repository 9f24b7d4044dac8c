"""HTTP's own figures for ``/metrics``: responses by status class, a request-duration histogram.

Made only when metrics are on (``server.metrics`` is not None, see
``netcore.metrics``); with metrics off the response paths (the built-in app's and the
WSGI and ASGI hosts') hold ``None`` and test it once per response: that test is all
they cost.

What a response costs with metrics on:

* an app's (WSGI, ASGI): one call of a closure -- a tuple index and a count for the
  class, a clock reading, a bisect, a count and an add for the duration histogram
  (about 0.3 µs; no lock, no call into prometheus-client), beside an app whose own
  call costs several µs;
* the built-in app's: one count for its class (a C call), and no duration. Its answer
  is a lookup in a table of prebuilt responses, a fraction of a microsecond after the
  read; measuring that would cost more than the answer (a clock reading and a bisect,
  5% of its CPU per request where the budget is 2%) and tell an operator nothing. The
  histogram is what it says: the time *apps* take.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from time import monotonic as _monotonic
from typing import Any, Callable

#: Seconds: from a quick in-memory answer to a slow app (Prometheus' own default buckets
#: start at 5 ms, too coarse for responses measured in tens of microseconds).
DURATION_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: status // 100 -> its class label (anything outside 1-5 counts as 5xx: it is a bug).
_CLASS_OF = ("5xx", *CLASSES, "5xx", "5xx", "5xx", "5xx")


class HttpFigures:
    """The two HTTP families of one server; ``response(status, started)`` counts one."""

    __slots__ = ("response", "by_class")

    def __init__(self, figures: Any) -> None:
        counter = figures.counter("netcore_http_responses", "HTTP responses by status class.", "class", CLASSES)
        histogram = figures.histogram(
            "netcore_http_request_duration_seconds",
            "From the app's call (WSGI, ASGI) to its complete response.", DURATION_BOUNDS)
        #: ``status // 100`` -> the tally of that class: all the built-in app counts
        #: (``next(by_class[2])``: a C call, see ``LabeledCounter``).
        self.by_class: tuple[itertools.count, ...] = tuple(counter.tally(label) for label in _CLASS_OF)
        self.response: Callable[[int, float], None] = _counter(self.by_class, histogram.tallies, histogram.bounds,
                                                               histogram.sums)


def _counter(by_class: tuple, buckets: tuple, bounds: tuple, sums: list) -> Callable[[int, float], None]:
    """The per-response function, with everything it touches bound as closure cells and
    defaults (a local read each, no attribute lookup: this runs once per response)."""

    def response(status: int, started: float, _now: Any = _monotonic, _bisect: Any = bisect_left,
                 _next: Any = next) -> None:
        # WSGI statuses are three digits (checked at start_response); ours are known.
        _next(by_class[status // 100])
        elapsed = _now() - started
        _next(buckets[_bisect(bounds, elapsed)])
        sums[0] += elapsed

    return response


def http_figures(server: Any) -> HttpFigures | None:
    """The server's HTTP figures, or None when metrics are off."""
    figures = getattr(server, "metrics", None)
    return HttpFigures(figures) if figures is not None else None
