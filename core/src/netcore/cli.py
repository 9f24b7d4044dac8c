"""The ``netcore`` command: ``serve``, ``plugins``, ``config``, ``bench``.

``bench`` is a core command, imported only when it runs (``netcore.bench``), so
``netcore serve`` never pays for it; its optional dependencies (rich, matplotlib) are the
``bench`` extra.

Plugins are loaded before the arguments are parsed, because plugins declare settings
and every setting is a flag. ``-p no:NAME`` / ``-p MODULE`` are therefore picked out of
the command line first, as pytest does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any, Sequence

from netcore import __version__
from netcore.errors import UsageError
from netcore.plugins import PluginHost
from netcore.settings import Settings

EXIT_USAGE = 2

INSTALL_HINT = (
    "install plugin distributions to get pollers, acceptors, dispatchers and protocols: "
    "from a netcore checkout, 'pip install -r requirements.txt' "
    "(or 'pip install ./plugins/netcore-pollers ./plugins/netcore-acceptors "
    "./plugins/netcore-dispatch ./plugins/netcore-echo')"
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def split_plugin_options(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Take ``-p no:NAME`` and ``-p MODULE`` out of ``argv``: (blocked, extra modules, rest)."""
    blocked: list[str] = []
    extra: list[str] = []
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "-p" or (arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--")):
            value = arg[2:] if arg != "-p" else next(it, None)
            if value is None:
                raise UsageError("-p needs a value: -p no:PLUGIN or -p MODULE")
            if value.startswith("no:"):
                blocked.append(value[3:])
            else:
                extra.append(value)
        else:
            rest.append(arg)
    return blocked, extra, rest


def _add_setting_flags(parser: argparse.ArgumentParser, settings: Settings) -> None:
    group = parser.add_argument_group("settings (also NETCORE_<NAME> and keys of netcore.toml)")
    for setting in settings:
        kwargs: dict[str, Any] = {
            "dest": "setting_" + setting.name,
            "default": None,
            "metavar": setting.metavar or setting.type.upper(),
            "help": f"{setting.help} [{setting.env}]".replace("%", "%%"),
        }
        if setting.type == "list":
            kwargs["action"] = "append"
        if setting.type == "bool":
            # ``--access-log`` alone switches it on; ``--access-log false`` still works.
            kwargs.update(nargs="?", const="true")
        if setting.type == "choice" and setting.metavar is None:
            kwargs["metavar"] = "{" + ",".join(setting.choice_list()) + "}"
        group.add_argument(setting.flag, **kwargs)
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings (default: ./netcore.toml if present)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="set any setting by name")


def build_parser(host: PluginHost) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netcore",
        description="A TCP server in which every classic concurrency model is a plugin.",
        epilog="-p no:NAME blocks a plugin, -p MODULE loads one by import name (before the command).",
    )
    parser.add_argument("--version", action="version", version=f"netcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    serve = sub.add_parser("serve", help="run a server with the configured combination")
    _add_setting_flags(serve, host.settings)
    plugins = sub.add_parser("plugins", help="list every implementation by family, and whether it can load")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    # Listed for --help only: main() hands `bench` and everything after it to netcore.bench.
    sub.add_parser("bench", help="benchmark combinations against each other and against peers "
                   "(netcore bench --help)", add_help=False)
    config = sub.add_parser("config", help="show the effective configuration and where each value came from")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    _add_setting_flags(config, host.settings)
    return parser


def resolve_config(host: PluginHost, args: argparse.Namespace):
    from netcore.config import resolve

    cli = []
    for setting in host.settings:
        value = getattr(args, "setting_" + setting.name, None)
        if value is not None:
            cli.append((setting.name, value, setting.flag))
    config = resolve(host.settings, cli=cli, sets=args.set, config_file=args.config)
    for warning in config.warnings:
        print(f"netcore: warning: {warning}", file=sys.stderr)
    return config


# -- commands ----------------------------------------------------------------------------
def cmd_serve(host: PluginHost, args: argparse.Namespace) -> int:
    from netcore import log
    from netcore.assembly import assemble
    from netcore.server import Server

    config = resolve_config(host, args)
    log.configure(config.log_format, config.log_level)
    _warn_broken(host)
    assembly = assemble(host, config)
    host.hook.netcore_configure(config=config)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a vanished peer is EPIPE on one socket
    Server(assembly, host.hook).run()
    return 0


def _warn_broken(host: PluginHost) -> None:
    import structlog

    for info in host.broken():
        structlog.get_logger("netcore.plugins").warning(
            "plugin.broken", plugin=info.name, distribution=info.distribution, error=info.error
        )


def plugins_report(host: PluginHost) -> dict[str, Any]:
    families: dict[str, list[dict[str, Any]]] = {}
    for family, registry in host.registries.items():
        rows = []
        for entry in registry:
            available, reason = entry.availability()
            rows.append({
                "name": entry.name,
                "scheme": entry.scheme,
                "summary": entry.summary,
                "distribution": entry.distribution,
                "plugin": entry.plugin,
                "target": entry.target,
                "platforms": list(entry.platforms),
                "requires": list(entry.requires),
                "provides": list(entry.provides),
                "notes": entry.notes,
                "available": available,
                "reason": reason,
            })
        families[family] = rows
    problems = [p for r in host.registries.values() for p in r.problems]
    return {
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
             "status": p.status, "error": p.error}
            for p in host.external_plugins()
        ],
        "families": families,
        "problems": problems,
        "autoload": host.autoload,
    }


def cmd_plugins(host: PluginHost, args: argparse.Namespace) -> int:
    report = plugins_report(host)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    out = []
    if not any(report["families"].values()):
        out.append("No plugins installed: netcore-host alone has no poller, acceptor, dispatcher or protocol.")
        out.append(INSTALL_HINT[0].upper() + INSTALL_HINT[1:] + ".")
    for family, rows in report["families"].items():
        if not rows:
            continue
        out.append(f"{family}:")
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            scheme = f"scheme {r['scheme']:>2}  " if r["scheme"] is not None else ""
            state = "" if r["available"] else f"  [unavailable: {r['reason']}]"
            notes = f" ({r['notes']})" if r["notes"] else ""
            out.append(f"  {r['name']:<{width}}  {scheme}{r['summary']}{notes}  <{r['distribution'] or r['plugin']}>{state}")
    for p in report["plugins"]:
        if p["status"] != "loaded":
            out.append(f"plugin {p['name']} ({p['distribution'] or p['module']}): {p['status']}"
                       + (f": {p['error']}" if p["error"] else ""))
    out.extend(f"problem: {p}" for p in report["problems"])
    if not report["autoload"]:
        out.append("(plugin autoload disabled by NETCORE_DISABLE_PLUGIN_AUTOLOAD)")
    print("\n".join(out))
    return 0


def config_notes(host: PluginHost, config) -> dict[str, str]:
    """Per-setting caveats: settings that the chosen combination ignores, and why."""
    notes: dict[str, str] = {}
    dispatch = host.registries["dispatch"].get(config.dispatch)
    if dispatch is not None and "blocking" in dispatch.provides:
        notes["poller"] = f"ignored: dispatch {dispatch.name!r} uses blocking sockets and no poller"
    return notes


def cmd_config(host: PluginHost, args: argparse.Namespace) -> int:
    config = resolve_config(host, args)
    notes = config_notes(host, config)
    if args.json:
        data = {
            name: {"value": config[name], "source": config.source(name), **({"note": notes[name]} if name in notes else {})}
            for name in host.settings.names()
        }
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(n) for n in host.settings.names())
    for setting in host.settings:
        value = json.dumps(config[setting.name])
        note = f"  # {notes[setting.name]}" if setting.name in notes else ""
        print(f"{setting.name:<{width}} = {value:<24} ({config.source(setting.name)}){note}")
    return 0


def _broken_hint(exc: UsageError, host: PluginHost | None) -> str:
    """A family name the user asked for may be missing because its plugin is broken: say so."""
    from netcore.errors import SettingError

    if host is None or not isinstance(exc, SettingError) or exc.name not in host.registries:
        return ""
    broken = host.broken()
    if not broken or "plugins that failed to load" in str(exc):
        return ""
    return "; plugins that failed to load: " + ", ".join(f"{p.name} ({p.error})" for p in broken)


COMMANDS = {"serve": cmd_serve, "plugins": cmd_plugins, "config": cmd_config}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        blocked, extra, rest = split_plugin_options(argv)
        if rest[:1] == ["bench"]:
            # The bench starts servers in child processes and loads no plugin itself; the
            # -p options go to those servers.
            from netcore.bench import main as bench_main

            plugin_args = [a for b in blocked for a in ("-p", f"no:{b}")] + [a for m in extra for a in ("-p", m)]
            return bench_main(rest[1:], plugin_args=plugin_args)
        host = PluginHost(blocked=blocked, extra=extra)
        parser = build_parser(host)
        args = parser.parse_args(rest)
        return COMMANDS[args.command](host, args)
    except UsageError as exc:
        print(f"netcore: error: {exc}{_broken_hint(exc, locals().get('host'))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader left, which is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


__all__ = ["main"]
