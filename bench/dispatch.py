#!/usr/bin/env python3
"""Moved: ``netcore bench dispatch`` replaces this script.

    netcore bench dispatch --rounds 3 --json dispatch.json --plot dispatch.png
    netcore bench dispatch --dispatch inline,pool,multi-reactor

Kept as a thin wrapper so old commands still work: the arguments are passed through to
``netcore bench dispatch``. See bench/README.md and docs/schemes.md.
"""

import sys

from netcore.cli import main  # the real command line: `netcore bench` comes from netcore-bench

if __name__ == "__main__":
    print("bench/dispatch.py: now 'netcore bench dispatch'; running it", file=sys.stderr)
    sys.exit(main(["bench", "dispatch", *sys.argv[1:]]))
