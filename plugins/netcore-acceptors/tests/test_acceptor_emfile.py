"""Out of descriptors: clients are closed at once, the loop does not spin, service resumes.

A server at its descriptor limit cannot accept; without muduo's spare descriptor the
connection stays in the backlog (the client hangs) and a level-triggered poller reports
the listener again and again (a busy loop at 100% CPU). The server runs in a subprocess
because the test lowers its descriptor limit and fills its table.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "acceptor_emfile_child.py")
TIMEOUT = 10.0


class Child:
    """The server subprocess, with line reads that give up after a deadline."""

    def __init__(self, poller: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, CHILD, poller],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buffer = b""

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def readline(self, timeout: float = TIMEOUT) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "the server did not answer in time"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, f"the server exited: {self.proc.stderr.read().decode()}"
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def ask(self, command: str) -> str:
        self.send(command)
        return self.readline()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # utime and stime are fields 14 and 15 of proc(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        """Stop the server; return its stderr (the log lines)."""
        try:
            if self.proc.poll() is None:
                self.send("quit")
                self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
            err = self.proc.stderr.read().decode()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                stream.close()
        return err


def _outcome(sock: socket.socket) -> str:
    """``closed`` (EOF or reset), ``served`` (the server's greeting) or ``hung``."""
    sock.settimeout(TIMEOUT)
    try:
        data = sock.recv(16)
    except ConnectionResetError:
        return "closed"
    except TimeoutError:
        return "hung"
    return "served" if data == b"ok" else "closed" if data == b"" else f"unexpected {data!r}"


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def test_out_of_descriptors(poller_name):
    child = Child(poller_name)
    clients: list[socket.socket] = []
    try:
        word, port = child.readline().split()
        assert word == "port"
        port = int(port)

        # Before: served normally.
        with _connect(port) as c:
            assert _outcome(c) == "served"

        filled = child.ask("fill")
        assert filled.startswith("filled ") and int(filled.split()[1]) > 0

        # Each client is told at once (its connection closed), not left in the backlog.
        for _ in range(5):
            clients.append(_connect(port))
        started = time.monotonic()
        assert [_outcome(c) for c in clients] == ["closed"] * 5
        assert time.monotonic() - started < TIMEOUT

        # No spin: over one second, with more clients arriving, little CPU is used.
        cpu_before = child.cpu_seconds()
        window_end = time.monotonic() + 1.0
        late = []
        for _ in range(3):
            late.append(_connect(port))
            clients.append(late[-1])
            time.sleep(0.25)
        time.sleep(max(0.0, window_end - time.monotonic()))
        used = child.cpu_seconds() - cpu_before
        assert used < 0.5, f"the server used {used:.2f} s of CPU in 1 s: it is spinning"
        assert [_outcome(c) for c in late] == ["closed"] * 3

        stats = json.loads(child.ask("stats"))
        assert stats["errors"] == 8  # one per refused connection, none for an empty queue
        assert stats["accept_wakeups"] >= 1

        # After: descriptors are back, and so is service.
        assert child.ask("release") == "released"
        with _connect(port) as c:
            assert _outcome(c) == "served"
    finally:
        for c in clients:
            c.close()
        log = child.stop()

    warnings = [json.loads(line) for line in log.splitlines() if "out_of_descriptors" in line]
    assert warnings, log
    assert all(w["level"] == "warning" for w in warnings)
    # Rate-limited: 8 refusals in about 2 s give a few lines, never one per refusal.
    assert len(warnings) <= 4, log
    assert child.proc.returncode == 0, log


def test_without_a_spare_the_channel_pauses_instead_of_spinning(poller_name):
    """No descriptor even for the spare: the connection waits in the backlog, the loop idles."""
    child = Child(poller_name)
    waiting = None
    try:
        port = int(child.readline().split()[1])
        assert child.ask("fill").startswith("filled ")
        assert child.ask("steal-spare") == "stolen"
        waiting = _connect(port)
        cpu_before = child.cpu_seconds()
        time.sleep(1.0)
        used = child.cpu_seconds() - cpu_before
        assert used < 0.5, f"the server used {used:.2f} s of CPU in 1 s: it is spinning"
        waiting.setblocking(False)
        try:
            data = waiting.recv(16)
        except BlockingIOError:
            data = None
        assert data is None  # neither served nor closed: it waits in the backlog
        stats = json.loads(child.ask("stats"))
        assert stats["errors"] >= 1
        # Descriptors come back: the paused channel resumes and serves the waiting client.
        assert child.ask("release") == "released"
        assert _outcome(waiting) == "served"
    finally:
        if waiting is not None:
            waiting.close()
        log = child.stop()
    paused = [json.loads(line) for line in log.splitlines() if "out_of_descriptors" in line]
    assert paused and paused[0]["action"] == "accepting paused", log
    assert len(paused) <= 3, log  # about 10 pauses a second, one line a second
    assert child.proc.returncode == 0, log
