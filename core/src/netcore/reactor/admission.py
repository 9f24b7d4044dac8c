"""What happens to an accepted socket before its protocol: the PROXY header, then TLS.

Each listener has its layers (:class:`ListenerLayers`): a PROXY protocol policy, a TLS
context, both or neither. They are applied in the order the bytes arrive -- the PROXY
header is plaintext written by the balancer before anything of the client's, the TLS
handshake comes next, the protocol last -- and the protocol never knows.

* Built once per server (:func:`build_accept_layers`), in the process that binds,
  before any fork: every worker shares the TLS context and its session-ticket keys.
* A server whose listeners have no layers gets ``None`` and its connections take the
  plaintext path untouched. When every listener has the same layers, nothing is looked
  up per connection; only a server mixing plaintext and TLS listeners asks each accepted
  socket for its local address (one ``getsockname``) to know which listener it came from.
* The header is read by :class:`ProxyStage` on the loop (reactor schemes) or by
  :func:`admit_blocking` on the serving thread (blocking schemes), with the same
  consume-exactly-the-header step (:func:`read_step`), bounded by ``proxy_timeout``. A
  missing, malformed or too-slow header closes that connection only, counted in
  ``errors`` and logged once per cause and interval.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from typing import Any, Callable

import attrs

from netcore.errors import SettingError, UsageError
from netcore.ratelimited_log import RateLimitedLog
from netcore.reactor import proxy_protocol
from netcore.reactor.poller import EVENT_READ
from netcore.reactor.proxy_protocol import ProxyHeader, ProxyHeaderError

failures = RateLimitedLog("netcore.proxy")

#: read_step's answer when the first bytes show there is no header (mode ``any``).
NO_HEADER = ProxyHeader(size=0, version=0)


@attrs.frozen
class ProxyPolicy:
    """``proxy_protocol`` and ``proxy_allow_from``, parsed."""

    #: ``v1``, ``v2`` or ``any``.
    mode: str
    networks: tuple
    timeout: float

    @property
    def required(self) -> bool:
        return self.mode != "any"

    @property
    def version(self) -> int | None:
        return {"v1": 1, "v2": 2}.get(self.mode)

    def trusted(self, peer: Any) -> bool:
        """A header is believed only from these peers; a Unix socket's peer is this machine."""
        if not isinstance(peer, tuple):
            return True
        try:
            address = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


@attrs.frozen
class ListenerLayers:
    """The layers of one listener."""

    tls: ssl.SSLContext | None = None
    proxy: ProxyPolicy | None = None
    handshake_timeout: float = 10.0


class AcceptLayers:
    """Which layers an accepted socket gets, by the listener it came from."""

    def __init__(self, entries: list[tuple[Any, ListenerLayers | None]]) -> None:
        distinct = {id(layers) for _, layers in entries}
        #: The one answer when every listener has the same layers (no lookup at all).
        self.uniform: ListenerLayers | None = entries[0][1] if len(distinct) == 1 else None
        self.mixed = len(distinct) > 1
        self._exact: dict[tuple, ListenerLayers | None] = {}
        self._wildcard: dict[tuple, ListenerLayers | None] = {}
        for listener, layers in entries:
            sock = listener.sock
            try:
                name = sock.getsockname()
            except OSError:
                continue
            if isinstance(name, tuple):
                self._exact[(sock.family, name[0], name[1])] = layers
                if name[0] in ("0.0.0.0", "::"):
                    self._wildcard[(sock.family, name[1])] = layers
            else:
                self._exact[(socket.AF_UNIX, name)] = layers

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context new connections of the TLS listeners get (one per server)."""
        for layers in (self.uniform, *self._exact.values()):
            if layers is not None and layers.tls is not None:
                return layers.tls
        return None

    def replace_tls(self, context: ssl.SSLContext) -> ssl.SSLContext | None:
        """Give the TLS listeners ``context`` (a reload on HUP); returns the one it replaces.

        Connections accepted from now on are wrapped with it; open ones keep the context
        they were made with (an ``SSLSocket`` holds its own), as nginx's old workers do.
        Each mapping is replaced whole, never changed in place: a reactor thread reading
        it meanwhile sees the old layers or the new ones, both complete.
        """
        previous = self.tls_context
        swapped: dict[int, ListenerLayers] = {}

        def swap(layers: ListenerLayers | None) -> ListenerLayers | None:
            if layers is None or layers.tls is None:
                return layers
            return swapped.setdefault(id(layers), attrs.evolve(layers, tls=context))

        self._exact = {key: swap(layers) for key, layers in self._exact.items()}
        self._wildcard = {key: swap(layers) for key, layers in self._wildcard.items()}
        self.uniform = swap(self.uniform)
        return previous

    def for_socket(self, sock: socket.socket) -> ListenerLayers | None:
        if not self.mixed:
            return self.uniform
        try:
            name = sock.getsockname()
        except OSError:
            return None
        if not isinstance(name, tuple):
            return self._exact.get((socket.AF_UNIX, name))
        key = (sock.family, name[0], name[1])
        if key in self._exact:
            return self._exact[key]
        return self._wildcard.get((sock.family, name[1]))


def proxy_policy(config: Any) -> ProxyPolicy | None:
    if config.proxy_protocol == "off":
        return None
    networks = []
    for text in config.proxy_allow_from:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise SettingError("proxy_allow_from", text, "networks in CIDR form (10.0.0.0/8, ::1/128)") from None
    return ProxyPolicy(mode=config.proxy_protocol, networks=tuple(networks), timeout=config.proxy_timeout)


def accept_settings(config: Any) -> tuple[int, ProxyPolicy | None, ssl.SSLContext | None]:
    """What :func:`build_accept_layers` refuses whatever the listeners are: a ``tls:``
    address or a TLS setting without ``certfile``, certificate files that do not load, a
    bad ``proxy_allow_from``. Returns the number of ``tls:`` addresses, the PROXY policy
    and the TLS context. ``--check-config`` runs it alone where the addresses could not
    be bound (the running server holds them), so that it still refuses what serve would.
    """
    marked = sum(1 for text in config.bind if str(text).startswith("tls:"))
    if marked and not config.certfile:
        raise SettingError("certfile", "", "a certificate (PEM): the tls: addresses of bind need one")
    proxy = proxy_policy(config)
    context = None
    if config.certfile:
        from netcore.reactor.tls import build_context

        context = build_context(config)
    elif config.keyfile or config.cert_reqs != "none":
        raise SettingError("certfile", "", "a certificate (PEM): keyfile and cert_reqs are TLS settings")
    return marked, proxy, context


def build_accept_layers(config: Any, listeners: list[Any]) -> AcceptLayers | None:
    """The layers of every listener, or None when no listener has any (plaintext path).

    TLS listeners: those whose ``bind`` address was written ``tls:ADDR``; if none was,
    every listener once ``certfile`` is set. A ``tls:`` address without a certificate,
    or one an acceptor could not mark (it made its own sockets), is an error at start:
    never plaintext silently where TLS was asked for.
    """
    marked, proxy, context = accept_settings(config)
    flagged = sum(1 for listener in listeners if getattr(listener, "tls", False))
    if marked and flagged < marked:
        raise UsageError(f"setting 'acceptor': '{config.acceptor}' cannot tell tls: listeners from "
                         "plaintext ones; mark no address tls: (certfile then makes every listener TLS)")
    if context is None and proxy is None:
        return None
    timeout = config.tls_handshake_timeout
    with_tls = ListenerLayers(tls=context, proxy=proxy, handshake_timeout=timeout)
    without = ListenerLayers(proxy=proxy, handshake_timeout=timeout) if proxy is not None else None
    entries = []
    for listener in listeners:
        tls = context is not None and (getattr(listener, "tls", False) if marked else True)
        entries.append((listener, with_tls if tls else without))
    return AcceptLayers(entries) if entries else None


# -- the PROXY header ------------------------------------------------------------------------
def read_step(sock: socket.socket, buf: bytes, policy: ProxyPolicy) -> tuple[bytes, ProxyHeader | None]:
    """One read toward the header: ``(buf, header)``, header None while more is needed.

    Peeks, then consumes only bytes that belong to the header, so that what follows it
    (a TLS ClientHello, a request) stays in the kernel for the next layer; and consuming
    what was peeked means a level-triggered poller does not report the same bytes again.
    Raises BlockingIOError/TimeoutError (nothing now), ConnectionError (EOF first) or
    :class:`ProxyHeaderError`.
    """
    peeked = sock.recv(proxy_protocol.wanted(buf), socket.MSG_PEEK)
    if not peeked:
        raise ConnectionError("closed before the PROXY header ended")
    candidate = buf + peeked
    if not buf and policy.mode == "any" and proxy_protocol.signature_state(candidate) == 0:
        return buf, NO_HEADER
    header = proxy_protocol.parse(candidate, policy.version)
    if header is None:
        return buf + _take(sock, len(peeked)), None
    _take(sock, header.size - len(buf))
    return b"", header


def _take(sock: socket.socket, count: int) -> bytes:
    """Consume ``count`` bytes that a peek has shown are in the kernel already."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed inside the PROXY header")
        data += chunk
    return data


def _refused(owner: Any, cause: str, peer: Any) -> None:
    from netcore.reactor.connection import peer_text

    owner.count_error()
    failures.warning("proxy.refused", cause=cause, peer=peer_text(peer))


class ProxyStage:
    """One accepted socket waiting on the loop for its PROXY header; then handed on.

    Sits in the worker's connection table meanwhile, so that a stop closes it and the
    counters stay balanced (accepted = closed, at the end).
    """

    __slots__ = ("loop", "sock", "fd", "peer", "policy", "owner", "closed", "_buf", "_timer", "_on_ready")

    bytes_received = bytes_sent = requests = pending = 0

    def __init__(self, loop: Any, sock: socket.socket, peer: Any, policy: ProxyPolicy, owner: Any,
                 on_ready: Callable[[ProxyStage, socket.socket, Any], Any]) -> None:
        sock.setblocking(False)
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.policy = policy
        self.owner = owner
        self.closed = False
        self._buf = b""
        self._on_ready = on_ready
        self._timer = loop.call_later(policy.timeout, self._timed_out)
        loop.register(self.fd, EVENT_READ, self._on_event)

    def start(self) -> None:
        self._on_event(EVENT_READ)  # the header often arrives with the connection

    def _on_event(self, _mask: int) -> None:
        while not self.closed:
            try:
                self._buf, header = read_step(self.sock, self._buf, self.policy)
            except (BlockingIOError, InterruptedError):
                return
            except ProxyHeaderError as exc:
                self._fail(str(exc))
                return
            except OSError as exc:
                self._fail(str(exc) if isinstance(exc, ConnectionError) and not exc.errno else type(exc).__name__)
                return
            if header is not None:
                self._done(header)
                return

    def _done(self, header: ProxyHeader) -> None:
        self.closed = True
        self._timer.cancel()
        self.loop.unregister(self.fd)
        peer = header.source if header.source is not None else self.peer
        self._on_ready(self, self.sock, peer)

    def _timed_out(self) -> None:
        if self.closed:
            return
        if self.policy.mode == "any" and not self._buf:
            self._done(NO_HEADER)  # nothing sent at all: a server-speaks-first client, serve it
            return
        self._fail("timeout")

    def _fail(self, cause: str) -> None:
        _refused(self.owner, cause, self.peer)
        self.abort()

    def drain_and_close(self) -> None:
        self.abort()  # nothing was asked yet, nothing is owed

    def abort(self, exc: BaseException | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        self.loop.unregister(self.fd)
        self.sock.close()
        self.owner.connection_closed(self)


def admit_reactor(setup: ListenerLayers, sock: socket.socket, peer: Any, owner: Any,
                  on_ready: Callable[..., Any]) -> Any:
    """Reactor: a :class:`ProxyStage` if a header is to be read, else ``on_ready`` at once.

    Returns the stage or what ``on_ready`` returned; None if the connection was refused.
    """
    policy = setup.proxy
    if policy is not None:
        if policy.trusted(peer):
            stage = ProxyStage(owner.loop, sock, peer, policy, owner, on_ready)
            return stage
        if policy.required:
            _refused(owner, "peer not in proxy_allow_from", peer)
            sock.close()
            return None
    return on_ready(None, sock, peer)


def admit_blocking(sock: socket.socket, peer: Any, setup: ListenerLayers, owner: Any,
                   ) -> tuple[socket.socket, Any, Any] | None:
    """Blocking schemes: read the header and handshake on this thread; ``(sock, peer, tls)``.

    None if the connection is refused (counted and logged here; the caller closes).
    """
    policy = setup.proxy
    if policy is not None:
        if policy.trusted(peer):
            try:
                peer = _read_header_blocking(sock, peer, policy)
            except ProxyHeaderError as exc:
                _refused(owner, str(exc), peer)
                return None
            except TimeoutError:
                _refused(owner, "timeout", peer)
                return None
            except OSError as exc:
                _refused(owner, str(exc) if isinstance(exc, ConnectionError) and not exc.errno
                         else type(exc).__name__, peer)
                return None
        elif policy.required:
            _refused(owner, "peer not in proxy_allow_from", peer)
            return None
    tls = None
    if setup.tls is not None:
        from netcore.reactor import tls as tls_layer

        try:
            sock = tls_layer.handshake_blocking(sock, setup.tls, setup.handshake_timeout)
        except TimeoutError:
            owner.count_error()
            tls_layer.failures.warning("tls.handshake_timeout", cause="timeout", peer=_text(peer))
            return None
        except (ssl.SSLError, OSError) as exc:
            owner.count_error()
            cause = getattr(exc, "reason", None) or type(exc).__name__
            tls_layer.failures.warning("tls.handshake_failed", cause=str(cause), peer=_text(peer))
            return None
        tls = tls_layer.TLSInfo(sock)
    return sock, peer, tls


def _text(peer: Any) -> str:
    from netcore.reactor.connection import peer_text

    return peer_text(peer)


def _read_header_blocking(sock: socket.socket, peer: Any, policy: ProxyPolicy) -> Any:
    deadline = time.monotonic() + policy.timeout
    buf = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if policy.mode == "any" and not buf:
                    return peer
                raise TimeoutError
            sock.settimeout(remaining)
            try:
                buf, header = read_step(sock, buf, policy)
            except TimeoutError:
                if policy.mode == "any" and not buf:
                    return peer
                raise
            if header is not None:
                return header.source if header.source is not None else peer
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass


__all__ = ["AcceptLayers", "ListenerLayers", "ProxyPolicy", "ProxyStage", "admit_blocking", "admit_reactor",
           "build_accept_layers", "read_step"]
