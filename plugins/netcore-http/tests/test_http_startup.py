"""Clear errors at start: exit status 2 and a message that names the real problem."""

from __future__ import annotations

import pytest
from netcore.testing.server_process import run_netcore

BROKEN_APPS = {
    "needs_missing": ("import json\nimport no_such_dependency_here\napplication = None\n",
                      ("needs_missing.py", "line 2", "ModuleNotFoundError", "no_such_dependency_here")),
    "raises_at_import": ("x = 1\nraise RuntimeError('DATABASE_URL is not set')\n",
                         ("raises_at_import.py", "line 2", "RuntimeError: DATABASE_URL is not set")),
    "bad_syntax": ("def application(environ, start_response)\n    return []\n",
                   ("bad_syntax.py", "line 1", "SyntaxError")),
}


def test_app_with_a_protocol_that_hosts_none_exits_2_naming_both():
    done = run_netcore("serve", "--protocol", "echo", "--app", "mod:app", "--bind", "127.0.0.1:0")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "'app'" in line and "'protocol'" in line and "'echo'" in line


@pytest.mark.parametrize("module", sorted(BROKEN_APPS))
def test_an_app_whose_import_fails_shows_the_real_exception(module, tmp_path):
    source, expected = BROKEN_APPS[module]
    (tmp_path / f"{module}.py").write_text(source)
    done = run_netcore("serve", "--protocol", "http", "--app", f"{module}:application", "--bind", "127.0.0.1:0",
                       cwd=str(tmp_path))
    assert done.returncode == 2, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert "not allowed" not in done.stderr and "importlib" not in done.stderr
    assert done.stderr.startswith("netcore: error: the app"), done.stderr


def test_a_missing_module_or_attribute_is_one_line():
    for spec in ("no_such_module_anywhere:app", "json:no_such_attribute"):
        done = run_netcore("serve", "--protocol", "http", "--app", spec, "--bind", "127.0.0.1:0")
        assert done.returncode == 2
        (line,) = done.stderr.strip().splitlines()
        assert "'app'" in line and spec in line


@pytest.mark.parametrize("args", [("--forwarded-allow-ips", "not-an-ip"), ("--root-path", "api")])
def test_bad_proxy_settings_fail_at_start(args):
    done = run_netcore("serve", "--protocol", "http", *args, "--bind", "127.0.0.1:0")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert args[0][2:].replace("-", "_") in line
