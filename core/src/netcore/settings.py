"""Settings, each declared once: name, type, default, help.

One declaration drives the ``--flag`` of ``netcore serve`` and ``netcore config``, the
``NETCORE_NAME`` environment variable, the key in ``netcore.toml``, the line that
``netcore config`` prints and the table in the docs (as tox 4 does with its config
keys). Plugins declare their own settings next to their code through
``netcore_add_settings``; the host declares only the ones every server has.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import attrs

from netcore.errors import SettingError, did_you_mean

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Setting types, and how each parses a string from the command line or environment.
TYPES = ("str", "int", "float", "bool", "choice", "list")


@attrs.frozen
class Setting:
    name: str
    type: str
    #: A value, or a callable ``default(values)`` computed from the settings resolved so far
    #: (declaration order), e.g. the backlog from somaxconn or the acceptor from the dispatch.
    default: Any
    help: str
    #: For ``choice`` (and items of ``list``): the allowed values, or a callable giving them.
    choices: tuple[str, ...] | Callable[[], list[str]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    #: The plugin that declared it (``netcore.core`` for the host's own).
    owner: str = ""
    #: A password or the like: ``netcore config`` shows ``***`` for a value that is set.
    secret: bool = False

    #: What :meth:`shown` prints instead of a secret's value.
    MASK = "***"

    def shown(self, value: Any) -> Any:
        """``value`` as ``netcore config`` prints it: a secret that is set is masked (an
        empty one stays empty, so that "not set" can still be read)."""
        return self.MASK if self.secret and value not in ("", None) else value

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "NETCORE_" + self.name.upper()

    def allowed(self) -> str:
        """Human-readable allowed values, for error messages and ``--help``."""
        if self.type in ("choice", "list") and self.choices is not None:
            names = self.choice_list()
            return ", ".join(names) if names else "(none installed: see 'netcore plugins')"
        if self.type == "list":
            return "one or more values, comma-separated (or the flag repeated)"
        if self.type == "bool":
            return "true or false"
        if self.type in ("int", "float"):
            kind = "an integer" if self.type == "int" else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{kind} from {_num(self.minimum)} to {_num(self.maximum)}"
            if self.minimum is not None:
                return f"{kind} >= {_num(self.minimum)}"
            return kind
        return "a string"

    def choice_list(self) -> list[str]:
        choices = self.choices() if callable(self.choices) else self.choices
        return list(choices or ())

    def parse(self, raw: Any, source: str) -> Any:
        """Turn ``raw`` (a string from CLI/env, or a TOML value) into a checked value."""
        kind = self.type
        try:
            if kind == "list":
                items = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",")]
                value: Any = [str(item).strip() for item in items if str(item).strip()]
                if not value:
                    raise ValueError
                if self.choices is not None:
                    for item in value:
                        self._check_choice(item, source)
                return value
            if kind == "bool":
                if isinstance(raw, bool):
                    return raw
                text = str(raw).strip().lower()
                if text in _TRUE:
                    return True
                if text in _FALSE:
                    return False
                raise ValueError
            if kind == "int":
                if isinstance(raw, bool) or isinstance(raw, float):
                    raise ValueError
                value = int(str(raw).strip(), 10) if not isinstance(raw, int) else raw
            elif kind == "float":
                if isinstance(raw, bool):
                    raise ValueError
                value = float(raw)
                if value != value:  # NaN
                    raise ValueError
            elif kind == "choice":
                value = str(raw).strip()
                self._check_choice(value, source)
                return value
            else:
                if not isinstance(raw, str):
                    raise ValueError
                return raw
        except (TypeError, ValueError):
            raise SettingError(self.name, raw, self.allowed(), source) from None
        if self.minimum is not None and value < self.minimum:
            raise SettingError(self.name, raw, self.allowed(), source)
        if self.maximum is not None and value > self.maximum:
            raise SettingError(self.name, raw, self.allowed(), source)
        return value

    def _check_choice(self, value: str, source: str) -> None:
        if self.choices is not None and value not in self.choice_list():
            raise SettingError(self.name, value, self.allowed(), source, did_you_mean(value, self.choice_list()))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class Settings:
    """All declared settings, in declaration order. Handed to ``netcore_add_settings``."""

    def __init__(self) -> None:
        self._settings: dict[str, Setting] = {}
        #: Set by the plugin host while it calls one plugin's hook implementation.
        self.current_plugin = ""

    def add(
        self,
        name: str,
        type: str,
        default: Any,
        help: str,
        *,
        choices: tuple[str, ...] | list[str] | Callable[[], list[str]] | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        metavar: str | None = None,
        secret: bool = False,
    ) -> Setting:
        if type not in TYPES:
            raise ValueError(f"setting {name!r}: type must be one of {', '.join(TYPES)}")
        if not name.replace("_", "").isalnum() or name.lower() != name:
            raise ValueError(f"setting {name!r}: use lower-case letters, digits and '_'")
        if name in self._settings:
            raise ValueError(
                f"setting {name!r} declared by {self.current_plugin or '?'} is already declared by "
                f"{self._settings[name].owner or '?'}"
            )
        if isinstance(choices, list):
            choices = tuple(choices)
        setting = Setting(name=name, type=type, default=default, help=help, choices=choices,
                          minimum=minimum, maximum=maximum, metavar=metavar, owner=self.current_plugin,
                          secret=secret)
        self._settings[name] = setting
        return setting

    def get(self, name: str) -> Setting | None:
        return self._settings.get(name.replace("-", "_"))

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._settings.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.replace("-", "_") in self._settings

    def names(self) -> list[str]:
        return list(self._settings)
