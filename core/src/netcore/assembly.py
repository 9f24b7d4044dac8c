"""Turn a configuration into a runnable combination: select, load, check.

This is the only place that knows how the four families fit together. Problems are
collected and reported together, each naming the setting to change.
"""

from __future__ import annotations

from typing import Any

import attrs

from netcore.config import Config
from netcore.errors import AssemblyError
from netcore.plugins import PluginHost, install_hint
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
    """Look up the four selected names; unknown names say what is installed instead.

    Every missing family is named at once: a user who installed only a protocol learns
    everything to install from one attempt, not one distribution per attempt.
    """
    chosen = {}
    missing = []
    for family in FAMILIES:
        setting = FAMILY_SETTING[family]
        name = config[setting]
        entry = host.registries[family].get(name) if name else None
        if entry is None:
            missing.append(_missing(host, config, family, setting, name))
        chosen[family] = entry
    if missing:
        raise AssemblyError("; ".join(missing))
    return Assembly(config=config, **chosen)


_NOUNS = {"dispatch": "dispatcher"}


def _missing(host: PluginHost, config: Config, family: str, setting: str, name: str) -> str:
    """The one line for a selected name no plugin registered: what is there, and what to install.

    A user of published wheels who installed ``netcore-host netcore-resp`` has no poller at
    all; "see 'netcore plugins'" would send them to a list that has no poller either, so the
    line names the distribution to install.
    """
    registry = host.registries[family]
    broken = host.broken()
    hint = ("; plugins that failed to load: " + ", ".join(f"{p.name} ({p.error})" for p in broken)) if broken else ""
    where = f"setting {setting!r} (from {config.source(setting)})"
    if not len(registry):
        install = install_hint(family, name) or install_hint(family)
        return f"{where}: no {_NOUNS.get(family, family)} is installed: {install}{hint}"
    install = install_hint(family, name) if family == "protocol" else ""
    return (f"{where}: no {family} named {name!r}; allowed: {', '.join(registry.names())}"
            + (f"; to get {name!r}: {install}" if install else "") + hint)


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
