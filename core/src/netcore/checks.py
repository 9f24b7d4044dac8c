"""``netcore serve --check-config``: what ``serve`` would refuse, found without serving.

Everything ``serve`` checks before it binds -- every setting, the combination of
plugins, the protocol's own settings, the application's import and the scheme's own
checks (a master's pid file) -- has run by the time this is called, by the same code
(``netcore.cli.checked_server``). What is left is what ``serve`` checks once it has
bound: the listen addresses, bound by the acceptor exactly as ``serve`` binds them
(a typo, a host that does not resolve, an IP of another machine, a combination the
acceptor refuses), then given their TLS and PROXY layers by ``serve``'s own function
(a ``tls:`` address without a certificate, a bad ``proxy_allow_from``), then closed.

What a running server holds is not a configuration error -- during a deploy it holds
the port, the Unix socket and the pid file -- so :class:`~netcore.errors.InUse` is only
noted here (:func:`note`), while ``serve`` refuses to start on it.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from netcore.errors import InUse, UsageError


def note(exc: UsageError, hint: str = "") -> None:
    """Report, without failing, what a running server holds (see the module doc)."""
    print(f"netcore: note: {exc}{hint}", file=sys.stderr)


def in_use(exc: UsageError) -> bool:
    """An acceptor's refusal because a running server holds the address: :class:`InUse`,
    or EADDRINUSE in the message of an acceptor that raises a plain UsageError."""
    return isinstance(exc, InUse) or errno.errorcode[errno.EADDRINUSE] in str(exc) or "in use" in str(exc).lower()


def check_addresses(server: Any) -> None:
    """Bind every listener as ``serve`` would, with the server's acceptor, build their
    accept layers as ``serve`` does, and close them.

    Raises the acceptor's :class:`UsageError` (a bad address, a combination it refuses:
    a Unix socket under ``reuseport``...) or the accept layers' (TLS, PROXY settings).
    An address in use is not an error here: the layers are then checked without
    listeners (:func:`netcore.reactor.admission.accept_settings`).
    """
    from netcore.reactor.admission import accept_settings, build_accept_layers

    config = server.config
    listeners = None
    # Not systemd's sockets: adopting them here would take them from the service.
    if not os.environ.get("LISTEN_FDS"):
        try:
            listeners = server.acceptor.bind(list(config.bind), config.backlog)
        except UsageError as exc:
            if not in_use(exc):
                raise
            note(exc, " (a running server?)")
    try:
        if listeners is None:
            accept_settings(config)
        else:
            build_accept_layers(config, listeners)
    finally:
        if listeners is not None:
            server.acceptor.close(listeners)
