"""Registers the resp protocol, its limits, and its refusal of process-per-worker schemes.

Nothing is imported until ``--protocol resp`` is selected (hiredis included).
"""

from netcore import hookimpl

#: Dispatch schemes known to run workers as processes, refused even if their registration
#: does not (yet) say ``provides=("processes", ...)``.
PROCESS_SCHEMES = ("forking", "prefork", "prefork-blocking")
#: In-process schemes, named in the refusal as the ones to use instead.
IN_PROCESS_SCHEMES = ("inline", "pool", "thread", "thread-per-connection", "multi-reactor", "multi-reactor-pool",
                      "iterative", "threading", "prethread-blocking")

MiB = 1024 * 1024


@hookimpl
def netcore_add_settings(settings):
    settings.add("resp_max_bulk", "int", 512 * MiB,
                 "resp: longest bulk string (argument) a client may send, in bytes, like Redis's "
                 "proto-max-bulk-len; a longer announcement is refused at once with a protocol error, "
                 "before any of it is buffered", minimum=1024, maximum=4096 * MiB, metavar="BYTES")
    settings.add("resp_max_multibulk", "int", 1024 * 1024,
                 "resp: most arguments one command may announce ('*<count>'); more is a protocol error",
                 minimum=1, maximum=2**31 - 1, metavar="N")
    settings.add("resp_max_inline", "int", 64 * 1024,
                 "resp: longest inline command or header line, in bytes, like Redis's PROTO_INLINE_MAX_SIZE",
                 minimum=256, maximum=64 * MiB, metavar="BYTES")
    settings.add("resp_client_query_buffer_limit", "int", 1024 * MiB,
                 "resp: most bytes a client's incomplete command may hold in the server, like Redis's "
                 "client-query-buffer-limit; a client past it is closed without a reply, as Redis does",
                 minimum=1 * MiB, maximum=64 * 1024 * MiB, metavar="BYTES")
    settings.add("resp_pubsub_output_hard", "int", 32 * MiB,
                 "resp: a Pub/Sub subscriber whose unsent output passes this many bytes is disconnected "
                 "(Redis's client-output-buffer-limit pubsub hard limit; 0: none)",
                 minimum=0, maximum=64 * 1024 * MiB, metavar="BYTES")
    settings.add("resp_pubsub_output_soft", "int", 8 * MiB,
                 "resp: a subscriber above this many unsent bytes for resp_pubsub_output_seconds is "
                 "disconnected (Redis's pubsub soft limit; 0: none)", minimum=0, maximum=64 * 1024 * MiB,
                 metavar="BYTES")
    settings.add("resp_pubsub_output_seconds", "int", 60,
                 "resp: how long a subscriber may stay above the soft output limit (Redis's soft seconds)",
                 minimum=0, maximum=86400, metavar="SECONDS")
    settings.add("resp_expire_interval", "float", 0.1,
                 "resp: seconds between active expiry sweeps, which remove expired keys nobody reads "
                 "(Redis: 1/hz)", minimum=0.001, maximum=60, metavar="SECONDS")
    settings.add("resp_expire_sweep_keys", "int", 200,
                 "resp: most expired keys one sweep removes while holding the keyspace (bounds the pause); "
                 "when more are due the next sweep follows at once", minimum=1, maximum=1_000_000, metavar="N")


@hookimpl
def netcore_register_protocols(registry):
    registry.register("resp", "netcore_resp.protocol:RespProtocol",
                      "RESP2/RESP3 (Redis protocol): an in-memory keyspace of strings, lists, hashes and "
                      "sets with expiry, transactions and Pub/Sub, for redis-cli, redis-py and redis-benchmark",
                      notes="one server's databases in its process: in-process dispatch schemes only")


@hookimpl
def netcore_check_assembly(assembly):
    protocol = assembly.protocol
    if not protocol.target.startswith("netcore_resp."):
        return None
    dispatch = assembly.dispatch
    if "processes" not in dispatch.provides and dispatch.name not in PROCESS_SCHEMES:
        return None
    return (
        f"setting 'dispatch' (from {assembly.config.source('dispatch')}): {dispatch.name!r} cannot serve "
        f"protocol 'resp': it runs each worker in its own process, and resp keeps its keyspace in the "
        f"server's memory, so each process would have its own keyspace and clients would see different "
        f"data depending on the process that accepted them; allowed: {', '.join(IN_PROCESS_SCHEMES)}"
    )
