"""``netcore bench``: measure any combination against its peers, on this machine.

The distribution ``netcore-bench``, a netcore plugin: :mod:`.plugin` adds the ``bench``
subcommand through the ``netcore_add_commands`` hook and imports nothing else, so every
``netcore`` invocation (each ``netcore serve`` the bench starts, too) pays only for that
one small module. Modules, one job each: :mod:`.cli` (options, the entry point
``netcore bench`` runs), :mod:`.presets` and :mod:`.matrix` (which cases), :mod:`.runner`
(one run of one case), :mod:`.generators` (load generator adapters: the C echo client,
wrk, redis-benchmark), :mod:`.peers` (reference servers and their launcher),
:mod:`.procfs` (CPU, syscalls, memory from /proc), :mod:`.results` (medians, spreads,
ratios), :mod:`.display` and :mod:`.plot` (output), :mod:`.schema` (the ``--json`` shape).

Deliberately empty of imports: importing the package (as the plugin module does) must not
pull in the harness.
"""
