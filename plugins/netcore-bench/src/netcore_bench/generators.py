"""Load generators, behind one small adapter interface.

A generator adapter knows which protocols it can drive, whether it can run at all here,
the command line for one run, and how to read that run's figures. The runner does the
rest (pinning, /proc sampling, server start and stop), so adding ``wrk`` for the ``http``
protocol or ``redis-benchmark`` for ``resp`` is one more class here and no change to the
runner: see :class:`ExternalTool`.

Every adapter's :meth:`parse` returns at least ``messages`` (completed requests in the
measured window), ``seconds``, ``messages_per_s``, ``p50_us``, ``p99_us`` and
``cpu_percent`` (the generator's own CPU over the window, or None when the tool does not
say; then the runner measures it from /proc), and ``errors`` (non-zero fails the run).

Adapters: :class:`EchoClient` (echo), :class:`Wrk` (http), :class:`RedisBenchmark` (resp);
under ``--tls`` (an adapter made with ``tls=``, the bench's :class:`netcore_bench.tls.TLSFiles`)
wrk asks for ``https://``, redis-benchmark gets ``--tls --cacert``, and echo is driven by
:class:`TLSEchoClient`, a Python client, since the C one has no TLS.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

from netcore_bench import build


@dataclass(frozen=True)
class Load:
    """What the generator does in one run."""

    connections: int = 64
    size: int = 64
    idle: int = 0
    #: pingpong | reconnect (a connection per message) | burst (all connect at once, once)
    mode: str = "pingpong"
    rcvbuf: int | None = None
    sndbuf: int | None = None
    warmup: float = 1.0
    duration: float = 5.0
    #: requests in flight per connection (redis-benchmark ``-P``); 1 = one at a time
    pipeline: int = 1
    #: a fixed request count instead of a duration (redis-benchmark ``-n``)
    requests: int | None = None
    #: what the generator sends, when it can send several things (redis-benchmark ``-t``)
    test: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        parts = [f"{self.connections}c", f"{self.size}B"]
        if self.idle:
            parts.append(f"+{self.idle} idle")
        if self.mode != "pingpong":
            parts.append(self.mode)
        if self.rcvbuf or self.sndbuf:
            parts.append(f"buf {self.rcvbuf or '-'}/{self.sndbuf or '-'}")
        if self.pipeline != 1:
            parts.append(f"P{self.pipeline}")
        if self.test:
            parts.append(self.test)
        if self.requests:
            parts.append(f"n={self.requests}")
        return " ".join(parts)


class Generator:
    name = "?"
    protocols: tuple[str, ...] = ()
    #: True if the tool prints "warm" and "done" lines on stderr around its measured window.
    marks_window = False

    def __init__(self, tls=None) -> None:
        #: the bench's TLS files (:class:`netcore_bench.tls.TLSFiles`) under ``--tls``, else None
        self.tls = tls

    def unavailable(self) -> str | None:
        """Why this generator cannot run here, or None."""
        return None

    def prepare(self, log) -> None:
        """Build or locate the tool once per bench invocation (may raise)."""

    def command(self, load: Load, host: str, port: int) -> list[str]:
        raise NotImplementedError

    def warmup_command(self, load: Load, host: str, port: int) -> list[str] | None:
        """A run before the measured one, not counted (tools that print no window marks)."""
        return None

    def time_limit(self, load: Load) -> float:
        """Seconds after which a run that has not finished is a failed run."""
        return load.warmup + load.duration + 60.0

    def parse(self, stdout: str, load: Load | None = None) -> dict[str, Any]:
        raise NotImplementedError


class EchoClient(Generator):
    """The C ping-pong client (``loadgen/echo_client.c``), compiled on first use."""

    name = "echo_client"
    protocols = ("echo",)
    marks_window = True

    def __init__(self, rebuild: bool = False, tls=None) -> None:
        super().__init__(tls)
        assert tls is None, "the C client has no TLS: TLSEchoClient drives echo under --tls"
        self.rebuild = rebuild
        self.path: str | None = None

    def unavailable(self) -> str | None:
        try:
            build.find_compiler()
        except build.BuildError as exc:
            return str(exc)
        return None

    def prepare(self, log) -> None:
        if self.path is None:
            self.path = str(build.echo_client(force=self.rebuild, log=log))

    def command(self, load: Load, host: str, port: int) -> list[str]:
        assert self.path is not None, "prepare() first"
        cmd = [self.path, "--host", host, "--port", str(port), "-c", str(load.connections),
               "-s", str(load.size), "-w", f"{load.warmup:g}", "-d", f"{load.duration:g}"]
        if load.idle:
            cmd += ["--idle", str(load.idle)]
        if load.mode == "reconnect":
            cmd.append("--reconnect")
        elif load.mode == "burst":
            cmd.append("--burst")
        if load.rcvbuf:
            cmd += ["--rcvbuf", str(load.rcvbuf)]
        if load.sndbuf:
            cmd += ["--sndbuf", str(load.sndbuf)]
        return cmd

    def parse(self, stdout: str, load: Load | None = None) -> dict[str, Any]:
        lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
        if not lines:
            raise ValueError("the load generator printed no JSON")
        return json.loads(lines[-1])


class TLSEchoClient(EchoClient):
    """``python -m netcore_bench.tls_echo_client``: the C client's command line and output, over TLS.

    One thread on asyncio (uvloop where installed); it can limit messages per second before
    the server does, so its rows are for the server's CPU per message, which stays
    comparable between servers (see the module's docstring)."""

    name = "tls_echo_client"

    def __init__(self, rebuild: bool = False, tls=None) -> None:
        Generator.__init__(self, tls)
        assert tls is not None, "TLSEchoClient needs the bench's CA"

    def unavailable(self) -> str | None:
        return None

    def prepare(self, log) -> None:
        self.path = sys.executable

    def command(self, load: Load, host: str, port: int) -> list[str]:
        cmd = super().command(load, host, port)  # --burst: refused by the client (no such mode)
        return [sys.executable, "-m", "netcore_bench.tls_echo_client", "--cacert", self.tls.ca, *cmd[1:]]


class ExternalTool(Generator):
    """Base of adapters for installed tools (wrk, redis-benchmark): found on PATH.

    A subclass sets ``name``, ``protocols``, ``executable`` and writes ``command`` and
    ``parse``; such tools print no window marks, so the runner samples the server around
    the tool's whole lifetime and subtracts nothing (give them a warm-up run of their own
    if their start-up matters).
    """

    executable = "?"

    def unavailable(self) -> str | None:
        if not shutil.which(self.executable):
            return f"{self.executable} not found on PATH"
        if self.tls is not None:
            from netcore_bench.tls import links_openssl

            if not links_openssl(self.executable):
                return f"{self.executable} here was built without TLS (it does not link OpenSSL)"
        return None


class Wrk(ExternalTool):
    """``wrk -t1 -cN -dS --latency``: HTTP/1.1 keep-alive GET / on every connection.

    Mode ``reconnect`` adds ``-H "Connection: close"``: the server closes after each
    response and wrk connects again, so every request pays a connection (and, over TLS, a
    handshake). wrk keeps the SSL object of a slot across its reconnects (``SSL_clear``),
    and with it the session: after a slot's first connection every handshake is a
    **resumed** one (checked against a Python ``ssl`` server: all but the first reused).

    One wrk thread, as in the measurements the http targets were set from: wrk is C and epoll-driven, one
    thread drives 256 connections past 100k requests/s, and a second thread would need a
    third CPU. wrk counts whole seconds (``-d 0.5`` is 0 s), so durations are rounded up.
    """

    name = "wrk"
    protocols = ("http",)
    executable = "wrk"
    #: a response slower than this is a wrk "timeout" (an error); wrk's default is 2 s,
    #: which a starved server on a shared machine can exceed without being broken
    TIMEOUT = "10s"

    def _cmd(self, connections: int, seconds: float, host: str, port: int, mode: str = "pingpong") -> list[str]:
        close = ["-H", "Connection: close"] if mode == "reconnect" else []
        scheme = "https" if self.tls is not None else "http"
        return [self.executable, "-t1", f"-c{max(1, connections)}", f"-d{max(1, math.ceil(seconds))}s",
                "--latency", "--timeout", self.TIMEOUT, *close, f"{scheme}://{host}:{port}/"]

    def command(self, load: Load, host: str, port: int) -> list[str]:
        return self._cmd(load.connections, load.duration, host, port, load.mode)

    def warmup_command(self, load: Load, host: str, port: int) -> list[str] | None:
        return self._cmd(load.connections, load.warmup, host, port, load.mode) if load.warmup > 0 else None

    def time_limit(self, load: Load) -> float:
        return math.ceil(load.duration) + 60.0

    _TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)\b", re.M)
    _RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
    _PCT = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
    _SOCK = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    _NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
    _UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}

    def parse(self, stdout: str, load: Load | None = None) -> dict[str, Any]:
        total, rps = self._TOTAL.search(stdout), self._RPS.search(stdout)
        if not (total and rps):
            raise ValueError(f"cannot read wrk's output: {stdout.strip()[-300:]!r}")
        pct = {int(m.group(1)): float(m.group(2)) * self._UNIT_US[m.group(3)] for m in self._PCT.finditer(stdout)}
        sock = self._SOCK.search(stdout)
        connect, read, write, timeout = (int(x) for x in sock.groups()) if sock else (0, 0, 0, 0)
        non2xx = int(m.group(1)) if (m := self._NON2XX.search(stdout)) else 0
        seconds = float(total.group(2)) * self._UNIT_US[total.group(3)] / 1e6
        return {"messages": int(total.group(1)), "seconds": seconds, "messages_per_s": float(rps.group(1)),
                "p50_us": pct.get(50, 0.0), "p75_us": pct.get(75, 0.0), "p90_us": pct.get(90, 0.0),
                "p99_us": pct.get(99, 0.0), "cpu_percent": None, "non_2xx": non2xx,
                "socket_errors": {"connect": connect, "read": read, "write": write, "timeout": timeout},
                # a wrong answer or a lost connection makes the row's figures meaningless
                "errors": non2xx + connect + read + write + timeout, "stdout": stdout}


class RedisBenchmark(ExternalTool):
    """``redis-benchmark -t TEST -n N -c C -P P -d SIZE --csv``: one test per run.

    One test per run so that the server CPU sampled around the run belongs to that test
    alone. The warm-up run also writes the key GET reads (``-t set,get``), so GET measures
    hits, as against a redis-server that has seen the SET test.
    """

    name = "redis-benchmark"
    protocols = ("resp",)
    executable = "redis-benchmark"
    DEFAULT_TEST = "get"
    DEFAULT_REQUESTS = 100_000

    def _cmd(self, tests: str, requests: int, load: Load, host: str, port: int) -> list[str]:
        tls = ["--tls", "--cacert", self.tls.ca] if self.tls is not None else []
        return [self.executable, "-h", host, "-p", str(port), *tls, "-t", tests, "-n", str(requests),
                "-c", str(load.connections), "-P", str(load.pipeline), "-d", str(load.size), "-e", "--csv"]

    def command(self, load: Load, host: str, port: int) -> list[str]:
        return self._cmd(load.test or self.DEFAULT_TEST, load.requests or self.DEFAULT_REQUESTS, load, host, port)

    def warmup_command(self, load: Load, host: str, port: int) -> list[str] | None:
        test = load.test or self.DEFAULT_TEST
        tests = "set,get" if test == "get" else test
        if load.warmup <= 0:  # no warm-up asked for: still write the key GET reads
            return self._cmd("set", 1, replace(load, connections=1, pipeline=1), host, port) if test == "get" else None
        return self._cmd(tests, max(1000, (load.requests or self.DEFAULT_REQUESTS) // 10), load, host, port)

    def time_limit(self, load: Load) -> float:
        # no duration: bounded by the request count at a pessimistic 1,000 requests/s
        return (load.requests or self.DEFAULT_REQUESTS) / 1000.0 + 60.0

    def parse(self, stdout: str, load: Load | None = None) -> dict[str, Any]:
        rows = [r for r in csv.reader(io.StringIO(stdout)) if len(r) >= 2 and r[0] != "test"]
        results = [r for r in rows if _is_float(r[1])]
        if not results:
            raise ValueError(f"redis-benchmark printed no result: {stdout.strip()[-300:]!r}")
        # -e prints the server's error replies (at most one a second) among the CSV lines
        errors = [line for line in stdout.splitlines() if line.startswith("Error from server")]
        row = results[0]
        rps = float(row[1])
        requests = (load.requests if load and load.requests else self.DEFAULT_REQUESTS)
        lat = {"p50_us": 4, "p99_us": 6}
        figures: dict[str, Any] = {"test": row[0], "messages": requests, "messages_per_s": rps,
                                   "seconds": requests / rps if rps else 0.0, "cpu_percent": None,
                                   "errors": len(errors), "error_lines": errors[:5], "csv": row}
        for key, col in lat.items():  # redis-benchmark 7 prints latency in ms; 6 prints rps only
            figures[key] = float(row[col]) * 1000.0 if len(row) > col and _is_float(row[col]) else 0.0
        return figures


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


GENERATORS: dict[str, type[Generator]] = {"echo": EchoClient, "http": Wrk, "resp": RedisBenchmark}


def for_protocol(protocol: str, tls: bool = False) -> type[Generator] | None:
    if tls and protocol == "echo":
        return TLSEchoClient
    return GENERATORS.get(protocol)
