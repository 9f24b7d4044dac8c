"""Listening sockets: bind them, adopt inherited ones, and close them without leaving litter.

Choices, and why:

* **Backlog from the kernel.** The accept queue is ``min(backlog, somaxconn)``, so asking
  for somaxconn itself (as Go does) is the largest queue the administrator allows; a
  hard-coded 5 or 128 drops SYNs under a burst long before the server is busy.
* **SO_REUSEADDR** so that a restarted server binds at once although old connections
  sit in TIME_WAIT. **IPV6_V6ONLY=1** so that ``[::]:2007`` means IPv6 only and never
  silently takes the IPv4 port as well: binding both is then two explicit ``--bind``.
* **Non-blocking**: a readiness report can be stale (another worker took the
  connection: the herd), and a blocking ``accept`` would then stall the whole loop.
* **Close-on-exec** (Python's default) yet shared with workers: ``fork`` copies every
  descriptor whatever its flags, so workers get the listeners; ``exec`` drops them, so a
  program a WSGI app starts cannot keep our port open after we exit. Inherited
  descriptors (systemd, ``fd://N``) arrive without the flag and get it here, as
  ``sd_listen_fds`` does.
* **Unix socket files**: a socket file left by a crashed server is removed before
  binding, but only after checking that it is a socket and that nobody answers on it,
  so that a typo never deletes a regular file and a second server never steals a live
  path. The file is removed on close only by the process that created it (not by
  forked workers shutting down while the master still serves).
* **systemd socket activation** (``LISTEN_PID``/``LISTEN_FDS``, fds from 3 up): used
  automatically, and the variables are removed once read, so that processes we start
  do not adopt the same descriptors again. A USR2 successor inherits its predecessor's
  sockets the same way. An address of ``bind`` that an inherited socket already listens
  on *is* that socket (gunicorn matches its inherited fds to its bind addresses the
  same way): binding it again could only fail, the port being taken by the very socket
  handed over. Inherited sockets that no address names are served as well, as they are
  when ``bind`` is left at its default.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat

import structlog
from netcore.acceptor import Listener
from netcore.core_settings import DEFAULT_BIND, default_backlog
from netcore.errors import InUse, SettingError, UsageError

from netcore_acceptors.addresses import Address, format_sockname, parse_address

log = structlog.get_logger("netcore.acceptor")

# ``DEFAULT_BIND``, the ``bind`` setting's default (the essay's echo port), is the
# core's own constant, so the test "did the user pass addresses?" cannot drift from the
# default the core declares. Sockets from systemd replace it; explicit addresses are
# used together with them.

#: The first descriptor systemd passes (``SD_LISTEN_FDS_START``).
SD_LISTEN_FDS_START = 3


# path -> pid of the process that bound it: only that process unlinks it on close.
# A dict survives fork unchanged, so a forked worker sees a pid that is not its own.
_created_paths: dict[str, int] = {}

__all__ = [
    "DEFAULT_BIND",
    "adopt_fd",
    "adopt_systemd_listeners",
    "close_listeners",
    "default_backlog",
    "open_listener",
    "open_listeners",
]


def open_listeners(addresses: list[str], backlog: int, use_systemd: bool = True) -> list[Listener]:
    """Open every address of the ``bind`` setting, plus the sockets systemd handed over.

    The rule: handed-over sockets (systemd's, a USR2 predecessor's) are always used. They
    replace the default address; an explicit address one of them listens on is that
    socket (:func:`_inherited_for`), and the other addresses are opened in addition.
    The result is the inherited sockets no address names, then the addresses in order.
    Every address is parsed before anything is opened; if one fails to open, everything
    opened so far is closed again and :class:`~netcore.errors.UsageError` says which and why.
    """
    parsed = [parse_address(text) for text in addresses]
    listeners: list[Listener] = []
    try:
        if use_systemd:
            listeners.extend(adopt_systemd_listeners())
        if listeners and list(addresses) == [DEFAULT_BIND]:
            return listeners
        unnamed = list(listeners)
        named = []
        for address in parsed:
            listener = _inherited_for(address, unnamed)
            if listener is None:
                listener = open_listener(address, backlog)
                listeners.append(listener)
            named.append(listener)
    except BaseException:
        close_listeners(listeners)
        raise
    return unnamed + named


def _inherited_for(address: Address, inherited: list[Listener]) -> Listener | None:
    """The inherited listener that already listens on ``address``, taken out of ``inherited``.

    Matched on what the socket is bound to: the resolved IP and port (port 0 asks for a
    new port, so it matches nothing), the Unix path (absolute) or abstract name, or the
    descriptor of ``fd://N``. The listener then speaks TLS if the address says ``tls:``.
    """
    if not inherited:
        return None
    wanted = _bound_name(address)
    if wanted is None:
        return None
    for listener in inherited:
        if _listens_on(listener, wanted):
            inherited.remove(listener)
            listener.tls = address.tls
            return listener
    return None


def _bound_name(address: Address) -> tuple | None:
    """What a socket bound to ``address`` shows: ``(family, name)``; None if no inherited
    socket can be it (port 0, a host that does not resolve: opening it says why)."""
    if address.kind == "fd":
        return ("fd", address.fd)
    if address.kind == "unix":
        target = address.unix_bind_target()
        return (socket.AF_UNIX, target if address.abstract else os.path.abspath(target))
    if not address.port:
        return None
    try:
        infos = socket.getaddrinfo(address.host, address.port, address.family, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE | socket.AI_NUMERICSERV)
    except socket.gaierror:
        return None
    family, _type, _proto, _canon, sockaddr = infos[0]  # the one _open_tcp would bind
    return (family, _ip_and_port(family, sockaddr))


def _ip_and_port(family: int, sockaddr: tuple) -> tuple:
    host = str(sockaddr[0]).partition("%")[0]
    scope = sockaddr[3] if family == socket.AF_INET6 and len(sockaddr) > 3 else 0
    return (ipaddress.ip_address(host), sockaddr[1], scope)


def _listens_on(listener: Listener, wanted: tuple) -> bool:
    sock = listener.sock
    family, name = wanted
    if family == "fd":
        return sock.fileno() == name
    if sock.family != family:
        return False
    try:
        bound = sock.getsockname()
    except OSError:
        return False
    if family == socket.AF_UNIX:
        if isinstance(bound, bytes):
            bound = bound.decode("utf-8", "surrogateescape")
        return bool(bound) and (bound if bound.startswith("\0") else os.path.abspath(bound)) == name
    return _ip_and_port(family, bound) == name


def open_listener(address: Address | str, backlog: int) -> Listener:
    """Open (or adopt) one address; :class:`UsageError` with one line if it cannot be done."""
    if isinstance(address, str):
        address = parse_address(address)
    if address.kind == "fd":
        assert address.fd is not None
        listener = adopt_fd(address.fd, address.text, setting="bind")
    elif address.kind == "unix":
        listener = _open_unix(address, backlog)
    else:
        listener = _open_tcp(address, backlog)
    listener.tls = address.tls
    return listener


def _cannot(address: Address | str, exc: BaseException | str) -> UsageError:
    text = address.text if isinstance(address, Address) else address
    in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
    return (InUse if in_use else UsageError)(f"cannot listen on {text}: {exc}")


def _open_tcp(address: Address, backlog: int) -> Listener:
    try:
        infos = socket.getaddrinfo(
            address.host,
            address.port,
            address.family,
            socket.SOCK_STREAM,
            0,
            socket.AI_PASSIVE | socket.AI_NUMERICSERV,
        )
    except socket.gaierror as exc:
        raise _cannot(address, exc) from None
    if not infos:  # pragma: no cover - getaddrinfo raises instead on Linux
        raise _cannot(address, "no address found")
    # A name with several addresses (localhost: ::1 and 127.0.0.1) binds the first one,
    # as Go's net.Listen does; binding all would make one ADDR print as several.
    family, type_, proto, _canon, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _cannot(address, exc) from None
    return Listener(sock=sock, address=format_sockname(sock), kind="tcp")


def _remove_stale_unix_socket(address: Address) -> None:
    """Remove a socket file nobody listens on; refuse anything else that is in the way."""
    path = address.unix_bind_target()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _cannot(address, exc) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise UsageError(
            f"cannot listen on {address.text}: {path} exists and is not a socket; remove it or choose another path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)  # a live server with a full backlog must not block us
        code = probe.connect_ex(path)
    finally:
        probe.close()
    if code in (0, errno.EAGAIN, errno.EINPROGRESS):
        raise InUse(f"cannot listen on {address.text}: another server is listening on it")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _cannot(address, exc) from None


def _open_unix(address: Address, backlog: int) -> Listener:
    if not address.abstract:
        _remove_stale_unix_socket(address)
    target = address.unix_bind_target()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        sock.bind(target)
        bound = True
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if bound and not address.abstract:
            _unlink_quietly(target)
        raise _cannot(address, exc) from None
    path = None
    if not address.abstract:
        path = os.path.abspath(target)
        _created_paths[path] = os.getpid()
    return Listener(sock=sock, address=format_sockname(sock), kind="unix", path=path)


#: What ``bind = "fd://N"`` must name.
FD_ALLOWED = "fd://N of a listening TCP or Unix stream socket this process inherited (from systemd or a parent)"


def adopt_fd(fd: int, label: str | None = None, setting: str | None = None) -> Listener:
    """Take over an inherited listening stream socket (``fd://N``, systemd), marked inherited.

    Anything else behind ``fd`` is refused and left open: it is not ours to close. The
    error names ``setting`` (``bind`` for ``fd://N``) where the descriptor came from one,
    as every other invalid setting does; systemd's descriptors come from its environment.
    """
    label = label or f"fd://{fd}"

    def refuse(reason: str) -> UsageError:
        if setting is None:
            return UsageError(f"cannot use {label}: {reason}")
        return SettingError(setting, label, FD_ALLOWED, hint=f" ({reason})")

    try:
        sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
    except OSError as exc:
        raise refuse(str(exc)) from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as exc:
        sock.detach()
        raise refuse(str(exc)) from None
    if sock.type != socket.SOCK_STREAM or not listening:
        kind = "stream" if sock.type == socket.SOCK_STREAM else "non-stream"
        sock.detach()
        raise refuse(f"it is a {kind} socket that is not listening")
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        family = sock.family
        sock.detach()
        raise refuse(f"unsupported address family {family!r}")
    sock.set_inheritable(False)
    sock.setblocking(False)
    kind = "unix" if sock.family == socket.AF_UNIX else "tcp"
    return Listener(sock=sock, address=format_sockname(sock), kind=kind, inherited=True)


def adopt_systemd_listeners() -> list[Listener]:
    """The sockets of systemd socket activation, or ``[]``; clears the variables either way.

    Like ``sd_listen_fds(1)``: the descriptors are ours only when ``LISTEN_PID`` is our
    pid (a variable inherited from an activated parent is not an invitation), and the
    variables are removed in every case so that children never adopt them again.
    """
    pid = os.environ.pop("LISTEN_PID", None)
    count = os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None:
        return []
    try:
        if int(pid) != os.getpid():
            return []
        n = int(count)
    except ValueError:
        raise UsageError(f"systemd socket activation: bad LISTEN_PID={pid!r} or LISTEN_FDS={count!r}") from None
    listeners: list[Listener] = []
    try:
        for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n):
            listeners.append(adopt_fd(fd, f"systemd socket fd {fd}"))
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


def close_listeners(listeners: list[Listener]) -> None:
    """Close sockets and remove the Unix socket files this very process created.

    Inherited sockets are closed (we own the descriptor) but their paths are left alone:
    systemd or whoever passed them owns the file. Idempotent.
    """
    for listener in listeners:
        try:
            listener.sock.close()
        except OSError:
            pass
        path = listener.path
        if path and not listener.inherited and _created_paths.get(path) == os.getpid():
            del _created_paths[path]
            try:
                _unlink_socket(path)
            except OSError as exc:
                # Typically --user in a directory only root may write: the next start
                # replaces the stale socket, but the operator should know it is there.
                log.warning("listener.socket_left", path=path, error=exc.strerror or str(exc))


def _unlink_quietly(path: str) -> None:
    try:
        _unlink_socket(path)
    except OSError:
        pass


def _unlink_socket(path: str) -> None:
    """Remove ``path`` if it is a socket (never a file someone put there since); gone is fine."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
