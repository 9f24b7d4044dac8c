"""``netcore serve --check-config``: what ``serve`` would refuse, found without serving.

Everything ``serve`` checks before it binds -- every setting, the combination of
plugins, the protocol's own settings and the application's import -- has run by the
time this is called (building the ``Server`` does it). What is left is the listen
addresses: they are bound by the acceptor exactly as ``serve`` binds them, then closed
(a typo, a host that does not resolve, an IP of another machine, a combination the
acceptor refuses). Whether the port is free is not a configuration error -- during a
deploy the running server holds it -- so it is only reported.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from netcore.errors import UsageError


def check_addresses(server: Any) -> None:
    """Bind every listener as ``serve`` would, with the server's acceptor, and close them.

    Raises the acceptor's :class:`UsageError` (a bad address, a combination it refuses:
    a Unix socket under ``reuseport``...). An address in use is not an error here.
    """
    if os.environ.get("LISTEN_FDS"):
        return  # systemd's sockets: adopting them here would take them from the service
    config = server.config
    try:
        listeners = server.acceptor.bind(list(config.bind), config.backlog)
    except UsageError as exc:
        if errno.errorcode[errno.EADDRINUSE] in str(exc) or "in use" in str(exc).lower():
            print(f"netcore: note: {exc} (a running server?)", file=sys.stderr)
            return
        raise
    server.acceptor.close(listeners)
