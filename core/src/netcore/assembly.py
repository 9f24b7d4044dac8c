"""Turn a configuration into a runnable combination: select, load, check.

This is the only place that knows how the four families fit together. Problems are
collected and reported together, each naming the setting to change.
"""

from __future__ import annotations

from typing import Any

import attrs

from netcore.config import Config
from netcore.errors import AssemblyError
from netcore.plugins import PluginHost
from netcore.registry import FAMILIES, Registration

#: The setting that selects each family.
FAMILY_SETTING = {"poller": "poller", "acceptor": "acceptor", "dispatch": "dispatch", "protocol": "protocol"}


@attrs.define
class Assembly:
    """The selected registrations, and (after :meth:`load`) the loaded implementations."""

    config: Config
    poller: Registration
    acceptor: Registration
    dispatch: Registration
    protocol: Registration
    loaded: dict[str, Any] = attrs.field(factory=dict)

    def registrations(self) -> dict[str, Registration]:
        return {family: getattr(self, family) for family in FAMILIES}


def select(host: PluginHost, config: Config) -> Assembly:
    """Look up the four selected names; unknown names say what is installed instead."""
    chosen = {}
    for family in FAMILIES:
        setting = FAMILY_SETTING[family]
        name = config[setting]
        registry = host.registries[family]
        entry = registry.get(name) if name else None
        if entry is None:
            installed = ", ".join(registry.names()) or "none"
            hint = ""
            broken = host.broken()
            if broken:
                hint = "; plugins that failed to load: " + ", ".join(f"{p.name} ({p.error})" for p in broken)
            if not len(registry):
                hint += "; install plugins (see 'netcore plugins')"
            raise AssemblyError(
                f"setting {setting!r} (from {config.source(setting)}): no {family} named {name!r}; "
                f"allowed: {installed}{hint}"
            )
        chosen[family] = entry
    return Assembly(config=config, **chosen)


def check(host: PluginHost, assembly: Assembly) -> list[str]:
    """Problems with the combination: platforms, requires/provides, and plugins' own checks."""
    problems: list[str] = []
    regs = assembly.registrations()
    uses_poller = "blocking" not in assembly.dispatch.provides
    for family, entry in regs.items():
        if family == "poller" and not uses_poller:
            continue  # a blocking scheme never creates its poller
        if not entry.platform_ok():
            problems.append(f"{family} {entry.name!r} does not work on this platform (only on: {', '.join(entry.platforms)})")
    for family, entry in regs.items():
        if family == "poller" and not uses_poller:
            continue
        for need in entry.requires:
            providers = [e for f, e in regs.items() if f != family and need in e.provides]
            if not providers:
                offering = [f"{f} {e.name!r}" for f, e in regs.items() if f != family]
                problems.append(
                    f"{family} {entry.name!r} needs {need}, which none of {', '.join(offering)} provides"
                )
    for result in host.hook.netcore_check_assembly(assembly=assembly):
        if result:
            problems.extend([result] if isinstance(result, str) else list(result))
    return problems


def assemble(host: PluginHost, config: Config) -> Assembly:
    """Select, check and load; raise :class:`AssemblyError` with every problem found."""
    assembly = select(host, config)
    problems = check(host, assembly)
    if problems:
        raise AssemblyError("; ".join(problems))
    for family, entry in assembly.registrations().items():
        if family == "poller" and "blocking" in assembly.dispatch.provides:
            continue
        assembly.loaded[family] = entry.load()
    return assembly
