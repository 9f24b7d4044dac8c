"""Settings of the layers beneath the protocol: TLS and the PROXY protocol header.

Declared by the host (from :mod:`netcore.core_settings`) because they apply to every
protocol under every scheme; the protocol never reads them. Which listeners speak TLS
is spelled in ``bind`` itself (``tls:`` before an address, see docs/tls.md); with no
``tls:`` address at all, a ``certfile`` makes every listener TLS, as gunicorn's and
uvicorn's ``--certfile`` do.
"""

from __future__ import annotations

from typing import Any, Callable

CERT_REQS = ("none", "optional", "required")
TLS_VERSIONS = ("1.2", "1.3")
PROXY_MODES = ("off", "v1", "v2", "any")
#: Upper bound (seconds) of a duration setting of the host's (the time-outs of the two
#: handshakes here, linger_timeout): an hour, as the http protocol's time-outs have.
MAX_DURATION = 3600.0
#: Where a PROXY header is believed from by default: this machine only.
DEFAULT_PROXY_ALLOW = ["127.0.0.0/8", "::1/128"]


def _default_alpn(values: dict[str, Any]) -> list[str]:
    """``http/1.1`` under the http protocol, else none."""
    return ["http/1.1"] if values.get("protocol") == "http" else []


def add_layer_settings(add: Callable[..., Any]) -> None:
    add("certfile", "str", "",
        "TLS: the server's certificate chain (PEM); makes the tls: addresses of bind TLS, or every "
        "address when none is marked tls:", metavar="PATH")
    add("keyfile", "str", "", "TLS: the private key (PEM; default: in certfile)", metavar="PATH")
    add("keyfile_password", "str", "", "TLS: the password of an encrypted keyfile", metavar="TEXT", secret=True)
    add("ca_certs", "str", "", "TLS: CA certificates (PEM) that client certificates are checked against",
        metavar="PATH")
    add("cert_reqs", "choice", "none",
        "TLS client certificates: none (not asked), optional (checked if sent), required",
        choices=CERT_REQS)
    add("ciphers", "str", "", "TLS 1.2 cipher list in OpenSSL's syntax (default: OpenSSL's)",
        metavar="LIST")
    add("tls_min_version", "choice", "1.2", "lowest TLS version accepted", choices=TLS_VERSIONS)
    add("alpn", "list", _default_alpn,
        "TLS ALPN protocols offered, in preference order (default: http/1.1 under the http protocol)",
        metavar="NAME")
    add("tls_handshake_timeout", "float", 10.0,
        "seconds a TLS handshake may take before its connection is closed", minimum=0.001,
        maximum=MAX_DURATION, metavar="SECONDS")
    add("proxy_protocol", "choice", "off",
        "PROXY protocol header before anything else: off, v1 or v2 (required), any (either, optional)",
        choices=PROXY_MODES)
    add("proxy_allow_from", "list", list(DEFAULT_PROXY_ALLOW),
        "networks a PROXY header is accepted from (CIDR); others are refused when a header is "
        "required and served as themselves under any", metavar="NET")
    add("proxy_timeout", "float", 5.0, "seconds the PROXY header may take to arrive", minimum=0.001,
        maximum=MAX_DURATION, metavar="SECONDS")


__all__ = ["CERT_REQS", "DEFAULT_PROXY_ALLOW", "MAX_DURATION", "PROXY_MODES", "TLS_VERSIONS", "add_layer_settings"]
