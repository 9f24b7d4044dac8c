"""RESP framing on the I/O thread: every complete command of a read, one batch, one reply.

**Why hiredis.** Cutting requests out of the stream is most of a RESP server's Python
work. hiredis's ``Reader`` (the C parser redis-py itself uses) does it in C, about five
times faster than the best pure-Python parser; the prototypes in PERFORMANCE.md reached
GET -P16 0.69x and SET -P16 0.84x redis-server's requests/s with it, and the issue asks
for it. It is a *reply* parser, though, so it is more lenient than a Redis server (it
reads ``+``, ``:``, nested arrays and RESP3 types inside a request, does not know inline
commands, and cannot say where one command ends when a read stops in the middle of the
next). Hence two paths:

* **fast path** (a read that starts at a command boundary with ``*``): hiredis parses
  the whole read; the result is accepted only if it is a list of commands made of bytes
  whose canonical encoding is exactly as long as the read. That one sum proves both that
  every element was a ``$`` bulk string (anything else encodes to a different length or
  is not bytes) and that the read ended exactly at a command boundary.
* **reference path** (:class:`~netcore_resp.framing.RequestParser`): everything else --
  inline commands, a read that ends inside a command, errors -- is parsed again from the
  last boundary by the Python port of Redis's own parser, with Redis's error replies and
  the configured limits. When it has consumed everything, the fast path resumes.

**One batch per read.** All commands of a read go to ONE ``connection.submit`` whose
reply is their joined replies: one ``send`` per read is what makes pipelining fast.
``connection.requests`` still counts commands.

**Atomicity.** One keyspace per server, built in :meth:`RespProtocol.for_server`. Under
schemes that run handlers on several threads a lock is held around each batch, so every
command (and every batch) is atomic; under ``inline`` there is only the loop thread and no
lock. Under the schemes that run a connection's handlers on a pool (``pool``, ``thread``,
``multi-reactor-pool``) two batches of one connection could run on two threads at once,
out of order -- a pipelined ``SET`` then ``GET`` would race -- so each connection has at
most one batch in flight; what arrives meanwhile is queued and sent as the next batch.

**Errors.** A protocol error answers the commands before it, then ``-ERR Protocol
error: ...``, then closes the connection (``Connection.close`` delivers the reply
first), as Redis does. QUIT answers +OK and closes; nothing after it runs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from typing import TYPE_CHECKING, Any

import hiredis
from netcore.errors import AssemblyError
from netcore.protocol import Protocol
from netcore.reactor.connection import PAUSED_BY_PROTOCOL
from netcore.reactor.deferred import DeferredConnection

from netcore_resp.commands import ServerInfo, build, make_executor
from netcore_resp.expiry import Sweeper
from netcore_resp.framing import RequestParser
from netcore_resp.keyspace import Keyspace

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.server import Server

#: Fast-path tables: encoded length minus payload, by argument length / argument count.
#: Arguments or commands beyond them take the reference path (which enforces the limits).
FAST_BULK_MAX = 65535
FAST_ARGS_MAX = 1024
_NOT_FAST = 1 << 62  # an impossible length: "*0" (ignored by Redis) goes the reference way
_BELOW_10 = bytes(range(10))
#: "*<argc>\r\n" followed by argc times "$<len>\r\n\r\n", to be %-formatted with the lengths.
_SINGLE_MAX = 64
_HEADERS = (b"",) + tuple(b"*%d\r\n" % n + b"$%d\r\n\r\n" * n for n in range(1, _SINGLE_MAX))
_BELOW_100 = bytes(range(100))

#: Under the pool schemes: commands queued behind the batch in flight before reading pauses.
QUEUE_LIMIT = 4096

_client_ids = itertools.count(1)
_chain = itertools.chain.from_iterable


class RespProtocol(Protocol):
    """One client connection. The class attributes below are set by :meth:`for_server`."""

    keyspace: Keyspace
    _execute: Any
    _sweeper: Sweeper
    _limits: tuple[int, int, int]
    _bulk_overhead: Any
    _array_overhead: Any
    _small_limits: bool
    _single_ok: bool

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        #: CLIENT SETNAME / GETNAME / ID
        self.name: bytes | None = None
        self.id = next(_client_ids)
        #: Set by QUIT (possibly on a handler thread).
        self.quit = False
        self._reader = hiredis.Reader()
        self._feed = self._reader.feed
        self._gets = self._reader.gets
        self._parser = RequestParser(*self._limits)
        self._slow = False  # the reference parser holds a partial command
        self._done = False  # a protocol error or QUIT: read nothing more
        self._deferred = False
        self._in_flight = False
        self._queued: list = []
        self._run = functools.partial(self._execute, self)

    # -- assembly ---------------------------------------------------------------------
    @classmethod
    def for_server(cls, server: Server) -> type[RespProtocol]:
        dispatcher = server.dispatcher
        if dispatcher.multiprocess:
            # The assembly check refuses this first; this is the last line of defence.
            raise AssemblyError(f"setting 'dispatch': {server.config.dispatch!r} runs several processes, "
                                "each would have its own resp keyspace")
        threaded = dispatcher.multithread or not dispatcher.uses_poller

        def port() -> int:
            for address in server.addresses:
                head, _, tail = address.rpartition(":")
                if head and tail.isdigit():
                    return int(tail)
            return 0

        return cls.build(server.config, threaded=threaded, poller=server.config.poller if dispatcher.uses_poller
                         else "", port_of=port)

    @classmethod
    def configure(cls, config: Config) -> type[RespProtocol]:
        return cls.build(config, threaded=True)  # not knowing the scheme: assume threads

    @classmethod
    def build(cls, config: Any, *, threaded: bool, poller: str = "", port_of: Any = None) -> type[RespProtocol]:
        """A subclass bound to a new keyspace: the per-connection factory of one server."""
        get = config.get if hasattr(config, "get") else (lambda name, default: default)
        max_bulk = int(get("resp_max_bulk", 512 * 1024 * 1024))
        max_multibulk = int(get("resp_max_multibulk", 1024 * 1024))
        max_inline = int(get("resp_max_inline", 64 * 1024))
        interval = float(get("resp_expire_interval", 0.1))
        sweep_keys = int(get("resp_expire_sweep_keys", 200))
        keyspace = Keyspace()
        lock: Any = threading.Lock() if threaded else contextlib.nullcontext()
        info = ServerInfo(poller=poller, dispatch=str(get("dispatch", "")), port_of=port_of, max_bulk=max_bulk,
                          sweep_interval=interval)
        execute = make_executor(build(keyspace, info))
        if threaded:
            unlocked = execute

            def execute(client: Any, batch: list) -> bytes:
                with lock:
                    return unlocked(client, batch)

        bulk_overhead = tuple(len(str(n)) + 5 for n in range(min(max_bulk, FAST_BULK_MAX) + 1))
        array_overhead = (_NOT_FAST,) + tuple(len(str(n)) + 3 for n in range(1, min(max_multibulk, FAST_ARGS_MAX) + 1))
        return type(cls.__name__, (cls,), {
            "keyspace": keyspace,
            "_execute": staticmethod(execute),
            "_sweeper": Sweeper(keyspace, lock, interval, sweep_keys),
            "_limits": (max_bulk, max_multibulk, max_inline),
            "_bulk_overhead": bulk_overhead.__getitem__,
            # Limits below 256 (bytes or arguments): the bytes-of-lengths check would not see them.
            "_small_limits": max_bulk < 256 or max_multibulk < 256,
            # One read cannot hold a complete argument longer than recv_size.
            "_single_ok": max_bulk >= int(get("recv_size", 65536)) and max_multibulk >= _SINGLE_MAX,
            "_array_overhead": array_overhead.__getitem__,
            "__module__": cls.__module__,
        })

    # -- events from the connection -------------------------------------------------------
    def connection_made(self) -> None:
        connection = self.connection
        if isinstance(connection, DeferredConnection):
            self._deferred = True
            self._call_soon_threadsafe = connection.loop.call_soon_threadsafe
        self._sweeper.attach(connection.loop)

    def data_received(self, data: bytes) -> None:
        if self._slow or data[0] != 42:  # 42: '*'
            self._reference(data)
            return
        self._feed(data)
        try:
            cmds = list(iter(self._gets, False))
            if len(cmds) == 1 and len(cmds[0]) < _SINGLE_MAX and self._single_ok:
                # One command (no pipelining): its headers formatted in one go are cheaper.
                cmd = cmds[0]
                size = len(_HEADERS[len(cmd)] % tuple(map(len, cmd))) + len(b"".join(cmd))
            else:
                size = self._batch_size(cmds)
        except (hiredis.ProtocolError, TypeError, IndexError):
            size = -1
        if size != len(data):
            self._reset_reader()
            self._reference(data)
            return
        if self._deferred:
            self._dispatch_deferred(cmds)
            return
        connection = self.connection
        connection.requests += len(cmds) - 1
        connection.submit(self._run, cmds)
        if self.quit:
            self._finish()

    def _batch_size(self, cmds: list) -> int:
        """The canonical encoding's length of ``cmds``, or -1 when the fast path must not judge.

        Payload (the join also proves every element is bytes) + per argument
        "$<len>\\r\\n" and "\\r\\n" + per command "*<argc>\\r\\n". Digits are counted by
        deleting the lengths below 10 and 100 from a bytes object of lengths: a few C calls
        per read instead of one per argument.
        """
        flat = list(_chain(cmds))
        size = len(b"".join(flat))
        try:
            lens = bytes(map(len, flat))
            argcs = bytes(map(len, cmds))
        except ValueError:  # an argument or argument count >= 256: the table way
            return size + sum(map(self._bulk_overhead, map(len, flat))) + sum(map(self._array_overhead, map(len, cmds)))
        if 0 in argcs or self._small_limits:
            return -1  # "*0" (ignored by Redis), or limits small enough to matter here
        return (size + 6 * len(lens) + len(lens.translate(None, _BELOW_10)) + len(lens.translate(None, _BELOW_100))
                + 4 * len(argcs) + len(argcs.translate(None, _BELOW_10)) + len(argcs.translate(None, _BELOW_100)))

    def _reset_reader(self) -> None:
        """hiredis may hold half a command (or be in an error state): start it afresh."""
        self._reader = hiredis.Reader()
        self._feed = self._reader.feed
        self._gets = self._reader.gets

    def _reference(self, data: bytes) -> None:
        """The Python port of Redis's parser, from the last command boundary on."""
        if self._done:
            return
        parser = self._parser
        cmds, error = parser.feed(data)
        self._slow = not parser.idle
        if error is not None:
            cmds.append((None, error))  # the executor answers this marker with the error
            self._done = True
        if not cmds:
            return
        if self._deferred:
            self._dispatch_deferred(cmds)
            return
        connection = self.connection
        connection.requests += len(cmds) - 1 - (error is not None)
        connection.submit(self._run, cmds)
        if self.quit or self._done:
            self._finish()

    def _finish(self) -> None:
        """After QUIT or a protocol error: read nothing more, close once the replies are out."""
        self._done = True
        self._slow = True  # route any further bytes to _reference, which drops them
        self.connection.close()

    # -- schemes that run a connection's handlers on a pool ----------------------------------
    def _dispatch_deferred(self, cmds: list) -> None:
        if self._in_flight:
            queued = self._queued
            queued.extend(cmds)
            if len(queued) > QUEUE_LIMIT:
                self.connection.pause_reading(PAUSED_BY_PROTOCOL)
            return
        self._submit_deferred(cmds)

    def _submit_deferred(self, cmds: list) -> None:
        connection = self.connection
        self._in_flight = True
        markers = 1 if self._done and cmds[-1][0] is None else 0
        connection.requests += len(cmds) - 1 - markers
        connection.submit(self._run_deferred, cmds)
        if self._done and not self._queued:
            self._finish()  # the protocol error is in the batch just submitted

    def _run_deferred(self, batch: list) -> bytes:
        """Runs on a handler thread; tells the loop when the batch is done (before its reply)."""
        try:
            return self._run(batch)
        finally:
            self._call_soon_threadsafe(self._batch_finished)

    def _batch_finished(self) -> None:
        self._in_flight = False
        connection = self.connection
        if connection.closed:
            return
        if self.quit:
            self._queued.clear()
            self._finish()
            return
        if self._queued:
            batch, self._queued = self._queued, []
            connection.resume_reading(PAUSED_BY_PROTOCOL)
            self._submit_deferred(batch)
