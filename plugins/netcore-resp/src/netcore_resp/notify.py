"""Keyspace notifications (``notify-keyspace-events``): Pub/Sub messages on
``__keyspace@<db>__:<key>`` and ``__keyevent@<db>__:<event>`` for the writes, expiries
and container deletions of the classes the flags name, as Redis sends them.

They cost nothing while the parameter is empty (Redis's default): setting it registers
a hook on the write commands (:mod:`netcore_resp.writes`) and on expiry; emptying it
removes both. A command notifies when it answered something other than "nothing
changed" (``:0``, a nil): Redis notifies only actual modifications. Events are Redis's
names (``incrby`` for INCR, ``lpush`` for LPUSHX, ``rename_from``/``rename_to``...);
a container a command emptied also sends ``del``.
"""

from __future__ import annotations

from typing import Any

from netcore_resp.config import Invalid

#: Flag letter -> class, in the order CONFIG GET shows them (Redis's keyspaceEventsFlagsToString).
CLASSES = "g$lshzxetdn"
ALL = set("g$lshzxetd")  # 'A': every class but key-miss and new-key
NOTHING_CHANGED = (b":0\r\n", b"$-1\r\n", b"*-1\r\n", b"_\r\n", b"*0\r\n")

#: command -> (class, event for each written key; one name: the same for all).
EVENTS: dict[str, tuple[str, Any]] = {
    "del": ("g", "del"), "unlink": ("g", "del"), "expire": ("g", "expire"), "pexpire": ("g", "expire"),
    "expireat": ("g", "expire"), "pexpireat": ("g", "expire"), "persist": ("g", "persist"),
    "rename": ("g", ("rename_from", "rename_to")), "renamenx": ("g", ("rename_from", "rename_to")),
    "copy": ("g", (None, "copy_to")), "move": ("g", "move_from"),
    "set": ("$", "set"), "setnx": ("$", "set"), "setex": ("$", "set"), "psetex": ("$", "set"),
    "getset": ("$", "set"), "mset": ("$", "set"), "msetnx": ("$", "set"), "append": ("$", "append"),
    "incr": ("$", "incrby"), "decr": ("$", "decrby"), "incrby": ("$", "incrby"), "decrby": ("$", "decrby"),
    "incrbyfloat": ("$", "incrbyfloat"), "setrange": ("$", "setrange"), "setbit": ("$", "setbit"),
    "getdel": ("g", "del"),
    "lpush": ("l", "lpush"), "rpush": ("l", "rpush"), "lpushx": ("l", "lpush"), "rpushx": ("l", "rpush"),
    "lpop": ("l", "lpop"), "rpop": ("l", "rpop"), "blpop": ("l", "lpop"), "brpop": ("l", "rpop"),
    "linsert": ("l", "linsert"), "lset": ("l", "lset"), "lrem": ("l", "lrem"), "ltrim": ("l", "ltrim"),
    "rpoplpush": ("l", ("rpop", "lpush")), "brpoplpush": ("l", ("rpop", "lpush")),
    "sadd": ("s", "sadd"), "srem": ("s", "srem"), "spop": ("s", "spop"), "smove": ("s", ("srem", "sadd")),
    "sinterstore": ("s", (None, "sinterstore")), "sunionstore": ("s", (None, "sunionstore")),
    "sdiffstore": ("s", (None, "sdiffstore")),
    "hset": ("h", "hset"), "hmset": ("h", "hset"), "hsetnx": ("h", "hset"), "hdel": ("h", "hdel"),
    "hincrby": ("h", "hincrby"), "hincrbyfloat": ("h", "hincrbyfloat"),
    "zadd": ("z", "zadd"), "zincrby": ("z", "zincr"), "zrem": ("z", "zrem"),
    "zremrangebyscore": ("z", "zremrangebyscore"), "zremrangebyrank": ("z", "zremrangebyrank"),
    "zremrangebylex": ("z", "zremrangebylex"), "zpopmin": ("z", "zpopmin"), "zpopmax": ("z", "zpopmax"),
    "bzpopmin": ("z", "zpopmin"), "bzpopmax": ("z", "zpopmax"), "zrangestore": ("z", (None, "zrangestore")),
    "zunionstore": ("z", ("zunionstore",)), "zinterstore": ("z", ("zinterstore",)),
    "zdiffstore": ("z", ("zdiffstore",)),
}


#: Events after which the key may be gone (its container emptied): Redis then sends ``del``.
REMOVING = {"lpop", "rpop", "lrem", "ltrim", "srem", "spop", "hdel", "zrem", "zpopmin", "zpopmax",
            "zremrangebyscore", "zremrangebyrank", "zremrangebylex"}


def parse_flags(value: bytes) -> set[str]:
    """Redis's keyspaceEventsStringToFlags; refused (Redis's text) for a letter it does not know."""
    flags: set[str] = set()
    for letter in value.decode("latin-1"):
        if letter == "A":
            flags |= ALL
        elif letter in CLASSES or letter in "KEm":
            flags.add(letter)
        else:
            raise Invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
    return flags


def flags_text(flags: set[str]) -> bytes:
    """Redis's keyspaceEventsFlagsToString: ``A`` or the classes, then K, E, m."""
    text = "A" if ALL <= flags else "".join(c for c in CLASSES if c in flags)
    if ALL <= flags and "n" in flags:
        text += "n"
    text += "".join(c for c in "KEm" if c in flags)
    return text.encode("latin-1")


class Notifier:
    def __init__(self, hub: Any, writes: Any, keyspaces: list[Any]) -> None:
        self.hub = hub
        self.writes = writes
        self.keyspaces = keyspaces
        self.flags: set[str] = set()

    def configure(self, value: bytes) -> bytes:
        """CONFIG SET notify-keyspace-events: the value CONFIG GET shows from now on."""
        flags = parse_flags(value)
        on = bool(flags & {"K", "E"}) and bool(flags - {"K", "E"})
        self.flags = flags
        if on:
            self.writes.add("notify", self._written)
        else:
            self.writes.discard("notify")
        if on and "n" in flags:
            self.writes.add_before("notify-new", self._creating)
        else:
            self.writes.discard("notify-new")
        for db, keyspace in enumerate(self.keyspaces):
            keyspace.on_expire = (lambda key, db=db: self.event("x", "expired", key, db)) if on and "x" in flags \
                else None
        return flags_text(flags)

    def event(self, kind: str, event: str, key: bytes, db: int) -> None:
        if kind not in self.flags:
            return
        name = event.encode()
        if "K" in self.flags:
            self.hub.publish(b"__keyspace@%d__:%s" % (db, key), name)
        if "E" in self.flags:
            self.hub.publish(b"__keyevent@%d__:%s" % (db, name), key)

    def _creating(self, keys: Any, client: Any) -> Any:
        """Before a write: the keys it names that do not exist yet; after it, ``new`` for
        those that do now (Redis's NOTIFY_NEW, sent when a key is added)."""
        db = client.db
        data = self.keyspaces[db].data
        missing = [key for key in keys or () if key not in data]

        def after() -> None:
            for key in missing:
                if key in data:
                    self.event("n", "new", key, db)
        return after

    def _written(self, keys: Any, client: Any, argv: list, reply: bytes) -> None:
        spec = EVENTS.get(argv[0].decode("latin-1").lower())
        if spec is None or keys is None or reply in NOTHING_CHANGED:
            return
        kind, events = spec
        db = client.db
        if isinstance(events, str):
            events = (events,) * len(keys)
        for key, event in zip(keys, events):
            if event is not None:
                self.event(kind, event, key, db)
        data = self.keyspaces[db].data
        for key, event in zip(keys, events):
            if event in REMOVING and key not in data:
                self.event("g", "del", key, db)  # the command emptied the container
