"""CONFIG GET/SET/RESETSTAT/REWRITE over a documented set of Redis parameters.

Clients and tools read configuration to adapt (redis-benchmark reads ``save`` and
``appendonly``; Redis's test suite saves ``CONFIG GET *`` before each unit and sets it
all back after). The parameters below are the ones such clients touch. Each has
Redis's default, or netcore's real value where netcore has one (``proto-max-bulk-len``,
``hz``, ``client-query-buffer-limit``, the pubsub output limit), and may be set; the set
value is what ``CONFIG GET`` answers from then on. Setting one changes netcore's
behaviour only where docs/resp.md says so; parameters not in the list are answered as
Redis answers an unknown one. Values are checked as Redis 7.0's ``config.c`` checks them
(:data:`CHECKS`: booleans, enums, integer and memory ranges, immutable and protected
parameters) with its texts, and kept as Redis shows them (memory in bytes, enums in
lower case).
"""

from __future__ import annotations

import re
from typing import Callable

from netcore_resp.framing import INT_MAX, LLONG_MAX, error_reply, string2ll
from netcore_resp.glob import compile_glob
from netcore_resp.replies import OK, SYNTAX, arity_error, cstr, help_reply

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


#: Redis 7.0's parameters set only at start (their defaults): CONFIG GET answers them,
#: CONFIG SET refuses them ("can't set immutable config") as Redis does.
IMMUTABLE: dict[bytes, bytes] = {
    b"rdbchecksum": b"yes", b"daemonize": b"no", b"io-threads-do-reads": b"no", b"always-show-logo": b"no",
    b"set-proc-title": b"yes", b"syslog-enabled": b"no", b"cluster-enabled": b"no", b"disable-thp": b"yes",
    b"aclfile": b"", b"unixsocket": b"", b"pidfile": b"", b"cluster-config-file": b"nodes.conf",
    b"syslog-ident": b"redis", b"appendfilename": b"appendonly.aof", b"appenddirname": b"appendonlydir",
    b"server_cpulist": b"", b"bio_cpulist": b"", b"aof_rewrite_cpulist": b"", b"bgsave_cpulist": b"",
    b"logfile": b"", b"supervised": b"no", b"syslog-facility": b"local0", b"enable-protected-configs": b"no",
    b"enable-debug-command": b"no", b"enable-module-command": b"no", b"io-threads": b"1", b"tcp-backlog": b"511",
    b"cluster-port": b"0", b"unixsocketperm": b"0",
}
DEFAULTS.update(IMMUTABLE)

INT_MIN = -INT_MAX - 1

#: Redis's names that are another parameter's older name: setting one sets both.
ALIASES = {b"list-max-ziplist-size": b"list-max-listpack-size",
           b"hash-max-ziplist-entries": b"hash-max-listpack-entries",
           b"hash-max-ziplist-value": b"hash-max-listpack-value",
           b"zset-max-ziplist-entries": b"zset-max-listpack-entries",
           b"zset-max-ziplist-value": b"zset-max-listpack-value", b"lua-time-limit": b"busy-reply-threshold"}


class Invalid(ValueError):
    """A value CONFIG SET refuses; ``args[0]`` is Redis's text for why."""


def boolean(value: bytes, current: bytes = b"") -> bytes:
    low = value.lower()
    if low not in (b"yes", b"no"):
        raise Invalid("argument must be 'yes' or 'no'")
    return low


def one_of(*choices: str) -> Callable[[bytes, bytes], bytes]:
    """An enum parameter: its values in Redis's order (the order its error lists them)."""
    allowed = tuple(choice.encode() for choice in choices)

    def check(value: bytes, current: bytes = b"") -> bytes:
        low = value.lower()
        if low not in allowed:
            raise Invalid("argument(s) must be one of the following: " + ", ".join(choices))
        return low
    return check


def _in_range(number: int, low: int, high: int) -> bytes:
    if not low <= number <= high:
        raise Invalid(f"argument must be between {low} and {high} inclusive")
    return b"%d" % number


def integer(low: int, high: int) -> Callable[[bytes, bytes], bytes]:
    """An INTEGER_CONFIG: ``string2ll``'s syntax (no sign but ``-``, no blank, no leading zero)."""
    def check(value: bytes, current: bytes = b"") -> bytes:
        number = string2ll(value)
        if number is None:
            raise Invalid("argument couldn't be parsed into an integer")
        return _in_range(number, low, high)
    return check


_MEMORY_UNITS = {b"": 1, b"b": 1, b"k": 1000, b"kb": 1024, b"m": 1000**2, b"mb": 1024**2, b"g": 1000**3,
                 b"gb": 1024**3}
_MEMORY = re.compile(rb"([0-9]*)(.*)", re.S)


def memtoull(value: bytes) -> int | None:
    """Redis's ``memtoull``: digits then a unit (b, k, kb, m, mb, g, gb, any case); None if
    not that. As in C, digits past 64 bits saturate and the product wraps."""
    digits, unit = _MEMORY.fullmatch(cstr(value)).groups()
    mul = _MEMORY_UNITS.get(unit.lower())
    if mul is None or len(digits) >= 128:
        return None
    return min(int(digits or b"0"), 2**64 - 1) * mul % 2**64


def memory(low: int, high: int) -> Callable[[bytes, bytes], bytes]:
    """A MEMORY_CONFIG: CONFIG GET answers it in bytes (``1gb`` reads back ``1073741824``)."""
    def check(value: bytes, current: bytes = b"") -> bytes:
        number = memtoull(value)
        if number is None:
            raise Invalid("argument must be a memory value")
        return _in_range(number, low, high)
    return check


def free(value: bytes, current: bytes = b"") -> bytes:
    return value


def refused(why: str) -> Callable[[bytes, bytes], bytes]:
    """An immutable or protected parameter: refused before any value is looked at."""
    def check(value: bytes, current: bytes = b"") -> bytes:
        raise Invalid(why)
    check.refused = why  # type: ignore[attr-defined]
    return check


def save_points(value: bytes, current: bytes = b"") -> bytes:
    """``save``: pairs of seconds (>= 1) and changes (>= 0), as ``strtoll`` reads them."""
    words = value.split()
    if len(words) % 2 or not all(_STRTOLL.fullmatch(w) for w in words) or \
            any(int(w) < (1 if i % 2 == 0 else 0) for i, w in enumerate(words)):
        raise Invalid("Invalid save parameters")
    return b" ".join(b"%d" % int(w) for w in words)


_STRTOLL = re.compile(rb"[ \t\n\v\f\r]*[+-]?[0-9]+")
_CLASSES = {b"normal": b"normal", b"slave": b"slave", b"replica": b"slave", b"pubsub": b"pubsub"}


def output_limits(value: bytes, current: bytes) -> bytes:
    """``client-output-buffer-limit``: class, hard, soft, seconds quadruples merged into
    the current value (Redis's ``setConfigClientOutputBufferLimitOption``)."""
    words = value.split()
    if len(words) % 4:
        raise Invalid("Wrong number of arguments in buffer limit configuration.")
    limits = {quad[0]: quad[1:] for quad in zip(*[iter(current.split())] * 4)}
    for j in range(0, len(words), 4):
        name = _CLASSES.get(words[j].lower())
        hard, soft = memtoull(words[j + 1]), memtoull(words[j + 2])
        if name is None:
            raise Invalid("Invalid client class specified in buffer limit configuration.")
        if hard is None or soft is None or not _STRTOLL.fullmatch(words[j + 3]) or int(words[j + 3]) < 0:
            raise Invalid("Error in hard, soft or soft_seconds setting in buffer limit configuration.")
        limits[name] = (b"%d" % hard, b"%d" % soft, b"%d" % int(words[j + 3]))
    return b" ".join(b" ".join((name, *limits[name])) for name in (b"normal", b"slave", b"pubsub"))


def hz(value: bytes, current: bytes = b"") -> bytes:
    """``hz``: 0 .. INT_MAX accepted, kept within 1 .. 500 (Redis's CONFIG_MIN_HZ, CONFIG_MAX_HZ)."""
    return b"%d" % min(max(int(integer(0, INT_MAX)(value)), 1), 500)


#: How CONFIG SET checks each parameter (Redis 7.0's config.c types, ranges and texts).
#: A check takes the value and the current one, and returns what CONFIG GET shows from then on.
CHECKS: dict[bytes, Callable[[bytes, bytes], bytes]] = {
    b"save": save_points, b"appendonly": boolean, b"appendfsync": one_of("everysec", "always", "no"),
    b"databases": refused("can't set immutable config"), b"maxmemory": memory(0, 2**64 - 1),
    b"maxmemory-policy": one_of("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
                                "allkeys-lfu", "allkeys-random", "noeviction"),
    b"maxclients": integer(1, 2**32 - 1), b"timeout": integer(0, INT_MAX), b"tcp-keepalive": integer(0, INT_MAX),
    b"port": integer(0, 65535), b"bind": free, b"dir": refused("can't set protected config"),
    b"dbfilename": refused("can't set protected config"), b"requirepass": free, b"notify-keyspace-events": free,
    b"busy-reply-threshold": integer(0, LLONG_MAX), b"slowlog-log-slower-than": integer(-1, LLONG_MAX),
    b"slowlog-max-len": integer(0, LLONG_MAX), b"latency-tracking": boolean, b"lazyfree-lazy-eviction": boolean,
    b"lazyfree-lazy-expire": boolean, b"lazyfree-lazy-server-del": boolean, b"lazyfree-lazy-user-del": boolean,
    b"lazyfree-lazy-user-flush": boolean, b"list-max-listpack-size": integer(INT_MIN, INT_MAX),
    b"list-compress-depth": integer(0, INT_MAX), b"hash-max-listpack-entries": integer(0, LLONG_MAX),
    b"hash-max-listpack-value": memory(0, LLONG_MAX), b"set-max-intset-entries": integer(0, LLONG_MAX),
    b"set-max-listpack-entries": integer(0, LLONG_MAX), b"set-max-listpack-value": integer(0, LLONG_MAX),
    b"zset-max-listpack-entries": integer(0, LLONG_MAX), b"zset-max-listpack-value": memory(0, LLONG_MAX),
    b"sanitize-dump-payload": one_of("no", "yes", "clients"), b"activerehashing": boolean,
    b"active-expire-effort": integer(1, 10), b"close-on-replica-write": boolean,
    b"client-output-buffer-limit": output_limits, b"proto-max-bulk-len": memory(1024 * 1024, LLONG_MAX), b"hz": hz,
    b"client-query-buffer-limit": memory(1024 * 1024, LLONG_MAX),
}
CHECKS.update({alias: CHECKS[name] for alias, name in ALIASES.items()})
CHECKS.update({name: refused("can't set immutable config") for name in IMMUTABLE})

HELP = (b"GET <pattern>", b"    Return parameters matching the glob-like <pattern> and their values.",
        b"SET <directive> <value>", b"    Set the configuration <directive> to <value>.", b"RESETSTAT",
        b"    Reset statistics reported by the INFO command.", b"REWRITE", b"    Rewrite the configuration file.")


class Config:
    """The parameters of one server: Redis's defaults overlaid with netcore's real values."""

    def __init__(self, actual: dict[bytes, bytes]) -> None:
        self.values = dict(DEFAULTS)
        self.values.update(actual)
        self.on_resetstat: list[Callable[[], None]] = []
        #: name -> ``apply(value) -> stored value``, for the parameters that change
        #: behaviour; raising :class:`Invalid` refuses the value with its text.
        self.on_set: dict[bytes, Callable[[bytes], bytes]] = {}

    def command(self, argv: list, pairs: Callable[[list], bytes]) -> bytes | None:
        """CONFIG's reply (``pairs`` encodes a map in the client's protocol); None: unknown subcommand."""
        sub = argv[1].lower()
        if sub == b"get":
            if len(argv) < 3:
                return arity_error("config|get")
            return pairs(self.get(argv[2:]))
        if sub == b"set":
            if len(argv) < 4:
                return arity_error("config|set")
            if len(argv) % 2:
                return SYNTAX
            return self.set([(argv[i], argv[i + 1]) for i in range(2, len(argv), 2)])
        if sub in (b"resetstat", b"rewrite", b"help") and len(argv) != 2:
            return arity_error("config|" + sub.decode())
        if sub == b"resetstat":
            for reset in self.on_resetstat:
                reset()
            return OK
        if sub == b"rewrite":
            return error_reply("The server is running without a config file")
        if sub == b"help":
            return help_reply(b"CONFIG", HELP)
        return None

    def get(self, patterns: list) -> list[tuple[bytes, bytes]]:
        """CONFIG GET: a name without glob characters answers under the name as given
        (``CONFIG GET MAXMEMORY``), as Redis 7.0 looks it up directly; a pattern, the
        parameters it matches (any case)."""
        found: dict[bytes, tuple[bytes, bytes]] = {}
        for pattern in patterns:
            if not any(c in pattern for c in b"[*?"):
                name = pattern.lower()
                if name in self.values and name not in found:
                    found[name] = (pattern, self.values[name])
                continue
            match = compile_glob(pattern.lower(), True)
            for name, value in self.values.items():
                if name not in found and match(name):
                    found[name] = (name, value)
        return list(found.values())

    def set(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """CONFIG SET of one or more parameters, all or none, with Redis 7.0's order of
        checks: the names first (the first unknown, immutable, protected or repeated one,
        named as given), then each value (named in lower case)."""
        seen: set[bytes] = set()
        for name, _ in pairs:
            if name.lower() not in self.values:
                return error_reply(b"Unknown option or number of arguments for CONFIG SET - '%s'" % cstr(name))
            canonical = ALIASES.get(name.lower(), name.lower())
            why = getattr(CHECKS.get(canonical), "refused", None) or (
                "duplicate parameter" if canonical in seen else None)
            if why is not None:
                return failed(name, why)
            seen.add(canonical)
        updates = []
        for name, value in pairs:
            low = name.lower()
            canonical = ALIASES.get(low, low)
            try:
                value = CHECKS.get(canonical, free)(value, self.values[canonical])
                apply = self.on_set.get(canonical)
                if apply is not None:
                    value = apply(value)
            except Invalid as error:
                return failed(low, error.args[0])
            updates.append((canonical, value))
        for canonical, value in updates:
            self.values[canonical] = value
            for alias, name in ALIASES.items():
                if name == canonical and alias in self.values:
                    self.values[alias] = value
        return OK


def failed(name: bytes, why: str) -> bytes:
    return error_reply(b"CONFIG SET failed (possibly related to argument '%s') - %s" % (cstr(name), why.encode()))
