"""The netcore plugin of netcore-bench: it adds the ``bench`` subcommand, nothing else.

Only a name and a lazy ``"module:function"`` target are given here; the harness
(:mod:`netcore_bench.cli` and everything it imports: rich, the presets, the runner) is
imported only when ``netcore bench`` runs, never by ``netcore serve``.
"""

from netcore import hookimpl


@hookimpl
def netcore_add_commands(commands):
    commands.add("bench", "netcore_bench.cli:main",
                 "benchmark combinations against each other and against peers (netcore bench --help)")
