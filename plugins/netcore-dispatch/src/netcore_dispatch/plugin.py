"""Registers this distribution's dispatchers; nothing is imported until one is selected."""

from netcore import hookimpl


@hookimpl
def netcore_add_settings(settings):
    settings.add("pool_queue", "int", 1024,
                 "requests a handler pool (or the thread-per-request backlog) may hold waiting for a "
                 "thread; when it is full, connections stop reading until it drains",
                 minimum=1, maximum=1_000_000, metavar="N")
    settings.add("max_pending", "int", 64,
                 "requests one connection may have in flight to handler threads before it stops "
                 "reading (bounds the reply-ordering buffer)", minimum=1, maximum=1_000_000, metavar="N")


@hookimpl
def netcore_register_dispatchers(registry):
    registry.register(
        "inline", "netcore_dispatch.inline:InlineDispatcher",
        "single reactor: one thread, one event loop, handlers run inline",
        scheme=5, provides=("reactor",),
    )
    registry.register(
        "thread", "netcore_dispatch.reactor_threads:ThreadPerTaskDispatcher",
        "reactor + a new thread per request (at most --threads at once)",
        scheme=6, provides=("reactor", "threads"),
    )
    registry.register(
        "thread-per-connection", "netcore_dispatch.reactor_threads:ThreadPerConnectionDispatcher",
        "reactor + one handler thread per connection (at most --max-connections)",
        scheme=7, provides=("reactor", "threads"),
    )
    registry.register(
        "pool", "netcore_dispatch.reactor_threads:PoolDispatcher",
        "reactor + a fixed pool of --threads handler threads",
        scheme=8, provides=("reactor", "threads"),
    )
    registry.register(
        "multi-reactor", "netcore_dispatch.multi_reactor:MultiReactorDispatcher",
        "an acceptor loop + --workers I/O loops, one loop per thread, connections round-robin",
        scheme=9, provides=("reactor", "threads"),
    )
    registry.register(
        "multi-reactor-pool", "netcore_dispatch.multi_reactor:MultiReactorPoolDispatcher",
        "multi-reactor + a pool of --threads handler threads (--threads 0: multi-reactor)",
        scheme=11, provides=("reactor", "threads"),
    )
    registry.register(
        "iterative", "netcore_dispatch.iterative:IterativeDispatcher",
        "iterative: accept one client, serve it to the end with blocking calls, accept the next",
        scheme=0, provides=("blocking",), notes="blocking sockets; ignores --poller",
    )
    registry.register(
        "threading", "netcore_dispatch.threading_scheme:ThreadingDispatcher",
        "thread per connection: the main thread accepts, each client gets a thread with blocking I/O",
        scheme=2, provides=("blocking",), notes="blocking sockets; ignores --poller",
    )
    registry.register(
        "prethread-blocking", "netcore_dispatch.prethread:PrethreadBlockingDispatcher",
        "prethreaded: --workers threads each block in accept() and serve the client they get",
        scheme=4, provides=("blocking",), notes="blocking sockets; ignores --poller",
    )
    registry.register(
        "prefork", "netcore_dispatch.prefork:PreforkDispatcher",
        "reactors in processes: a master and --workers processes, each an event loop (nginx's model)",
        scheme=10, provides=("reactor", "processes"),
    )
    registry.register(
        "prefork-blocking", "netcore_dispatch.prefork_blocking:PreforkBlockingDispatcher",
        "preforked: a master and --workers processes, each blocking in accept() and serving its client",
        scheme=3, provides=("blocking", "processes"), notes="blocking sockets; ignores --poller",
    )
    registry.register(
        "forking", "netcore_dispatch.forking:ForkingDispatcher",
        "fork per connection: the parent accepts, a child process serves each client and exits",
        scheme=1, provides=("blocking", "processes"), notes="blocking sockets; ignores --poller",
    )
