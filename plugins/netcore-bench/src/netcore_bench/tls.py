"""``netcore bench --tls``: every row of a preset over TLS, netcore and peers on one certificate.

A test CA and a server certificate for 127.0.0.1/::1/localhost are made when the bench
starts (:func:`netcore.testing.certs.make_test_pki`, which needs the ``cryptography``
package) in a temporary directory removed at the end: no key is ever kept. netcore gets
``--certfile``/``--keyfile``, each peer its own spelling of the same two files (see
:mod:`netcore_bench.peers.servers`), the load generators the CA. A peer or a load that
cannot run over TLS is a skipped row that says why, never a plaintext row in a TLS table.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netcore_bench.peers import PEERS, find_executable


@dataclass(frozen=True)
class TLSFiles:
    """The PEM files of one bench run."""

    ca: str
    cert: str
    key: str
    directory: str

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def unavailable() -> str | None:
    """Why ``--tls`` cannot run here (the certificates cannot be made), or None."""
    if importlib.util.find_spec("cryptography") is None:
        return "the cryptography package is not installed (pip install 'netcore-bench[tls]')"
    return None


def make_files() -> TLSFiles:
    from netcore.testing.certs import make_test_pki

    directory = tempfile.mkdtemp(prefix="netcore-bench-tls-")
    pki = make_test_pki(Path(directory))
    return TLSFiles(ca=str(pki.ca_cert), cert=str(pki.server_cert), key=str(pki.server_key), directory=directory)


@functools.cache
def links_openssl(executable: str) -> bool:
    """Whether a binary was built with OpenSSL (it names an OpenSSL function it imports).

    Debian builds redis-server and redis-benchmark with TLS since Redis 6, but a build
    without it rejects ``tls-port``: reading the dynamic symbol names is the check that
    needs neither a start-up attempt nor a version table.
    """
    path = find_executable(executable)
    if path is None:
        return False
    try:
        with open(path, "rb") as f:
            return b"SSL_CTX_new" in f.read()
    except OSError:
        return False


def peer_unavailable(peer: str) -> str | None:
    """Why ``peer`` cannot serve TLS in this bench, or None."""
    spec = PEERS.get(peer)
    if spec is None or not spec.tls:
        return f"peer {peer!r} terminates no TLS in this bench" + (f" ({spec.tls_note})" if spec and spec.tls_note
                                                                    else "")
    for exe in spec.executables:
        if find_executable(exe) and not links_openssl(exe):
            return f"{exe} here was built without TLS (it does not link OpenSSL)"
    return None


def apply(plan, files: TLSFiles) -> None:
    """Put every case of ``plan`` on ``files``; skip those that cannot run over TLS."""
    plan.title = f"{plan.title}, over TLS"
    for case in plan.cases:
        case.params["tls"] = True
        if case.skip:
            continue
        if case.load.mode == "burst":
            case.skip = ("no TLS for --burst: the backlog preset measures SYNs dropped by a full accept queue, "
                         "which happen before any TLS")
            continue
        if case.server != "netcore":
            if why := peer_unavailable(case.params.get("peer", case.server)):
                case.skip = why
                continue
        case.args += ["--certfile", files.cert, "--keyfile", files.key]
