"""Live metrics: a separate listener (``--metrics-bind``) with ``/metrics``, ``/livez``, ``/readyz``.

Three modules, one job each:

* :mod:`netcore.metrics.figures` -- what is counted and how the figures of several
  workers (threads, or processes reporting over their status pipes) add up. Plain
  data, JSON-able, so a prefork worker can send its figures to the master as one line.
* :mod:`netcore.metrics.exposition` -- those figures as Prometheus text, through
  prometheus-client.
* :mod:`netcore.metrics.listener` -- the HTTP responder for the three paths, on a
  thread of its own.

Nothing here is on the per-event path: the workers keep counting in their plain
:class:`~netcore.stats.WorkerStats` attributes and connection slots, and a scrape reads
them. Per-protocol figures (:class:`~netcore.metrics.figures.ProtocolFigures`) are
plain increments too, and a protocol only makes them when metrics are on.
"""
