"""The hooks a netcore plugin may implement (pluggy project name ``netcore``).

Hooks add commands, assemble a server and mark its lifecycle edges. None of them is
called per event, per connection or per request: a pluggy call costs about a
microsecond, twenty times a plain method call, and the per-message path is a few
microseconds in all.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("netcore")


@hookspec(historic=True)
def netcore_add_settings(settings):
    """Declare settings: ``settings.add(name, type, default, help, ...)``.

    Each setting is declared once and becomes a command-line flag, a ``NETCORE_*``
    environment variable, a key of the TOML file and a line of ``netcore config``.
    Historic: a plugin registered late still gets called.
    """


@hookspec
def netcore_add_commands(commands):
    """Add subcommands of ``netcore``: ``commands.add(name, target, help)``.

    ``target`` is a lazy ``"package.module:function"`` string, as in the registries:
    nothing is imported until ``netcore NAME`` runs, so a command's dependencies (the
    benchmark harness and rich, for ``netcore bench``) cost ``netcore serve`` nothing.
    The function is called as ``function(argv, plugin_args=[...])`` with the arguments
    after ``NAME`` and the ``-p no:NAME`` / ``-p MODULE`` options given before it (to
    pass on to any ``netcore`` process it starts); it returns the exit status (``None``
    means 0). ``help`` is its line in ``netcore --help``.

    Called only when the command line starts, once, never on the event path. The names
    ``serve``, ``plugins`` and ``config`` are the host's and are refused, as is a name
    another plugin added first; the refusal names the plugin.
    """


@hookspec
def netcore_register_pollers(registry):
    """Register pollers: ``registry.register("epoll-lt", "pkg.mod:Class", "summary", ...)``."""


@hookspec
def netcore_register_acceptors(registry):
    """Register acceptors (how listening sockets are made and connections taken)."""


@hookspec
def netcore_register_dispatchers(registry):
    """Register dispatchers (where work runs: the essay's schemes 0-11)."""


@hookspec
def netcore_register_protocols(registry):
    """Register protocols (bytes -> requests -> replies)."""


@hookspec
def netcore_check_assembly(assembly):
    """Return a list of problems (strings) with the selected combination, or None.

    ``assembly`` has ``config`` and the selected ``poller``, ``acceptor``, ``dispatch`` and
    ``protocol`` registrations. Example: a protocol holding one in-memory store refuses a
    process-per-worker dispatcher, which would silently split the store.
    """


@hookspec
def netcore_configure(config):
    """Called once the configuration is resolved and validated, before anything binds."""


@hookspec
def netcore_server_started(server):
    """The listeners are bound and the dispatcher is about to serve."""


@hookspec
def netcore_worker_started(worker):
    """A worker (a loop thread or a process) is about to serve; runs in that worker."""


@hookspec
def netcore_worker_stopping(worker):
    """A worker is about to stop; runs in that worker."""


@hookspec
def netcore_server_stopped(server, reason):
    """The server has stopped (``reason``: ``"signal SIGTERM"``, ...); its stats are final."""
