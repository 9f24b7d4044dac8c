"""CONFIG GET/SET/RESETSTAT/REWRITE over a documented set of Redis parameters.

Clients and tools read configuration to adapt (redis-benchmark reads ``save`` and
``appendonly``; Redis's test suite saves ``CONFIG GET *`` before each unit and sets it
all back after). The parameters below are the ones such clients touch. Each has
Redis's default, or netcore's real value where netcore has one (``proto-max-bulk-len``,
``hz``, ``client-query-buffer-limit``, the pubsub output limit), and may be set; the set
value is what ``CONFIG GET`` answers from then on. Setting one changes netcore's
behaviour only where docs/resp.md says so; parameters not in the list are answered as
Redis answers an unknown one.
"""

from __future__ import annotations

from typing import Callable

from netcore_resp.framing import error_reply
from netcore_resp.glob import compile_glob
from netcore_resp.replies import OK, arity_error, cstr

#: Redis 7.0's defaults of the parameters netcore answers for.
DEFAULTS: dict[bytes, bytes] = {
    b"save": b"", b"appendonly": b"no", b"appendfsync": b"everysec", b"databases": b"1", b"maxmemory": b"0",
    b"maxmemory-policy": b"noeviction", b"maxclients": b"10000", b"timeout": b"0", b"tcp-keepalive": b"300",
    b"port": b"0", b"bind": b"127.0.0.1", b"dir": b".", b"dbfilename": b"dump.rdb", b"requirepass": b"",
    b"notify-keyspace-events": b"", b"lua-time-limit": b"5000", b"busy-reply-threshold": b"5000",
    b"slowlog-log-slower-than": b"10000", b"slowlog-max-len": b"128", b"latency-tracking": b"yes",
    b"lazyfree-lazy-eviction": b"no", b"lazyfree-lazy-expire": b"no", b"lazyfree-lazy-server-del": b"no",
    b"lazyfree-lazy-user-del": b"no", b"lazyfree-lazy-user-flush": b"no",
    b"list-max-listpack-size": b"-2", b"list-max-ziplist-size": b"-2", b"list-compress-depth": b"0",
    b"hash-max-listpack-entries": b"128", b"hash-max-listpack-value": b"64",
    b"hash-max-ziplist-entries": b"128", b"hash-max-ziplist-value": b"64",
    b"set-max-intset-entries": b"512", b"set-max-listpack-entries": b"128", b"set-max-listpack-value": b"64", b"zset-max-listpack-entries": b"128", b"zset-max-listpack-value": b"64",
    b"zset-max-ziplist-entries": b"128", b"zset-max-ziplist-value": b"64",
    b"sanitize-dump-payload": b"no", b"activerehashing": b"yes", b"active-expire-effort": b"1", b"close-on-replica-write": b"yes",
    b"client-output-buffer-limit": b"normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
}


class Config:
    """The parameters of one server: Redis's defaults overlaid with netcore's real values."""

    def __init__(self, actual: dict[bytes, bytes]) -> None:
        self.values = dict(DEFAULTS)
        self.values.update(actual)
        self.on_resetstat: list[Callable[[], None]] = []
        #: name -> ``apply(value) -> stored value``, for the parameters that change
        #: behaviour; raising ValueError refuses the value (Redis's "Invalid argument").
        self.on_set: dict[bytes, Callable[[bytes], bytes]] = {}

    def command(self, argv: list, pairs: Callable[[list], bytes]) -> bytes | None:
        """CONFIG's reply (``pairs`` encodes a map in the client's protocol); None: unknown subcommand."""
        sub = argv[1].lower()
        if sub == b"get":
            if len(argv) < 3:
                return arity_error("config|get")
            found: dict[bytes, bytes] = {}
            for pattern in argv[2:]:
                match = compile_glob(pattern.lower(), True)
                for name, value in self.values.items():
                    if name not in found and match(name):
                        found[name] = value
            return pairs(list(found.items()))
        if sub == b"set":
            if len(argv) < 4 or len(argv) % 2:
                return arity_error("config|set")
            pairs = [(argv[i].lower(), argv[i + 1]) for i in range(2, len(argv), 2)]
            for name, _ in pairs:
                if name not in self.values:
                    return error_reply(b"Unknown option or number of arguments for CONFIG SET - '%s'" % cstr(name))
            for name, value in pairs:
                apply = self.on_set.get(name)
                if apply is not None:
                    try:
                        value = apply(value)
                    except ValueError:
                        return error_reply(b"CONFIG SET failed (possibly related to argument '%s') - Invalid "
                                           b"argument '%s' for CONFIG SET '%s'" % (cstr(name), cstr(value), cstr(name)))
                self.values[name] = value
            return OK
        if sub == b"resetstat":
            if len(argv) != 2:
                return arity_error("config|resetstat")
            for reset in self.on_resetstat:
                reset()
            return OK
        if sub == b"rewrite":
            return error_reply("The server is running without a config file")
        return None
