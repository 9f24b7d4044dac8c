"""The heartbeat's verdict on real processes: spinning, sleeping, stopped, starved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import attrs
import pytest
from netcore_dispatch.heartbeat import Heartbeat, read_stat


@attrs.define
class Watched:
    pid: int
    last_beat: float
    cpu_at_beat: float | None = None


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def silent_for(proc: subprocess.Popen, seconds: float) -> Watched:
    """A worker record whose last beat was ``seconds`` ago, CPU sampled now."""
    stat = read_stat(proc.pid)
    assert stat is not None
    return Watched(proc.pid, time.monotonic() - seconds, stat[1])


def wait_state(pid: int, states: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (stat := read_stat(pid)) is None or stat[0] not in states:
        assert time.monotonic() < deadline, f"state {stat}"
        time.sleep(0.01)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_spinning_process_is_dead(procs):
    procs.append(proc := start("while True: pass"))
    wait_state(proc.pid, "R")
    worker = silent_for(proc, 0.0)
    time.sleep(0.5)  # let it spin: CPU accumulates
    worker.last_beat -= 2.0
    assert Heartbeat(1.0).verdict(worker, time.monotonic()) == "dead"


def test_a_sleeping_process_is_dead_and_a_recent_beat_is_alive(procs):
    procs.append(proc := start("import time; time.sleep(60)"))
    wait_state(proc.pid, "S")
    assert Heartbeat(1.0).verdict(silent_for(proc, 0.2), time.monotonic()) == "alive"
    assert Heartbeat(1.0).verdict(silent_for(proc, 2.0), time.monotonic()) == "dead"


def test_a_stopped_process_is_dead(procs):
    procs.append(proc := start("import time; time.sleep(60)"))
    wait_state(proc.pid, "S")
    os.kill(proc.pid, signal.SIGSTOP)
    wait_state(proc.pid, "Tt")
    assert Heartbeat(1.0).verdict(silent_for(proc, 2.0), time.monotonic()) == "dead"


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE") or len(os.sched_getaffinity(0)) < 1, reason="needs SCHED_IDLE")
def test_a_runnable_process_without_cpu_is_starved_and_not_for_ever(procs):
    cpu = min(os.sched_getaffinity(0))
    hog_code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass\n"
    procs.append(start(hog_code))
    procs.append(victim := start(f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n"
                                 "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
                                 "while True: pass\n"))
    wait_state(victim.pid, "R")
    worker = silent_for(victim, 1.5)
    time.sleep(0.3)
    judge = Heartbeat(1.0)
    assert judge.verdict(worker, time.monotonic()) == "starved"
    worker.last_beat -= 5.0  # past STARVED_LIMIT timeouts: no more patience
    assert judge.verdict(worker, time.monotonic()) == "dead"


def test_the_masters_own_lateness_is_not_held_against_workers():
    judge = Heartbeat(1.0)
    worker = Watched(os.getpid(), 100.0)
    judge.master_turn(100.0, 0.5, [worker])
    judge.master_turn(103.5, 0.5, [worker])  # the master woke 3 s late
    assert worker.last_beat == pytest.approx(103.0)
