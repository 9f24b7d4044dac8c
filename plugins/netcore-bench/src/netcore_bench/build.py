"""Build the C load generator on demand, with the system compiler, into a cache directory.

The source ships inside the package (``netcore_bench/loadgen/echo_client.c``), so the
bench works from an installed distribution. The binary goes to ``$NETCORE_BENCH_CACHE``
or ``$XDG_CACHE_HOME/netcore-bench`` (``~/.cache/netcore-bench``, named after the
distribution), never into the source tree, named after a hash of the source and the
flags: an edited source is rebuilt, two checkouts share a binary only when their sources
are identical.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from importlib import resources
from pathlib import Path

CFLAGS = ["-O2", "-Wall", "-Wextra"]


class BuildError(Exception):
    """No compiler, or the source did not compile: the bench cannot drive echo servers."""


def source_text() -> bytes:
    return resources.files("netcore_bench").joinpath("loadgen/echo_client.c").read_bytes()


def cache_dir() -> Path:
    if os.environ.get("NETCORE_BENCH_CACHE"):
        return Path(os.environ["NETCORE_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "netcore-bench"


def find_compiler() -> str:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return cand
    raise BuildError("no C compiler found (tried $CC, cc, gcc, clang); install gcc to build the load generator")


def echo_client(force: bool = False, log=None) -> Path:
    """Path of a compiled echo_client for the packaged source, compiling it if needed."""
    src = source_text()
    digest = hashlib.sha256(src + " ".join(CFLAGS).encode()).hexdigest()[:16]
    out = cache_dir() / f"echo_client-{digest}"
    if out.exists() and not force:
        return out
    cc = find_compiler()
    out.parent.mkdir(parents=True, exist_ok=True)
    src_path = out.parent / f"echo_client-{digest}.c"
    src_path.write_bytes(src)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    cmd = [cc, *CFLAGS, "-o", str(tmp), str(src_path)]
    if log:
        log(f"compiling the load generator: {shlex.join(cmd)}")
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"compiling the load generator failed ({shlex.join(cmd)}):\n{res.stderr}")
    os.replace(tmp, out)  # atomic: a concurrent bench sees the old binary or the new one
    return out
