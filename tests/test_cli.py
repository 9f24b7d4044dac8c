"""The command line as a user meets it: ``plugins``, ``config``, errors, plugin blocking.

Every test runs the real ``netcore`` in a subprocess. Broken and misspelt plugins are
made the way pip would make them: a ``*.dist-info`` with an ``entry_points.txt`` on
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from netcore.testing.server_process import run_netcore

REPO = Path(__file__).resolve().parents[1]


def fake_distribution(root: Path, dist: str, entry_name: str, module: str, source: str | None,
                      requires: str = "", files: dict[str, str] | None = None) -> str:
    """Install-by-hand a distribution with one ``netcore`` entry point; returns the path to add.

    ``requires``: one ``Requires-Dist`` line (a ``netcore-host`` pin); ``files``: more
    modules beside the plugin's (an implementation the test watches being imported).
    """
    site = root / "site"
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata + (f"Requires-Dist: {requires}\n" if requires else ""))
    (info / "entry_points.txt").write_text(f"[netcore]\n{entry_name} = {module}\n")
    if source is not None:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    for name, text in (files or {}).items():
        (site / name).write_text(textwrap.dedent(text))
    return str(site)


def test_plugins_json_lists_the_foundation():
    result = run_netcore("plugins", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = {family: {row["name"] for row in rows} for family, rows in report["families"].items()}
    assert {"select", "poll", "epoll-lt", "epoll-et"} <= names["poller"]
    assert "shared" in names["acceptor"]
    assert "inline" in names["dispatch"]
    assert "echo" in names["protocol"]
    inline = next(r for r in report["families"]["dispatch"] if r["name"] == "inline")
    assert inline["scheme"] == 5 and inline["available"] and inline["distribution"] == "netcore-dispatch"
    epoll = next(r for r in report["families"]["poller"] if r["name"] == "epoll-et")
    assert epoll["target"].startswith("netcore_pollers.") and epoll["available"]
    assert {p["name"]: p["status"] for p in report["plugins"]}["pollers"] == "loaded"


def test_plugins_text_names_every_family():
    result = run_netcore("plugins")
    assert result.returncode == 0
    for word in ("poller:", "acceptor:", "dispatch:", "protocol:", "epoll-et", "scheme  5", "<netcore-pollers>"):
        assert word in result.stdout


def test_config_json_shows_values_and_sources(tmp_path):
    (tmp_path / "netcore.toml").write_text('poller = "poll"\nworkers = 2\n')
    result = run_netcore("config", "--json", "--workers", "3", cwd=str(tmp_path),
                         env={"NETCORE_BACKLOG": "77"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["poller"] == {"value": "poll", "source": f"file {tmp_path / 'netcore.toml'}"}
    assert data["workers"] == {"value": 3, "source": "--workers"}
    assert data["backlog"] == {"value": 77, "source": "env NETCORE_BACKLOG"}
    assert data["dispatch"] == {"value": "inline", "source": "default"}
    assert data["bind"]["value"] == ["127.0.0.1:2007"]


@pytest.mark.parametrize("args, expected", [((), False), (("--access-log",), True),
                                            (("--access-log", "false"), False), (("--access-log", "yes"), True)])
def test_a_bool_flag_alone_means_true(tmp_path, args, expected):
    result = run_netcore("config", "--json", *args, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["access_log"]["value"] is expected


def test_unknown_environment_variable_warns_and_serves(tmp_path, start_server):
    result = run_netcore("config", "--json", env={"NETCORE_LEFTOVER_SETTING": "1"}, cwd=str(tmp_path))
    assert result.returncode == 0 and json.loads(result.stdout)["poller"]
    assert result.stderr.strip() == (
        "netcore: warning: ignoring environment variable NETCORE_LEFTOVER_SETTING: no setting 'leftover_setting'")


@pytest.mark.parametrize("args, expected", [
    (("--wrokers", "2"), "unrecognized arguments: --wrokers (did you mean '--workers'?)"),
    (("--protocl=http",), "unrecognized arguments: --protocl=http (did you mean '--protocol'?)"),
    (("--dispatch", "prefrok"), "'prefrok' is not allowed (did you mean 'prefork'?); allowed: "),
])
def test_a_mistyped_flag_or_value_names_the_nearest(tmp_path, args, expected):
    result = run_netcore("serve", *args, cwd=str(tmp_path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


def test_default_backlog_is_somaxconn(tmp_path):
    data = json.loads(run_netcore("config", "--json", cwd=str(tmp_path)).stdout)
    with open("/proc/sys/net/core/somaxconn") as fh:
        assert data["backlog"]["value"] == int(fh.read())


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["serve", "--poller", "kqueue"], {}, ["'poller'", "'kqueue'", "epoll-et, epoll-lt, poll, select"]),
        (["serve", "--workers", "0"], {}, ["'workers'", "'0'", "an integer from 1"]),
        (["config", "--backlog", "many"], {}, ["'backlog'", "'many'", "an integer"]),
        (["serve"], {"NETCORE_DISPATCH": "nope"}, ["'dispatch'", "env NETCORE_DISPATCH", "'nope'", "inline"]),
        (["serve", "--set", "pollr=poll"], {}, ["unknown setting 'pollr'", "poller"]),
        (["serve", "--bind", "localhost"], {}, ["'bind'", "'localhost'", "HOST:PORT"]),
        (["serve", "--no-such-flag"], {}, ["unrecognized arguments: --no-such-flag"]),
        (["serve", "--config", "/nonexistent/netcore.toml"], {}, ["'config'", "existing TOML file"]),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, env, words):
    result = run_netcore(*args, env=env, cwd=str(tmp_path))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("netcore: error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.stderr


def test_address_in_use_is_one_line(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_netcore("serve", "--bind", f"127.0.0.1:{port}", "--log-format", "json", cwd=str(tmp_path))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_block_plugin_with_p_no():
    report = json.loads(run_netcore("-p", "no:pollers", "plugins", "--json").stdout)
    assert report["families"]["poller"] == []
    assert {p["name"]: p["status"] for p in report["plugins"]}["pollers"] == "blocked"
    result = run_netcore("-p", "no:pollers", "serve", "--poller", "poll")
    assert result.returncode == 2 and "'poller'" in result.stderr


def test_disable_autoload_then_load_by_module():
    env = {"NETCORE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    report = json.loads(run_netcore("plugins", "--json", env=env).stdout)
    assert all(not rows for rows in report["families"].values())
    assert report["autoload"] is False
    report = json.loads(run_netcore("-p", "netcore_pollers.plugin", "plugins", "--json", env=env).stdout)
    assert len(report["families"]["poller"]) == 4 and not report["families"]["protocol"]


def test_broken_plugin_is_reported_and_fatal_only_when_selected(tmp_path, start_server):
    site = fake_distribution(tmp_path, "netcore-broken", "broken", "netcore_broken_plugin",
                             "raise RuntimeError('this plugin is broken on purpose')\n")
    env = {"PYTHONPATH": site}
    report = json.loads(run_netcore("plugins", "--json", env=env).stdout)
    broken = {p["name"]: p for p in report["plugins"]}["broken"]
    assert broken["status"] == "broken" and "broken on purpose" in broken["error"]
    assert broken["distribution"] == "netcore-broken"
    # Not selected: the echo server runs, and warns once.
    server = start_server("--protocol", "echo", env=env)
    assert server.wait_event("plugin.broken", 5)["plugin"] == "broken"
    assert server.stop() == 0
    # Selected (a name only it could have provided): fatal, and the reason is given.
    result = run_netcore("serve", "--protocol", "brokenproto", env=env)
    assert result.returncode == 2
    assert "brokenproto" in result.stderr and "broken on purpose" in result.stderr


def test_unknown_hook_implementation_is_an_error(tmp_path):
    site = fake_distribution(tmp_path, "netcore-typo", "typo", "netcore_typo_plugin", """
        from netcore import hookimpl

        @hookimpl
        def netcore_register_poller(registry):  # missing 's': no such hook
            registry.register("typo", "x:y", "never registered")
    """)
    report = json.loads(run_netcore("plugins", "--json", env={"PYTHONPATH": site}).stdout)
    typo = {p["name"]: p for p in report["plugins"]}["typo"]
    assert typo["status"] == "broken" and "netcore_register_poller" in typo["error"]
    assert "typo" not in {r["name"] for r in report["families"]["poller"]}


def test_entry_points_load_in_name_order_first_registration_wins(tmp_path):
    site = tmp_path / "site"
    for dist, entry, module in (("netcore-zz", "zz", "netcore_zz_plugin"), ("netcore-aa", "aa", "netcore_aa_plugin")):
        fake_distribution(tmp_path, dist, entry, module, f"""
            from netcore import hookimpl

            @hookimpl
            def netcore_register_protocols(registry):
                registry.register("twice", "netcore_echo.protocol:EchoProtocol", "from {entry}")
        """)
    report = json.loads(run_netcore("plugins", "--json", env={"PYTHONPATH": str(site)}).stdout)
    twice = next(r for r in report["families"]["protocol"] if r["name"] == "twice")
    assert twice["summary"] == "from aa"
    assert any("registered by zz is ignored" in p for p in report["problems"])


def test_serve_stops_on_term_with_stats(start_server):
    server = start_server()
    started = server.started
    assert started["poller"] == "epoll-lt" and started["dispatch"] == "inline"
    assert started["acceptor"] == "shared" and started["protocol"] == "echo" and started["pid"] == server.pid
    assert server.stop() == 0
    stopped = server.stopped_event()
    assert stopped["reason"] == "signal SIGTERM"
    for key in ("connections_accepted", "connections_closed", "bytes_received", "bytes_sent", "requests",
                "errors", "accept_wakeups", "accept_eagain", "workers"):
        assert key in stopped["stats"]
    assert stopped["stats"]["workers"][0]["pid"] == server.pid


def test_core_alone_says_no_plugins_and_how_to_get_them(tmp_path):
    """``pip install ./core`` alone: a real install of just the host (and its dependencies)."""
    target = tmp_path / "host-only"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
         "--target", str(target), str(REPO / "core")],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert install.returncode == 0, install.stderr[-3000:]
    # -S: no site-packages, so the only distributions visible are the ones just installed.
    code = "import sys; sys.path.insert(0, sys.argv[1]); from netcore.cli import main; sys.exit(main(['plugins']))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-S", "-c", code, str(target)], capture_output=True, text=True,
                            timeout=60, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "No plugins installed" in result.stdout
    assert "pip install" in result.stdout


def test_settings_table_in_docs_is_current():
    """docs/configuration.md's table is generated from the declarations; it must not drift."""
    result = subprocess.run([sys.executable, str(REPO / "docs" / "gen_settings_table.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_refuses_what_serve_refuses():
    """``netcore config`` validates on serve's own code path: no value it shows would then
    be refused by ``serve`` (an out-of-range port, a combination a protocol refuses)."""
    import subprocess
    import sys

    for args in (["--bind", "127.0.0.1:99999"], ["--protocol", "resp", "--dispatch", "prefork"]):
        for command in (["config"], ["serve", "--check-config"]):
            done = subprocess.run([sys.executable, "-m", "netcore", *command, *args], capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 2, (command, args, done.stdout, done.stderr)
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("netcore: error: setting"), done.stderr
