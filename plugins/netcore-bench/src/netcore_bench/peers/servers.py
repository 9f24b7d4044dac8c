"""The command line of each external peer, and how to tell that it answers.

Stock configurations, changed only where the bench sets a size (threads, workers)
or where a default would measure something else than the server:

* waitress: ``--connection-limit 1000`` (its default, 100, would leave most of 256 wrk
  connections waiting in the accept queue, and measure the queue);
* nginx: ``keepalive_requests`` unlimited in practice (its default, 1000, closes each
  keep-alive connection after 1,000 requests, which no Python peer does), access log off
  (every Python peer logs nothing per request either);
* redis-server: ``--save '' --appendonly no`` (no disk), an in-memory store like netcore's.

Over TLS (``netcore bench --tls``) each gets the same certificate and key in its own
spelling and otherwise its stock TLS settings (protocol versions, ciphers, session
tickets), as netcore does: uvicorn ``--ssl-certfile/--ssl-keyfile``, gunicorn
``--certfile/--keyfile``, nginx ``listen ... ssl`` with ``ssl_certificate``, redis-server
``--tls-port`` (and ``--port 0``: no plaintext port) with ``--tls-auth-clients no`` (its
default asks every client for a certificate, which no other row does).
"""

from __future__ import annotations

import sys
from pathlib import Path

from netcore_bench.peers import find_executable

WSGI_APP = "netcore_bench.peers.wsgi_hello:app"
ASGI_APP = "netcore_bench.peers.asgi_hello:app"
FASTAPI_APP = "netcore_bench.peers.fastapi_json:app"

NGINX_CONF = """\
# written by netcore bench for one run; removed afterwards
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    server {{
        listen {host}:{port}{ssl};{ssl_files}
        default_type text/plain;
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
"""


def protocol_of(peer: str) -> str:
    return "resp" if peer == "redis-server" else "http"


def command(peer: str, host: str, port: int, workdir: Path, tls: tuple[str, str] | None = None) -> list[str]:
    """argv of ``peer`` listening on ``host:port``; may write config files into ``workdir``.

    ``tls``: (certificate chain, key) to serve TLS with, for the peers that can."""
    py = sys.executable
    if peer in ("uvicorn", "uvicorn-fastapi"):
        app = ASGI_APP if peer == "uvicorn" else FASTAPI_APP
        return [py, "-m", "uvicorn", app, "--http", "httptools", "--loop", "uvloop", "--lifespan", "off",
                "--host", host, "--port", str(port), "--no-access-log", "--log-level", "warning",
                *(["--ssl-certfile", tls[0], "--ssl-keyfile", tls[1]] if tls else [])]
    if peer == "waitress":
        if tls:
            raise ValueError("waitress has no TLS")
        return [py, "-m", "waitress", "--threads=4", "--connection-limit=1000", f"--listen={host}:{port}", WSGI_APP]
    if peer in ("gunicorn-sync", "gunicorn-gthread"):
        worker = ["-k", "sync"] if peer == "gunicorn-sync" else ["-k", "gthread", "--threads", "8"]
        return [py, "-m", "gunicorn", "-w", "1", *worker, "-b", f"{host}:{port}", "--log-level", "warning",
                *(["--certfile", tls[0], "--keyfile", tls[1]] if tls else []), WSGI_APP]
    if peer == "nginx":
        conf = workdir / "nginx.conf"
        ssl_files = f"\n        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};" if tls else ""
        conf.write_text(NGINX_CONF.format(dir=workdir, host=host, port=port, ssl=" ssl" if tls else "",
                                          ssl_files=ssl_files))
        # -e: the error log before the config is read (else nginx tries /var/log/nginx)
        return [find_executable("nginx") or "nginx", "-e", "stderr", "-p", str(workdir), "-c", str(conf)]
    if peer == "redis-server":
        ports = (["--port", "0", "--tls-port", str(port), "--tls-cert-file", tls[0], "--tls-key-file", tls[1],
                  "--tls-auth-clients", "no"] if tls else ["--port", str(port)])
        return [find_executable("redis-server") or "redis-server", "--bind", host, *ports,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir),
                "--loglevel", "warning"]
    raise ValueError(f"unknown peer {peer!r}")


#: One request and the start of the answer that proves the peer serves it.
PROBES = {
    "http": (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", (b"HTTP/1.1 200", b"HTTP/1.0 200")),
    "resp": (b"PING\r\n", (b"+PONG\r\n",)),
}
