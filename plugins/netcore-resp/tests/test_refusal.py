"""Process-per-worker schemes are refused: each process would have its own keyspace.

The refusal matches a dispatch registration that ``provides`` "processes" and, whatever
its registration says, the known names (forking, prefork, prefork-blocking). The test
loads a small plugin module (``-p``) that registers such dispatchers, so it does not
depend on which process schemes are installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from netcore.testing.server_process import run_netcore

HERE = Path(__file__).resolve().parent
PLUGIN = "resp_fake_process_schemes"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fakeplugin")
    (directory / f"{PLUGIN}.py").write_text(
        "from netcore import hookimpl\n\n"
        "@hookimpl\n"
        "def netcore_register_dispatchers(registry):\n"
        "    registry.register('spawner', 'netcore_dispatch.inline:InlineDispatcher', 'processes, by tag',\n"
        "                      provides=('processes', 'reactor'))\n"
        "    registry.register('prefork', 'netcore_dispatch.inline:InlineDispatcher', 'prefork, by name only',\n"
        "                      provides=('reactor',))\n"
    )
    return {"PYTHONPATH": str(directory)}


@pytest.mark.parametrize("dispatch", ["spawner", "prefork"])
def test_process_schemes_are_refused_with_the_reason(dispatch, plugin_env):
    res = run_netcore("-p", PLUGIN, "serve", "--protocol", "resp", "--dispatch", dispatch, "--bind", "127.0.0.1:0",
                      env=plugin_env)
    assert res.returncode == 2, res.stderr
    assert "setting 'dispatch'" in res.stderr
    assert "own keyspace" in res.stderr
    assert "inline" in res.stderr  # names what to use instead
    assert "Traceback" not in res.stderr


def test_the_same_scheme_with_another_protocol_is_not_refused_by_resp(plugin_env):
    res = run_netcore("-p", PLUGIN, "config", "--protocol", "echo", "--dispatch", "spawner", env=plugin_env)
    assert "own keyspace" not in res.stdout + res.stderr


def test_hookimpl_matches_tag_and_name():
    from types import SimpleNamespace

    from netcore_resp.plugin import netcore_check_assembly

    def assembly(name, provides, target="netcore_resp.protocol:RespProtocol"):
        return SimpleNamespace(protocol=SimpleNamespace(target=target),
                               dispatch=SimpleNamespace(name=name, provides=provides),
                               config=SimpleNamespace(source=lambda setting: "command line"))

    assert netcore_check_assembly(assembly("inline", ("reactor",))) is None
    assert netcore_check_assembly(assembly("threading", ("blocking",))) is None
    for name, provides in [("anything", ("processes",)), ("forking", ()), ("prefork-blocking", ("blocking",))]:
        problem = netcore_check_assembly(assembly(name, provides))
        assert "setting 'dispatch'" in problem and repr(name) in problem
    assert netcore_check_assembly(assembly("prefork", ("processes",), target="other:Resp")) is None
    assert sys.modules["netcore_resp.plugin"]
