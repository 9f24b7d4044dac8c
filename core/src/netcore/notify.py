"""systemd's readiness protocol (``Type=notify``): one datagram per state change.

systemd sets ``NOTIFY_SOCKET`` for a ``Type=notify`` service and waits for ``READY=1``
before it counts the service as started (and starts what is ordered after it); around a
reload it wants ``RELOADING=1`` then ``READY=1`` again, and ``STOPPING=1`` as a stop
begins. The protocol is a datagram of ``KEY=VALUE`` lines to a Unix socket -- a path,
or an abstract name written with a leading ``@`` -- so it needs no library: this is
what ``sd_notify(3)`` does, minus the fd passing that netcore does not use.

Only the master (or the one process of an in-process scheme) speaks, naming itself
(``MAINPID``, which lets a master started by USR2 take over). Errors are ignored: a
missing or full socket must never stop a server from serving.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    """Send ``states`` (``"READY=1"``, ...) to systemd; False if not under systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    message = "\n".join((*states, f"MAINPID={os.getpid()}")).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True
