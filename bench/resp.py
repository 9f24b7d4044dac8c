#!/usr/bin/env python3
"""Moved: ``netcore bench resp`` replaces this script.

    netcore bench resp --rounds 3 --json resp.json --plot resp.png
    netcore bench resp --pipeline 16 --tests get,set --requests 2000000

``redis-benchmark -t ping,set,get -n 200000 -c 50`` at ``-P 1`` and ``-P 16`` against
netcore ``--protocol resp`` and, in the same run, redis-server (``--save ''
--appendonly no``), server and benchmark pinned to different CPUs, alternating A B A B;
requests/s, server CPU per request and the ratios to redis-server against the
preset's targets. See docs/benchmarks.md and docs/resp.md.

Kept as a thin wrapper so the old command still works: the arguments are passed through
to ``netcore bench resp`` unchanged.
"""

import sys

from netcore.cli import main  # the real command line: `netcore bench` comes from netcore-bench

if __name__ == "__main__":
    print("bench/resp.py: now 'netcore bench resp'; running it", file=sys.stderr)
    sys.exit(main(["bench", "resp", *sys.argv[1:]]))
