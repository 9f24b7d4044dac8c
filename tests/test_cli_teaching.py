"""The command line teaches: ``--help`` shows defaults and the installed choices, gunicorn's
habits (``-b``, ``-w``, a positional ``module:app``) work, ``-p`` misused says what it is
for, and a missing family says which distribution to install.

Every test runs the real ``netcore`` in a subprocess; third-party plugins are made the way
pip would make them (a ``*.dist-info`` with an ``entry_points.txt`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import http.client
import json
import textwrap

from netcore.testing.server_process import run_netcore
from test_cli import fake_distribution

THIRD_PARTY_PROTOCOL = """
    from netcore import hookimpl

    @hookimpl
    def netcore_register_protocols(registry):
        registry.register("shout", "netcore_shout_impl:Shout", "upper-cases every line")
"""
# The implementation module records that it was imported: --help must not import it.
SHOUT_IMPL = """
    import os
    open(os.environ["SHOUT_MARKER"], "w").close()
    from netcore_echo.protocol import EchoProtocol as Shout
"""


def test_serve_help_shows_defaults_and_installed_choices_without_importing_them(tmp_path):
    marker = tmp_path / "imported"
    site = fake_distribution(tmp_path, "netcore-shout", "shout", "netcore_shout_plugin", THIRD_PARTY_PROTOCOL,
                             files={"netcore_shout_impl.py": SHOUT_IMPL})
    env = {"PYTHONPATH": site, "SHOUT_MARKER": str(marker), "COLUMNS": "2000"}
    result = run_netcore("serve", "--help", env=env)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("-")}
    assert "choices: echo, http, resp, shout;" in lines["--protocol"]
    assert "default: echo" in lines["--protocol"]
    assert "choices: epoll-et, epoll-lt, poll, select;" in lines["--poller"]
    assert "iterative (0), forking (1), threading (2)" in lines["--dispatch"]
    assert "multi-reactor-pool (11); default: inline" in lines["--dispatch"]
    assert "choices: exclusive, mutex, reuseport, shared" in lines["--acceptor"]
    assert "default: 127.0.0.1:2007" in lines["-b"] and "--bind ADDR" in lines["-b"]
    assert "-w N, --workers N" in lines["-w"] and "here: 1" in lines["-w"]
    assert "default: 8" in lines["--threads"]
    assert "MODULE:CALLABLE" in result.stdout and "gunicorn" in result.stdout
    assert not marker.exists(), "--help imported a protocol implementation"
    # The registered name really is that module's: serving it imports it.
    assert run_netcore("config", "--protocol", "shout", env=env).returncode == 0


def test_gunicorn_short_flags_bind_and_workers(start_server):
    server = start_server("-b", "127.0.0.1:0", "-w", "2", "--dispatch", "multi-reactor", bind="")
    assert server.started["dispatch"] == "multi-reactor"
    assert server.address[0] == "127.0.0.1"
    assert len(server.wait_events("worker.started", 2, timeout=10)) == 2
    assert server.stop() == 0
    config = json.loads(run_netcore("config", "--json", "-b", "[::1]:0", "-w", "3").stdout)
    assert config["bind"] == {"value": ["[::1]:0"], "source": "--bind"}
    assert config["workers"] == {"value": 3, "source": "--workers"}


APP = """
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"from the positional app"]
"""


def test_positional_app_serves_it_over_http(tmp_path, start_server):
    (tmp_path / "myapp.py").write_text(textwrap.dedent(APP))
    server = start_server("-b", "127.0.0.1:0", "myapp:application", bind="", cwd=str(tmp_path),
                          env={"PYTHONPATH": str(tmp_path)})
    assert server.started["protocol"] == "http"
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"from the positional app")
    finally:
        conn.close()
    assert server.stop() == 0


def test_positional_app_in_config_and_its_errors(tmp_path):
    # netcore config validates as serve does, the application's import included: a real one.
    (tmp_path / "myapp.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n")
    config = json.loads(run_netcore("config", "--json", "myapp:application", cwd=str(tmp_path)).stdout)
    assert config["app"] == {"value": "myapp:application", "source": "MODULE:CALLABLE argument"}
    assert config["protocol"] == {"value": "http", "source": "MODULE:CALLABLE argument"}
    # A protocol chosen anywhere (here: the environment) is kept -- and then refused, as
    # serve refuses it: echo hosts no application.
    result = run_netcore("config", "--json", "myapp:application", cwd=str(tmp_path), env={"NETCORE_PROTOCOL": "echo"})
    assert result.returncode == 2 and "setting 'protocol' is 'echo'" in result.stderr, result.stderr
    for args, words in (
        (("serve", "a:b", "--app", "c:d"), "given twice"),
        (("serve", "poll"), "is not MODULE:CALLABLE"),
        (("-p", "no:http", "serve", "myapp:application"), "pip install netcore-http"),
    ):
        result = run_netcore(*args, cwd=str(tmp_path))
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_p_with_a_pid_file_is_an_error_that_says_what_p_is_for(tmp_path):
    has_pid = "pid" in json.loads(run_netcore("config", "--json", cwd=str(tmp_path)).stdout)
    for value in ("app.pid", str(tmp_path / "app.pid")):
        result = run_netcore("serve", "-b", "127.0.0.1:0", "-p", value, cwd=str(tmp_path), timeout=30)
        assert result.returncode == 2, result.stderr
        assert '"event": "server.started"' not in result.stderr and len(result.stderr.splitlines()) == 1
        assert "-p MODULE loads a plugin" in result.stderr and "-p no:NAME" in result.stderr
        assert "pid file" in result.stderr
        assert ("--pid FILE" in result.stderr) == has_pid
        assert not (tmp_path / "app.pid").exists()
    # An entry-point name where an import name is needed: the message gives the import name.
    result = run_netcore("-p", "echo", "plugins", env={"NETCORE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 2 and "-p netcore_echo.plugin" in result.stderr
    # Blocking a plugin that does not exist is worth a warning, not an error.
    result = run_netcore("-p", "no:nosuch", "config")
    assert result.returncode == 0 and "no plugin named 'nosuch'" in result.stderr


def test_missing_families_name_the_distribution_to_install():
    """What ``pip install netcore-host netcore-resp`` leaves: a protocol and nothing else."""
    only_resp = [a for name in ("pollers", "acceptors", "dispatch", "echo", "http") for a in ("-p", f"no:{name}")]
    result = run_netcore(*only_resp, "serve", "--protocol", "resp", "-b", "127.0.0.1:0")
    assert result.returncode == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for line in ("no poller is installed: pip install netcore-pollers (or netcore-server for the defaults)",
                 "no acceptor is installed: pip install netcore-acceptors",
                 "no dispatcher is installed: pip install netcore-dispatch"):
        assert line in err
    listing = run_netcore(*only_resp, "plugins").stdout
    assert "poller: none installed: pip install netcore-pollers" in listing
    result = run_netcore("-p", "no:http", "serve", "--protocol", "http")
    assert result.returncode == 2 and "to get 'http': pip install netcore-http (or netcore-server[http])" in result.stderr


def test_plugin_for_another_host_version_is_broken_with_both_versions(tmp_path):
    site = fake_distribution(tmp_path, "netcore-future", "future", "netcore_future_plugin", """
        from netcore import hookimpl

        @hookimpl
        def netcore_register_protocols(registry):
            registry.register("future", "netcore_echo.protocol:EchoProtocol", "from the future")
    """, requires="netcore-host>=9.0,<10")
    env = {"PYTHONPATH": site}
    report = json.loads(run_netcore("plugins", "--json", env=env).stdout)
    future = {p["name"]: p for p in report["plugins"]}["future"]
    assert future["status"] == "broken"
    assert "netcore-future 0.1 needs netcore-host<10,>=9.0, but this is netcore-host" in future["error"]
    assert "future" not in {r["name"] for r in report["families"]["protocol"]}
    result = run_netcore("serve", "--protocol", "future", env=env)
    assert result.returncode == 2 and "needs netcore-host<10,>=9.0" in result.stderr
