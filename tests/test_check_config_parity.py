"""``netcore serve --check-config`` refuses exactly what ``serve`` refuses, by the same code.

It used to stop short of what ``serve`` checks once it has bound -- the TLS and PROXY
layers of the listeners, a master's pid file -- so a ``tls:`` address without a
certificate, a bad ``--proxy-allow-from`` or a pid file in a missing directory passed
it and then failed the start. And what a running server holds must be a note, not a
refusal, for a Unix socket as for a TCP port: the documented ``netcore serve
--check-config && systemctl reload`` runs while the server holds both.

Real ``netcore`` processes; servers on 127.0.0.1, port 0, or a Unix socket in tmp_path.
"""

from __future__ import annotations

import pytest
from netcore.testing.server_process import ServerProcess, run_netcore


def _serve(*args: str, check_only: bool):
    return run_netcore("serve", *(["--check-config"] if check_only else []), *args, timeout=60)


@pytest.mark.parametrize(("args", "setting"), [
    (("--bind", "tls:127.0.0.1:0"), "certfile"),
    (("--proxy-protocol", "v1", "--proxy-allow-from", "notacidr", "--bind", "127.0.0.1:0"), "proxy_allow_from"),
    (("--proxy-protocol", "v2", "--proxy-allow-from", "10.0.0.1/33", "--bind", "127.0.0.1:0"), "proxy_allow_from"),
    (("--dispatch", "prefork", "--workers", "1", "--pid", "no-such-dir/x.pid", "--bind", "127.0.0.1:0"), "pid"),
], ids=["tls-without-certfile", "proxy-allow-from-not-cidr", "proxy-allow-from-bad-prefix", "pid-missing-dir"])
def test_check_config_refuses_with_the_line_serve_refuses_with(args, setting, tmp_path):
    served = run_netcore("serve", *args, cwd=str(tmp_path), timeout=60)
    checked = run_netcore("serve", "--check-config", *args, cwd=str(tmp_path), timeout=60)
    assert served.returncode == 2, served.stderr
    assert checked.returncode == 2, (checked.stdout, checked.stderr)
    assert checked.stderr == served.stderr
    assert len(checked.stderr.strip().splitlines()) == 1 and f"setting '{setting}'" in checked.stderr


def test_check_config_notes_a_unix_socket_a_running_server_listens_on(tmp_path):
    path = tmp_path / "live.sock"
    with ServerProcess("--dispatch", "inline", bind=f"unix:{path}") as server:
        checked = _serve("--bind", f"unix:{path}", check_only=True)
        assert checked.returncode == 0, checked.stderr
        assert "configuration OK" in checked.stdout
        assert "note:" in checked.stderr and "another server is listening" in checked.stderr
        served = _serve("--bind", f"unix:{path}", check_only=False)
        assert served.returncode == 2, served.stderr  # serve itself still refuses to share it
        assert server.stop() == 0
    assert not path.exists()  # neither check took the running server's file


def test_check_config_still_refuses_the_layers_of_an_address_in_use():
    with ServerProcess("--dispatch", "inline") as server:
        host, port = server.address
        checked = _serve("--bind", f"tls:{host}:{port}", check_only=True)
        assert checked.returncode == 2, checked.stderr
        assert "setting 'certfile'" in checked.stderr.strip().splitlines()[-1]


def test_check_config_notes_what_a_running_master_holds_for_a_deploy(tmp_path):
    pidfile = tmp_path / "netcore.pid"
    with ServerProcess("--dispatch", "prefork", "--workers", "1", "--pid", str(pidfile)) as server:
        server.wait_events("worker.started", 1)
        host, port = server.address
        args = ("--dispatch", "prefork", "--workers", "1", "--pid", str(pidfile), "--bind", f"{host}:{port}")
        checked = _serve(*args, check_only=True)
        assert checked.returncode == 0, checked.stderr
        notes = checked.stderr.strip().splitlines()
        assert len(notes) == 2 and all(line.startswith("netcore: note:") for line in notes), notes
        assert f"PID {server.pid}" in checked.stderr
        assert pidfile.read_text().strip() == str(server.pid)
        assert server.stop() == 0
