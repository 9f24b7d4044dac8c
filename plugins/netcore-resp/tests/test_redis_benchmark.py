"""redis-benchmark runs without errors against every in-process scheme (small -n: a smoke run).

Speed is measured in bench/resp.py, never here. Each scheme serves the Redis tests that
use only supported commands, pipelined (-P 8) and not; ``-e`` makes redis-benchmark print
any error reply, and the test fails on one.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from netcore.testing.server_process import ServerProcess

TESTS = "ping,set,get,incr,lpush,rpush,lpop,rpop,hset,lrange_100,mset"
#: scheme -> (serve arguments, clients it can serve at once)
SCHEMES = {
    "inline": (["--poller", "epoll-lt"], 10),
    "pool": (["--poller", "epoll-lt", "--threads", "4"], 10),
    "thread": (["--poller", "epoll-lt", "--threads", "4"], 10),
    "thread-per-connection": (["--poller", "epoll-lt"], 10),
    "multi-reactor": (["--poller", "epoll-lt", "--workers", "2"], 10),
    "multi-reactor-pool": (["--poller", "epoll-lt", "--workers", "2", "--threads", "4"], 10),
    "iterative": ([], 1),  # one client at a time: redis-benchmark must use one connection
    "threading": ([], 10),
    "prethread-blocking": (["--workers", "4"], 4),
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_redis_benchmark_runs_clean(scheme):
    tool = shutil.which("redis-benchmark")
    if tool is None:
        pytest.skip("redis-benchmark is not installed (Debian: apt-get install redis-tools)")
    args, clients = SCHEMES[scheme]
    with ServerProcess("--protocol", "resp", "--dispatch", scheme, *args) as server:
        host, port = server.address
        for pipeline in ("1", "8"):
            res = subprocess.run([tool, "-h", host, "-p", str(port), "-t", TESTS, "-n", "2000", "-c", str(clients),
                                  "-P", pipeline, "-q", "-r", "100"],
                                 capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            out = res.stdout + res.stderr
            assert res.returncode == 0, out
            assert "ERR" not in out and "Error" not in out, out  # it exits at the first error reply
            for name in ("PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP",
                         "HSET", "LRANGE_100", "MSET"):
                assert name in out, f"{name} missing from:\n{out}"
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
        assert stats["requests"] > 2 * 12 * 2000  # commands are counted, not reads
