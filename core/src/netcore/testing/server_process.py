"""Run ``netcore serve`` as a real process and read its events: for tests of any plugin.

The server is started with ``--log-format json``; a reader thread parses each stderr
line, so a test waits for an *event* (``server.started``, ``server.stopped``) instead of
sleeping. Everything binds to loopback with port 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

STARTUP_TIMEOUT = 20.0


class ServerFailed(AssertionError):
    """The server did not start, or did not stop as asked; carries its output."""


class ServerProcess:
    """``with ServerProcess("--poller", "poll") as server: socket.create_connection(server.address)``."""

    def __init__(self, *args: str, bind: str = "127.0.0.1:0", env: dict[str, str] | None = None,
                 cwd: str | None = None, executable: list[str] | None = None,
                 preexec_fn: Any = None) -> None:
        self.args = list(args)
        if bind and "--bind" not in self.args:
            self.args += ["--bind", bind]
        self.command = (executable or [sys.executable, "-m", "netcore"]) + ["serve", "--log-format", "json"] + self.args
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.cwd = cwd
        #: Runs in the child before exec (lower RLIMIT_NOFILE for an EMFILE test, say).
        self.preexec_fn = preexec_fn
        self.events: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, cwd=self.cwd, text=True,
                                     preexec_fn=self.preexec_fn)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.started = self.wait_event("server.started", STARTUP_TIMEOUT)
        return self

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            # Worker processes of a killed master hold its stderr until they notice and exit.
            self._reader.join(5)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None:
            for pipe in (self.proc.stdout, self.proc.stderr):
                try:
                    pipe.close()
                except Exception:
                    pass

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            self._read_lines(self.proc.stderr)
        except ValueError:
            pass  # the pipe was closed under us (__exit__ after a kill): nothing more to read
        with self._cond:
            self._cond.notify_all()

    def _read_lines(self, stream: Any) -> None:
        for line in stream:
            line = line.rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            with self._cond:
                if isinstance(event, dict) and "event" in event:
                    self.events.append(event)
                else:
                    self.other_lines.append(line)
                self._cond.notify_all()

    # -- events ----------------------------------------------------------------------------
    def wait_event(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first event called ``name`` (whose fields equal ``match``), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc is not None and self.proc.poll() is not None
                                      and not self._reader.is_alive()):
                    raise ServerFailed(f"no {name!r} event within {timeout}s; {self.describe()}")
                self._cond.wait(min(remaining, 0.5))

    def wait_events(self, name: str, count: int, timeout: float = 10.0, **match: Any) -> list[dict[str, Any]]:
        """The first ``count`` events called ``name`` (matching ``match``), waiting until there
        are that many: ``wait_events("worker.started", 3)`` after a worker was replaced."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events
                         if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc is not None and self.proc.poll() is not None
                                      and not self._reader.is_alive()):
                    raise ServerFailed(f"{len(found)} of {count} {name!r} events within {timeout}s; {self.describe()}")
                self._cond.wait(min(remaining, 0.5))

    def wait_first(self, *wanted: tuple[str, dict[str, Any]], timeout: float = 10.0) -> dict[str, Any]:
        """The first event to arrive that matches one of ``wanted`` (``(name, fields)``
        pairs): a test waits for the outcome it expects or for the one that rules it out
        (``server.started`` of a USR2 successor, or ``master.successor_exited``), and a
        failure shows at once, not at the end of the time-out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    for name, match in wanted:
                        if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                            return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc is not None and self.proc.poll() is not None
                                      and not self._reader.is_alive()):
                    raise ServerFailed(f"none of {[name for name, _ in wanted]} within {timeout}s; "
                                       f"{self.describe()}")
                self._cond.wait(min(remaining, 0.5))

    def events_named(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == name]

    def describe(self) -> str:
        code = self.proc.poll() if self.proc else None
        tail = "\n".join(self.other_lines[-30:])
        names = [e.get("event") for e in self.events]
        return f"command {' '.join(self.command)!r} exit={code} events={names} other output:\n{tail}"

    # -- addresses -------------------------------------------------------------------------
    @property
    def addresses(self) -> list[str]:
        return list(self.started["addresses"])

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the first TCP address."""
        for text in self.addresses:
            if text.startswith("unix:"):
                continue
            host, _, port = text.rpartition(":")
            return host.strip("[]"), int(port)
        raise ServerFailed(f"no TCP address in {self.addresses}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- stopping --------------------------------------------------------------------------
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the process to exit; returns its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise ServerFailed(f"did not exit within {timeout}s of signal {sig}; {self.describe()}") from None
        self._reader.join(10)
        return self.returncode

    def stopped_event(self) -> dict[str, Any]:
        return self.wait_event("server.stopped", 1.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc (threads included)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (zombies included), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def process_state(pid: int) -> str | None:
    """``R``, ``S``, ``Z`` (zombie) ... from /proc/<pid>/stat, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0]
    except OSError:
        return None


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` exists (or is only a zombie); returns those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if process_state(pid) not in (None, "Z")]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def open_fds(pid: int) -> list[str]:
    """What the descriptors of ``pid`` point at (``socket:[123]``, ``pipe:[45]``, paths)."""
    result = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            result.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return sorted(result)


def module_env(directory, name: str, source: str) -> dict[str, str]:
    """Write ``source`` as module ``name`` in ``directory``; the environment in which a
    ``netcore`` process imports it (``-p name`` for a test's own plugin)."""
    with open(os.path.join(directory, f"{name}.py"), "w") as fh:
        fh.write(source)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))}


def run_netcore(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
                timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a short ``netcore`` command (``plugins``, ``config``) and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "netcore", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
