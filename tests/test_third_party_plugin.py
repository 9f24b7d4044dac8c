"""A protocol packaged outside this repository, installed with pip, found by entry point.

``examples/netcore-uppercase`` is built and installed for real into a private directory
(``pip install --target``) and put on ``PYTHONPATH`` of the ``netcore`` processes only, so
the test environment itself is never changed. Then: the plugin is listed, its setting
exists, a real server speaks its protocol, and blocking or not installing it removes it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netcore.testing.server_process import ServerProcess, run_netcore

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "netcore-uppercase"
#: Bound on every socket wait; only a broken server gets near it.
PATIENCE = 10.0


def _pip_install(source: Path, target: Path) -> None:
    base = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
            "--disable-pip-version-check", "--target", str(target)]
    attempts = [
        base + ["--no-build-isolation", str(source)],
        # setuptools < 70.1 needs the `wheel` package to build without isolation;
        # an isolated build fetches its own setuptools instead.
        base + [str(source)],
    ]
    outputs = []
    for command in attempts:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                stdin=subprocess.DEVNULL)
        if result.returncode == 0:
            return
        outputs.append(f"$ {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        shutil.rmtree(target, ignore_errors=True)
    pytest.fail("pip could not install the example plugin:\n" + "\n".join(outputs))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> str:
    """A directory holding the installed ``netcore-uppercase`` distribution (pip runs once)."""
    root = tmp_path_factory.mktemp("uppercase")
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = root / "source"
    shutil.copytree(EXAMPLE, source,
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    target = root / "site"
    _pip_install(source, target)
    assert (target / "netcore_uppercase" / "protocol.py").is_file()
    return str(target)


@pytest.fixture(scope="module")
def env(site) -> dict[str, str]:
    """Environment for ``netcore`` processes that can see the installed example."""
    paths = [site] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {"PYTHONPATH": os.pathsep.join(paths)}


def _protocols(result: subprocess.CompletedProcess) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return {row["name"]: row for row in report["families"]["protocol"]}


# -- discovery ---------------------------------------------------------------------------
def test_listed_under_protocol_with_its_distribution(env):
    rows = _protocols(run_netcore("plugins", "--json", env=env))
    assert "uppercase" in rows, rows
    row = rows["uppercase"]
    assert row["distribution"] == "netcore-uppercase"
    assert row["plugin"] == "uppercase"
    assert row["target"] == "netcore_uppercase.protocol:UppercaseProtocol"
    assert row["available"], row["reason"]


def test_declares_its_setting(env):
    result = run_netcore("config", "--json", env=env)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["uppercase_max_line"] == {"value": 65536, "source": "default"}
    result = run_netcore("config", "--json", env={**env, "NETCORE_UPPERCASE_MAX_LINE": "99"})
    assert json.loads(result.stdout)["uppercase_max_line"] == {
        "value": 99, "source": "env NETCORE_UPPERCASE_MAX_LINE"}


def test_not_listed_when_not_installed():
    try:
        importlib.metadata.distribution("netcore-uppercase")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip("netcore-uppercase is installed in this environment itself")
    assert "uppercase" not in _protocols(run_netcore("plugins", "--json"))
    result = run_netcore("config", "--json")
    assert "uppercase_max_line" not in json.loads(result.stdout)


def test_blocked_with_p_no(env):
    assert "uppercase" not in _protocols(run_netcore("-p", "no:uppercase", "plugins", "--json", env=env))
    result = run_netcore("-p", "no:uppercase", "serve", "--protocol", "uppercase",
                         "--bind", "127.0.0.1:0", env=env, timeout=30)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'protocol'" in lines[0] and "'uppercase'" in lines[0], lines[0]
    assert "Traceback" not in result.stderr


# -- a real server -----------------------------------------------------------------------
def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=PATIENCE)
    sock.settimeout(PATIENCE)
    return sock


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _recv_until_eof(sock: socket.socket) -> bytes:
    deadline = time.monotonic() + PATIENCE
    data = b""
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"no EOF within {PATIENCE}s; got {data!r}")


@pytest.fixture(scope="module")
def server(env):
    with ServerProcess("--protocol", "uppercase", "--uppercase-max-line", "16", env=env) as proc:
        yield proc


def test_server_started_with_the_protocol(server):
    assert server.started["protocol"] == "uppercase"


def test_several_lines_in_one_send(server):
    with _connect(server) as sock:
        sock.sendall(b"one\ntwo\r\nthree four\n")
        expected = b"ONE\nTWO\r\nTHREE FOUR\n"
        assert _recv_exactly(sock, len(expected)) == expected


def test_line_split_across_sends(server):
    with _connect(server) as sock:
        sock.sendall(b"hel")
        time.sleep(0.05)  # let the server read the first part on its own
        sock.sendall(b"lo wo")
        time.sleep(0.05)
        sock.sendall(b"rld\nnext")
        assert _recv_exactly(sock, 12) == b"HELLO WORLD\n"
        sock.sendall(b"\n")
        assert _recv_exactly(sock, 5) == b"NEXT\n"


def test_last_line_without_newline_answered_on_half_close(server):
    with _connect(server) as sock:
        sock.sendall(b"a\nno newline")
        sock.shutdown(socket.SHUT_WR)
        assert _recv_until_eof(sock) == b"A\nNO NEWLINE"


def test_line_at_the_limit_is_accepted(server):
    with _connect(server) as sock:
        line = b"x" * 16 + b"\n"
        sock.sendall(line)
        assert _recv_exactly(sock, len(line)) == line.upper()


def test_over_long_line_refused_then_closed(server):
    with _connect(server) as sock:
        sock.sendall(b"ok\n" + b"y" * 17 + b"\nnever answered\n")
        assert _recv_until_eof(sock) == b"OK\nERR line too long\n"


def test_over_long_partial_line_refused_without_newline(server):
    with _connect(server) as sock:
        sock.sendall(b"z" * 40)
        assert _recv_until_eof(sock) == b"ERR line too long\n"


def test_sigterm_stops_cleanly(env):
    # Its own server, so that the counters are this test's alone.
    with ServerProcess("--protocol", "uppercase", env=env) as proc:
        with _connect(proc) as sock:
            sock.sendall(b"bye\n")
            assert _recv_exactly(sock, 4) == b"BYE\n"
        assert proc.stop(signal.SIGTERM) == 0, proc.describe()
        stopped = proc.stopped_event()
        assert stopped["reason"] == "signal SIGTERM"
        assert stopped["stats"]["requests"] == 1
        assert stopped["stats"]["connections_accepted"] == 1
