"""Resolve the effective configuration: defaults < TOML file < ``NETCORE_*`` < command line.

Every value remembers where it came from, so that ``netcore config`` can say why a
server runs the way it does.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Mapping

import attrs

from netcore.errors import SettingError, UsageError, did_you_mean
from netcore.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The file read when ``--config`` is not given, if it exists in the working directory.
DEFAULT_CONFIG_FILE = "netcore.toml"
#: Environment variables with the ``NETCORE_`` prefix that are not settings.
NON_SETTING_ENV = frozenset({"NETCORE_DISABLE_PLUGIN_AUTOLOAD"})


@attrs.frozen
class Config:
    """The effective value of every setting and its source. Read as ``config.poller``."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    settings: Settings = attrs.field(eq=False, repr=False)
    #: Things worth telling the user that are not errors (an unknown NETCORE_* variable).
    warnings: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def source(self, name: str) -> str:
        return self.sources[name]

    def replace(self, **changes: Any) -> Config:
        """A copy with some values changed (source ``override``); for tests and dispatchers."""
        values = dict(self.values)
        sources = dict(self.sources)
        for name, value in changes.items():
            values[name] = value
            sources[name] = "override"
        return Config(values=values, sources=sources, settings=self.settings, warnings=self.warnings)


def _unknown(name: str, source: str, settings: Settings) -> UsageError:
    return UsageError(
        f"unknown setting {name!r} (from {source}){did_you_mean(name, settings.names())}; "
        f"known settings: {', '.join(sorted(settings.names()))}"
    )


def read_toml(path: str, settings: Settings) -> dict[str, tuple[Any, str]]:
    source = f"file {path}"
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingError("config", path, "the path of an existing TOML file", "--config") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    # A [netcore] table is accepted too, so the settings can live in a shared file.
    if isinstance(data.get("netcore"), dict) and len(data) == 1:
        data = data["netcore"]
    found = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in settings:
            raise _unknown(key, source, settings)
        found[name] = (value, source)
    return found


def resolve(
    settings: Settings,
    *,
    cli: Iterable[tuple[str, Any, str]] = (),
    sets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
    cwd: str | None = None,
) -> Config:
    """Layer the sources and check every value.

    ``cli`` holds ``(name, raw value, flag)`` for each flag given; ``sets`` the ``KEY=VALUE``
    strings of ``--set``. Raises :class:`SettingError`/:class:`UsageError` on bad input.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    warnings: list[str] = []

    path = config_file
    if path is None:
        candidate = os.path.join(cwd or os.getcwd(), DEFAULT_CONFIG_FILE)
        if os.path.isfile(candidate):
            path = candidate
    if path is not None:
        raw.update(read_toml(path, settings))

    for key in sorted(environ):
        if not key.startswith("NETCORE_") or key in NON_SETTING_ENV:
            continue
        name = key[len("NETCORE_"):].lower()
        if name not in settings:
            # Not an error, unlike an unknown key in a file or on the command line: the
            # environment is shared with other tools, and a variable left over from a
            # plugin that is not installed (or blocked with -p no:) must not stop a server.
            hint = did_you_mean(name, settings.names(), spell=lambda known: f"NETCORE_{known.upper()}")
            warnings.append(f"ignoring environment variable {key}: no setting {name!r}{hint}")
            continue
        raw[name] = (environ[key], f"env {key}")

    for item in sets:
        key, sep, value = item.partition("=")
        name = key.strip().replace("-", "_")
        if not sep:
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        if name not in settings:
            raise _unknown(key.strip(), "--set", settings)
        raw[name] = (value, "--set")

    for name, value, flag in cli:
        raw[name] = (value, flag)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in settings:
        if setting.name in raw:
            value, source = raw[setting.name]
            values[setting.name] = setting.parse(value, source)
            sources[setting.name] = source
        else:
            default = setting.default
            if callable(default):
                default = default(values)
            values[setting.name] = default
            sources[setting.name] = "default"
    return Config(values=values, sources=sources, settings=settings, warnings=tuple(warnings))
