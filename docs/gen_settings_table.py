"""Generate the settings table of ``docs/configuration.md`` from the settings themselves.

Every setting is declared once (``netcore_add_settings``); this script asks a
:class:`netcore.plugins.PluginHost` for them, as ``netcore config`` does, so the table
cannot drift from the code unnoticed::

    python docs/gen_settings_table.py            # print the table
    python docs/gen_settings_table.py --write    # replace it in docs/configuration.md
    python docs/gen_settings_table.py --check    # exit 1 if docs/configuration.md is stale

Only settings of netcore-host and of the distributions under ``plugins/`` are listed, so
a third-party plugin installed in the same environment does not change the table.
Defaults computed at start-up (the backlog from somaxconn, the log format from whether
stderr is a terminal) are described, not evaluated: evaluating them would make the table
depend on the machine that generated it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from netcore.assembly import FAMILY_SETTING
from netcore.plugins import PluginHost
from netcore.settings import Setting

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
TARGET = DOCS / "configuration.md"
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
HOST_DISTRIBUTION = "netcore-host"

def first_party() -> set[str]:
    """Distribution names of netcore-host and every ``plugins/<dist>/pyproject.toml``."""
    names = {HOST_DISTRIBUTION}
    for pyproject in sorted((REPO / "plugins").glob("*/pyproject.toml")):
        with open(pyproject, "rb") as fh:
            names.add(tomllib.load(fh)["project"]["name"])
    return names


def _code(text: Any) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def describe_default(setting: Setting) -> str:
    default = setting.default
    if callable(default):
        doc = (getattr(default, "__doc__", None) or "").strip()
        if doc and not getattr(default, "__name__", "").startswith("<lambda>"):
            return "computed: " + doc.splitlines()[0].rstrip(".")
        match = re.search(r"\(default: ([^)]*)\)", setting.help)
        if match:
            return "computed: " + match.group(1)
        return "computed at start-up"
    if isinstance(default, bool):
        return _code("true" if default else "false")
    if isinstance(default, (list, tuple)):
        return ", ".join(_code(item) for item in default)
    return _code(default)


def describe_allowed(setting: Setting, host: PluginHost, dists: set[str]) -> str:
    families = {s: f for f, s in FAMILY_SETTING.items()}
    if setting.name in families:
        family = families[setting.name]
        names = [e.name for e in host.registries[family] if e.distribution in dists]
        return ", ".join(_code(n) for n in names) if names else "(none installed)"
    if setting.type == "list" and setting.choices is None:
        return "one or more (flag repeated; comma-separated in env and `--set`; a TOML array)"
    if setting.type in ("choice", "list"):
        return ", ".join(_code(n) for n in setting.choice_list())
    return setting.allowed()


def declared_by(setting: Setting, host: PluginHost) -> str:
    info = host.plugins.get(setting.owner)
    return (info.distribution if info and info.distribution else setting.owner) or "?"


def table(host: PluginHost | None = None) -> str:
    host = host or PluginHost()
    dists = first_party()
    rows = [
        "| setting | flag | environment | type | default | allowed | help | declared by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in host.settings:
        owner = declared_by(setting, host)
        if owner not in dists:
            continue
        # As ``netcore serve --help`` spells it; a choice without a metavar lists its values there.
        metavar = setting.metavar or ("" if setting.type == "choice" else setting.type.upper())
        rows.append("| " + " | ".join(_cell(c) for c in (
            _code(setting.name),
            _code(f"{setting.flag} {metavar}".rstrip()),
            _code(setting.env),
            setting.type,
            describe_default(setting),
            describe_allowed(setting, host, dists),
            setting.help,
            owner,
        )) + " |")
    return "\n".join(rows) + "\n"


def split(text: str) -> tuple[str, str, str]:
    """(before and including the start marker, the table, the end marker and after)."""
    try:
        head, rest = text.split(START, 1)
        body, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{TARGET}: markers {START} / {END} not found") from None
    return head + START + "\n", body.strip("\n") + "\n", END + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help=f"exit 1 if the table in {TARGET.name} is stale")
    mode.add_argument("--write", action="store_true", help=f"replace the table in {TARGET.name}")
    parser.add_argument("--file", type=Path, default=TARGET, help="the Markdown file holding the markers")
    args = parser.parse_args(argv)
    generated = table()
    if not (args.check or args.write):
        sys.stdout.write(generated)
        return 0
    text = args.file.read_text(encoding="utf-8")
    head, current, tail = split(text)
    if args.check:
        if current != generated:
            print(f"{args.file}: the settings table is out of date; "
                  f"run: python docs/gen_settings_table.py --write", file=sys.stderr)
            return 1
        return 0
    args.file.write_text(head + generated + tail, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
