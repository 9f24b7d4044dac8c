"""The ``netcore`` command: ``serve``, ``plugins``, ``config``, and commands plugins add.

Plugins are loaded before the arguments are parsed, because plugins declare settings
and every setting is a flag. ``-p no:NAME`` / ``-p MODULE`` are therefore picked out of
the command line first, as pytest does.

A plugin adds a subcommand through the ``netcore_add_commands`` hook with a lazy
``"module:function"`` target (``netcore bench`` is netcore-bench's), imported only when
that command runs: the host stays minimal and ``netcore serve`` never pays for a
benchmark harness. A plugin command gets the rest of the command line unparsed, since
its options are its own.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import sys
import threading
from typing import Any, Callable, Sequence

import attrs

from netcore import __version__
from netcore.errors import SettingError, UsageError, did_you_mean
from netcore.plugins import PluginHost
from netcore.settings import Settings

EXIT_USAGE = 2

INSTALL_HINT = (
    "install plugin distributions to get pollers, acceptors, dispatchers and protocols: "
    "'pip install netcore-server' (the host and the default plugins; 'netcore-server[all]' adds "
    "http, resp and bench); from a netcore checkout, 'pip install -r requirements.txt'"
)

#: gunicorn's short flags, taken where netcore has no flag of its own by that letter:
#: ``-b ADDR`` and ``-w N`` mean what a gunicorn user types them for.
SHORT_FLAGS = {"bind": "-b", "workers": "-w"}


#: The host's own commands; a plugin may not add one of these names.
BUILTIN_COMMANDS = ("serve", "plugins", "config")

#: Commands that a distribution of this repository provides: when one is missing, say
#: what to install instead of "invalid choice". name -> (distribution, path in a checkout).
PROVIDED_BY = {"bench": ("netcore-bench", "./plugins/netcore-bench")}

_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


@attrs.frozen
class Command:
    """A subcommand a plugin added: a name, a lazy target and its ``--help`` line."""

    name: str
    #: ``"package.module:function"``, imported only when the command runs.
    target: str
    help: str = ""
    #: The plugin (entry-point name) and distribution that added it.
    plugin: str = ""
    distribution: str = ""

    def load(self) -> Callable[..., Any]:
        """Import the target; a failure is a :class:`UsageError` naming the plugin."""
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # an ImportError, or anything the module raised
            raise UsageError(
                f"command {self.name!r} from {self.distribution or self.plugin or 'an unknown plugin'} "
                f"cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        return obj


class Commands:
    """The subcommands plugins add; handed to ``netcore_add_commands``.

    Like a family :class:`~netcore.registry.Registry`: the host sets ``current_plugin``
    while it calls one plugin's hook, so every command records who added it, and a
    refused name is a problem naming that plugin, not an exception that would make the
    whole plugin broken (its pollers or protocols still work).
    """

    def __init__(self) -> None:
        self._entries: dict[str, Command] = {}
        #: Refused additions (a built-in name, a name taken first), one line each.
        self.problems: list[str] = []
        self.current_plugin = ""
        self.current_distribution = ""

    def add(self, name: str, target: str, help: str = "") -> Command | None:
        """Add ``netcore NAME``; returns the command, or None when the name is refused."""
        if not _COMMAND_NAME.match(name):
            raise ValueError(f"command name {name!r} must be lower-case letters, digits and '-'")
        module_name, colon, attr = target.partition(":")
        if not (module_name and colon and attr):
            raise ValueError(f"command {name!r}: target {target!r} must look like 'package.module:function'")
        who = f"plugin {self.current_plugin or '?'!r}" + (
            f" ({self.current_distribution})" if self.current_distribution else "")
        if name in BUILTIN_COMMANDS:
            self.problems.append(f"command {name!r} from {who} refused: {', '.join(BUILTIN_COMMANDS)} "
                                 "are built-in netcore commands")
            return None
        existing = self._entries.get(name)
        if existing is not None:
            self.problems.append(f"command {name!r} from {who} refused: plugin {existing.plugin or '?'!r} "
                                 "added it first")
            return None
        command = Command(name, target, help, self.current_plugin, self.current_distribution)
        self._entries[name] = command
        return command

    def get(self, name: str) -> Command | None:
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries[name] for name in sorted(self._entries))


def collect_commands(host: PluginHost) -> Commands:
    """Ask every plugin for its commands, once per ``netcore`` invocation.

    Each plugin's implementation is called separately (as for the registries), so a
    command knows its plugin and a plugin whose hook raises is marked broken alone.
    """
    commands = Commands()
    host._call_per_plugin("netcore_add_commands", commands, "commands")
    return commands


def _missing_command(name: str, host: PluginHost) -> str:
    """The one line for ``netcore NAME`` when NAME comes from a distribution not loaded here."""
    dist, path = PROVIDED_BY[name]
    try:
        eps = [ep for ep in importlib.metadata.distribution(dist).entry_points if ep.group == "netcore"]
    except importlib.metadata.PackageNotFoundError:
        return (f"'netcore {name}' is provided by the {dist} distribution, which is not installed: "
                f"pip install {dist} (from a netcore checkout: pip install {path})")
    why = "its plugin did not add it"
    for ep in eps:
        info = host.plugins.get(ep.name)
        if info is not None and info.status == "blocked":
            why = f"its plugin is blocked (-p no:{ep.name})"
        elif info is not None and info.status == "broken":
            why = f"its plugin {ep.name!r} is broken: {info.error}"
        elif info is None and not host.autoload:
            why = f"plugin autoload is disabled (load it with -p {ep.value})"
    return f"'netcore {name}' is provided by {dist}, which is installed, but {why}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = ""
        if message.startswith("unrecognized arguments: "):
            typo = message.split(": ", 1)[1].split()[0].split("=", 1)[0]
            if typo.startswith("--"):
                hint = did_you_mean(typo, self._flags())
        raise UsageError(f"{message}{hint} (see '{self.prog} --help')")

    def _flags(self) -> set[str]:
        """Every long option of this parser and of its subcommands' parsers (argparse
        reports an unknown flag from the top-level parser, which knows only its own)."""
        flags = {flag for flag in self._option_string_actions if flag.startswith("--")}
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in action.choices.values():
                    flags |= {flag for flag in parser._option_string_actions if flag.startswith("--")}
        return flags


def check_plugin_options(host: PluginHost, blocked: Sequence[str], extra: Sequence[str]) -> None:
    """``-p`` given something that is no plugin is an error that says what ``-p`` is for.

    gunicorn's ``-p FILE`` is its pid file: ``netcore serve -p app.pid`` used to become
    "plugin app.pid is broken" and a server that ran anyway, without the file the user
    asked for. A module that exists but fails to import stays a broken plugin (reported,
    fatal only when selected), as for entry points.
    """
    for module in extra:
        info = host.plugins.get(module)
        if info is None or info.status != "broken" or _importable(module):
            continue
        eps = [ep for ep in importlib.metadata.entry_points(group="netcore") if ep.name == module]
        named = (f"; {module!r} is the entry-point name of a plugin: load it with -p {eps[0].value}"
                 if eps else "")
        pid = ("a pid file (gunicorn's -p FILE) is --pid FILE" if "pid" in host.settings else
               "gunicorn's -p FILE (a pid file) has no netcore flag here; the pid is in the server.started event")
        raise UsageError(f"-p {module!r}: no module of that name to load as a plugin. -p MODULE loads a plugin "
                         f"by import name and -p no:NAME blocks one by name ('netcore plugins' lists them)"
                         f"{named}; {pid}")
    if host.autoload:
        known = {p.name for p in host.plugins.values()}
        for name in blocked:
            if name not in known:
                print(f"netcore: warning: -p no:{name}: no plugin named {name!r} is installed "
                      f"(installed: {', '.join(sorted(p.name for p in host.external_plugins())) or 'none'})",
                      file=sys.stderr)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or not a module name at all
        return False


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


def default_values(settings: Settings) -> dict[str, Any]:
    """Each setting's value when nothing sets it, as a server started here would compute it.

    Computed defaults (the poller from what is installed, the backlog from somaxconn) are
    evaluated, in declaration order as :func:`netcore.config.resolve` does, so ``--help``
    shows the value this machine would use rather than a description of the rule.
    """
    values: dict[str, Any] = {}
    for setting in settings:
        default = setting.default
        if callable(default):
            try:
                default = default(values)
            except Exception:  # a default that cannot be computed here is left undescribed
                default = None
        values[setting.name] = default
    return values


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value in (None, "") else str(value)


def _family_choices(family: str, registry) -> str:
    """The names a family setting takes, from the registry (a third party's names too).

    Reads registrations only: nothing is imported to show ``--help``. Dispatchers are in
    the essay's scheme order, each with its number.
    """
    from netcore.plugins import install_hint

    entries = sorted(registry, key=lambda e: (e.scheme if e.scheme is not None else 99, e.name))
    names = [e.name + (f" ({e.scheme})" if e.scheme is not None else "")
             + ("" if e.platform_ok() else " [not on this platform]") for e in entries]
    return ", ".join(names) if names else f"none installed: {install_hint(family)}"


def _setting_help(setting, default: Any, registries: dict) -> str:
    from netcore.assembly import FAMILY_SETTING

    families = {name: family for family, name in FAMILY_SETTING.items()}
    parts = [setting.help]
    if setting.name in families and families[setting.name] in registries:
        family = families[setting.name]
        parts.append(f"choices: {_family_choices(family, registries[family])}")
    # "default" already in the help describes the rule; this is its value here.
    parts.append(f"{'here' if 'default' in setting.help else 'default'}: {_shown(default)}")
    return f"{'; '.join(parts)} [{setting.env}]".replace("%", "%%")


def _add_app_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "app_spec", nargs="?", metavar="MODULE:CALLABLE",
        help="the application to serve, as gunicorn takes it: the same as --app MODULE:CALLABLE, "
             "with --protocol http unless a protocol is chosen otherwise (needs netcore-http)")


def _add_setting_flags(parser: argparse.ArgumentParser, settings: Settings, registries: dict | None = None) -> None:
    group = parser.add_argument_group("settings (also NETCORE_<NAME> and keys of netcore.toml)")
    defaults = default_values(settings)
    for setting in settings:
        kwargs: dict[str, Any] = {
            "dest": "setting_" + setting.name,
            "default": None,
            "metavar": setting.metavar or setting.type.upper(),
            "help": _setting_help(setting, defaults.get(setting.name), registries or {}),
        }
        if setting.type == "list":
            kwargs["action"] = "append"
        if setting.type == "bool":
            # ``--access-log`` alone switches it on; ``--access-log false`` still works.
            kwargs.update(nargs="?", const="true")
        if setting.type == "choice" and setting.metavar is None:
            kwargs["metavar"] = "{" + ",".join(setting.choice_list()) + "}"
        short = SHORT_FLAGS.get(setting.name)
        group.add_argument(*([short] if short else []), setting.flag, **kwargs)
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings (default: ./netcore.toml if present)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="set any setting by name")


def build_parser(host: PluginHost, commands: Commands | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netcore",
        description="A TCP server in which every classic concurrency model is a plugin.",
        epilog="-p no:NAME blocks a plugin, -p MODULE loads one by import name (before the command).",
    )
    parser.add_argument("--version", action="version", version=f"netcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    serve = sub.add_parser(
        "serve", help="run a server with the configured combination",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a server: a poller, an acceptor, a dispatch scheme and a protocol, each chosen\n"
                    "by name from the installed plugins ('netcore plugins' describes every name).",
        epilog="examples:\n"
               "  netcore serve                                  echo on 127.0.0.1:2007, one reactor\n"
               "  netcore serve -b 127.0.0.1:8000 -w 4 --dispatch prefork myapp:application\n"
               "                                                 a WSGI app, gunicorn-style\n"
               "  netcore serve --protocol resp -b 127.0.0.1:6380   then: redis-cli -p 6380 ping\n"
               "  netcore config --dispatch pool                 the effective settings, and their sources\n"
               "-p MODULE / -p no:NAME (before 'serve') load or block a plugin; TERM stops gracefully.")
    _add_app_argument(serve)
    serve.add_argument("--check-config", action="store_true",
                       help="validate exactly what serve would (settings, addresses, the combination, the "
                            "application's import) and exit: 0 if it would start, 2 with the error if not")
    _add_setting_flags(serve, host.settings, host.registries)
    plugins = sub.add_parser("plugins", help="list every implementation by family, and whether it can load")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    config = sub.add_parser("config", help="show the effective configuration and where each value came from")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    _add_app_argument(config)
    _add_setting_flags(config, host.settings, host.registries)
    # Listed for --help only: main() hands a plugin command everything after its name.
    for command in commands or ():
        origin = command.distribution or command.plugin
        sub.add_parser(command.name, add_help=False,
                       help=(command.help or f"netcore {command.name} --help").replace("%", "%%")
                       + (f" [{origin}]" if origin else ""))
    return parser


def resolve_config(host: PluginHost, args: argparse.Namespace):
    from netcore.config import resolve

    cli = []
    for setting in host.settings:
        value = getattr(args, "setting_" + setting.name, None)
        if value is not None:
            cli.append((setting.name, value, setting.flag))
    app = _positional_app(host, args, cli)
    config = resolve(host.settings, cli=cli + app, sets=args.set, config_file=args.config)
    if app and config.source("protocol") == "default" and "http" in host.registries["protocol"]:
        config = resolve(host.settings, cli=cli + app + [("protocol", "http", APP_SOURCE)], sets=args.set,
                         config_file=args.config)
    for warning in config.warnings:
        print(f"netcore: warning: {warning}", file=sys.stderr)
    return config


#: The source ``netcore config`` names for what the positional app set.
APP_SOURCE = "MODULE:CALLABLE argument"


def _positional_app(host: PluginHost, args: argparse.Namespace, cli: list) -> list[tuple[str, Any, str]]:
    """gunicorn's positional ``module:app``: the ``app`` setting, as ``--app`` would set it.

    The ``app`` setting belongs to the http plugin; without it the argument has nothing to
    serve, which is said instead of a server that ignores it.
    """
    spec = getattr(args, "app_spec", None)
    if not spec:
        return []
    module, colon, attr = spec.partition(":")
    if not (module and colon and attr):
        raise UsageError(f"{spec!r} is not MODULE:CALLABLE: the one argument 'serve' takes is an application, "
                         "as gunicorn's (myapp:application); settings are flags (see 'netcore serve --help')")
    if "app" not in host.settings:
        from netcore.plugins import install_hint

        raise UsageError(f"{spec!r}: an application is served by the http protocol, which is not installed: "
                         f"{install_hint('protocol', 'http')}")
    given = next((value for name, value, _flag in cli if name == "app"), None)
    if given is not None and given != spec:
        raise UsageError(f"the application is given twice: {spec!r} and --app {given!r}")
    return [("app", spec, APP_SOURCE)]


# -- commands ----------------------------------------------------------------------------
def checked_server(host: PluginHost, config: Any, *, bind_check: bool = True) -> Any:
    """Everything ``serve`` refuses before it serves, as one code path.

    ``netcore serve`` runs it before serving, ``netcore serve --check-config`` and
    ``netcore config`` run it and stop: the three can never disagree about what is valid
    (the settings, the combination, the protocol's settings, the application's import,
    the scheme's own checks, the addresses as the acceptor binds them and their TLS and
    PROXY layers). ``bind_check``: one of the two that stop; what a running server holds
    (:class:`~netcore.errors.InUse`: its address, its pid file) is then only noted.
    """
    from netcore.assembly import assemble
    from netcore.checks import check_addresses
    from netcore.server import Server

    if config.get("chdir"):
        _chdir(config.chdir)
    assembly = assemble(host, config)
    host.hook.netcore_configure(config=config)
    server = Server(assembly, host.hook)  # imports the application: a broken one fails here
    _check_operations(server, check_only=bind_check)
    if bind_check:
        # serve itself binds for real next (an fd:// socket must not be closed first), and
        # then builds the accept layers, reading the TLS files: check_addresses does both,
        # with serve's own code
        check_addresses(server)
    return server


def cmd_serve(host: PluginHost, args: argparse.Namespace) -> int:
    from netcore import log

    config = resolve_config(host, args)
    log.configure(config.log_format, config.log_level)
    _warn_broken(host)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a vanished peer is EPIPE on one socket
    check_only = bool(getattr(args, "check_config", False))
    server = checked_server(host, config, bind_check=check_only)
    if check_only:
        print(f"netcore: configuration OK: {config.protocol} over {config.dispatch} on "
              f"{', '.join(map(str, config.bind))}")
        return 0
    # What a HUP re-reads (the same sources, resolved again): see netcore_dispatch.deploy.
    server.reconfigure = lambda: resolve_config(host, args)
    server.run()
    global _SERVED
    _SERVED = True
    return server.exit_status  # 1 after a reactor loop died: a supervisor restarts it


def _check_operations(server, check_only: bool = False) -> None:
    """The operations settings that only some schemes honour, the identity to switch to,
    and the scheme's own checks (``Dispatcher.check``: a master's pid file)."""
    from netcore.checks import note
    from netcore.errors import InUse
    from netcore.privileges import check_identity

    config = server.config
    check_identity(config)
    if config.get("reload") and not getattr(server.dispatcher, "supports_reload", False):
        raise SettingError("reload", "true", "only under a master (--dispatch prefork or prefork-blocking; "
                           "--workers 1 is enough for development)", "--reload")
    check = getattr(server.dispatcher, "check", None)  # a dispatcher not derived from Dispatcher has none
    try:
        if check is not None:
            check(server)
    except InUse as exc:
        if not check_only:
            raise
        note(exc)


#: The working directory before ``--chdir`` moved it: a USR2 successor starts from here
#: again, so that a relative ``--chdir`` is not applied a second time.
ORIGINAL_CWD: str | None = None


def _chdir(path: str) -> None:
    """``--chdir``: before the application is imported (its relative imports and files)."""
    global ORIGINAL_CWD
    if ORIGINAL_CWD is None:
        ORIGINAL_CWD = os.getcwd()
    try:
        os.chdir(path)
    except OSError as exc:
        raise SettingError("chdir", path, f"an existing directory ({exc.strerror})", "--chdir") from None
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _warn_broken(host: PluginHost) -> None:
    import structlog

    for info in host.broken():
        structlog.get_logger("netcore.plugins").warning(
            "plugin.broken", plugin=info.name, distribution=info.distribution, error=info.error
        )


def plugins_report(host: PluginHost, commands: Commands | None = None) -> dict[str, Any]:
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
    problems += commands.problems if commands is not None else []
    return {
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
             "status": p.status, "error": p.error}
            for p in host.external_plugins()
        ],
        "families": families,
        "commands": [
            {"name": c.name, "target": c.target, "help": c.help, "plugin": c.plugin, "distribution": c.distribution}
            for c in commands or ()
        ],
        "problems": problems,
        "autoload": host.autoload,
    }


def cmd_plugins(host: PluginHost, args: argparse.Namespace, commands: Commands | None = None) -> int:
    report = plugins_report(host, commands)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    out = []
    if not any(report["families"].values()):
        out.append("No plugins installed: netcore-host alone has no poller, acceptor, dispatcher or protocol.")
        out.append(INSTALL_HINT[0].upper() + INSTALL_HINT[1:] + ".")
    for family, rows in report["families"].items():
        if not rows:
            if any(report["families"].values()):  # some plugins, but none of this family
                from netcore.plugins import install_hint

                out.append(f"{family}: none installed: {install_hint(family)}")
            continue
        out.append(f"{family}:")
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            scheme = f"scheme {r['scheme']:>2}  " if r["scheme"] is not None else ""
            state = "" if r["available"] else f"  [unavailable: {r['reason']}]"
            notes = f" ({r['notes']})" if r["notes"] else ""
            out.append(f"  {r['name']:<{width}}  {scheme}{r['summary']}{notes}  <{r['distribution'] or r['plugin']}>{state}")
    if report["commands"]:
        out.append("commands:")
        width = max(len(c["name"]) for c in report["commands"])
        out.extend(f"  {c['name']:<{width}}  {c['help']}  <{c['distribution'] or c['plugin']}>"
                   for c in report["commands"])
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
    checked_server(host, config)  # refuses exactly what serve would refuse
    notes = config_notes(host, config)
    if args.json:
        data = {
            setting.name: {"value": setting.shown(config[setting.name]), "source": config.source(setting.name),
                           **({"note": notes[setting.name]} if setting.name in notes else {})}
            for setting in host.settings
        }
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(n) for n in host.settings.names())
    for setting in host.settings:
        value = json.dumps(setting.shown(config[setting.name]))
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


def _provider_hint(exc: UsageError) -> str:
    """``--protocol http`` where netcore-http is not installed: say what to install."""
    from netcore.errors import SettingError
    from netcore.plugins import install_hint

    if not isinstance(exc, SettingError) or exc.name != "protocol":
        return ""
    hint = install_hint("protocol", str(exc.value))
    return f"; to get {exc.value!r}: {hint}" if hint else ""


COMMANDS = {"serve": cmd_serve, "plugins": cmd_plugins, "config": cmd_config}


def run_command(command: Command, argv: Sequence[str], plugin_args: Sequence[str]) -> int:
    """Import a plugin command's target and run it; ``None`` from it means success."""
    status = command.load()(list(argv), plugin_args=list(plugin_args))
    return 0 if status is None else int(status)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        blocked, extra, rest = split_plugin_options(argv)
        host = PluginHost(blocked=blocked, extra=extra)
        check_plugin_options(host, blocked, extra)
        commands = collect_commands(host)
        if rest[:1] != ["plugins"]:  # `netcore plugins` lists them among its problems
            for problem in commands.problems:
                print(f"netcore: warning: {problem}", file=sys.stderr)
        name = rest[0] if rest else ""
        command = commands.get(name)
        if command is not None:
            # A plugin command may start netcore processes of its own (the bench starts
            # servers): the -p options are handed on for those.
            plugin_args = [a for b in blocked for a in ("-p", f"no:{b}")] + [a for m in extra for a in ("-p", m)]
            return run_command(command, rest[1:], plugin_args)
        if name in PROVIDED_BY:
            raise UsageError(_missing_command(name, host))
        parser = build_parser(host, commands)
        args = parser.parse_args(rest)
        if args.command == "plugins":
            return cmd_plugins(host, args, commands)
        return COMMANDS[args.command](host, args)
    except UsageError as exc:
        print(f"netcore: error: {exc}{_broken_hint(exc, locals().get('host'))}{_provider_hint(exc)}",
              file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader left, which is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


#: Set once ``netcore serve`` has run a server to its end (see :func:`_leave`).
_SERVED = False


def _entry() -> None:  # pragma: no cover
    code = main()
    if _SERVED:
        _leave(code)
    sys.exit(code)


def _leave(code: int) -> None:
    """End a stopped server's process without the interpreter's teardown.

    Once the server has stopped, everything it owns is released (sockets closed, Unix
    sockets and pid files removed, workers reaped), and what is left of a normal exit is
    the interpreter freeing its objects one by one: 0.15 s for an echo server and 0.35 s
    for a RESP server (its command tables), measured from the last log line to the exit.
    A supervisor, an operator's restart and every test that stops a server wait for that.
    What a normal exit would still do for someone else is done here: the ``atexit``
    handlers (logging's flush, an application's own, ``weakref.finalize``) and the flush
    of standard output. An application thread that is not a daemon would be waited for by
    Python, so then this returns and the normal exit follows.
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if others or run_exit_handlers is None:
        return
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or the reader left: nothing more to deliver
            pass
    os._exit(code)


__all__ = ["main"]
