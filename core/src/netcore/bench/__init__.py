"""``netcore bench``: measure any combination against its peers, on this machine.

Imported only by ``netcore bench`` (``netcore serve`` never loads it). Modules, one job
each: :mod:`.cli` (options), :mod:`.presets` and :mod:`.matrix` (which cases),
:mod:`.runner` (one run of one case), :mod:`.generators` (load generator adapters: the C echo
client, wrk, redis-benchmark), :mod:`.peers` (reference servers and their launcher),
:mod:`.procfs` (CPU, syscalls, memory from /proc), :mod:`.results` (medians, spreads,
ratios), :mod:`.display` and :mod:`.plot` (output), :mod:`.schema` (the ``--json`` shape).
"""

from netcore.bench.cli import main

__all__ = ["main"]
