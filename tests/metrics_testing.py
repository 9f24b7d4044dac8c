"""Scraping a netcore metrics listener from tests: ``/metrics`` parsed by prometheus-client's
own parser (so a malformed exposition fails the test), health endpoints, bounded polls."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families


def get(address: str, path: str, timeout: float = 5.0) -> tuple[int, bytes, Any]:
    """(status, body, headers) of ``GET http://address/path``; a 4xx/5xx is returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def scrape(address: str) -> dict[str, Any]:
    """``{sample name: value}``, and ``{name: {label value: value}}`` for labelled samples."""
    status, body, headers = get(address, "/metrics")
    assert status == 200, (status, body[:200])
    assert headers["Content-Type"].startswith("text/plain"), headers["Content-Type"]
    samples: dict[str, Any] = {"_types": {}}
    for family in text_string_to_metric_families(body.decode()):
        samples["_types"][family.name] = family.type
        for sample in family.samples:
            if not sample.labels:
                samples[sample.name] = sample.value
            else:
                key = sample.labels.get("le") or sample.labels.get("class") or tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something true (bounded): figures have no event to wait on."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
