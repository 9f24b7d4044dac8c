"""HTTP's own figures for ``/metrics``: responses by status class, a request-duration histogram.

Made only when metrics are on (``server.metrics`` is not None, see
``netcore.metrics``); with metrics off the response paths (the built-in app's and the
WSGI and ASGI hosts') hold ``None`` and test it once per response: that test is all
they cost.

What a response costs with metrics on:

* an app's (WSGI, ASGI): one call of a closure -- a tuple index and a dict increment
  for the class, a clock reading, a bisect and two list increments for the duration
  histogram (about 0.3 µs; no lock, no call into prometheus-client), beside an app
  whose own call costs several µs;
* the built-in app's: one dict increment for its class, and no duration. Its answer
  is a lookup in a table of prebuilt responses, a fraction of a microsecond after the
  read; measuring that would cost more than the answer (a clock reading and a bisect,
  5% of its CPU per request where the budget is 2%) and tell an operator nothing. The
  histogram is what it says: the time *apps* take.
"""

from __future__ import annotations

from bisect import bisect_left
from time import monotonic as _monotonic
from typing import Any, Callable

#: Seconds: from a quick in-memory answer to a slow app (Prometheus' own default buckets
#: start at 5 ms, too coarse for responses measured in tens of microseconds).
DURATION_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: status // 100 -> its class label (anything outside 1-5 counts as 5xx: it is a bug).
CLASS_OF = ("5xx", *CLASSES, "5xx", "5xx", "5xx", "5xx")


class HttpFigures:
    """The two HTTP families of one server; ``response(status, started)`` counts one."""

    __slots__ = ("response", "responses")

    def __init__(self, figures: Any) -> None:
        responses = figures.counter("netcore_http_responses", "HTTP responses by status class.",
                                    "class", CLASSES).values
        histogram = figures.histogram(
            "netcore_http_request_duration_seconds",
            "From the app's call (WSGI, ASGI) to its complete response.", DURATION_BOUNDS)
        #: Status class -> responses: all the built-in app counts (``responses[CLASS_OF[s // 100]] += 1``).
        self.responses: dict[str, int] = responses
        self.response: Callable[[int, float], None] = _counter(responses, histogram.counts, histogram.bounds,
                                                               histogram.sums)


def _counter(responses: dict, counts: list, bounds: tuple, sums: list) -> Callable[[int, float], None]:
    """The per-response function, with everything it touches bound as closure cells and
    defaults (a local read each, no attribute lookup: this runs once per response)."""

    def response(status: int, started: float, _classes: tuple = CLASS_OF, _now: Any = _monotonic,
                 _bisect: Any = bisect_left) -> None:
        # WSGI statuses are three digits (checked at start_response); ours are known.
        responses[_classes[status // 100]] += 1
        elapsed = _now() - started
        counts[_bisect(bounds, elapsed)] += 1
        sums[0] += elapsed

    return response


def http_figures(server: Any) -> HttpFigures | None:
    """The server's HTTP figures, or None when metrics are off."""
    figures = getattr(server, "metrics", None)
    return HttpFigures(figures) if figures is not None else None
