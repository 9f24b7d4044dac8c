"""A worker process's end of the line to its master: heartbeats, status, the master's death.

Two pipes, both created by the master before the fork:

* the **status pipe** (one per worker, worker writes): newline-separated messages. An
  empty line is a heartbeat; others are JSON objects -- ``{"ready": true}`` once the
  worker accepts, ``{"recycle": N}`` when it has served ``max_requests``, ``{"stats":
  {...}}`` as it exits (its counters, for ``server.stopped``) and, with metrics on, in
  place of each heartbeat (its live counters and protocol figures, for the master's
  ``/metrics``: a line a second, never per request). Every message is far
  below ``PIPE_BUF``, so a write is atomic: the master never sees half a line.
* the **life pipe** (one for all workers, the master holds the only write end and never
  writes): when the master dies -- even by SIGKILL -- the kernel closes that end and the
  read end becomes readable with EOF in every worker. Unlike ``getppid()`` polling it
  needs no timer, and unlike ``PR_SET_PDEATHSIG`` it is portable and cannot fire for
  the death of a thread that happened to fork us.

A heartbeat says "my loop is turning": a reactor worker sends it from a loop timer, so a
handler stuck in a loop silences it; a blocking worker's helper thread sends it only
while no handler has been running since the previous one (see ``prefork_blocking``).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sys
import traceback
from typing import Any

import structlog

log = structlog.get_logger("netcore.worker")

#: Exit status of a worker that failed before it could serve (gunicorn's WORKER_BOOT_ERROR).
BOOT_ERROR = 3
#: Exit status of a worker that aborted itself on the master's SIGABRT (heartbeat timeout).
ABORTED = 6
#: How often a worker beats, at most (``--timeout`` / 4 when that is shorter).
MAX_BEAT_INTERVAL = 1.0


def beat_interval(timeout: float) -> float:
    """Four beats per ``timeout``, at most one a second: a missed beat or two is not death."""
    if timeout <= 0:
        return MAX_BEAT_INTERVAL
    return max(0.02, min(MAX_BEAT_INTERVAL, timeout / 4))


def request_limit(max_requests: int, jitter: int) -> int:
    """This worker's own limit: ``max_requests`` plus 0..``jitter`` (0: no limit)."""
    if max_requests <= 0:
        return 0
    return max_requests + (random.randint(0, jitter) if jitter > 0 else 0)


class MasterLink:
    """Used in the worker process only. Writes never block and never raise: a worker
    must go on serving (or finish stopping) whatever state its master is in."""

    def __init__(self, slot: int, status_fd: int, life_fd: int, *, timeout: float, max_requests: int) -> None:
        self.slot = slot
        self.status_fd = status_fd
        #: Readable (EOF) once the master is gone.
        self.life_fd = life_fd
        self.interval = beat_interval(timeout)
        #: Requests after which this worker asks to be replaced; 0: never.
        self.max_requests = max_requests
        self._recycle_sent = False
        self.ready_sent = False
        #: With metrics on: the worker's live figures (``Server.worker_figures``), sent
        #: with each beat instead of an empty line.
        self.live_stats: Any = None
        os.set_blocking(status_fd, False)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self.status_fd, data)
        except OSError:  # full (master stopped or slow) or gone: nothing to do about it
            pass

    def beat(self) -> None:
        if self.live_stats is not None:
            try:
                line = json.dumps({"stats": self.live_stats()}, separators=(",", ":")).encode() + b"\n"
            except Exception:  # noqa: BLE001 - a figure that fails must not silence the heartbeat
                line = b"\n"
            if len(line) < select.PIPE_BUF:  # one atomic write, as every status line
                self._write(line)
                return
        self._write(b"\n")

    def send(self, **message: Any) -> None:
        self._write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def ready(self) -> None:
        self.ready_sent = True
        self.send(ready=True)

    def check_requests(self, served: int) -> None:
        """Ask the master for a replacement once ``served`` reaches the limit (once)."""
        if self.max_requests and not self._recycle_sent and served >= self.max_requests:
            self._recycle_sent = True
            log.info("worker.max_requests", worker=self.slot, pid=os.getpid(), requests=served,
                     max_requests=self.max_requests)
            self.send(recycle=served)

    def report(self, stats: Any) -> None:
        """The worker's counters, as it exits: blocking, so that a full pipe delays the
        exit a moment instead of losing them (a gone master makes it fail at once)."""
        try:
            os.set_blocking(self.status_fd, True)
        except OSError:
            return
        self.send(stats=stats.as_dict())

    def master_gone(self) -> bool:
        """True once the life pipe reports EOF (non-blocking check)."""
        try:
            readable, _, _ = select.select([self.life_fd], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def install_abort_handler(self) -> None:
        """On the master's SIGABRT (heartbeat timeout): log where the worker was stuck, exit.

        Python runs the handler between bytecodes, so a handler spinning in Python code is
        interrupted and its stack shows the culprit; one stuck inside a C call that never
        returns gets SIGKILL from the master a moment later.
        """
        slot = self.slot

        def on_abort(_signum: int, frame: Any) -> None:
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            log.error("worker.aborted", worker=slot, pid=os.getpid(), reason="heartbeat timeout", stack=stack)
            flush_stdio()
            os._exit(ABORTED)

        signal.signal(signal.SIGABRT, on_abort)


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not stop an exit
            pass


def log_master_gone(**fields: Any) -> None:
    """Log that the master died, after the worker has already acted on it.

    stderr is often a pipe the dead master's own parent read, and may be closed: writing
    to it then raises (BrokenPipeError), and an orphan whose stop depended on that line
    would serve on forever. So the stop comes first and this line is best effort.
    """
    try:
        log.warning("worker.master_gone", pid=os.getpid(), **fields)
    except (OSError, ValueError):
        pass
