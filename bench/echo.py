#!/usr/bin/env python3
"""Moved: ``netcore bench`` (the default matrix) replaces this script.

    netcore bench --poller epoll-lt --peers asyncio,uvloop --rounds 5 --json echo.json

Kept as a thin wrapper so old commands still work: the arguments are passed through to
``netcore bench`` unchanged. See bench/README.md and docs/benchmarks.md.
"""

import sys

from netcore.cli import main  # the real command line: `netcore bench` comes from netcore-bench

if __name__ == "__main__":
    print("bench/echo.py: now 'netcore bench'; running it", file=sys.stderr)
    sys.exit(main(["bench", "--poller", "epoll-lt", *sys.argv[1:]]))
