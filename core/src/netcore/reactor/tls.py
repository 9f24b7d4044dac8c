"""TLS beneath the protocol: the server context, and the reactor connection that speaks TLS.

Why a variant class chosen per connection (:func:`tls_variant`) rather than a flag in
:class:`~netcore.reactor.connection.Connection`: the plaintext hot path stays exactly as
it is -- no "is this TLS?" test per event. A TLS connection is the same connection with
a few methods replaced, on top of whatever connection class the scheme uses (the
reactor's own, or :class:`~netcore.reactor.deferred.DeferredConnection`).

Why ``ssl.SSLSocket`` in non-blocking mode rather than a ``MemoryBIO`` pair (asyncio's
way): the socket I/O then happens inside OpenSSL's C code, one Python call per record
instead of three, and there is no extra copy of every byte through Python buffers. What
the non-blocking SSLSocket needs, and where it is done here:

* **want-read / want-write** both ways: ``SSLWantReadError``/``SSLWantWriteError`` become
  the ``BlockingIOError`` the connection already handles (:func:`_nonblocking`), so a
  partial write is queued and retried by the same code as in plaintext. OpenSSL requires
  a retried write to start with the same bytes; the connection's output buffer only
  ever grows at its end until a write succeeds, and Python sets
  ``SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER``, so that holds.
* **Data OpenSSL holds** after the socket is drained: a record is decrypted whole, so a
  read smaller than the record leaves plaintext in the SSL object that no poller will
  ever report. Reads go on while ``pending()`` is non-zero, and a connection that resumes
  reading looks at ``pending()`` first. Under an edge-triggered poller reads go on until
  want-read, since one ``recv`` returns one record (16 KiB at most) whatever was asked.
* **The handshake** runs on the loop before the protocol exists, bounded by the
  connection's deadline (``tls_handshake_timeout``); a failure or a timeout costs only
  that connection, is counted in ``errors`` and logged once per cause and interval.
* **close_notify** before the FIN of every local close (and so of a graceful stop).
* **Renegotiation refused** (``OP_NO_RENEGOTIATION``; TLS 1.3 has none). ``sendfile``
  cannot encrypt, so it returns 0 and the caller streams with ``send``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Callable

import structlog

from netcore.errors import SettingError
from netcore.ratelimited_log import RateLimitedLog
from netcore.reactor.connection import _OPEN, EVENT_READ, EVENT_WRITE, PEER_GONE, Connection
from netcore.settings import Setting

failures = RateLimitedLog("netcore.tls")
log = structlog.get_logger("netcore.tls")

_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


# -- the context ---------------------------------------------------------------------------
def _not_a_file(path: str) -> str:
    """Why ``path`` is no file, in words: a relative path is read from the working
    directory, which ``--chdir`` may have changed, so the error says which one."""
    if os.path.isdir(path):
        return " (it is a directory)"
    if os.path.isabs(path):
        return " (no such file)"
    return f" (no such file in the working directory {os.getcwd()})"


def build_context(config: Any) -> ssl.SSLContext:
    """The server's ``SSLContext`` from the settings; :class:`SettingError` names a bad one.

    Built once in the process that binds, before any fork, so that every worker shares it
    -- and with it the session-ticket keys, so a client resumes its session on any worker.
    Built again on HUP only if :func:`context_source` changed (see there).
    """
    source = context_source(config)  # before the files are read: a change meanwhile shows next time
    certfile = config.certfile
    keyfile = config.keyfile or None
    for name in ("certfile", "keyfile", "ca_certs"):
        path = getattr(config, name)
        if path and not os.path.isfile(path):
            raise SettingError(name, path, "a readable PEM file", hint=_not_a_file(path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if config.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # A peer's FIN without close_notify is an end of input, as it is for nginx: OpenSSL 3
    # would otherwise make it a fatal error, and after one no close_notify can be sent --
    # which is how the blocking schemes' stop (a shut-down read side) wakes a reader.
    # Every protocol here frames its own messages, so a truncation cannot pass for a reply.
    context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    _load_chain(context, certfile, keyfile, config.keyfile_password or None)
    _warn_if_expiring(certfile)
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise SettingError("ciphers", config.ciphers, "an OpenSSL cipher list") from None
    if config.cert_reqs != "none":
        if not config.ca_certs:
            raise SettingError("ca_certs", "", f"CA certificates: cert_reqs={config.cert_reqs} needs them")
        try:
            context.load_verify_locations(config.ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise SettingError("ca_certs", config.ca_certs, f"PEM CA certificates ({_reason(exc)})") from None
        context.verify_mode = ssl.CERT_REQUIRED if config.cert_reqs == "required" else ssl.CERT_OPTIONAL
    if config.alpn:
        context.set_alpn_protocols(list(config.alpn))
    context.netcore_source = source  # type: ignore[attr-defined]
    return context


class _NoPassword(Exception):
    """OpenSSL asked for the key's password and no ``keyfile_password`` is set."""


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None, password: str | None) -> None:
    """``load_cert_chain``, with an error that names the setting at fault.

    The password is given as a callback, never as None: with None, OpenSSL asks for it
    on the terminal -- a server started from a shell, or a HUP, would sit at a prompt,
    and one under systemd would read EOF and report a bad key. The callback says whether
    the key was encrypted at all, which is what tells a wrong password from a bad file.
    """
    asked = []

    def give_password() -> str:
        asked.append(True)
        if password is None:
            raise _NoPassword
        return password

    key_path = keyfile or certfile
    try:
        context.load_cert_chain(certfile, keyfile, password=give_password)
    except _NoPassword:
        raise SettingError("keyfile_password", "", f"the password of the encrypted key {key_path!r} "
                           "(it is encrypted and no password is set)") from None
    except (ssl.SSLError, OSError) as exc:
        if asked:
            raise SettingError("keyfile_password", Setting.MASK,
                               f"the password that decrypts the key {key_path!r} (this one does not)") from None
        if keyfile and not _holds_certificate(certfile):
            raise SettingError("certfile", certfile, "a PEM certificate chain (no certificate found in it)") from None
        raise SettingError("keyfile" if keyfile else "certfile", key_path,
                           f"a certificate chain and its private key (PEM; {_reason(exc)})") from None


#: A certificate that ends within this many seconds is warned about at start and on HUP.
EXPIRY_WARNING = 14 * 86400


def _warn_if_expiring(certfile: str) -> None:
    """A warning, at start and on each HUP, when the served certificate has expired or
    ends within :data:`EXPIRY_WARNING`: clients refuse an expired one, and the server
    would otherwise serve it without a word (a failed renewal is found by its users).
    Read with the ssl module's own decoder (no third-party parser); where this Python
    lacks it, no warning."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return
    try:
        not_after = decode(certfile)["notAfter"]
        left = ssl.cert_time_to_seconds(not_after) - time.time()
    except (ssl.SSLError, OSError, KeyError, ValueError):
        return
    if left <= 0:
        log.warning("tls.certificate_expired", certfile=certfile, not_after=not_after)
    elif left < EXPIRY_WARNING:
        log.warning("tls.certificate_expiring", certfile=certfile, not_after=not_after, days_left=int(left // 86400))


def _holds_certificate(path: str) -> bool:
    """Whether ``path`` starts a PEM certificate that decodes (the chain's first)."""
    try:
        text = Path(path).read_text("ascii", errors="replace")
        begin = text.index("-----BEGIN CERTIFICATE-----")
        end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
        ssl.PEM_cert_to_DER_cert(text[begin:end])
    except (OSError, ValueError):
        return False
    return True


#: The settings a context is made from; the files among them are read for their bytes.
CONTEXT_SETTINGS = ("certfile", "keyfile", "keyfile_password", "ca_certs", "cert_reqs", "ciphers",
                    "tls_min_version", "alpn")


def context_source(config: Any) -> str:
    """A digest of everything :func:`build_context` reads: the settings and the files' bytes.

    Why a reload compares it first: a new context has new session-ticket keys, so every
    client's saved session would stop resuming. A HUP sent for a code deploy, with the
    certificate unchanged, keeps the running context and its tickets; one sent after the
    files were replaced builds the new one.
    """
    digest = hashlib.sha256()
    for name in CONTEXT_SETTINGS:
        digest.update(repr(getattr(config, name, None)).encode() + b"\0")
    for name in ("certfile", "keyfile", "ca_certs"):
        path = getattr(config, name, None)
        if path:
            try:
                digest.update(Path(path).read_bytes())
            except OSError as exc:
                digest.update(repr(exc).encode())
    return digest.hexdigest()


def reload_needed(config: Any, running: ssl.SSLContext) -> bool:
    """Whether ``config``'s files or settings differ from what ``running`` was built from."""
    return context_source(config) != getattr(running, "netcore_source", None)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)


# -- what the application may know ----------------------------------------------------------
class TLSInfo:
    """``connection.tls``: what the handshake settled, read once after it (None: plaintext)."""

    __slots__ = ("version", "cipher", "alpn", "peer_cert", "peer_subject", "verified", "session_reused")

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.version: str | None = sock.version()
        cipher = sock.cipher()
        self.cipher: str | None = cipher[0] if cipher else None
        self.alpn: str | None = sock.selected_alpn_protocol()
        #: The client's certificate, DER, or None if it sent none.
        self.peer_cert: bytes | None = sock.getpeercert(binary_form=True)
        decoded = sock.getpeercert() if self.peer_cert else None
        #: The client certificate's subject as an RFC 4514-like string ("CN=alice,O=Example").
        self.peer_subject: str | None = _dn(decoded.get("subject", ())) if decoded else None
        #: A certificate was sent and verified against ca_certs (only then is it sent at all
        #: under optional/required; under none it is never asked for).
        self.verified = bool(self.peer_cert)
        self.session_reused = sock.session_reused

    def peer_cert_pem(self) -> str | None:
        return ssl.DER_cert_to_PEM_cert(self.peer_cert) if self.peer_cert else None

    def environ(self) -> dict[str, str]:
        """The CGI/WSGI variables Apache's mod_ssl defines (the names apps already read).

        ``HTTPS``, ``SSL_PROTOCOL``, ``SSL_CIPHER``, ``SSL_SESSION_RESUMED``,
        ``SSL_CLIENT_VERIFY`` (``SUCCESS`` or ``NONE``) and, with a client certificate,
        ``SSL_CLIENT_CERT`` (PEM) and ``SSL_CLIENT_S_DN``.
        """
        environ = {
            "HTTPS": "on",
            "SSL_PROTOCOL": self.version or "",
            "SSL_CIPHER": self.cipher or "",
            "SSL_SESSION_RESUMED": "Resumed" if self.session_reused else "Initial",
            "SSL_CLIENT_VERIFY": "SUCCESS" if self.verified else "NONE",
        }
        if self.peer_cert:
            environ["SSL_CLIENT_CERT"] = self.peer_cert_pem() or ""
            environ["SSL_CLIENT_S_DN"] = self.peer_subject or ""
        return environ


def _dn(rdns: Any) -> str:
    return ",".join("+".join(f"{_DN_KEYS.get(k, k)}={v}" for k, v in rdn) for rdn in reversed(rdns))


_DN_KEYS = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
            "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST", "emailAddress": "emailAddress"}


def _nonblocking(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with OpenSSL's want-read/want-write turned into ``BlockingIOError``.

    The connection already treats BlockingIOError as "not now, the poller will say
    when": that is exactly what both mean once the handshake is done (renegotiation is
    refused, so a write never waits for a read for long).
    """
    def call(arg: Any) -> Any:
        try:
            return method(arg)
        except _WANT:
            raise BlockingIOError from None
    return call


# -- the reactor connection ----------------------------------------------------------------
class TLSConnectionMixin:
    """The methods a reactor connection class changes to speak TLS (see :func:`tls_variant`)."""

    __slots__ = ()

    def __init__(self, loop: Any, sock: socket.socket, protocol_factory: Callable[[Any], Any], owner: Any, *,
                 tls_context: ssl.SSLContext, handshake_timeout: float = 10.0, **kwargs: Any) -> None:
        sock.setblocking(False)
        self.tls = None
        self._stop_pending = False
        self._factory = protocol_factory
        self._handshake_timeout = handshake_timeout
        ssock = tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        super().__init__(loop, ssock, protocol_factory, owner, **kwargs)

    def _begin(self, protocol_factory: Callable[[Any], Any]) -> None:
        """Handshake first; the protocol is made only once it succeeded."""
        sock = self.sock
        self._recv = _nonblocking(sock.recv)
        self._send = _nonblocking(sock.send)
        loop = self.loop
        loop.register(self.fd, EVENT_READ, self._on_handshake_event)
        self.set_deadline(loop.time() + self._handshake_timeout, self._handshake_timed_out)
        self._on_handshake_event(EVENT_READ)

    def _on_handshake_event(self, _mask: int) -> None:
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            self._handshake_failed(exc)
            return
        self.cancel_deadline()
        self.tls = TLSInfo(self.sock)
        self.loop._handlers[self.fd] = self._on_event
        self._want(EVENT_READ)
        try:
            self._adopt_protocol(self._factory(self))
            self.protocol.connection_made()
        except Exception as exc:
            self._protocol_failed(exc)
            return
        # The client may have sent its first request right behind its Finished message:
        # under an edge-triggered poller that arrived with the edge the handshake used.
        if self._state == _OPEN and self._interest & EVENT_READ:
            self._drain_edge(0)
        if self._stop_pending and self._state == _OPEN:
            super().drain_and_close()  # the stop that came during the handshake, announced now

    def _want(self, mask: int) -> None:
        if mask != self._interest:
            self._interest = mask
            self.loop.modify(self.fd, mask)

    def _handshake_failed(self, exc: BaseException) -> None:
        cause = _reason(exc) if isinstance(exc, ssl.SSLError) else type(exc).__name__
        self.owner.count_error()
        failures.warning("tls.handshake_failed", cause=str(cause), peer=_peer(self))
        self.abort(exc)

    def _handshake_timed_out(self) -> None:
        self.owner.count_error()
        failures.warning("tls.handshake_timeout", cause="timeout", peer=_peer(self),
                         timeout=self._handshake_timeout)
        self.abort(TimeoutError("TLS handshake timed out"))

    @property
    def handshaking(self) -> bool:
        return self.protocol is None

    # -- reading: never strand what OpenSSL holds ----------------------------------------
    def _on_event(self, mask: int) -> None:
        super()._on_event(mask)
        if self._state == _OPEN and self._interest & EVENT_READ and self.sock.pending():
            self._drain_edge(0)

    def _drain_edge(self, mask: int) -> None:
        """Read until want-read: one ``recv`` yields one record whatever size is asked."""
        recv = self._recv
        size = self._recv_size
        pending = self.sock.pending
        edge = self._edge
        while True:
            try:
                data = recv(size)
            except (BlockingIOError, InterruptedError):
                return
            except PEER_GONE as exc:
                self.abort(exc)
                return
            if not data:
                self._on_eof()
                return
            self.bytes_received += len(data)
            try:
                self.protocol.data_received(data)
            except Exception as exc:
                self._protocol_failed(exc)
                return
            if self._state != _OPEN or not self._interest & EVENT_READ:
                return
            if not edge and not pending() and not mask:
                return  # level-triggered: the poller reports the kernel's data again

    def _update_interest(self) -> None:
        """Reading resumes (the protocol, a water mark, a queue): OpenSSL may hold input
        that no poller will report, so it is read from the loop's next callback."""
        was = self._interest & EVENT_READ
        super()._update_interest()
        if not was and self._interest & EVENT_READ and self.protocol is not None and self.sock.pending():
            self.loop.call_soon(self._read_pending)

    def _read_pending(self) -> None:
        if self._state == _OPEN and self._interest & EVENT_READ:
            self._drain_edge(0)

    def drain_and_close(self) -> None:
        """A graceful stop during the handshake waits for it (bounded by its deadline): the
        client was accepted before the stop and its request is on the way behind it."""
        if self.protocol is None:
            self._stop_pending = True
            return
        super().drain_and_close()

    def close(self) -> None:
        """During the handshake, a close can only come from a stop (there is no protocol
        yet): it waits for the handshake, and is asked again once the connection is quiet."""
        if self.protocol is None and self._state == _OPEN:
            self._stop_pending = True
            return
        super().close()

    # -- writing and closing ----------------------------------------------------------------
    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """0: the kernel's sendfile would bypass encryption; the caller streams with send()."""
        return 0

    def _start_linger(self) -> None:
        send_close_notify(self.sock)
        super()._start_linger()


def _peer(conn: Any) -> str:
    from netcore.reactor.connection import peer_text

    return peer_text(conn.peer)


def send_close_notify(sock: ssl.SSLSocket) -> None:
    """Send TLS close_notify without waiting for the peer's (the FIN and linger follow)."""
    sslobj = getattr(sock, "_sslobj", None)
    if sslobj is None:
        return
    try:
        sslobj.shutdown()
    except (ssl.SSLError, OSError, ValueError):
        pass  # want-read: ours is sent, theirs has not come; anything else: the peer is gone


_variants: dict[type, type] = {}


def tls_variant(cls: type) -> type:
    """The TLS speaking subclass of a reactor connection class (made once per class)."""
    variant = _variants.get(cls)
    if variant is None:
        assert issubclass(cls, Connection)
        variant = type(f"TLS{cls.__name__}", (TLSConnectionMixin, cls),
                       {"__slots__": ("tls", "_factory", "_handshake_timeout", "_stop_pending"), "__module__": __name__})
        _variants[cls] = variant
    return variant


# -- blocking sockets ----------------------------------------------------------------------
def handshake_blocking(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    """Wrap and handshake a blocking socket within ``timeout``; raises on failure.

    The socket is left blocking without a timeout afterwards: the blocking connection
    sets one only around reads that have a deadline (:func:`blocking_reader`).
    """
    sock.settimeout(timeout)
    ssock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=True)
    ssock.settimeout(None)
    return ssock


def blocking_reader(sock: ssl.SSLSocket) -> Callable[[int], bytes]:
    """``recv`` for a blocking TLS socket whose deadline is a socket timeout.

    ``SO_RCVTIMEO`` does not work under OpenSSL (a read that times out is retried inside
    the ssl module), so a TLS connection with a deadline uses ``settimeout``; its
    ``TimeoutError`` becomes the ``BlockingIOError`` the serving loop treats as "look at
    the deadline".
    """
    recv = sock.recv

    def read(size: int) -> bytes:
        try:
            return recv(size)
        except (TimeoutError, ssl.SSLWantReadError):
            raise BlockingIOError from None
    return read


__all__ = ["TLSInfo", "build_context", "blocking_reader", "handshake_blocking", "send_close_notify", "tls_variant"]
