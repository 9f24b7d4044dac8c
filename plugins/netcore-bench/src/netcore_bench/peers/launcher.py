#!/usr/bin/env python3
"""Run an external reference server (uvicorn, waitress, gunicorn, nginx, redis-server) the
way ``netcore bench`` runs netcore.

    python3 -m netcore_bench.peers.launcher --peer NAME serve --log-format json --bind 127.0.0.1:0

It takes the arguments the bench gives ``netcore serve``, starts the peer as its child
on a free loopback port (port 0 cannot be handed to nginx or redis-server), waits until
the peer answers one real request (``GET /`` with 200, or ``PING`` with ``+PONG``), then
prints netcore's ``server.started`` event on stderr. On SIGTERM or SIGINT it stops the
peer and prints ``server.stopped``. It stays the peer's parent, so the bench's /proc sum
over the process tree counts every process of the peer (gunicorn's master and worker,
nginx's master and worker) and the launcher, which sleeps in ``sigtimedwait`` meanwhile.
The peer inherits the launcher's CPU pinning and gets SIGTERM if the launcher dies.
Exit status: the peer's failure is 1, an unknown or unavailable peer 3.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netcore_bench.peers import PEERS
from netcore_bench.peers.servers import PROBES, command, protocol_of

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1
_STOP = {signal.SIGTERM, signal.SIGINT}
_PROBE_TLS = ssl.create_default_context()
_PROBE_TLS.check_hostname = False
_PROBE_TLS.verify_mode = ssl.CERT_NONE


def _event(name: str, **fields) -> None:
    sys.stderr.write(json.dumps({"event": name, **fields}) + "\n")
    sys.stderr.flush()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the peer, before exec: SIGTERM when the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _answers(host: str, port: int, protocol: str, tls: bool = False) -> bool:
    request, good = PROBES[protocol]
    try:
        with socket.create_connection((host, port), timeout=2) as raw:
            # The probe only asks whether the peer is up: it checks no certificate (the
            # load generators do, against the bench's CA).
            s = _PROBE_TLS.wrap_socket(raw) if tls else raw
            s.sendall(request)
            data, need = b"", max(map(len, good))
            while len(data) < need:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(good)
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", required=True, help=", ".join(n for n, p in PEERS.items()
                                                               if p.module == __spec__.name))
    ap.add_argument("--bind", default="127.0.0.1:0", metavar="HOST:PORT", help="loopback only")
    ap.add_argument("--log-format", default="json", help="accepted for netcore compatibility; always json")
    ap.add_argument("command", nargs="?", choices=("serve",), help="accepted for netcore compatibility")
    ap.add_argument("--certfile", help="serve TLS with this certificate chain (netcore bench --tls)")
    ap.add_argument("--keyfile", help="its private key")
    args = ap.parse_args(argv)
    host, _, port_text = args.bind.rpartition(":")
    host = host.strip("[]")
    if host not in ("127.0.0.1", "::1"):
        ap.error("only loopback addresses are allowed (127.0.0.1 or [::1])")
    peer = PEERS.get(args.peer)
    if peer is None or peer.module != __spec__.name:
        print(f"launcher: unknown peer {args.peer!r}", file=sys.stderr)
        return 3
    if why := peer.unavailable():
        print(f"launcher: peer {peer.name} unavailable: {why}", file=sys.stderr)
        return 3
    port = int(port_text) or _free_port(host)
    workdir = Path(tempfile.mkdtemp(prefix=f"netcore-bench-{peer.name}-"))
    try:
        tls = (args.certfile, args.keyfile or args.certfile) if args.certfile else None
        argv_peer = command(peer.name, host, port, workdir, tls)
        # The peer's stdout goes to our stderr, which the bench reads continuously: a
        # chatty peer can never fill an unread pipe and stall.
        proc = subprocess.Popen(argv_peer, cwd=workdir, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                preexec_fn=_die_with_parent)
        # Block the stop signals only now (the peer must not inherit a blocked mask);
        # one that arrives from here on waits in sigtimedwait below.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        deadline = time.monotonic() + START_TIMEOUT_S
        protocol = protocol_of(peer.name)
        while not _answers(host, port, protocol, tls is not None):
            if proc.poll() is not None:
                print(f"launcher: {peer.name} exited with status {proc.returncode} before answering "
                      f"({' '.join(argv_peer)})", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"launcher: {peer.name} did not answer within {START_TIMEOUT_S:.0f} s", file=sys.stderr)
                _stop(proc)
                return 1
            if signal.sigtimedwait(_STOP, 0.05) is not None:
                _stop(proc)
                return 1
        _event("server.started", addresses=[f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
               peer=peer.name, protocol=protocol, pid=proc.pid, command=argv_peer)
        while signal.sigtimedwait(_STOP, 0.5) is None:
            if proc.poll() is not None:
                _event("server.stopped", reason=f"peer exited with status {proc.returncode}")
                return 1
        rc = _stop(proc)
        _event("server.stopped", reason="signal", peer_exit_status=rc)
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
