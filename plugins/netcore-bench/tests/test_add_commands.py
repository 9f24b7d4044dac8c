"""The ``netcore_add_commands`` hook, the seam ``netcore bench`` comes through.

The in-process tests register a small plugin the way a user would, with ``-p MODULE``
(pluggy registers the module, nothing is faked), and call the real entry point
``netcore.cli.main``. The subprocess tests run the real ``netcore`` command, and one runs
the host's sources with no site-packages at all: netcore-host without netcore-bench.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import netcore
import pytest
from netcore import cli

CORE = Path(netcore.__file__).resolve().parents[2]
_serial = itertools.count()


@pytest.fixture
def make_plugin(tmp_path, monkeypatch):
    """Write a plugin module (and the module its command targets); return the plugin's name.

    ``{target}`` in the plugin's source is replaced by the target module's name. Each
    call gets fresh module names, so ``sys.modules`` of one test never leaks into another.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(plugin_source: str, target_source: str = "") -> str:
        name = f"netcore_cmdtest_{os.getpid()}_{next(_serial)}"
        target = name + "_target"
        (tmp_path / f"{target}.py").write_text(textwrap.dedent(target_source))
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(plugin_source).replace("{target}", target))
        names.extend((name, target))
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


HELLO_PLUGIN = """
    from netcore import hookimpl

    @hookimpl
    def netcore_add_commands(commands):
        commands.add("hello", "{target}:main", "say hello (a test command)")
"""

HELLO_TARGET = """
    calls = []

    def main(argv, plugin_args=()):
        calls.append((list(argv), list(plugin_args)))
        print("hello", *argv)
        return 3
"""


def test_a_plugin_command_gets_the_rest_of_argv_and_the_p_options(make_plugin, capsys):
    plugin = make_plugin(HELLO_PLUGIN, HELLO_TARGET)
    status = cli.main(["-p", "no:resp", "-p", plugin, "hello", "world", "--loud", "-x"])
    assert status == 3  # the function's return value is the exit status
    target = sys.modules[plugin + "_target"]
    assert target.calls == [(["world", "--loud", "-x"], ["-p", "no:resp", "-p", plugin])]
    assert capsys.readouterr().out == "hello world --loud -x\n"


def test_the_target_is_imported_only_when_its_command_runs(make_plugin, capsys, tmp_path, monkeypatch):
    plugin = make_plugin(HELLO_PLUGIN, HELLO_TARGET)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["-p", plugin, "config"]) == 0
    assert plugin in sys.modules and plugin + "_target" not in sys.modules
    assert cli.main(["-p", plugin, "hello"]) == 3
    assert plugin + "_target" in sys.modules


def test_plugin_commands_are_listed_in_help_and_by_netcore_plugins(make_plugin, capsys):
    plugin = make_plugin(HELLO_PLUGIN, HELLO_TARGET)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["-p", plugin, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "hello" in out and "say hello (a test command)" in out and "serve" in out
    assert cli.main(["-p", plugin, "plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    hello = {c["name"]: c for c in report["commands"]}["hello"]
    assert hello["target"] == plugin + "_target:main" and hello["plugin"] == plugin


def test_a_built_in_name_is_refused_naming_the_plugin(make_plugin, capsys, tmp_path, monkeypatch):
    plugin = make_plugin("""
        from netcore import hookimpl

        @hookimpl
        def netcore_add_commands(commands):
            commands.add("config", "{target}:main", "would hide netcore config")
            commands.add("greet", "{target}:main", "still added: only the bad name is refused")
    """, "def main(argv, plugin_args=()):\n    return 7\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["-p", plugin, "config", "--json"]) == 0  # the built-in ran
    captured = capsys.readouterr()
    assert "poller" in json.loads(captured.out)
    [line] = [ln for ln in captured.err.splitlines() if "refused" in ln]
    assert f"plugin {plugin!r}" in line and "'config'" in line and "built-in" in line
    assert cli.main(["-p", plugin, "greet"]) == 7
    assert cli.main(["-p", plugin, "plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any("'config'" in p and plugin in p for p in report["problems"])
    assert {p["name"]: p["status"] for p in report["plugins"]}[plugin] == "loaded"


def test_a_name_taken_by_another_plugin_is_refused(make_plugin, capsys):
    first = make_plugin(HELLO_PLUGIN, HELLO_TARGET)
    second = make_plugin(HELLO_PLUGIN, "def main(argv, plugin_args=()):\n    return 9\n")
    assert cli.main(["-p", first, "-p", second, "hello"]) == 3
    err = capsys.readouterr().err
    assert f"from plugin {second!r} refused" in err and f"plugin {first!r} added it first" in err


def test_a_malformed_target_makes_that_plugin_broken_not_the_host(make_plugin, capsys):
    plugin = make_plugin("""
        from netcore import hookimpl

        @hookimpl
        def netcore_add_commands(commands):
            commands.add("oops", "no_colon_here", "a target without ':function'")
    """)
    assert cli.main(["-p", plugin, "plugins", "--json"]) == 0
    info = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}[plugin]
    assert info["status"] == "broken" and "no_colon_here" in info["error"]


def test_a_target_that_cannot_be_imported_is_one_line_and_status_2(make_plugin, capsys):
    plugin = make_plugin(HELLO_PLUGIN, "raise ImportError('needs a module that is not installed')\n")
    assert cli.main(["-p", plugin, "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'hello'" in err and "not installed" in err and plugin in err


# -- netcore bench itself --------------------------------------------------------------------
def _netcore() -> list[str]:
    """The installed console script when there is one (what users type), else ``-m netcore``."""
    script = shutil.which("netcore")
    return [script] if script else [sys.executable, "-m", "netcore"]


def test_netcore_bench_help_runs_the_harness_parser():
    res = subprocess.run([*_netcore(), "bench", "--help"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: netcore bench")
    for preset in ("idle", "herd", "dispatch", "edge", "backlog", "http", "resp"):
        assert preset in res.stdout
    for option in ("--json", "--plot", "--rounds", "--peers", "--gen-saturated"):
        assert option in res.stdout
    top = subprocess.run([*_netcore(), "--help"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert "bench" in top.stdout and "netcore-bench" in top.stdout


def test_a_blocked_bench_plugin_says_so_in_one_line():
    res = subprocess.run([sys.executable, "-m", "netcore", "-p", "no:bench", "bench", "--help"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "-p no:bench" in res.stderr and "netcore-bench" in res.stderr


def _link_requirements(site: Path, dist_name: str, seen: set[str]) -> None:
    """Link the importable top-level names of ``dist_name``'s requirements into ``site``.

    Follows requirements recursively (extras skipped; a requirement not installed here is
    one for another Python version), so ``site`` holds what ``pip install`` of the
    distribution would bring, without any distribution's metadata.
    """
    for req in importlib.metadata.distribution(dist_name).requires or ():
        if "extra ==" in req:
            continue
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for top in sorted({f.parts[0] for f in dist.files or ()}):
            if top.endswith((".dist-info", ".egg-info", ".pth")) or top in ("..", "__pycache__", "bin"):
                continue
            if not (site / top).exists() and Path(dist.locate_file(top)).exists():
                (site / top).symlink_to(Path(dist.locate_file(top)))
        _link_requirements(site, name, seen)


def test_host_alone_says_which_distribution_provides_bench(tmp_path):
    """The host's own sources and its dependencies, no site-packages: no netcore-bench.

    The dependencies are linked into a directory of their own, so exactly what
    ``pip install netcore-host`` brings is importable, and no plugin's metadata is visible.
    """
    site = tmp_path / "site"
    site.mkdir()
    _link_requirements(site, "netcore-host", set())
    assert (site / "pluggy").exists() and (site / "structlog").exists()
    code = ("import sys; sys.path[:0] = sys.argv[1:]; from netcore.cli import main; "
            "sys.exit(main(['bench', '--help']))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-S", "-c", code, str(site), str(CORE / "src")], capture_output=True,
                         text=True, timeout=60, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "pip install netcore-bench" in res.stderr and "./plugins/netcore-bench" in res.stderr


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="setuptools not installed")
def test_the_host_distribution_ships_no_benchmark_code(tmp_path):
    """What setuptools puts into netcore-host: its modules, package data and metadata.

    ``build_py`` and ``egg_info`` on a copy of core/ (no build output lands in the tree),
    offline and in well under a second; a wheel would add only the packaging around them.
    """
    src = tmp_path / "core"
    shutil.copytree(CORE, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    (tmp_path / "meta").mkdir()
    res = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q",
                          "egg_info", "--egg-base", str(tmp_path / "meta"), "build_py", "--build-lib",
                          str(tmp_path / "lib")], cwd=str(src), capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]
    files = [p.relative_to(tmp_path / "lib").as_posix() for p in (tmp_path / "lib").rglob("*") if p.is_file()]
    assert "netcore/cli.py" in files and "netcore/hookspecs.py" in files
    assert not [f for f in files if "bench" in f or not f.endswith(".py")]
    [pkg_info] = (tmp_path / "meta").glob("*.egg-info/PKG-INFO")
    metadata = pkg_info.read_text()
    assert "rich" not in metadata and "matplotlib" not in metadata and "Provides-Extra: bench" not in metadata
