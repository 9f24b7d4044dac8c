"""What a front-end proxy tells the app: the client's address and scheme, and the mount point.

``forwarded_allow_ips`` (gunicorn's name and semantics) lists the peers whose
``Forwarded`` (RFC 7239), ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed:
from them, ``REMOTE_ADDR`` becomes the client's address and ``wsgi.url_scheme`` the
scheme it used; from anyone else the fields reach the app as plain ``HTTP_*`` values
only (a client must not be able to choose its own address). The peer is
``connection.peer``, which a PROXY-protocol acceptor already sets to the original client.

Which entry of a list is the client, as uvicorn's ProxyHeadersMiddleware: walking from
the right (the nearest proxy) the first address that is not itself trusted; with ``*``
(everyone trusted) the leftmost. ``Forwarded`` wins over the ``X-Forwarded-*`` pair when
both are present.

``root_path`` is the prefix the proxy mounts the app under (gunicorn's ``SCRIPT_NAME``,
uvicorn's ``--root-path``): it becomes ``SCRIPT_NAME``, and is taken off the front of
``PATH_INFO`` when the proxy passed the path on unchanged.
"""

from __future__ import annotations

import ipaddress
from typing import Any

_SCHEMES = ("http", "https")


class TrustedProxies:
    """The parsed ``forwarded_allow_ips``: addresses, networks, or ``*``."""

    def __init__(self, spec: str) -> None:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.everyone = "*" in items
        self.networks = [ipaddress.ip_network(item, strict=False) for item in items if item != "*"]

    def __contains__(self, address: Any) -> bool:
        if self.everyone:
            return True
        try:
            ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


def check_spec(spec: str) -> str | None:
    """The problem with a ``forwarded_allow_ips`` value, or None."""
    try:
        TrustedProxies(spec)
    except ValueError as exc:
        return str(exc)
    return None


def _client(hops: list[tuple[str, str]], trusted: TrustedProxies) -> tuple[str, str] | None:
    """The (address, proto) entry that is the client: see the module docstring."""
    if not hops:
        return None
    if trusted.everyone:
        return hops[0]
    for hop in reversed(hops):
        if hop[0] not in trusted:
            return hop
    return hops[0]


def _forwarded(value: str) -> list[tuple[str, str]]:
    """RFC 7239 ``Forwarded`` elements as (for, proto); an element without ``for`` is skipped."""
    hops = []
    for element in value.split(","):
        address = proto = ""
        for pair in element.split(";"):
            name, _, item = pair.partition("=")
            name = name.strip().lower()
            item = item.strip().strip('"')
            if name == "for":
                address = item
            elif name == "proto":
                proto = item.lower()
        if address:
            if address.startswith("["):  # "[2001:db8::1]:4711"
                address = address[1:].partition("]")[0]
            elif address.count(":") == 1:  # "192.0.2.60:4711"
                address = address.partition(":")[0]
            hops.append((address, proto))
    return hops


def apply_forwarded(environ: dict, trusted: TrustedProxies) -> None:
    """Set ``REMOTE_ADDR`` and ``wsgi.url_scheme`` from a trusted peer's fields."""
    forwarded = environ.get("HTTP_FORWARDED")
    if forwarded is not None:
        hop = _client(_forwarded(forwarded), trusted)
        if hop is not None:
            if hop[0] and not hop[0].startswith("_") and hop[0] != "unknown":  # obfuscated ids stay out
                environ["REMOTE_ADDR"] = hop[0]
                environ.pop("REMOTE_PORT", None)
            if hop[1] in _SCHEMES:
                environ["wsgi.url_scheme"] = hop[1]
        return
    chain = environ.get("HTTP_X_FORWARDED_FOR")
    if chain is not None:
        hop = _client([(item.strip(), "") for item in chain.split(",") if item.strip()], trusted)
        if hop is not None:
            environ["REMOTE_ADDR"] = hop[0]
            environ.pop("REMOTE_PORT", None)
    proto = environ.get("HTTP_X_FORWARDED_PROTO")
    if proto is not None:
        proto = proto.rpartition(",")[2].strip().lower()
        if proto in _SCHEMES:
            environ["wsgi.url_scheme"] = proto


def mount(environ: dict, root: str) -> None:
    """``root_path``: SCRIPT_NAME, and PATH_INFO without it if the proxy kept it there."""
    environ["SCRIPT_NAME"] = root
    path = environ["PATH_INFO"]
    if path == root or path.startswith(root + "/"):
        environ["PATH_INFO"] = path[len(root):]
