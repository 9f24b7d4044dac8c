#!/usr/bin/env python3
"""Machine instructions per request of ``netcore serve`` options, counted by callgrind.

Why this and not ``netcore bench``: an option that costs 1-2% of CPU per message (live
metrics, the PROXY protocol) is inside the noise of a timed run on a shared machine
(repeated rounds of the same server differ by 2-4%). Callgrind counts the user-space
instructions the server executes, which is the same for the same work from one run to
the next (two runs of one configuration here: 33,178 and 33,181 per HTTP request). It
does not count the kernel's share (the system calls) nor cache and branch effects, so it
bounds the user-space cost of an option; the timed figure stays ``netcore bench
overhead``'s.

Each case is one ``netcore serve`` under ``valgrind --tool=callgrind`` with
instrumentation off until the server is warm; then one keep-alive connection on
loopback sends ``--requests`` requests one at a time (each answered before the next, so
every case does the same reads and writes), and only those are counted.

    python bench/instructions.py --protocol http
    python bench/instructions.py --protocol echo --requests 4000 \\
        --case off= --case "metrics=--metrics-bind 127.0.0.1:0"

Needs valgrind (``apt-get install valgrind``). Runs about a minute per case.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEFAULT_CASES = {"off": [], "metrics on": ["--metrics-bind", "127.0.0.1:0"],
                 "proxy-protocol any": ["--proxy-protocol", "any"]}
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
ECHO_MESSAGE = b"x" * 63 + b"\n"


def _started(proc: subprocess.Popen, deadline: float) -> tuple[str, int]:
    """The address from the server's ``server.started`` event (a JSON line of its log, on stderr)."""
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("the server exited before it started")
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "server.started":
            host, _, port = event["addresses"][0].rpartition(":")
            return host, int(port)
    raise RuntimeError("the server did not start in time")


def _exchange(sock: socket.socket, protocol: str) -> None:
    """One request and its whole answer."""
    if protocol == "http":
        sock.sendall(HTTP_REQUEST)
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    return
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the answer")
            data += chunk
    sock.sendall(ECHO_MESSAGE)
    got = 0
    while got < len(ECHO_MESSAGE):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the echo")
        got += len(chunk)


def _connect(address: tuple[str, int], proxy: bool) -> socket.socket:
    sock = socket.create_connection(address, timeout=60)
    if proxy:  # a v1 header, as HAProxy's send-proxy writes it
        sock.sendall(b"PROXY TCP4 192.0.2.7 %s 40000 %d\r\n" % (address[0].encode(), address[1]))
    return sock


def measure(netcore: str, protocol: str, args: list[str], requests: int) -> float:
    """Instructions per request of one case."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             netcore, "serve", "--protocol", protocol, "--bind", "127.0.0.1:0", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            address = _started(proc, time.monotonic() + 300)
            proxy = "--proxy-protocol" in args
            with _connect(address, proxy) as sock:  # warm: first calls, caches, specialisation
                for _ in range(200):
                    _exchange(sock, protocol)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
            with _connect(address, proxy) as sock:
                for _ in range(requests):
                    _exchange(sock, protocol)
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        total = 0
        for name in os.listdir(tmp):  # one file per thread or dump
            with open(os.path.join(tmp, name)) as f:
                for line in f:
                    if line.startswith("totals:"):
                        total += int(line.split()[1])
                        break
        return total / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=("http", "echo"), default="http")
    parser.add_argument("--requests", type=int, default=8000, help="counted requests per case (default 8000)")
    parser.add_argument("--case", action="append", default=[], metavar="NAME=ARGS",
                        help="a case: its name and its serve arguments (the first is the baseline); "
                             "default: off, metrics on, proxy-protocol any")
    opts = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench/instructions.py: needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    netcore = shutil.which("netcore")
    if netcore is None:
        print("bench/instructions.py: no netcore command on PATH (activate the environment)", file=sys.stderr)
        return 2
    cases = dict(DEFAULT_CASES)
    if opts.case:
        cases = {}
        for text in opts.case:
            name, _, args = text.partition("=")
            cases[name] = shlex.split(args)
    base = None
    print(f"{'case':24s} {'instructions/request':>22s} {'vs ' + next(iter(cases)):>12s}")
    for name, args in cases.items():
        per = measure(netcore, opts.protocol, args, opts.requests)
        base = base or per
        print(f"{name:24s} {per:22,.0f} {per / base:12.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
