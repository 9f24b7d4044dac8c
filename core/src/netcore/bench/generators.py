"""Load generators, behind one small adapter interface.

A generator adapter knows which protocols it can drive, whether it can run at all here,
the command line for one run, and how to read that run's figures. The runner does the
rest (pinning, /proc sampling, server start and stop), so adding ``wrk`` for the ``http``
protocol or ``redis-benchmark`` for ``resp`` is one more class here and no change to the
runner: see :class:`ExternalTool`.

Every adapter's :meth:`parse` returns at least ``messages`` (completed requests in the
measured window), ``seconds``, ``messages_per_s``, ``p50_us``, ``p99_us`` and
``cpu_percent`` (the generator's own CPU over the window, or None when the tool does not
say; then the runner measures it from /proc).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from netcore.bench import build


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
        return " ".join(parts)


class Generator:
    name = "?"
    protocols: tuple[str, ...] = ()
    #: True if the tool prints "warm" and "done" lines on stderr around its measured window.
    marks_window = False

    def unavailable(self) -> str | None:
        """Why this generator cannot run here, or None."""
        return None

    def prepare(self, log) -> None:
        """Build or locate the tool once per bench invocation (may raise)."""

    def command(self, load: Load, host: str, port: int) -> list[str]:
        raise NotImplementedError

    def parse(self, stdout: str) -> dict[str, Any]:
        raise NotImplementedError


class EchoClient(Generator):
    """The C ping-pong client (``loadgen/echo_client.c``), compiled on first use."""

    name = "echo_client"
    protocols = ("echo",)
    marks_window = True

    def __init__(self, rebuild: bool = False) -> None:
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

    def parse(self, stdout: str) -> dict[str, Any]:
        lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
        if not lines:
            raise ValueError("the load generator printed no JSON")
        return json.loads(lines[-1])


class ExternalTool(Generator):
    """Base of adapters for installed tools (wrk, redis-benchmark): found on PATH.

    A subclass sets ``name``, ``protocols``, ``executable`` and writes ``command`` and
    ``parse``; such tools print no window marks, so the runner samples the server around
    the tool's whole lifetime and subtracts nothing (give them a warm-up run of their own
    if their start-up matters).
    """

    executable = "?"

    def unavailable(self) -> str | None:
        return None if shutil.which(self.executable) else f"{self.executable} not found on PATH"


GENERATORS: dict[str, type[Generator]] = {"echo": EchoClient}


def for_protocol(protocol: str) -> type[Generator] | None:
    return GENERATORS.get(protocol)
