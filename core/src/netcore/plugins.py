"""The plugin host: pluggy's manager, entry-point loading, the four registries, the settings.

Plugins are found through entry points in the group ``netcore``, loaded in name order.
A plugin that fails to import (or implements a hook that does not exist) is reported —
by ``netcore plugins`` and as a warning — and is fatal only when something it would
have provided is selected: a broken RESP plugin must not stop an echo server.

A plugin distribution states which host it was written for in its own metadata (a
``Requires-Dist: netcore-host>=0.1,<0.2`` pin); the host checks that pin at load, so a
plugin installed past pip's resolver (``--no-deps``, ``--target``, a copied site-packages)
is reported as broken with both versions named instead of failing later, inside a hook.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from typing import Any

import attrs
import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from netcore import __version__, hookspecs
from netcore.registry import FAMILIES, Registry
from netcore.settings import Settings

ENTRY_POINT_GROUP = "netcore"
DISABLE_AUTOLOAD_ENV = "NETCORE_DISABLE_PLUGIN_AUTOLOAD"
#: The host's own hook implementations (its settings), registered under this name.
CORE_PLUGIN = "netcore.core"

#: The distribution a user of published wheels installs to get everything the defaults need.
META_DISTRIBUTION = "netcore-server"
HOST_DISTRIBUTION = "netcore-host"

#: Which of this project's distributions provides each family, and (for protocols, which
#: come one per distribution) each name; the extra of netcore-server that pulls it in.
#: Only for messages: a missing poller says "pip install netcore-pollers", not "see
#: 'netcore plugins'". Third-party names are not here and get no such hint.
FAMILY_DISTRIBUTIONS = {
    "poller": "netcore-pollers",
    "acceptor": "netcore-acceptors",
    "dispatch": "netcore-dispatch",
    "protocol": "netcore-echo",
}
PROTOCOL_DISTRIBUTIONS = {"echo": ("netcore-echo", ""), "http": ("netcore-http", "http"),
                          "resp": ("netcore-resp", "resp")}


def install_hint(family: str, name: str = "") -> str:
    """``pip install DIST (or netcore-server...)`` for a family, or for one known name of it.

    Empty for a name no distribution of this project provides (a third party's, a typo).
    """
    if family == "protocol" and name:
        if name not in PROTOCOL_DISTRIBUTIONS:
            return ""
        dist, extra = PROTOCOL_DISTRIBUTIONS[name]
        meta = f"{META_DISTRIBUTION}[{extra}]" if extra else META_DISTRIBUTION
        return f"pip install {dist} (or {meta})"
    dist = FAMILY_DISTRIBUTIONS.get(family)
    if dist is None:
        return ""
    return f"pip install {dist} (or {META_DISTRIBUTION} for the defaults)"


def host_mismatch(dist: importlib.metadata.Distribution | None) -> str:
    """Why ``dist`` cannot run on this host (its ``netcore-host`` pin excludes this version), or "".

    packaging evaluates the pin (and its environment marker) exactly as pip does; a
    hand-written comparison would get ``>=0.1,<0.2``, ``~=0.1`` and pre-releases subtly wrong.
    """
    if dist is None:
        return ""
    try:
        here = Version(__version__)
    except InvalidVersion:  # pragma: no cover - the host's own version is ours
        return ""
    for line in dist.requires or ():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower().replace("_", "-") != HOST_DISTRIBUTION:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if req.specifier and not req.specifier.contains(here, prereleases=True):
            return (f"{dist.name} {dist.version} needs {HOST_DISTRIBUTION}{req.specifier}, but this is "
                    f"{HOST_DISTRIBUTION} {__version__}: install matching versions "
                    f"(pip install '{HOST_DISTRIBUTION}{req.specifier}', or upgrade {dist.name})")
    return ""


_FAMILY_HOOKS = {
    "poller": "netcore_register_pollers",
    "acceptor": "netcore_register_acceptors",
    "dispatch": "netcore_register_dispatchers",
    "protocol": "netcore_register_protocols",
}


@attrs.define
class PluginInfo:
    """A plugin as ``netcore plugins`` shows it."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    #: ``loaded``, ``broken`` or ``blocked``.
    status: str = "loaded"
    error: str = ""


class PluginHost:
    """Loads plugins and collects what they register. Build one per command."""

    def __init__(self, *, blocked: list[str] = (), extra: list[str] = (), autoload: bool | None = None) -> None:
        if autoload is None:
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") in ("", "0")
        self.pm = pluggy.PluginManager("netcore")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.blocked = set(blocked)
        self.autoload = autoload
        for name in self.blocked:
            self.pm.set_blocked(name)
        from netcore.core_settings import CorePlugin

        self.registries: dict[str, Registry] = {}
        self._register(CorePlugin(self), CORE_PLUGIN,
                       PluginInfo(CORE_PLUGIN, "netcore-host", _version("netcore-host"), "netcore.core_settings"))
        if autoload:
            self._load_entry_points()
        for module_name in extra:
            self._load_module(module_name)
        self.registries = self._collect_registries()
        self.settings = Settings()
        self._call_per_plugin("netcore_add_settings", self.settings, "settings")

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- loading ---------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(eps, key=lambda ep: ep.name):
            dist = ep.dist.name if ep.dist is not None else ""
            info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist is not None else "", ep.value)
            if ep.name in self.plugins:
                continue  # the same distribution seen twice on sys.path
            if ep.name in self.blocked:
                info.status = "blocked"
                self.plugins[ep.name] = info
                continue
            mismatch = host_mismatch(ep.dist)
            if mismatch:  # not imported: code written for another host fails in odd places
                info.status, info.error = "broken", mismatch
                self.plugins[ep.name] = info
                continue
            try:
                module = ep.load()
            except Exception as exc:
                info.status, info.error = "broken", f"{type(exc).__name__}: {exc}"
                self.plugins[ep.name] = info
                continue
            self._register(module, ep.name, info)

    def _load_module(self, module_name: str) -> None:
        """``-p MODULE``: load a plugin module by import name (with autoload off, too)."""
        info = PluginInfo(module_name, module=module_name)
        if module_name in self.plugins:
            return
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            info.status, info.error = "broken", f"{type(exc).__name__}: {exc}"
            self.plugins[module_name] = info
            return
        self._register(module, module_name, info)

    def _register(self, module: Any, name: str, info: PluginInfo) -> None:
        try:
            self.pm.register(module, name=name)
            # Unknown hooks (a typo in a hook name) are an error, not a silent no-op.
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            info.status, info.error = "broken", f"{type(exc).__name__}: {exc}"
        self.plugins[name] = info

    # -- collecting ------------------------------------------------------------------
    def _call_per_plugin(self, hook_name: str, target: Any, argname: str) -> None:
        """Call each plugin's implementation separately so the target knows who registers.

        Registration errors (a bad name) make that plugin broken instead of the host.
        """
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: the host, then entry points by name
            info = self.plugins.get(impl.plugin_name)
            target.current_plugin = impl.plugin_name
            if hasattr(target, "current_distribution"):
                target.current_distribution = info.distribution if info else ""
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue  # wrappers wrap calls; there is no call here to wrap
            try:
                impl.function(**({argname: target} if argname in impl.argnames else {}))
            except Exception as exc:
                if info is not None:
                    info.status = "broken"
                    info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}"
            finally:
                target.current_plugin = ""
                if hasattr(target, "current_distribution"):
                    target.current_distribution = ""

    def _collect_registries(self) -> dict[str, Registry]:
        registries = {}
        for family in FAMILIES:
            registry = Registry(family)
            self._call_per_plugin(_FAMILY_HOOKS[family], registry, "registry")
            registries[family] = registry
        return registries

    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "broken"]

    def external_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.name != CORE_PLUGIN]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""
