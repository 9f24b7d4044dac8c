"""A graceful stop (SIGTERM) does not wait for clients blocked in BLPOP & co.

redis-server closes its clients at shutdown; a client blocked with timeout 0 made netcore
wait the whole ``graceful_timeout`` (30 s) before. Here the blocked client gets the
replies of what it sent before the blocking command, then the close, and the server
exits well inside its graceful timeout; a client with a reply still owed gets it.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from netcore.testing.clients import TIMEOUT, recv_until_eof
from netcore.testing.server_process import ServerProcess

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

SCHEMES = {
    "inline": ["--dispatch", "inline"],
    "pool": ["--dispatch", "pool", "--threads", "4"],
    "multi-reactor": ["--dispatch", "multi-reactor", "--workers", "2"],
}
#: Far longer than the stop may take: a stop that waited for the blocked client would
#: take all of it.
GRACEFUL = 60


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("timeout", [b"0", b"50"])
def test_sigterm_closes_a_blocked_client_at_once(scheme, timeout):
    with ServerProcess("--protocol", "resp", "--graceful-timeout", str(GRACEFUL), *SCHEMES[scheme]) as server:
        host, port = server.address
        blocked = socket.create_connection((host, port), timeout=TIMEOUT)
        blocked.sendall(b"LPUSH other 1\r\nBLPOP q " + timeout + b"\r\nPING\r\n")
        assert blocked.recv(100) == b":1\r\n"  # the reply before the blocking command
        probe = redis.Redis(host=host, port=port, socket_timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while probe.info("clients")["blocked_clients"] != 1:
            assert time.monotonic() < deadline, "the client never blocked"
            time.sleep(0.01)  # INFO has no event to wait on; bounded by the deadline
        probe.close()
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert recv_until_eof(blocked) == b""  # closed, nothing more (PING never ran)
        blocked.close()
        assert server.stop(timeout=GRACEFUL) == 0
        assert time.monotonic() - started < GRACEFUL / 4
