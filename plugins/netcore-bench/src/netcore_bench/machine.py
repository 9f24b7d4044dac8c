"""The machine description stored with every result, and the CPU pinning plan."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from netcore_bench.procfs import CLK_TCK, nofile_hard_limit


def pinning() -> tuple[int | None, int | None, str]:
    """(server CPU, generator CPU, note): different CPUs when there are two or more."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, f"only {len(cpus)} CPU available: no pinning (server and generator share it)"
    return cpus[0], cpus[1], f"server pinned to CPU {cpus[0]}, load generator to CPU {cpus[1]}"


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def describe(pin_note: str) -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lscpu = None
    if shutil.which("lscpu"):
        try:
            lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu = None
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        somaxconn = None
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "affinity_cpus": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "netcore": _version("netcore-host"),
        "uvloop": _version("uvloop"),
        "clk_tck": CLK_TCK,
        "nofile_hard_limit": nofile_hard_limit(),
        "somaxconn": somaxconn,
        "pinning": pin_note,
        "loadavg_at_start": list(os.getloadavg()),
        "lscpu": lscpu,
    }
