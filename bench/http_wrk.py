#!/usr/bin/env python3
"""Moved: ``netcore bench http`` replaces this script.

    netcore bench http --rounds 3 --json http.json --plot http.png
    netcore bench http --connections 64 --peers uvicorn,nginx

wrk -t1 keep-alive at 64 and 256 connections against netcore's built-in hello, netcore
hosting a WSGI hello app under ``inline`` and ``pool``, uvicorn (httptools, raw ASGI
hello), waitress (4 threads), gunicorn (sync; gthread with 8 threads) and nginx
``return 200``, alternating A B A B, server and wrk pinned to different CPUs; requests/s,
p50/p99, server CPU per request over every server process, ratios to uvicorn and the
preset's targets. See docs/benchmarks.md and docs/http.md.

Kept as a thin wrapper so old commands still work: the arguments are passed through to
``netcore bench http`` unchanged (``--servers`` is now ``--peers``, which picks the
reference servers; the netcore rows always run). As before, wrk is installed with
apt-get if it is missing and this process may do so; ``netcore bench`` itself only
reports wrk's absence as the reason of skipped rows.
"""

import shutil
import subprocess
import sys

from netcore.cli import main  # the real command line: `netcore bench` comes from netcore-bench

if __name__ == "__main__":
    if not shutil.which("wrk"):
        print("bench/http_wrk.py: wrk not found: trying 'apt-get install -y wrk'", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, stdin=subprocess.DEVNULL)
    print("bench/http_wrk.py: now 'netcore bench http'; running it", file=sys.stderr)
    sys.exit(main(["bench", "http", *sys.argv[1:]]))
