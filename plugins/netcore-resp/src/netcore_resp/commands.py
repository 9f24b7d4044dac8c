"""The commands: each a function ``(argv, client) -> reply bytes``, byte-compatible with Redis 7.0.

:func:`build` makes the command table of one keyspace. The commands are closures over
that keyspace's dicts, so the hot ones (GET, SET, PING) do a handful of dict operations
and return a prebuilt or table-assisted reply; the rest favour plain code. Argument
checks, their order and every error text follow Redis 7.0's ``t_string.c``, ``t_list.c``,
``t_hash.c``, ``expire.c``, ``db.c`` and ``server.c``; the tests compare the bytes with
a real redis-server.

A command answers an error by raising :class:`~netcore_resp.replies.Reply`; QUIT raises
:class:`~netcore_resp.replies.Quit`. :func:`make_executor` runs a batch of commands and
joins their replies, so that a whole read of pipelined commands costs one ``send``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
from typing import Any, Callable

from netcore_resp import bits, blocking, dump, floats, hashes, lcs, lists, sets, sort, streams, strings, zsets
from netcore_resp import info as server_info
from netcore_resp import keys as key_commands
from netcore_resp.blocking import Blocked
from netcore_resp.clients import Clients
from netcore_resp.config import Config
from netcore_resp.context import Context
from netcore_resp.framing import LLONG_MAX, LLONG_MIN, error_reply, string2ll
from netcore_resp.glob import compile_glob
from netcore_resp.info import REDIS_VERSION
from netcore_resp.keyspace import Keyspace, now_ms
from netcore_resp.replies import _BULK_HEADERS as BULK_HEADERS
from netcore_resp.replies import (
    CRLF,
    DB_OUT_OF_RANGE,
    EMPTY_ARRAY,
    HEADER_CACHE,
    MINUS_ONE,
    MINUS_TWO,
    MUST_BE_POSITIVE,
    NIL_ARRAY,
    NOT_INTEGER,
    NULL3,
    OK,
    ONE,
    OVERFLOW,
    PONG,
    SMALL_REPLY,
    STRING_TOO_LONG,
    SYNTAX,
    WRONGPASS,
    WRONGTYPE,
    ZERO,
    Large,
    Quit,
    Reply,
    Switched,
    arity_error,
    array3,
    bulk,
    cstr,
    flat_pairs,
    integer,
    map3,
    maybe_bulk3,
    raw_array,
    status,
    unknown_subcommand,
    verbatim,
)
from netcore_resp.replies import NIL as NIL2
from netcore_resp.replies import NIL_ARRAY as NIL_ARRAY2
from netcore_resp.replies import array as array2
from netcore_resp.replies import maybe_bulk as maybe_bulk2
from netcore_resp.scan import scan_fields, scan_keys
from netcore_resp.stats import CommandStats
from netcore_resp.streaming import PART
from netcore_resp.strings import expire_deadline, string_options

Command = Callable[[list, Any], bytes]


#: name -> (arity, flags, first key, last key, key step): Redis's command table, for
#: the arity check and COMMAND. Arity n > 0: exactly n arguments (name included);
#: n < 0: at least -n.
SPECS: dict[str, tuple[int, tuple[str, ...], int, int, int]] = {
    "ping": (-1, ("fast",), 0, 0, 0),
    "echo": (2, ("fast",), 0, 0, 0),
    "quit": (-1, ("fast", "noscript"), 0, 0, 0),
    "reset": (1, ("noscript", "loading", "stale", "fast"), 0, 0, 0),
    "hello": (-1, ("noscript", "loading", "stale", "fast"), 0, 0, 0),
    "auth": (-2, ("noscript", "loading", "stale", "fast"), 0, 0, 0),
    "select": (2, ("loading", "stale", "fast"), 0, 0, 0),
    "command": (-1, ("loading", "stale"), 0, 0, 0),
    "client": (-2, ("noscript", "loading", "stale"), 0, 0, 0),
    "config": (-2, ("admin", "noscript", "loading", "stale"), 0, 0, 0),
    "function": (-2, ("noscript",), 0, 0, 0),
    "info": (-1, ("loading", "stale"), 0, 0, 0),
    "dbsize": (1, ("readonly", "fast"), 0, 0, 0),
    "flushdb": (-1, ("write",), 0, 0, 0),
    "flushall": (-1, ("write",), 0, 0, 0),
    "get": (2, ("readonly", "fast"), 1, 1, 1),
    "set": (-3, ("write", "denyoom"), 1, 1, 1),
    "getset": (3, ("write", "denyoom", "fast"), 1, 1, 1),
    "setnx": (3, ("write", "denyoom", "fast"), 1, 1, 1),
    "mget": (-2, ("readonly", "fast"), 1, -1, 1),
    "mset": (-3, ("write", "denyoom"), 1, -1, 2),
    "del": (-2, ("write",), 1, -1, 1),
    "unlink": (-2, ("write", "fast"), 1, -1, 1),
    "exists": (-2, ("readonly", "fast"), 1, -1, 1),
    "incr": (2, ("write", "denyoom", "fast"), 1, 1, 1),
    "incrby": (3, ("write", "denyoom", "fast"), 1, 1, 1),
    "decr": (2, ("write", "denyoom", "fast"), 1, 1, 1),
    "decrby": (3, ("write", "denyoom", "fast"), 1, 1, 1),
    "append": (3, ("write", "denyoom"), 1, 1, 1),
    "strlen": (2, ("readonly", "fast"), 1, 1, 1),
    "ttl": (2, ("readonly", "fast"), 1, 1, 1),
    "pttl": (2, ("readonly", "fast"), 1, 1, 1),
    "persist": (2, ("write", "fast"), 1, 1, 1),
    "keys": (2, ("readonly",), 0, 0, 0),
    "type": (2, ("readonly", "fast"), 1, 1, 1),
    "lpush": (-3, ("write", "denyoom", "fast"), 1, 1, 1),
    "rpush": (-3, ("write", "denyoom", "fast"), 1, 1, 1),
    "lpop": (-2, ("write", "fast"), 1, 1, 1),
    "rpop": (-2, ("write", "fast"), 1, 1, 1),
    "lrange": (4, ("readonly",), 1, 1, 1),
    "llen": (2, ("readonly", "fast"), 1, 1, 1),
    "hset": (-4, ("write", "denyoom", "fast"), 1, 1, 1),
    "hget": (3, ("readonly", "fast"), 1, 1, 1),
    "hdel": (-3, ("write", "fast"), 1, 1, 1),
    "hgetall": (2, ("readonly",), 1, 1, 1),
    "scan": (-2, ("readonly",), 0, 0, 0),
    "hscan": (-3, ("readonly",), 1, 1, 1),
    # installed by netcore_resp.transactions
    "multi": (1, ("noscript", "loading", "stale", "fast"), 0, 0, 0),
    "exec": (1, ("noscript", "loading", "stale"), 0, 0, 0),
    "discard": (1, ("noscript", "loading", "stale", "fast"), 0, 0, 0),
    "watch": (-2, ("noscript", "loading", "stale", "fast"), 1, -1, 1),
    "unwatch": (1, ("noscript", "loading", "stale", "fast"), 0, 0, 0),
}
#: Commands of SPECS that other modules add to the table after :func:`build`.
INSTALLED_LATER = {"multi", "exec", "discard", "watch", "unwatch"}

#: The Redis type of a value, by its Python class (TYPE, SCAN's TYPE option).
TYPE_NAMES: dict[type, bytes] = {bytes: b"string", bytearray: b"string", collections.deque: b"list", dict: b"hash", set: b"set",
                                  zsets.ZSet: b"zset", streams.Stream: b"stream"}

ARITY_ERRORS = {name: arity_error(name) for name in SPECS}

#: Commands whose reply is short whatever the data (a status, an integer, a float, or
#: no more than their own arguments): left unwrapped by streaming.count_large, so they
#: pay nothing for the part accounting. GET and SET count their large replies inline.
BOUNDED = frozenset("""
    get set ping echo quit reset hello auth select setnx setex psetex mset msetnx del unlink exists incr incrby
    decr decrby incrbyfloat append strlen setrange setbit getbit bitcount expire pexpire expireat pexpireat
    expiretime pexpiretime ttl pttl persist type touch rename renamenx copy move swapdb dbsize flushdb
    flushall lpush rpush lpushx rpushx llen lset linsert lrem ltrim hset hmset hsetnx hdel hlen hexists
    hstrlen hincrby hincrbyfloat sadd srem scard sismember smismember smove zadd zincrby zrem zcard
    zcount zlexcount zscore zrank zrevrank zremrangebyscore zremrangebyrank zremrangebylex publish
    multi discard watch unwatch
""".split())


RESET = b"+RESET\r\n"


def _arity_ok(n: int, arity: int) -> bool:
    return n == arity if arity > 0 else n >= -arity


def parse_int(value: bytes, error: bytes = NOT_INTEGER) -> int:
    number = string2ll(value)
    if number is None:
        raise Reply(error)
    return number


def unknown_command(argv: list[bytes]) -> bytes:
    """Redis's "unknown command" text: the name and the first 128 bytes of arguments."""
    args = b""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'" + cstr(arg)[:128 - len(args)] + b"' "
    return error_reply(b"unknown command '%s', with args beginning with: %s" % (cstr(argv[0])[:128], args))


NO_SCRIPTING = error_reply("netcore does not implement scripting or functions (EVAL, EVALSHA, SCRIPT, FUNCTION, "
                           "FCALL); FUNCTION FLUSH and FUNCTION LIST answer as for an empty library")


#: Databases per server (SELECT 0-15), Redis's default ``databases 16``.
DATABASES = 16


class ServerInfo:
    """What INFO and CONFIG GET report about the running server; filled by the protocol."""

    def __init__(self, *, poller: str = "", dispatch: str = "", port_of: Callable[[], int] | None = None,
                 max_bulk: int = 0, sweep_interval: float = 0.1, keyspaces: list[Keyspace] | None = None) -> None:
        self.poller = poller
        self.dispatch = dispatch
        self.port_of = port_of or (lambda: 0)
        self.max_bulk = max_bulk
        self.hz = max(1, round(1 / sweep_interval)) if sweep_interval else 10
        self.started = time.monotonic()
        #: The databases (SELECT's index), for the commands that reach across them.
        self.keyspaces = keyspaces if keyspaces is not None else [Keyspace() for _ in range(DATABASES)]
        #: Clients blocked in BLPOP and friends, per database, shared by both protocols' tables.
        self.waiters = [blocking.Waiters(db) for db in range(len(self.keyspaces))]
        self.clients = Clients(lambda: "127.0.0.1:%d" % self.port_of())
        self.stats = CommandStats()
        self.hub: Any = None  # netcore_resp.pubsub.Hub, set by the protocol
        #: ``notify(class, event, key, db)``: a keyspace notification (netcore_resp.notify).
        self.notify: Callable[[str, str, bytes, int], None] = lambda kind, event, key, db: None
        #: ``on_flush(dbs)`` before FLUSHDB/FLUSHALL empties databases (WATCH's marking).
        self.on_flush: Callable[[Any], None] = lambda dbs: None
        #: CONFIG GET/SET's parameters, with the real values netcore has.
        self.config = Config({b"proto-max-bulk-len": b"%d" % (max_bulk or 512 * 1024 * 1024),
                              b"hz": b"%d" % self.hz, b"databases": b"%d" % len(self.keyspaces)})
        self.config.on_resetstat.append(self.stats.reset)


def build(ks: Keyspace, info: ServerInfo, resp3: bool = False, db: int = 0) -> dict[bytes, Command]:
    """The command table (upper- and lower-case names) of keyspace ``ks`` (database ``db``),
    for one protocol.

    ``resp3``: the table of clients that said ``HELLO 3``. The two tables share the
    keyspace and differ only in how replies are typed (null, map, verbatim string), so
    a command never asks which protocol its client speaks: the client's table answers.
    """
    if resp3:
        NIL = NIL_ARRAY = NULL3  # noqa: N806 - the RESP2 constants' RESP3 counterpart
        array = array3  # noqa: N806
        maybe_bulk = maybe_bulk3  # noqa: N806
        pairs = map3
        text = verbatim
    else:
        NIL, NIL_ARRAY, array, maybe_bulk = NIL2, NIL_ARRAY2, array2, maybe_bulk2  # noqa: N806
        pairs = flat_pairs
        text = bulk
    data = ks.data
    expires = ks.expires
    data_get = data.get
    alive = ks.alive
    max_bulk = info.max_bulk or 512 * 1024 * 1024
    arity = ARITY_ERRORS
    table: dict[str, Command] = {}

    def command(fn: Command) -> Command:
        table[fn.__name__.rstrip("_")] = fn
        return fn

    def checked(fn: Command) -> Command:
        """Register ``fn`` behind the generic arity check of its SPECS entry."""
        name = fn.__name__.rstrip("_")
        spec_arity = SPECS[name][0]
        error = arity[name]

        def run(argv: list, client: Any) -> bytes:
            if not _arity_ok(len(argv), spec_arity):
                return error
            return fn(argv, client)

        run.__name__ = fn.__name__
        table[name] = run
        return fn

    def string_value(key: bytes) -> bytes | None:
        value = alive(key)
        if value is not None and value.__class__ is not bytes and value.__class__ is not bytearray:
            raise Reply(WRONGTYPE)
        return value

    def frozen_alive(key: bytes) -> Any:
        value = alive(key)
        return bytes(value) if value.__class__ is bytearray else value

    def typed(key: bytes, kind: type) -> Any:
        value = alive(key)
        if value is not None and value.__class__ is not kind:
            raise Reply(WRONGTYPE)
        return value

    # -- connection --------------------------------------------------------------------
    @command
    def ping(argv, client):
        n = len(argv)
        if n == 1:
            return PONG
        if n == 2:
            return bulk(argv[1])
        return arity["ping"]

    @checked
    def echo(argv, client):
        return bulk(argv[1])

    @checked
    def quit(argv, client):
        raise Quit

    @checked
    def reset(argv, client):
        """RESET: the connection's state as a new connection's (``client.reset_state``), then +RESET.

        Runs at once inside MULTI and in RESP2's subscribed mode (their tables take it).
        """
        client.reset_state()
        raise Switched(RESET)  # the next commands use database 0's RESP2 table

    @checked
    def hello(argv, client):
        """HELLO [2|3 [AUTH user pass] [SETNAME name]]: answered in the protocol it switches to.

        There are no users but ``default`` with no password (Redis's default): AUTH
        succeeds for it with any password, as Redis's ``nopass`` does.
        """
        version = None
        if len(argv) >= 2:
            version = string2ll(argv[1])
            if version is None:
                return error_reply("Protocol version is not an integer or out of range")
            if version not in (2, 3):
                return b"-NOPROTO unsupported protocol version\r\n"
        j = 2
        name = user = None
        while j < len(argv):
            more = len(argv) - 1 - j
            opt = argv[j].lower()
            if opt == b"auth" and more >= 2:
                user = argv[j + 1]
                j += 3
            elif opt == b"setname" and more >= 1:
                name = argv[j + 1]
                j += 2
            else:
                return error_reply(b"Syntax error in HELLO option '%s'" % cstr(argv[j]))
        if user is not None and user != b"default":
            return WRONGPASS
        if name is not None:
            if any(c < 33 or c > 126 for c in name):
                return error_reply("Client names cannot contain spaces, newlines or special characters.")
            client.name = name or None
        proto = version or (3 if resp3 else 2)
        fields = [(b"server", bulk(b"redis")), (b"version", bulk(REDIS_VERSION)), (b"proto", integer(proto)),
                  (b"id", integer(client.id)), (b"mode", bulk(b"standalone")), (b"role", bulk(b"master")),
                  (b"modules", EMPTY_ARRAY)]
        body = b"".join(bulk(k) + v for k, v in fields)
        reply = (b"%%%d\r\n" % len(fields) if proto == 3 else b"*%d\r\n" % (2 * len(fields))) + body
        if proto != (3 if resp3 else 2):
            client.use_protocol(proto)
            raise Switched(reply)  # the rest of the batch runs with the other table
        return reply

    @command
    def auth(argv, client):
        if len(argv) == 2:
            return error_reply("AUTH <password> called without any password configured for the default user. "
                               "Are you sure your configuration is correct?")
        if len(argv) != 3:
            return arity_error("auth")
        return OK if argv[1] == b"default" else WRONGPASS

    @checked
    def select(argv, client):
        index = string2ll(argv[1])
        if index is None:
            return NOT_INTEGER
        if not -(2**31) <= index < 2**31:
            return error_reply("value is out of range, value must between -2147483648 and 2147483647")
        if not 0 <= index < len(info.keyspaces):
            return DB_OUT_OF_RANGE
        client.select(index)
        raise Switched(OK)  # the next commands of the batch use the other database's table

    @checked
    def client_(argv, client):
        sub = argv[1].lower()
        n = len(argv)
        if sub == b"setname":
            if n != 3:
                return arity_error("client|setname")
            name = argv[2]
            if any(c < 33 or c > 126 for c in name):
                return error_reply("Client names cannot contain spaces, newlines or special characters.")
            client.name = name or None
            return OK
        if sub == b"getname":
            if n != 2:
                return arity_error("client|getname")
            return maybe_bulk(client.name)
        if sub == b"id":
            if n != 2:
                return arity_error("client|id")
            return integer(client.id)
        if sub == b"reply":
            mode = argv[2].lower() if n == 3 else b""
            if mode not in (b"on", b"off", b"skip"):
                return SYNTAX
            if not (mode == b"skip" and client.reply_mode == b"off"):  # SKIP does nothing when OFF
                client.reply_mode = None if mode == b"on" else mode
            client.refresh_table()
            raise Switched(OK if mode == b"on" else b"")
        if sub == b"setinfo":
            if n != 4:
                return arity_error("client|setinfo")
            attr = argv[2].lower()
            if attr not in (b"lib-name", b"lib-ver"):
                return error_reply(b"Unrecognized option '%s'" % cstr(argv[2]))
            if any(c < 33 or c > 126 for c in argv[3]):
                return error_reply(b"%s cannot contain spaces, newlines or special characters." % attr)
            if attr == b"lib-name":
                client.lib_name = argv[3]
            else:
                client.lib_ver = argv[3]
            return OK
        if sub == b"list":
            return bulk(info.clients.list_(argv, client))
        if sub == b"info":
            if n != 2:
                return arity_error("client|info")
            return bulk(info.clients.line(client, client) + b"\n")
        if sub == b"kill":
            if n < 3:
                return arity_error("client|kill")
            return info.clients.kill(argv, client)
        if sub == b"unblock":
            if n not in (3, 4):
                return arity_error("client|unblock")
            target = string2ll(argv[2])
            if target is None:
                return NOT_INTEGER
            how = argv[3].lower() if n == 4 else b"timeout"
            if how not in (b"timeout", b"error"):
                return error_reply("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
            other = info.clients.by_id.get(target)
            return ONE if other is not None and other.unblock(how == b"error") else ZERO
        if sub in (b"no-evict", b"no-touch"):
            if n != 3 or argv[2].lower() not in (b"on", b"off"):
                return SYNTAX
            return OK  # no eviction, no LRU clock: nothing to exempt the client from
        return unknown_subcommand(argv)

    @checked
    def command_(argv, client):
        if len(argv) == 1:
            return raw_array([command_info(name) for name in SPECS])
        sub = argv[1].lower()
        if sub == b"count":
            if len(argv) != 2:
                return arity_error("command|count")
            return integer(len(SPECS))
        if sub == b"info":
            names = [name.lower().decode("latin-1") for name in argv[2:]]
            return raw_array([command_info(name) if name in SPECS else NIL for name in names])  # unknown: a null
        if sub == b"docs":
            return EMPTY_ARRAY  # no documentation: clients (redis-cli hints) fall back
        if sub == b"list":
            return array([name.encode() for name in SPECS])
        return unknown_subcommand(argv)

    settings = info.config

    @checked
    def config(argv, client):
        if settings.values[b"port"] == b"0":
            settings.values[b"port"] = b"%d" % info.port_of()
        reply = settings.command(argv, pairs)
        return unknown_subcommand(argv) if reply is None else reply

    @checked
    def function(argv, client):
        sub = argv[1].lower()
        if sub == b"flush" and len(argv) <= 3:
            return OK  # there are no functions: flushing them is done
        if sub == b"list":
            return EMPTY_ARRAY
        return NO_SCRIPTING

    def no_scripting(argv, client):
        return NO_SCRIPTING

    for name in ("eval", "evalsha", "eval_ro", "evalsha_ro", "script", "fcall", "fcall_ro"):
        table[name] = no_scripting

    @checked
    def info_(argv, client):
        return text(server_info.report(info, argv[1:]))

    # -- keyspace ----------------------------------------------------------------------
    @checked
    def dbsize(argv, client):
        return integer(len(data))

    def flush(argv, dbs):
        if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"async", b"sync")):
            return SYNTAX
        info.on_flush(dbs)
        for index in dbs:
            info.keyspaces[index].clear()
        return OK

    @checked
    def flushdb(argv, client):
        return flush(argv, (db,))

    @checked
    def flushall(argv, client):
        return flush(argv, range(len(info.keyspaces)))

    @checked
    def del_(argv, client):
        delete = ks.delete
        return integer(sum(1 for key in argv[1:] if delete(key)))

    def unlink(argv, client):
        return del_(argv, client)

    checked(unlink)

    @checked
    def exists(argv, client):
        return integer(sum(1 for key in argv[1:] if alive(key) is not None))

    @checked
    def type_(argv, client):
        value = alive(argv[1])
        if value is None:
            return b"+none\r\n"
        return b"+%s\r\n" % TYPE_NAMES[value.__class__]

    def type_name(value: Any) -> bytes:
        return TYPE_NAMES[value.__class__]

    @checked
    def scan(argv, client):
        return scan_keys(ks, type_name, argv)

    @checked
    def hscan(argv, client):
        return scan_fields(argv, lambda key: typed(key, dict))

    @checked
    def keys(argv, client):
        pattern = argv[1]
        now = now_ms()
        live = [key for key in data if not (key in expires and expires[key] <= now)] if expires else list(data)
        if pattern != b"*":
            live = list(filter(compile_glob(pattern), live))
        return array(live)

    # -- expiry (EXPIRE, PEXPIRE and the AT forms: netcore_resp.keys) -----------------
    def ttl_generic(key, in_ms):
        if alive(key) is None:
            return MINUS_TWO
        when = ks.deadline(key)
        if when == -1:
            return MINUS_ONE
        left = max(0, when - now_ms())
        return integer(left if in_ms else (left + 500) // 1000)

    @checked
    def ttl(argv, client):
        return ttl_generic(argv[1], False)

    @checked
    def pttl(argv, client):
        return ttl_generic(argv[1], True)

    @checked
    def persist(argv, client):
        if alive(argv[1]) is None:
            return ZERO
        return ONE if ks.persist(argv[1]) else ZERO

    # -- strings -----------------------------------------------------------------------
    arity_get = arity["get"]
    crlf = CRLF
    headers = BULK_HEADERS
    small_reply = SMALL_REPLY
    assert small_reply <= HEADER_CACHE

    @command
    def get(argv, client):
        if len(argv) != 2:
            return arity_get
        key = argv[1]
        value = data_get(key)
        if value is None:
            return NIL
        if expires and key in expires and expires[key] <= now_ms():
            ks._expire(key)
            return NIL
        if value.__class__ is not bytes and value.__class__ is not bytearray:
            return WRONGTYPE
        n = len(value)  # a bytearray (grown in place by APPEND...) is copied by the + below
        if n < small_reply:
            return headers[n] + value + crlf
        raise Large(b"$%d\r\n" % n + value + crlf)  # counted towards the batch's part

    @command
    def set_(argv, client):
        if len(argv) == 3:  # plain SET key value: the hot case
            key = argv[1]
            data[key] = argv[2]
            if expires and key in expires:
                del expires[key]
            return OK
        if len(argv) < 3:
            return arity["set"]
        reply = set_with_options(argv)
        if len(reply) >= small_reply:  # SET ... GET of a large old value
            raise Large(reply)
        return reply

    def set_with_options(argv):
        flags, unit, expire = string_options(argv, 3, True)
        when = None if unit is None else expire_deadline(expire, unit, "set")
        key = argv[1]
        old_reply = b""
        get_ = b"get" in flags
        if get_:
            old_reply = maybe_bulk(string_value(key))
        found = alive(key) is not None
        if (found and b"nx" in flags) or (not found and b"xx" in flags):
            return old_reply if get_ else NIL
        data[key] = argv[2]
        if b"keepttl" not in flags and expires:
            expires.pop(key, None)
        if when is not None:
            if when <= now_ms():
                ks.delete(key)
            else:
                ks.set_deadline(key, when)
        return old_reply if get_ else OK

    @checked
    def getset(argv, client):
        key = argv[1]
        old = string_value(key)
        data[key] = argv[2]
        if expires:
            expires.pop(key, None)
        return maybe_bulk(old)

    @checked
    def setnx(argv, client):
        key = argv[1]
        if alive(key) is not None:
            return ZERO
        data[key] = argv[2]
        return ONE

    @checked
    def mget(argv, client):
        values = []
        for key in argv[1:]:
            value = alive(key)
            values.append(value if value.__class__ is bytes or value.__class__ is bytearray else None)
        return array(values)

    @checked
    def mset(argv, client):
        if len(argv) % 2 == 0:
            return arity["mset"]
        for i in range(1, len(argv), 2):
            key = argv[i]
            data[key] = argv[i + 1]
            if expires:
                expires.pop(key, None)
        return OK

    def incr_by(key: bytes, delta: int) -> bytes:
        old = string_value(key)
        current = 0 if old is None else parse_int(old)
        value = current + delta
        if not LLONG_MIN <= value <= LLONG_MAX:
            return OVERFLOW
        data[key] = b"%d" % value  # an existing deadline is kept, as in Redis
        return integer(value)

    @checked
    def incr(argv, client):
        return incr_by(argv[1], 1)

    @checked
    def decr(argv, client):
        return incr_by(argv[1], -1)

    @checked
    def incrby(argv, client):
        return incr_by(argv[1], parse_int(argv[2]))

    @checked
    def decrby(argv, client):
        delta = parse_int(argv[2])
        if delta == LLONG_MIN:
            return error_reply("decrement would overflow")
        return incr_by(argv[1], -delta)

    @checked
    def append(argv, client):
        key = argv[1]
        old = string_value(key)
        piece = argv[2]
        if old is None:
            data[key] = piece
            return integer(len(piece))
        if len(old) + len(piece) > max_bulk:
            return STRING_TOO_LONG
        if piece:
            if old.__class__ is bytes:
                # From now on the value grows in place (Redis's SDS with spare room):
                # one copy here, then each APPEND costs its own argument, amortised.
                old = data[key] = bytearray(old)
            old += piece
        return integer(len(old))

    @checked
    def strlen(argv, client):
        value = string_value(argv[1])
        return ZERO if value is None else integer(len(value))

    # -- lists -------------------------------------------------------------------------
    def push(argv, left):
        key = argv[1]
        items = typed(key, collections.deque)
        if items is None:
            items = data[key] = collections.deque()
        if left:
            items.extendleft(argv[2:])
        else:
            items.extend(argv[2:])
        return integer(len(items))  # its waiters are served after the command (blocking.Waiters)

    @checked
    def lpush(argv, client):
        return push(argv, True)

    @checked
    def rpush(argv, client):
        return push(argv, False)

    def pop(argv, left):
        if len(argv) > 3:
            return arity["lpop" if left else "rpop"]
        count = None
        if len(argv) == 3:
            count = parse_int(argv[2], MUST_BE_POSITIVE)
            if count < 0:
                return MUST_BE_POSITIVE
        key = argv[1]
        items = typed(key, collections.deque)
        if items is None:
            return NIL if count is None else NIL_ARRAY
        if count == 0:
            return EMPTY_ARRAY
        take = items.popleft if left else items.pop
        if count is None:
            reply = bulk(take())
        else:
            reply = array([take() for _ in range(min(count, len(items)))])
        if not items:
            ks.delete(key)
        return reply

    @checked
    def lpop(argv, client):
        return pop(argv, True)

    @checked
    def rpop(argv, client):
        return pop(argv, False)

    @checked
    def lrange(argv, client):
        start = parse_int(argv[2])
        stop = parse_int(argv[3])
        items = typed(argv[1], collections.deque)
        if items is None:
            return EMPTY_ARRAY
        n = len(items)
        if start < 0:
            start += n
        if stop < 0:
            stop += n
        if start < 0:
            start = 0
        if start > stop or start >= n:
            return EMPTY_ARRAY
        stop = min(stop, n - 1)
        if start > n - 1 - stop:  # nearer the tail: walk from there (a deque has no O(1) middle)
            return array(list(itertools.islice(reversed(items), n - 1 - stop, n - start))[::-1])
        return array(list(itertools.islice(items, start, stop + 1)))

    @checked
    def llen(argv, client):
        items = typed(argv[1], collections.deque)
        return ZERO if items is None else integer(len(items))

    # -- hashes ------------------------------------------------------------------------
    @checked
    def hset(argv, client):
        if len(argv) % 2 == 1:
            return arity["hset"]
        key = argv[1]
        fields = typed(key, dict)
        if fields is None:
            fields = data[key] = {}
        added = 0
        for i in range(2, len(argv), 2):
            if argv[i] not in fields:
                added += 1
            fields[argv[i]] = argv[i + 1]
        return integer(added)

    @checked
    def hget(argv, client):
        fields = typed(argv[1], dict)
        return NIL if fields is None else maybe_bulk(fields.get(argv[2]))

    @checked
    def hdel(argv, client):
        key = argv[1]
        fields = typed(key, dict)
        if fields is None:
            return ZERO
        removed = 0
        for field in argv[2:]:
            if fields.pop(field, None) is not None:
                removed += 1
        if not fields:
            ks.delete(key)
        return integer(removed)

    @checked
    def hgetall(argv, client):
        fields = typed(argv[1], dict)
        if not fields:
            return pairs([])
        return pairs(list(fields.items()))

    ctx = Context(ks=ks, data=data, alive=alive, typed=typed, string_value=string_value, resp3=resp3, nil=NIL,
                  nil_array=NIL_ARRAY, array=array, maybe_bulk=maybe_bulk, pairs=pairs, table=table, specs=SPECS,
                  waiters=info.waiters[db], db=db, info=info)
    blocking.install(ctx, info.waiters[db])
    for module in (sets, zsets, streams, hashes, lists, sort, key_commands):
        module.install(ctx)
    # DUMP encodes the value it is given: a string grown in place (bytearray) as bytes.
    dump.install(dataclasses.replace(ctx, alive=frozen_alive))
    strings.install(ctx, max_bulk)
    floats.install(ctx)  # INCRBYFLOAT, in long double as Redis computes it
    bits.install(ctx, max_bulk)
    lcs.install(ctx, max_bulk)
    key_commands.install_server(ctx)

    missing = set(SPECS) - set(table) - INSTALLED_LATER
    assert not missing, f"commands without an implementation: {missing}"
    by_name: dict[bytes, Command] = {}
    for name, fn in table.items():
        by_name[name.encode()] = fn
        by_name[name.upper().encode()] = fn
    return by_name


def command_info(name: str) -> bytes:
    """One entry of COMMAND / COMMAND INFO (Redis 7's ten fields), or nil if unknown."""
    spec = SPECS.get(name)
    if spec is None:
        return NIL_ARRAY
    arity, flags, first, last, step = spec
    return raw_array([
        bulk(name.encode()), integer(arity) if arity >= 0 else b":%d\r\n" % arity,
        raw_array([status(f.encode()) for f in flags]),
        integer(first), integer(last) if last >= 0 else b":%d\r\n" % last, integer(step),
        EMPTY_ARRAY, EMPTY_ARRAY, EMPTY_ARRAY, EMPTY_ARRAY,
    ])


#: ``more`` from the executor when a command blocked (truthy: the batch is not done).
BLOCKED: Any = type("Blocked", (), {"__repr__": lambda self: "BLOCKED"})()


def make_executor(part: int = PART) -> Callable[..., Any]:
    """``run(client, commands, first=True)``: run a batch's commands in order, join their replies.

    Commands look up in one dict get in the client's table (``client.table``: RESP2's or
    RESP3's; it holds the lower- and upper-case names); mixed case, unknown names and the
    protocol-error marker take the slow way. An error in one command answers that
    command only. QUIT ends the batch, and a later batch of the same client runs nothing:
    with handlers on other threads, what was read while QUIT ran has been submitted
    already, and the connection answers it before closing.

    **Parts.** Once the replies pass ``part`` bytes the batch stops: the caller sends that
    part and runs the rest later from the same iterator (:mod:`netcore_resp.streaming`),
    so a long pipeline of large replies never becomes one huge reply. Only replies a
    command raised as :class:`~netcore_resp.replies.Large` (and the rare ``Switched``
    ones: EXEC's) are counted, so the common batch of small replies pays no size check
    per command; a command that can answer big raises it (GET inline, the others through
    :func:`netcore_resp.streaming.count_large`).

    ``first`` True (a batch as submitted, on the thread that runs it): the result is the
    reply, or what ``client.more`` makes of a batch that streams or blocks -- one call
    per batch, no tuple. ``first`` False (the rest of a batch, or a caller that must leave
    the keyspace lock before streaming): ``(reply, more)``, ``more`` truthy when the batch
    is not done (:data:`BLOCKED` when a command blocked).
    """
    def other(argv: list, client: Any) -> bytes:
        name = argv[0]
        if name is None:  # the marker a protocol error leaves at the end of a batch
            return argv[1]
        fn = client.table.get(name.lower())
        if fn is None:
            if client.multi is not None:
                client.multi_error = True  # EXEC will answer EXECABORT
            if client.reply_mode is not None:  # CLIENT REPLY OFF / SKIP: not even this error
                if client.reply_mode == b"skip":
                    client.reply_mode = None
                    client.refresh_table()
                    raise Switched(b"")
                return b""
            return unknown_command(argv)
        return fn(argv, client)

    def run(client: Any, commands: Any, first: bool = True) -> Any:
        out: list[bytes] = []
        append = out.append
        size = 0
        lookup = client.table.get
        commands = iter(commands)
        more: Any = False
        try:
            for argv in commands:
                try:
                    append(lookup(argv[0], other)(argv, client))
                except Reply as error:
                    reply = error.reply
                    append(reply)
                    cls = error.__class__
                    if cls is Large or cls is Switched:
                        if cls is Switched:  # HELLO, MULTI, EXEC: the next commands use the new table
                            lookup = client.table.get
                        size += len(reply)
                        if size > part:
                            more = True
                            break
                except Blocked:  # BLPOP must wait: keep the batch's state on the client
                    client.block_head = b"".join(out)
                    client.block_rest = commands
                    out = []
                    more = BLOCKED
                    break
                except Exception as exc:  # a bug in a command: its reply only, never the server
                    append(error_reply(b"internal error in '%s': %s" % (cstr(argv[0])[:128],
                                                                         type(exc).__name__.encode())))
        except Quit:
            append(OK)
            client.quit = True
        reply = b"".join(out)
        if not first:
            return reply, more
        return client.more(reply, commands, more) if more else reply

    return run
