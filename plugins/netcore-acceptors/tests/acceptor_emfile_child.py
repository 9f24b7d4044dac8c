"""A server process for the EMFILE test, driven line by line over stdin/stdout.

It runs an accept channel on a real loop, and on ``fill`` lowers its own descriptor limit
and opens /dev/null until the table is full — the state of a server with too many
clients. Commands: ``fill``, ``steal-spare``, ``stats``, ``release``, ``quit``. Logs go to stderr as JSON.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import structlog  # noqa: E402

structlog.configure(
    processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    logger_factory=structlog.PrintLoggerFactory(sys.stderr),
)

from acceptor_testing import POLLERS  # noqa: E402
from netcore.reactor.loop import EventLoop  # noqa: E402
from netcore.reactor.poller import EVENT_READ  # noqa: E402
from netcore.stats import WorkerStats  # noqa: E402
from netcore_acceptors.channel import AcceptChannel  # noqa: E402
from netcore_acceptors.listeners import close_listeners, open_listeners  # noqa: E402


def main() -> None:
    loop = EventLoop(POLLERS[sys.argv[1]]())
    (listener,) = open_listeners(["127.0.0.1:0"], 64, use_systemd=False)
    stats = WorkerStats()
    hoard: list[int] = []

    def on_connection(sock, peer) -> None:
        try:
            sock.sendall(b"ok")  # a blocking socket and two bytes: cannot stall
        finally:
            sock.close()

    channel = AcceptChannel(loop, listener, on_connection, stats)

    def reply(text: str) -> None:
        os.write(1, (text + "\n").encode())

    def fill() -> None:
        highest = max(int(name) for name in os.listdir("/proc/self/fd"))
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 8, hard))
        for _ in range(highest + 8):  # bounded by the limit just set
            try:
                hoard.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                if exc.errno == errno.EMFILE:
                    break
                raise
        reply(f"filled {len(hoard)}")

    def on_command(_mask: int) -> None:
        data = os.read(0, 4096).decode()
        for command in data.split():
            if command == "fill":
                fill()
            elif command == "steal-spare":
                # As if another thread of this process took the spare's slot the moment
                # it was freed: white-box, to reach the channel's last resort (pausing).
                os.close(channel._spare.fd)
                channel._spare.fd = None
                hoard.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
                reply("stolen")
            elif command == "stats":
                reply(json.dumps(stats.as_dict()))
            elif command == "release":
                while hoard:
                    os.close(hoard.pop())
                reply("released")
            elif command == "quit":
                loop.stop()
        if not data:
            loop.stop()  # the parent went away

    loop.register(0, EVENT_READ, on_command)
    reply(f"port {listener.sock.getsockname()[1]}")
    loop.run_forever()
    loop.unregister(0)
    channel.close()
    close_listeners([listener])
    loop.close()
    reply("bye")


if __name__ == "__main__":
    main()
