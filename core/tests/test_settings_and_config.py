"""Settings declared once, layered: defaults < TOML < NETCORE_* < command line."""

import pytest
from netcore.config import resolve
from netcore.errors import SettingError, UsageError
from netcore.settings import Settings


@pytest.fixture
def settings():
    s = Settings()
    s.add("poller", "choice", "epoll-lt", "poller", choices=("select", "poll", "epoll-lt", "epoll-et"))
    s.add("dispatch", "choice", "inline", "dispatch", choices=("inline", "prefork"))
    s.add("acceptor", "choice", lambda v: "mutex" if v["dispatch"] == "prefork" else "shared", "acceptor",
          choices=("shared", "mutex"))
    s.add("workers", "int", 1, "workers", minimum=1, maximum=64)
    s.add("graceful_timeout", "float", 30.0, "seconds", minimum=0)
    s.add("bind", "list", ["127.0.0.1:2007"], "addresses")
    s.add("access_log", "bool", False, "log requests")
    return s


def test_defaults_with_sources(settings, tmp_path):
    config = resolve(settings, environ={}, cwd=str(tmp_path))
    assert config.poller == "epoll-lt" and config.source("poller") == "default"
    assert config.workers == 1 and config.bind == ["127.0.0.1:2007"]
    assert config.acceptor == "shared"


def test_precedence_toml_env_cli(settings, tmp_path):
    (tmp_path / "netcore.toml").write_text('poller = "select"\nworkers = 3\ngraceful-timeout = 5\n')
    env = {"NETCORE_POLLER": "poll", "NETCORE_ACCESS_LOG": "yes"}
    config = resolve(settings, environ=env, cwd=str(tmp_path), cli=[("poller", "epoll-et", "--poller")])
    assert (config.poller, config.source("poller")) == ("epoll-et", "--poller")
    assert config.workers == 3 and config.source("workers").startswith("file ")
    assert config.graceful_timeout == 5.0
    assert config.access_log is True and config.source("access_log") == "env NETCORE_ACCESS_LOG"
    config = resolve(settings, environ=env, cwd=str(tmp_path))
    assert (config.poller, config.source("poller")) == ("poll", "env NETCORE_POLLER")


def test_explicit_config_file_and_netcore_table(settings, tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[netcore]\nbind = ["127.0.0.1:1", "unix:/tmp/x"]\n')
    config = resolve(settings, environ={}, config_file=str(path), cwd=str(tmp_path))
    assert config.bind == ["127.0.0.1:1", "unix:/tmp/x"]


def test_set_and_computed_default_follow_other_settings(settings, tmp_path):
    config = resolve(settings, environ={}, cwd=str(tmp_path), sets=["dispatch=prefork"])
    assert config.dispatch == "prefork" and config.source("dispatch") == "--set"
    assert config.acceptor == "mutex" and config.source("acceptor") == "default"


def test_cli_beats_set(settings, tmp_path):
    config = resolve(settings, environ={}, cwd=str(tmp_path), sets=["workers=2"], cli=[("workers", "4", "--workers")])
    assert config.workers == 4


@pytest.mark.parametrize(
    "name, raw, allowed",
    [
        ("poller", "kqueue", "select, poll, epoll-lt, epoll-et"),
        ("workers", "0", "an integer from 1 to 64"),
        ("workers", "two", "an integer from 1 to 64"),
        ("workers", "1.5", "an integer from 1 to 64"),
        ("graceful_timeout", "-1", "a number >= 0"),
        ("graceful_timeout", "nan", "a number >= 0"),
        ("access_log", "maybe", "true or false"),
    ],
)
def test_bad_values_name_setting_value_and_allowed(settings, tmp_path, name, raw, allowed):
    with pytest.raises(SettingError) as info:
        resolve(settings, environ={}, cwd=str(tmp_path), cli=[(name, raw, "--" + name)])
    message = str(info.value)
    assert repr(name) in message and repr(raw) in message and allowed in message
    assert "\n" not in message


def test_bad_toml_types_are_refused(settings, tmp_path):
    (tmp_path / "netcore.toml").write_text("workers = true\n")
    with pytest.raises(SettingError, match="'workers'.*netcore.toml"):
        resolve(settings, environ={}, cwd=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sets": ["pollr=poll"]},
        {"sets": ["poller"]},
    ],
)
def test_unknown_names_are_errors(settings, tmp_path, kwargs):
    kwargs.setdefault("environ", {})
    with pytest.raises(UsageError):
        resolve(settings, cwd=str(tmp_path), **kwargs)


def test_unknown_toml_key_and_broken_toml(settings, tmp_path):
    (tmp_path / "netcore.toml").write_text("pollr = 1\n")
    with pytest.raises(UsageError, match="unknown setting 'pollr'.*known settings"):
        resolve(settings, environ={}, cwd=str(tmp_path))
    (tmp_path / "netcore.toml").write_text("poller = \n")
    with pytest.raises(UsageError, match="cannot read config file"):
        resolve(settings, environ={}, cwd=str(tmp_path))
    with pytest.raises(SettingError, match="existing TOML file"):
        resolve(settings, environ={}, cwd=str(tmp_path), config_file=str(tmp_path / "missing.toml"))


def test_non_setting_env_is_allowed(settings, tmp_path):
    config = resolve(settings, environ={"NETCORE_DISABLE_PLUGIN_AUTOLOAD": "1"}, cwd=str(tmp_path))
    assert config.warnings == ()


def test_unknown_env_variable_is_a_warning_not_an_error(settings, tmp_path):
    """The environment is shared with other tools: a stray NETCORE_* must not stop a server."""
    config = resolve(settings, environ={"NETCORE_POLLR": "poll"}, cwd=str(tmp_path))
    assert config.poller == "epoll-lt"
    assert config.warnings == ("ignoring environment variable NETCORE_POLLR: no setting 'pollr' "
                               "(did you mean 'NETCORE_POLLER'?)",)


@pytest.mark.parametrize("kwargs, expected", [
    ({"cli": [("poller", "epoll-tl", "--poller")]}, "'epoll-tl' is not allowed (did you mean 'epoll-lt'?); allowed:"),
    ({"sets": ["wrokers=2"]}, "unknown setting 'wrokers' (from --set) (did you mean 'workers'?); known settings:"),
    ({"sets": ["dispatch=zzz"]}, "'zzz' is not allowed; allowed: inline, prefork"),  # nothing near: no guess
])
def test_a_typo_is_answered_with_the_nearest_name(settings, tmp_path, kwargs, expected):
    with pytest.raises(UsageError) as caught:
        resolve(settings, environ={}, cwd=str(tmp_path), **kwargs)
    assert expected in str(caught.value)


def test_settings_are_declared_once(settings):
    with pytest.raises(ValueError, match="already declared"):
        settings.add("poller", "str", "", "again")
    s = settings.get("graceful-timeout")
    assert s.flag == "--graceful-timeout" and s.env == "NETCORE_GRACEFUL_TIMEOUT"
