"""nginx (open-source, HTTP mode) in front of three netcore instances, on loopback.

The configuration is the one docs/deployment.md shows (made by :func:`nginx_config`).
Open-source nginx has no active health checks, so it never reads ``/readyz``: it learns
that an instance is gone when a connect is refused or a kept-alive upstream connection
closes, and re-sends the (idempotent) request to the next instance
(``proxy_next_upstream``). That is enough for a rolling restart -- each instance in
turn TERMed and replaced on the same port -- under constant keep-alive load, with every
request sent and every response received counted.

nginx's http proxy cannot send a PROXY header (only its stream module can, and
Debian's nginx-light does not ship it), so the client's address reaches the app, if at
all, in ``X-Forwarded-For``. Skipped, with the reason, where nginx is not installed.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import types

import pytest
from deployment_testing import SCHEMES, Instance, assert_all_from_the_app, free_port
from http_load import HttpLoad, assert_no_loss
from metrics_testing import until
from netcore.testing.server_process import child_pids

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")


def nginx_site(port: int, instances: list) -> str:
    """The ``upstream`` and ``server`` blocks docs/deployment.md shows, for these instances."""
    servers = "\n".join(f"    server 127.0.0.1:{i.port} max_fails=1 fail_timeout=1s;" for i in instances)
    return f"""upstream netcore {{
{servers}
    keepalive 32;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://netcore;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_next_upstream_tries 3;
        proxy_connect_timeout 2s;
    }}
}}
"""


def nginx_config(port: int, instances: list[Instance], prefix: str) -> str:
    """A whole nginx.conf around :func:`nginx_site`, everything under ``prefix``."""
    site = "".join("    " + line if line else line for line in nginx_site(port, instances).splitlines(True))
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{site}}}
"""


def test_the_nginx_configuration_in_the_docs_is_the_tested_one():
    instances = [types.SimpleNamespace(port=8001 + i) for i in range(3)]
    assert nginx_site(8000, instances) in DOC.read_text()


@needs_nginx
def test_a_rolling_restart_through_nginx_loses_no_request(tmp_path):
    # nginx -t and the workers must be able to reach the temp paths (the workers may run as nobody).
    os.chmod(tmp_path, 0o755)
    instances = [Instance(f"n{i}", dispatch, "--protocol", "http", "--app", "deployment_apps:whoami", proxy=False)
                 for i, dispatch in enumerate(SCHEMES)]
    port = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_config(port, instances, str(tmp_path)))
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    nginx = None
    try:
        for instance in instances:
            instance.start()
        nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        until(lambda: (tmp_path / "nginx.pid").exists() or nginx.poll() is not None, what="nginx started")
        assert nginx.poll() is None, nginx.stderr.read()
        with HttpLoad(("127.0.0.1", port), connections=6) as load:
            load.wait_for(200)
            for instance in instances:
                assert instance.stop(signal.SIGTERM) == 0
                load.wait_for(100)
                instance.start()
                # nginx tries the instance again after fail_timeout: wait until it answers.
                pids = {str(pid).encode() for pid in (instance.server.pid, *child_pids(instance.server.pid))}
                until(lambda: any(b.split()[1] in pids for b in list(load.bodies)),  # noqa: B023
                      timeout=20, what="the replacement serves")
            load.stop()
        print(f"rolling restart through nginx: {load.counts}, lost {len(load.lost)}")
        assert_no_loss(load)
        assert_all_from_the_app(load.bodies)
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.terminate()  # TERM: nginx's fast shutdown
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(10)
        for instance in instances:
            instance.kill()
