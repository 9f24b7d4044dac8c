"""Named, lazily imported implementations: what the ``netcore_register_*`` hooks fill.

As in Twisted's reactor plugins, a registration is a short name, a ``"module:attr"``
string and a one-line summary; nothing is imported until the implementation is selected
(or until ``netcore plugins`` asks whether it can load, to say why not). As in tox 4, the
registry object is handed to a hook and each implementation registers itself in one line.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

import attrs

from netcore.errors import AssemblyError

FAMILIES = ("poller", "acceptor", "dispatch", "protocol")

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


@attrs.frozen
class Registration:
    """One named implementation of a family."""

    family: str
    name: str
    #: ``"package.module:Attribute"``, imported only when needed.
    target: str
    summary: str
    #: Keyword arguments the implementation is constructed with (``edge_triggered=True``).
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    #: ``sys.platform`` prefixes where it works; empty means everywhere.
    platforms: tuple[str, ...] = ()
    #: Capabilities other selected parts must provide (``"epoll"``, ``"reactor"``).
    requires: tuple[str, ...] = ()
    #: Capabilities this part provides to the others.
    provides: tuple[str, ...] = ()
    #: The essay's scheme number, for dispatchers.
    scheme: int | None = None
    #: A caveat shown by ``netcore plugins`` and ``netcore config``.
    notes: str = ""
    #: The plugin (entry-point name) and distribution that registered it.
    plugin: str = ""
    distribution: str = ""

    def platform_ok(self) -> bool:
        return not self.platforms or any(sys.platform.startswith(p) for p in self.platforms)

    def load(self) -> Any:
        """Import and return the target; :class:`AssemblyError` says why it cannot load."""
        if not self.platform_ok():
            raise AssemblyError(
                f"{self.family} {self.name!r} does not work on {sys.platform} "
                f"(only on: {', '.join(self.platforms)})"
            )
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # an ImportError, or anything the module raised
            raise AssemblyError(
                f"{self.family} {self.name!r} from {self.distribution or self.plugin or 'an unknown plugin'} "
                f"cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def availability(self) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, reason)``; imports the target to find out."""
        try:
            self.load()
        except AssemblyError as exc:
            return False, str(exc)
        return True, ""


class Registry:
    """The implementations of one family, by name. Handed to ``netcore_register_<family>s``."""

    def __init__(self, family: str) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}")
        self.family = family
        self._entries: dict[str, Registration] = {}
        #: Problems met while registering (a name taken twice), shown by ``netcore plugins``.
        self.problems: list[str] = []
        #: Set by the plugin host while it calls one plugin's hook implementation.
        self.current_plugin = ""
        self.current_distribution = ""

    def register(
        self,
        name: str,
        target: str,
        summary: str,
        *,
        kwargs: dict[str, Any] | None = None,
        platforms: tuple[str, ...] | list[str] = (),
        requires: tuple[str, ...] | list[str] = (),
        provides: tuple[str, ...] | list[str] = (),
        scheme: int | None = None,
        notes: str = "",
    ) -> Registration:
        """Add an implementation. The first registration of a name wins; later ones are reported."""
        if not _NAME.match(name):
            raise ValueError(f"{self.family} name {name!r} must be lower-case letters, digits and '-'")
        if ":" not in target:
            raise ValueError(f"{self.family} {name!r}: target {target!r} must look like 'package.module:Attribute'")
        entry = Registration(
            family=self.family,
            name=name,
            target=target,
            summary=summary,
            kwargs=dict(kwargs or {}),
            platforms=tuple(platforms),
            requires=tuple(requires),
            provides=tuple(provides),
            scheme=scheme,
            notes=notes,
            plugin=self.current_plugin,
            distribution=self.current_distribution,
        )
        existing = self._entries.get(name)
        if existing is not None:
            self.problems.append(
                f"{self.family} {name!r} registered by {entry.plugin or '?'} is ignored: "
                f"{existing.plugin or '?'} registered it first"
            )
            return existing
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Registration | None:
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)
