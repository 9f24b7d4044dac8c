"""What the deployment tests share: netcore instances on fixed ports, the client's address.

An :class:`Instance` keeps its ports across restarts, so that its replacement takes its
place behind the balancer, as a restarted service does behind a real one.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket

from netcore.testing.server_process import ServerProcess, run_netcore

HERE = os.path.dirname(os.path.abspath(__file__))
APP_ENV = {"PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
SCHEMES = ("inline", "pool", "prefork")
#: resp keeps its keyspace in one process's memory: no process scheme.
RESP_SCHEMES = ("inline", "pool", "multi-reactor")
#: The client's own source address: HAProxy connects to the instances from 127.0.0.1,
#: so an app that sees 127.0.0.2 saw it through the PROXY header.
CLIENT_ADDRESS = "127.0.0.2"


def _proxy_protocol_available() -> bool:
    result = run_netcore("serve", "--help")
    return "--proxy-protocol" in result.stdout


PROXY = _proxy_protocol_available()


def free_port() -> int:
    """A free port below the kernel's ephemeral range, for an instance's fixed address.

    A port the kernel hands out for ``bind(0)`` is an ephemeral one: once the instance
    stops, a client's (or HAProxy's) outgoing connection may take it as its local port,
    and the replacement's bind then fails with EADDRINUSE. Below the range no outgoing
    connection ever gets it.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class Instance:
    """One netcore instance on fixed ports, so that its replacement takes its place."""

    def __init__(self, name: str, dispatch: str, *args: str, proxy: bool = PROXY) -> None:
        self.name = name
        #: Require a PROXY v2 header (HAProxy's send-proxy-v2), where this tree has it.
        self.proxy = proxy
        self.dispatch = dispatch
        self.args = args
        self.port = free_port()
        self.metrics_port = free_port()
        self.server: ServerProcess | None = None
        self.generation = 0

    def start(self) -> Instance:
        extra = ["--workers", "1"] if self.dispatch == "prefork" else []
        if self.proxy:
            extra += ["--proxy-protocol", "v2"]
        self.server = ServerProcess("--dispatch", self.dispatch, *extra, *self.args,
                                    "--metrics-bind", f"127.0.0.1:{self.metrics_port}",
                                    "--graceful-timeout", "10",
                                    bind=f"127.0.0.1:{self.port}", env=APP_ENV).start()
        self.server.wait_event("worker.started")
        self.generation += 1
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.server is not None
        code = self.server.stop(sig)
        self.server.__exit__(None, None, None)
        return code

    def kill(self) -> None:
        if self.server is not None and self.server.proc is not None and self.server.proc.poll() is None:
            self.server.__exit__(None, None, None)


def assert_all_from_the_app(bodies: set[bytes]) -> None:
    """Every distinct body counted is the app's (``ADDR PID``), none a balancer's error page:
    a 502 or 503 from the balancer is a response received, and a request failed."""
    strangers = [body[:120] for body in bodies if not re.fullmatch(rb"[0-9a-f.:]+ \d+\n", body)]
    assert not strangers, f"responses not from the app: {strangers[:3]}"
