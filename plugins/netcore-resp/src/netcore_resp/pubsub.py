"""Pub/Sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.

**Delivery across loops and threads.** A subscriber may live on another loop (multi-
reactor) than the publisher, or the publisher's command may run on a pool thread. A
message is handed to the subscriber's own I/O thread with ``run_on_io_thread`` (the
connection contract's way to reach a connection from any thread), where it is written;
messages from one publisher arrive in the order published.

**The output limit.** Redis's ``client-output-buffer-limit pubsub 32mb 8mb 60``: a
subscriber whose unsent output passes the hard limit, or stays above the soft limit for
the soft seconds, is disconnected, so a subscriber that does not read cannot make the
server hold every message for it. Here "unsent" is what the connection has queued plus
what is on its way to the subscriber's loop (counted by the publisher, uncounted on
arrival), so a burst from another thread is bounded too.

**RESP2 and RESP3.** A RESP2 client with subscriptions may only (un)subscribe, PING,
QUIT and RESET (Redis's rule): it gets a command table of its own in which every other
command answers Redis's error. RESP3 clients keep their table and receive messages as
push replies (``>``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from netcore_resp.commands import unknown_subcommand
from netcore_resp.framing import error_reply
from netcore_resp.glob import compile_glob
from netcore_resp.replies import NULL3, Reply, Switched, arity_error, bulk, integer

MiB = 1024 * 1024


class OutputLimit:
    """``hard soft seconds`` in bytes and seconds; 0 disables a bound (Redis's meaning)."""

    def __init__(self, hard: int = 32 * MiB, soft: int = 8 * MiB, seconds: float = 60) -> None:
        self.hard, self.soft, self.seconds = hard, soft, seconds


def _header(proto: int, n: int) -> bytes:
    return (b">%d\r\n" if proto == 3 else b"*%d\r\n") % n


class Hub:
    """The subscriptions of one server (touched only under the keyspace lock)."""

    def __init__(self, limit: OutputLimit) -> None:
        self.channels: dict[bytes, set[Any]] = {}
        self.patterns: dict[bytes, tuple[Callable[[bytes], bool], set[Any]]] = {}
        self.limit = limit

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, client: Any, channel: bytes) -> None:
        self.channels.setdefault(channel, set()).add(client)
        client.channels.add(channel)

    def unsubscribe(self, client: Any, channel: bytes) -> bool:
        if channel not in client.channels:
            return False
        client.channels.discard(channel)
        members = self.channels.get(channel)
        if members is not None:
            members.discard(client)
            if not members:
                del self.channels[channel]
        return True

    def psubscribe(self, client: Any, pattern: bytes) -> None:
        entry = self.patterns.get(pattern)
        if entry is None:
            entry = self.patterns[pattern] = (compile_glob(pattern), set())
        entry[1].add(client)
        client.patterns.add(pattern)

    def punsubscribe(self, client: Any, pattern: bytes) -> bool:
        if pattern not in client.patterns:
            return False
        client.patterns.discard(pattern)
        entry = self.patterns.get(pattern)
        if entry is not None:
            entry[1].discard(client)
            if not entry[1]:
                del self.patterns[pattern]
        return True

    def drop(self, client: Any) -> None:
        """The client is gone: forget its subscriptions."""
        for channel in list(client.channels):
            self.unsubscribe(client, channel)
        for pattern in list(client.patterns):
            self.punsubscribe(client, pattern)

    # -- publishing ----------------------------------------------------------------------
    def publish(self, channel: bytes, message: bytes) -> int:
        receivers = 0
        encoded: dict[int, bytes] = {}
        # Copies: delivering may drop a subscriber (its limit) on this very thread.
        for client in tuple(self.channels.get(channel, ())):
            data = encoded.get(client.proto)
            if data is None:
                data = encoded[client.proto] = (_header(client.proto, 3) + bulk(b"message") + bulk(channel)
                                                + bulk(message))
            self.deliver(client, data)
            receivers += 1
        for pattern, (match, members) in list(self.patterns.items()):
            if members and match(channel):
                for client in tuple(members):
                    self.deliver(client, _header(client.proto, 4) + bulk(b"pmessage") + bulk(pattern)
                                 + bulk(channel) + bulk(message))
                    receivers += 1
        return receivers

    def deliver(self, client: Any, data: bytes) -> None:
        """Hand ``data`` to the subscriber's I/O thread, or disconnect it past the limit."""
        if client.pubsub_closing:
            return
        size = len(data)
        limit = self.limit
        queued = client.pubsub_in_transit + client.connection.output_size + size
        now = time.monotonic()
        over_soft = limit.soft and queued > limit.soft
        if not over_soft:
            client.pubsub_soft_since = 0.0
        elif not client.pubsub_soft_since:
            client.pubsub_soft_since = now
        if (limit.hard and queued > limit.hard) or (
                over_soft and limit.seconds and now - client.pubsub_soft_since >= limit.seconds):
            client.pubsub_closing = True
            client.connection.run_on_io_thread(client.close_for_output_limit)
            return
        client.pubsub_in_transit += size
        client.connection.run_on_io_thread(client.pubsub_write, data)


def confirmation(proto: int, kind: bytes, name: bytes | None, count: int) -> bytes:
    return _header(proto, 3) + bulk(kind) + (bulk(name) if name is not None else (NULL3 if proto == 3 else b"$-1\r\n")) \
        + integer(count)


#: Redis's arity and flags of the Pub/Sub commands (for COMMAND, and MULTI's queue-time check).
SPECS = {
    "subscribe": (-2, ("pubsub", "noscript", "loading", "stale"), 0, 0, 0),
    "psubscribe": (-2, ("pubsub", "noscript", "loading", "stale"), 0, 0, 0),
    "unsubscribe": (-1, ("pubsub", "noscript", "loading", "stale"), 0, 0, 0),
    "punsubscribe": (-1, ("pubsub", "noscript", "loading", "stale"), 0, 0, 0),
    "publish": (3, ("pubsub", "loading", "stale", "fast"), 0, 0, 0),
    "pubsub": (-2, ("pubsub", "loading", "stale"), 0, 0, 0),
}


#: Redis 7.0's container commands netcore has: subcommand -> arity (``COMMAND INFO``).
#: In subscribed mode they are refused under their full name (``client|reply``).
CONTAINERS: dict[str, dict[str, int]] = {
    "client": {"getredir": 2, "setname": 3, "list": -2, "tracking": -3, "pause": -3, "unblock": -3,
               "trackinginfo": 2, "id": 2, "info": 2, "reply": 3, "no-evict": 3, "caching": 3, "unpause": 2,
               "help": 2, "kill": -3, "getname": 2, "setinfo": 4, "no-touch": 3},
    "config": {"help": 2, "resetstat": 2, "get": -3, "rewrite": 2, "set": -4},
    "command": {"help": 2, "list": -2, "count": 2, "getkeys": -4, "info": -2, "docs": -2, "getkeysandflags": -4},
    "pubsub": {"help": 2, "numsub": -2, "channels": -2, "shardnumsub": -2, "numpat": 2, "shardchannels": -2},
    "object": {"help": 2, "idletime": 3, "encoding": 3, "freq": 3, "refcount": 3},
    "memory": {"purge": 2, "help": 2, "malloc-stats": 2, "stats": 2, "doctor": 2, "usage": -3},
    "xinfo": {"stream": -3, "help": 2, "consumers": 4, "groups": 3},
    "xgroup": {"destroy": 4, "createconsumer": 5, "create": -5, "help": 2, "setid": -5, "delconsumer": 5},
    "function": {"flush": -2, "help": 2, "list": -2, "kill": 2, "restore": -3, "delete": 3, "dump": 2,
                 "load": -3, "stats": 2},
}


def install(tables: list[dict[bytes, Any]], resp2: dict[bytes, Any], subscribed2: dict[bytes, Any], hub: Hub,
            specs: dict[str, tuple]) -> None:
    """Add the Pub/Sub commands to every table (each protocol and database) and their
    entries to ``specs``; fill RESP2's subscribed table from ``resp2`` (one of RESP2's
    tables: what it refuses and keeps)."""
    specs.update(SPECS)

    def subscriptions(client: Any) -> int:
        return len(client.channels) + len(client.patterns)

    def after(client: Any, reply: bytes) -> bytes:
        """Enter or leave RESP2's subscribed mode: a table switch, picked up at once."""
        before = client.table
        client.refresh_table()
        if client.table is not before:
            raise Switched(reply)
        return reply

    def subscriber(kind: bytes, names_of, add, remove):
        """SUBSCRIBE-like (``add``) or UNSUBSCRIBE-like (``remove``; no names: all of them)."""
        name = kind.decode()

        def run(argv, client):
            names = argv[1:]
            if add is not None:
                if not names:
                    return arity_error(name)
            elif not names:
                names = sorted(names_of(client))
                if not names:
                    return after(client, confirmation(client.proto, kind, None, subscriptions(client)))
            out = []
            for item in names:
                if add is not None:
                    if item not in names_of(client):
                        add(client, item)
                else:
                    remove(client, item)
                out.append(confirmation(client.proto, kind, item, subscriptions(client)))
            return after(client, b"".join(out))

        return run

    subscribe = subscriber(b"subscribe", lambda c: c.channels, hub.subscribe, None)
    psubscribe = subscriber(b"psubscribe", lambda c: c.patterns, hub.psubscribe, None)
    unsubscribe = subscriber(b"unsubscribe", lambda c: c.channels, None, hub.unsubscribe)
    punsubscribe = subscriber(b"punsubscribe", lambda c: c.patterns, None, hub.punsubscribe)

    def publish(argv, client):
        if len(argv) != 3:
            return arity_error("publish")
        return integer(hub.publish(argv[1], argv[2]))

    def pubsub(argv, client):
        if len(argv) < 2:
            return arity_error("pubsub")
        sub = argv[1].lower()
        if sub == b"channels":
            if len(argv) > 3:
                return arity_error("pubsub|channels")
            match = compile_glob(argv[2]) if len(argv) == 3 else None
            names = [name for name in hub.channels if match is None or match(name)]
            return b"*%d\r\n" % len(names) + b"".join(map(bulk, names))
        if sub == b"numsub":
            out = [bulk(name) + integer(len(hub.channels.get(name, ()))) for name in argv[2:]]
            return b"*%d\r\n" % (2 * len(out)) + b"".join(out)  # a flat array in RESP3 too, as Redis
        if sub == b"numpat":
            if len(argv) != 2:
                return arity_error("pubsub|numpat")
            return integer(len(hub.patterns))
        return unknown_subcommand(argv)

    def subscribed_ping(argv, client):
        if len(argv) > 2:
            return arity_error("ping")
        return b"*2\r\n" + bulk(b"pong") + bulk(argv[1] if len(argv) == 2 else b"")

    def refuse(argv, client):
        """Redis 7.0's processCommand order: arity (of the subcommand, for a container
        command), then the subscribed-mode refusal, named ``container|sub``; EXEC's
        refusal is an EXECABORT."""
        name = argv[0].lower().decode("latin-1")
        full = name
        arity = specs[name][0] if name in specs else None
        subs = CONTAINERS.get(name)
        if subs is not None and len(argv) >= 2:
            sub = argv[1].lower().decode("latin-1")
            if sub not in subs:
                raise Reply(unknown_subcommand(argv))
            full, arity = f"{name}|{sub}", subs[sub]
        if arity is not None and not (len(argv) == arity if arity > 0 else len(argv) >= -arity):
            error = arity_error(full)
        else:
            error = error_reply(b"Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
                                b"are allowed in this context" % full.encode("latin-1"))
        if name == "exec":  # Redis's execCommandAbort
            error = b"-EXECABORT Transaction discarded because of: " + error[5:]
        raise Reply(error)

    commands = {"subscribe": subscribe, "psubscribe": psubscribe, "unsubscribe": unsubscribe,
                "punsubscribe": punsubscribe, "publish": publish, "pubsub": pubsub}
    for table in tables:
        for name, fn in commands.items():
            table[name.encode()] = table[name.upper().encode()] = fn
    # Every command: RESP2's table, and those installed after this (MULTI, EXEC, ...).
    for name in [*resp2, *(n.encode() for n in specs), *(n.upper().encode() for n in specs)]:
        subscribed2[name] = refuse
    allowed = {"subscribe": subscribe, "psubscribe": psubscribe, "unsubscribe": unsubscribe,
               "punsubscribe": punsubscribe, "ping": subscribed_ping}
    for name in ("quit", "reset"):
        if name.encode() in resp2:
            allowed[name] = resp2[name.encode()]
    for name, fn in allowed.items():
        subscribed2[name.encode()] = subscribed2[name.upper().encode()] = fn
