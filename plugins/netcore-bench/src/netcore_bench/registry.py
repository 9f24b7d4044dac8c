"""Which implementations are installed, as ``netcore plugins --json`` reports them.

Asked in a child process, so the bench sees exactly what a ``netcore serve`` started by
it would see (the same plugins, the same ``-p`` options), and the bench process itself
imports no plugin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field


@dataclass
class Installed:
    #: family -> {name: reason it is unavailable, or "" if available}
    families: dict[str, dict[str, str]] = field(default_factory=dict)
    #: family -> {name: entry's "provides"}
    provides: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    error: str | None = None

    def available(self, family: str) -> list[str]:
        return [n for n, why in self.families.get(family, {}).items() if not why]

    def missing(self, family: str, name: str) -> str | None:
        """Why ``name`` cannot be used in ``family``, or None if it can."""
        entries = self.families.get(family, {})
        if name not in entries:
            have = ", ".join(sorted(entries)) or "none"
            return f"{family} {name!r} not installed (installed: {have})"
        if entries[name]:
            return f"{family} {name!r} unavailable: {entries[name]}"
        return None

    def is_blocking(self, dispatch: str) -> bool:
        return "blocking" in self.provides.get("dispatch", {}).get(dispatch, [])


def query(plugin_args: tuple[str, ...] = ()) -> Installed:
    cmd = [sys.executable, "-m", "netcore", *plugin_args, "plugins", "--json"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        report = json.loads(res.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return Installed(error=f"'netcore plugins --json' failed: {exc}")
    inst = Installed()
    for family, rows in report.get("families", {}).items():
        inst.families[family] = {r["name"]: "" if r["available"] else (r.get("reason") or "unavailable") for r in rows}
        inst.provides[family] = {r["name"]: list(r.get("provides") or []) for r in rows}
    return inst
