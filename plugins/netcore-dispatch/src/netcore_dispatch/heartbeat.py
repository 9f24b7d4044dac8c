"""Judging a silent worker: stuck, stopped, or only starved of CPU by a busy host.

A worker beats from its own loop (or helper thread), so silence alone cannot tell a
worker that is stuck from one that is merely waiting for a CPU on an overloaded host --
and killing the latter drops every connection of a healthy worker (the failure this
answers: a worker silent 5.2 s with ``--timeout 5`` killed beside the stopped one).
Two facts separate them:

* **The master's own lateness.** If the master itself did not run for a while, the
  silence it measures includes time in which nobody could have been heard; that time
  is not held against the workers (:meth:`Heartbeat.master_turn`).
* **What the kernel says about the worker** (``/proc/PID/stat``): a *stopped* worker
  (``T``, SIGSTOP) is dead to its clients and is killed at the timeout; a *runnable*
  worker (``R``) that has used next to no CPU since its last beat is waiting for a CPU,
  not stuck -- a handler spinning in a loop uses CPU, and a handler blocked in a call
  sleeps (``S``/``D``) -- so it is given more time, up to :data:`STARVED_LIMIT` times
  the timeout. Without ``/proc``, silence decides alone, as before.
"""

from __future__ import annotations

import os

#: A starved worker is spared at most this many timeouts in all.
STARVED_LIMIT = 3.0
#: A master turn this much later than it asked for means the master itself was starved.
LATE_TURN = 0.5
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, CPU seconds used) of ``pid``, or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
        return fields[0].decode(), (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


class Heartbeat:
    """The master's judge of silences; ``timeout`` seconds of silence is the rule."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._expected: float | None = None

    def master_turn(self, now: float, wait: float, workers: list) -> None:
        """Called before each wait: if the previous wait overran, excuse the workers."""
        if self._expected is not None:
            late = now - self._expected
            if late > LATE_TURN:
                for worker in workers:
                    worker.last_beat += late
        self._expected = now + wait

    def beat(self, worker) -> None:
        """A beat arrived from ``worker``: remember its CPU time then."""
        stat = read_stat(worker.pid)
        worker.cpu_at_beat = stat[1] if stat else None

    def verdict(self, worker, now: float) -> str:
        """``"alive"``, ``"starved"`` (spare it for now) or ``"dead"`` (kill it)."""
        silent = now - worker.last_beat
        if silent <= self.timeout:
            return "alive"
        stat = read_stat(worker.pid)
        if stat is None or worker.cpu_at_beat is None or silent > self.timeout * STARVED_LIMIT:
            return "dead"
        state, cpu = stat
        used = cpu - worker.cpu_at_beat
        if state == "R" and used < max(0.05, 0.02 * silent):
            return "starved"
        return "dead"
