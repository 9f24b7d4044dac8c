"""RESP framing on the I/O thread: every complete command of a read, one batch, one reply.

**Two paths.** Cutting requests out of the stream is most of a RESP server's Python work.

* **fast path** (no partial command held): the read goes to a splitter
  (:mod:`netcore_resp.splitting`: a C scan where it was built, else hiredis's reader and
  a length proof), which returns the read's commands only when the read is entirely
  complete canonical requests within the limits, and None otherwise.
* **reference path** (:class:`~netcore_resp.framing.RequestParser`): everything else --
  inline commands, a read that ends inside a command, errors -- is parsed again from the
  last boundary by the Python port of Redis's own parser, with Redis's error replies and
  the configured limits. When it has consumed everything, the fast path resumes.

**One batch per read.** All commands of a read go to ONE
``connection.submit(handler, batch, count=n)`` whose reply is their joined replies: one
``send`` per read is what makes pipelining fast. ``count`` keeps the ``requests``
statistic counting commands, not reads (the protocol-error marker is not a command).

**Atomicity and order.** One set of databases per server, built in :meth:`RespProtocol.for_server`
from ``server.concurrency``. Where handlers may run on several threads, or where there is
no event loop (the expiry sweep then runs on a thread of its own beside the serving one),
a lock is held around each batch, so every command (and every batch) is atomic; under
``inline`` there is only the loop thread and no lock. Under the schemes that run handlers
on other threads (``pool``, ``thread``, ``multi-reactor-pool``, ...) two batches of one
connection could run on two threads at once, out of order -- a pipelined ``SET`` then
``GET`` would race. ``serial = True`` is the cure: the connection keeps at most one batch
in flight, queues the next ones in order and stops reading while too many wait; under
the other schemes it costs nothing.

**Errors and QUIT.** A protocol error answers the commands before it, then ``-ERR
Protocol error: ...``, then closes the connection, as Redis does; QUIT answers +OK and
closes. Both closes happen in :meth:`RespProtocol.job_done`, on the I/O thread once the
batch's reply is with the connection: with a handler thread that is the first moment the
I/O thread can know QUIT ran, and it is never before the reply, under any scheme.
Nothing after QUIT runs: the rest of its batch is skipped, and a batch read while QUIT
was still running (already submitted, so the connection answers it before closing)
finds ``quit`` set and runs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from netcore.errors import AssemblyError
from netcore.protocol import LATER, ConnectionClosed, Protocol

from netcore_resp.clients import Clients
from netcore_resp.commands import BLOCKED, BOUNDED, DATABASES, SPECS, ServerInfo, build, make_executor, unknown_command
from netcore_resp.expiry import Sweeper
from netcore_resp.framing import RequestParser
from netcore_resp.keyspace import Keyspace
from netcore_resp.notify import Notifier
from netcore_resp.pubsub import Hub, OutputLimit
from netcore_resp.pubsub import install as install_pubsub
from netcore_resp.replies import NIL, NIL_ARRAY, NULL3, Reply, Switched
from netcore_resp.splitting import COMPILED, splitter_factory
from netcore_resp.streaming import TURN, YIELD, ReplyStream, count_large
from netcore_resp.transactions import Watches, install
from netcore_resp.writes import WriteHooks

if TYPE_CHECKING:
    from netcore.config import Config
    from netcore.server import Server

log = structlog.get_logger("netcore.resp")

UNBLOCKED = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
_client_ids = itertools.count(1)
_now = time.monotonic


def _arity_of(name: bytes) -> int | None:
    spec = SPECS.get(name.decode("latin-1"))
    return None if spec is None else spec[0]


class RespProtocol(Protocol):
    """One client connection. The class attributes below are set by :meth:`for_server`."""

    #: A connection's batches must run one at a time, in order (see the module docstring).
    serial = True

    keyspace: Keyspace
    _execute: Any
    _run_part: Any
    _tables: dict[tuple[int, int], Any]
    _clients: Clients
    _watches: Watches
    _queueing: dict[int, Any]
    _subscribed2: Any
    _hub: Hub
    _silent: dict
    #: CLIENT REPLY: None (on), b"off" or b"skip"
    reply_mode: bytes | None = None
    _waiters: Any
    _lock: Any
    #: The command table of the protocol this client speaks (RESP2 until HELLO 3).
    table: Any
    #: 2 or 3 (CLIENT INFO's ``resp=``)
    proto = 2
    _sweeper: Sweeper
    _limits: tuple[int, int, int]
    _query_limit: int
    _new_splitter: Any
    _event_loop: bool
    _stream_on_io_thread: bool = False

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        #: CLIENT SETNAME / GETNAME / ID
        self.name: bytes | None = None
        self.id = next(_client_ids)
        #: Set by QUIT (possibly on a handler thread).
        self.quit = False
        self._split = self._new_splitter()
        self._parser = RequestParser(*self._limits)
        self._slow = False  # the reference parser holds a partial command
        self._done = False  # a protocol error or QUIT: read nothing more
        self._run = functools.partial(self._execute, self)
        #: A streamed batch waiting for output to drain (I/O-thread schemes only).
        self._paused: ReplyStream | None = None
        #: MULTI's queue (None: not in a transaction), and whether a command was refused.
        self.multi: list | None = None
        self.multi_error = False
        #: WATCHed keys, and whether one of them was written since.
        self.watching: set[tuple[int, bytes]] = set()
        self.watched_alive: set[tuple[int, bytes]] = set()
        self.dirty = False
        #: Pub/Sub: subscriptions, and output on its way to this client's loop.
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.pubsub_in_transit = 0
        self.pubsub_soft_since = 0.0
        self.pubsub_closing = False
        #: BLPOP & co. (netcore_resp.blocking): what the client waits for, the reply once
        #: served, and the batch around the blocked command.
        self.blocked: tuple | None = None
        self.block_reply: bytes | None = None
        self.block_head = b""
        self.block_rest: Any = None
        self.in_exec = False
        #: The client sent FIN (read, or reported behind unread input): it is not blocked again.
        self.peer_gone = False
        #: A graceful stop was announced (stop_requested): a command that blocks ends it.
        self._stop_asked = False
        #: SELECT's database; CLIENT LIST's age, idle and CLIENT SETINFO's library.
        self.db = 0
        self.created = self.active = _now()
        self.lib_name = self.lib_ver = b""

    # -- assembly ---------------------------------------------------------------------
    @classmethod
    def for_server(cls, server: Server) -> type[RespProtocol]:
        concurrency = server.concurrency
        if concurrency.multiprocess:
            # The assembly check refuses this first; this is the last line of defence.
            raise AssemblyError(f"setting 'dispatch': {server.config.dispatch!r} runs several processes, "
                                "each would have its own resp keyspace")
        if not COMPILED:
            log.warning("resp.splitter_not_compiled", effect="pipelined commands cost about 0.8 us more each",
                        fix="install a C compiler and Python's headers (Debian: python3-dev), then reinstall "
                            "netcore-resp")
        event_loop = concurrency.event_loop
        # Without a loop the expiry sweep is a thread beside the serving one, even under
        # iterative (one serving thread, multithread False): the keyspace needs the lock.
        threaded = concurrency.multithread or not event_loop

        def port() -> int:
            for address in server.addresses:
                head, _, tail = address.rpartition(":")
                if head and tail.isdigit():
                    return int(tail)
            return 0

        return cls.build(server.config, threaded=threaded, event_loop=event_loop,
                         poller=server.config.poller if event_loop else "", port_of=port,
                         stream_on_io_thread=event_loop and concurrency.handler_threads)

    @classmethod
    def configure(cls, config: Config) -> type[RespProtocol]:
        return cls.build(config, threaded=True)  # not knowing the scheme: assume threads

    @classmethod
    def build(cls, config: Any, *, threaded: bool, event_loop: bool = True, poller: str = "",
              port_of: Any = None, stream_on_io_thread: bool = False) -> type[RespProtocol]:
        """A subclass bound to a new keyspace: the per-connection factory of one server.

        ``event_loop`` False: connections have no loop, the expiry sweep gets a thread.
        ``stream_on_io_thread``: handlers run on threads beside a loop, and a long reply is
        streamed from the loop instead (see :meth:`stream`).
        """
        get = config.get if hasattr(config, "get") else (lambda name, default: default)
        max_bulk = int(get("resp_max_bulk", 512 * 1024 * 1024))
        max_multibulk = int(get("resp_max_multibulk", 1024 * 1024))
        max_inline = int(get("resp_max_inline", 64 * 1024))
        interval = float(get("resp_expire_interval", 0.1))
        sweep_keys = int(get("resp_expire_sweep_keys", 200))
        keyspaces = [Keyspace() for _ in range(DATABASES)]
        # Reentrant: a command holding it (PUBLISH) may drop a subscriber of the same
        # thread past its output limit, whose connection_lost takes it again.
        lock: Any = threading.RLock() if threaded else contextlib.nullcontext()
        info = ServerInfo(poller=poller, dispatch=str(get("dispatch", "")), port_of=port_of, max_bulk=max_bulk,
                          sweep_interval=interval, keyspaces=keyspaces)
        # One table per protocol and database: a command's closures hold its keyspace,
        # so SELECT is a table switch and a command never looks its database up.
        tables = {(version, db): build(keyspaces[db], info, resp3=version == 3, db=db)
                  for db in range(DATABASES) for version in (2, 3)}
        hub = Hub(OutputLimit(*(int(get(f"resp_pubsub_output_{bound}", default)) for bound, default in
                                (("hard", 32 * 1024 * 1024), ("soft", 8 * 1024 * 1024), ("seconds", 60)))))
        limit = hub.limit
        info.config.values.update({
            b"client-query-buffer-limit": b"%d" % int(get("resp_client_query_buffer_limit", 1024 * 1024 * 1024)),
            b"client-output-buffer-limit": b"normal 0 0 0 slave 268435456 67108864 60 pubsub %d %d %d" % (
                limit.hard, limit.soft, limit.seconds),
        })
        subscribed2: dict = {}
        install_pubsub(list(tables.values()), tables[(2, 0)], subscribed2, hub, SPECS)  # first: MULTI queues them
        queueing: dict[int, dict] = {2: {}, 3: {}}
        writes = WriteHooks(SPECS, [*tables.values(), *queueing.values()])
        info.stats.attach(writes)
        info.hub = hub
        notifier = Notifier(hub, writes, keyspaces)
        info.config.on_set[b"notify-keyspace-events"] = notifier.configure
        info.notify = notifier.event
        watches = Watches(writes, keyspaces)
        info.on_flush = watches.flushing
        for waiters in info.waiters:
            waiters.attach(writes, watches.touch)

        def after_exec() -> None:
            for waiters in info.waiters:
                waiters.after_exec()

        for (version, _), table in tables.items():
            install(table, queueing[version], watches, nil_array=NULL3 if version == 3 else NIL_ARRAY,
                    arity_of=_arity_of, unknown=unknown_command, after_exec=after_exec)
        run = make_executor()
        count_large(tables.values(), BOUNDED)
        if threaded:
            # The lock is held per part, not per batch: a streamed batch sends without it.
            def execute(client: Any, batch: list) -> Any:
                commands = iter(batch)
                with lock:
                    reply, more = run(client, commands, False)
                return client.more(reply, commands, more) if more else reply

            def run_part(client: Any, commands: Any) -> tuple[bytes, bool]:
                with lock:
                    return run(client, commands, False)
        else:
            execute = run  # the common case: the batch runs in one call

            def run_part(client: Any, commands: Any) -> tuple[bytes, bool]:
                return run(client, commands, False)

        return type(cls.__name__, (cls,), {
            "keyspace": keyspaces[0],
            "_execute": staticmethod(execute),
            "_run_part": staticmethod(run_part),
            "_tables": tables,
            "_watches": watches,
            "_queueing": queueing,
            "_subscribed2": subscribed2,
            "_hub": hub,
            "_silent": {},
            "_waiters": info.waiters,
            "_lock": lock,
            "table": tables[(2, 0)],
            "_clients": info.clients,
            "_sweeper": Sweeper(keyspaces, lock, interval, sweep_keys),
            "_limits": (max_bulk, max_multibulk, max_inline),
            "_query_limit": int(get("resp_client_query_buffer_limit", 1024 * 1024 * 1024)),
            "_new_splitter": staticmethod(splitter_factory(max_bulk, max_multibulk, int(get("recv_size", 65536)))),
            "_event_loop": event_loop,
            "_stream_on_io_thread": stream_on_io_thread,
            "__module__": cls.__module__,
        })

    # -- events from the connection -------------------------------------------------------
    def connection_made(self) -> None:
        # The first connection starts the sweep: on its loop, or (None) on a thread. A
        # connection of a blocking scheme has no loop to offer, whatever attribute it has.
        self._sweeper.attach(getattr(self.connection, "loop", None) if self._event_loop else None)
        self._clients.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        """A client that leaves stops watching (its keys' watcher sets must not keep it)."""
        self._clients.remove(self)
        if self.watching or self.channels or self.patterns:
            with self._lock:
                self._watches.unwatch(self)
                self._hub.drop(self)
        if self.blocked is not None:
            with self._lock:
                self._waiters[self.db].drop(self)

    def eof_received(self) -> None:
        """The client closed (FIN). Replies owed are still written, but a blocked command
        is dropped at once, as Redis frees a client whose read returns 0: a push must not
        hand its value to a client that is gone, and timeout 0 would hold the fd for ever."""
        self.peer_gone = True
        self._drop_if_blocked()

    def eof_pending(self) -> None:
        """The client's FIN arrived while reading was paused (a blocked client behind a full
        queue): dropped as at :meth:`eof_received`, without reading what it sent before."""
        self.peer_gone = True
        self._drop_if_blocked()

    def stop_requested(self) -> None:
        """A graceful stop: a client blocked in BLPOP & co. is closed now, as redis-server
        closes its clients at shutdown.

        It owes nothing: the replies of the commands before the blocked one went out when
        it blocked (``_arm_block_timeout``), and what it pipelined after is never run.
        Left waiting it would hold the drain until ``graceful_timeout`` (with timeout 0
        for ever). Every other client is closed by the core once nothing is owed
        (:mod:`netcore.reactor.drain`).
        """
        self._stop_asked = True
        with self._lock:
            waiting = self.blocked is not None and self.block_reply is None
            if waiting:
                self._waiters[self.db].drop(self)  # a push must not serve it now
        if waiting:
            self.connection.discard_waiting()
            self.connection.job_finished(None)  # the held submission ends without a reply
            self.connection.close()  # what is queued goes out, then FIN

    def _drop_if_blocked(self) -> None:
        with self._lock:
            waiting = self.blocked is not None and self.block_reply is None
            if waiting:
                # Under the lock, so that no push serves this client between the test and
                # the close (the value would go with the connection).
                self._waiters[self.db].drop(self)
        if waiting:
            self.connection.discard_waiting()
            self.connection.abort()

    def data_received(self, data: bytes) -> None:
        self.active = _now()  # CLIENT LIST's idle: one clock read per read, not per command
        cmds = None if self._slow else self._split(data)
        if cmds is None:
            self._reference(data)
            return
        self.connection.submit(self._run, cmds, count=len(cmds))

    def _reference(self, data: bytes) -> None:
        """The Python port of Redis's parser, from the last command boundary on."""
        if self._done:
            return
        parser = self._parser
        cmds, error = parser.feed(data)
        self._slow = not parser.idle
        if self._slow and parser.buffered > self._query_limit:
            # Redis's client-query-buffer-limit: the client is closed, without a reply
            # (Redis logs a warning; here the error counter counts it).
            self._done = True
            self.connection.count_error()
            self.connection.discard_waiting()
            self.connection.close()
            return
        if error is not None:
            cmds.append((None, error))  # the executor answers this marker with the error
            self._done = True  # read nothing more; job_done closes once the error is answered
            self._slow = True  # any further bytes go to this method, which drops them
        if cmds:
            self.connection.submit(self._run, cmds, count=len(cmds) - (error is not None))

    def plain_table(self) -> Any:
        """The table of this client's protocol and database, outside MULTI and subscriptions."""
        return self._tables[(self.proto, self.db)]

    def select(self, db: int) -> None:
        """SELECT: from the next command on, this client's commands work on database ``db``."""
        self.db = db
        self.refresh_table()

    def use_protocol(self, version: int) -> None:
        """HELLO switched protocols: from now on this client's commands answer in ``version``."""
        self.proto = version
        self.refresh_table()

    def reset_state(self) -> None:
        """RESET (under the keyspace lock), as Redis's ``clearClientConnectionState``: MULTI
        discarded, keys unwatched, every subscription dropped (no unsubscribe messages),
        database 0, RESP2, CLIENT REPLY ON and no name; CLIENT SETINFO's library stays.
        The caller raises ``Switched`` so that the batch goes on with the new table."""
        self.multi = None
        self.multi_error = False
        if self.watching:
            self._watches.unwatch(self)
        self.dirty = False
        if self.channels or self.patterns:
            self._hub.drop(self)
        self.db = 0
        self.proto = 2
        self.reply_mode = None
        self.name = None
        self.refresh_table()

    def refresh_table(self) -> None:
        """The command table for this client's state: in MULTI, RESP2 subscribed, or plain."""
        if self.multi is not None:
            self.table = self._queueing[self.proto]
        elif self.proto == 2 and (self.channels or self.patterns):
            self.table = self._subscribed2
        else:
            self.table = self._tables[(self.proto, self.db)]
        if self.reply_mode is not None:
            self.table = self._silenced(self.table, self.reply_mode)

    def _silenced(self, table: dict, mode: bytes) -> dict:
        """CLIENT REPLY OFF/SKIP: the table whose commands answer nothing (SKIP: one of them).

        A table of its own, like MULTI's, so that the commands of clients that want their
        replies pay nothing for the feature. CLIENT itself answers, so that REPLY ON does.
        """
        cache = self._silent
        # (Un)subscribe confirmations are Pub/Sub output, which CLIENT REPLY never silences
        # (RESP3 push messages; in RESP2 too since Redis 7.2, whose suite checks it).
        keep = (b"client", b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe")
        if mode == b"off":
            # RESET turns replies back on before it answers; under SKIP its reply is the
            # one skipped (Redis clears REPLY_OFF, not the skip of the current command).
            keep += (b"reset",)
        silent = cache.get((id(table), mode, keep))
        if silent is None:
            def wrap(fn: Any) -> Any:
                def run(argv: list, client: Any) -> bytes:
                    try:
                        fn(argv, client)
                    except Switched:
                        raise Switched(b"") from None
                    except Reply:
                        pass
                    if mode == b"skip" and client.reply_mode == b"skip":
                        client.reply_mode = None
                        client.refresh_table()
                        raise Switched(b"")
                    return b""
                return run

            silent = {name: fn if name.lower() in keep else wrap(fn) for name, fn in table.items()}
            cache[(id(table), mode, keep)] = silent
        return silent

    # -- Pub/Sub delivery (this connection's I/O thread) ----------------------------------
    def pubsub_write(self, data: bytes) -> None:
        self.pubsub_in_transit -= len(data)
        if not self.pubsub_closing:
            self.connection.post(data)

    def close_for_output_limit(self) -> None:
        """Past the pubsub output limit: dropped at once, unsent output and all (as Redis does)."""
        self.connection.count_error()
        self.connection.abort()

    # -- the rest of a batch: blocked, or large -----------------------------------------
    def more(self, reply: bytes, commands: Any, more: Any) -> Any:
        if more is BLOCKED:
            # The executor kept the batch on this client (under the lock). The timeout is a
            # deadline, armed on the I/O thread (maybe after a push already served us).
            self.connection.run_on_io_thread(self._arm_block_timeout)
            return LATER
        return self.stream(reply, commands)

    def _arm_block_timeout(self) -> None:
        """A command blocked (I/O thread; before any ``_wake``, which a deadline runs later).

        The replies of the commands before it in the batch go out now, as Redis sends
        them: a client that pipelined ``LPUSH`` then ``BLPOP`` reads the LPUSH's reply
        while the BLPOP waits.
        """
        if self.peer_gone:
            # The FIN came while the batch ran on a handler thread, before it blocked.
            self._drop_if_blocked()
            if self.connection.closed:
                return
        if self._stop_asked:  # so did a graceful stop
            self.stop_requested()
            if self.connection.closed:
                return
        with self._lock:
            head, self.block_head = self.block_head, b""
            served = self.block_reply is not None
            blocked = self.blocked
            timeout = blocked[2] if blocked is not None else 0
        if head:
            try:
                self.connection.send(head)
            except ConnectionClosed:
                return
        if served:
            self.connection.set_deadline(time.monotonic(), self._wake)
            return
        if timeout:
            self.connection.set_deadline(time.monotonic() + timeout, self._on_block_timeout)

    def wake_soon(self) -> None:
        """Served by a push (I/O thread): answer on the next loop iteration, not inside the push."""
        self.connection.set_deadline(time.monotonic(), self._wake)

    def _on_block_timeout(self) -> None:
        with self._lock:
            self._unblock(None)
        self._wake()

    def _unblock(self, reply: bytes | None) -> bool:
        """Stop waiting (under the keyspace lock): answer ``reply``, or the timeout's nil."""
        if self.block_reply is not None or self.blocked is None:
            return False
        how = self.blocked[1]
        self._waiters[self.db].drop(self)
        if reply is None:
            reply = NULL3 if self.proto == 3 else (NIL if how[0] == "move" else NIL_ARRAY)
        self.block_reply = reply
        return True

    def unblock(self, error: bool) -> bool:
        """CLIENT UNBLOCK from another client's command (the keyspace lock is held)."""
        if not self._unblock(UNBLOCKED if error else None):
            return False
        self.connection.run_on_io_thread(self.wake_soon)
        return True

    def _wake(self) -> None:
        with self._lock:
            reply, self.block_reply = self.block_reply, None
            head, self.block_head = self.block_head, b""
            commands, self.block_rest = self.block_rest, None
        if reply is None or commands is None:
            return
        rest, more = self._run_part(self, commands)
        reply = head + reply + rest
        if more is BLOCKED:
            self.block_head = reply + self.block_head
            self._arm_block_timeout()
            return
        if more:
            self._continue(ReplyStream(self._run_part, self, commands, reply))
            return
        self.connection.job_finished(reply)

    # -- large replies ------------------------------------------------------------------
    def stream(self, first: bytes, commands: Any) -> Any:
        """The batch's output passed one part: send it in parts (:mod:`netcore_resp.streaming`).

        Where handlers run on threads beside a loop (``pool``, ``thread``...), the stream
        moves to the connection's I/O thread and the handler returns at once: a blocking
        ``send`` would hold a handler thread for as long as the client takes to read
        (two slow readers would take a two-thread pool), and the pool runs the requests
        handed over in the same loop iteration one after the other on that thread, so
        another client's PING would wait for the whole stream. On the loop the stream
        costs one part's work per writable event, and nobody waits for it.
        """
        stream = ReplyStream(self._run_part, self, commands, first)
        if self._stream_on_io_thread:
            # core-api: the contract has no "continue this submission on the I/O thread";
            # run_on_io_thread + LATER does it. The loop may end the stream (job_finished)
            # before it has seen this handler return LATER; a serial connection, with one
            # submission in flight, takes the two in either order.
            self.connection.run_on_io_thread(self._continue, stream)
            return LATER
        return self._pump(stream)

    def _continue(self, stream: ReplyStream) -> None:
        reply = self._pump(stream)
        if reply is not LATER:
            self.connection.job_finished(reply)

    def _pump(self, stream: ReplyStream) -> Any:
        connection = self.connection
        try:
            rest = stream.pump(connection.send, TURN if self._event_loop else None)
        except ConnectionClosed:
            return None  # the peer left: the rest of the batch is not run, as in Redis
        if rest is None:  # output above high water: resume_writing goes on
            self._paused = stream
            return LATER
        if rest is YIELD:  # the turn is used: go on after this loop iteration's other events
            # The one deadline of a connection, due now, is the contract's "call me on the
            # next iteration"; a client streaming a reply has no other deadline to keep.
            connection.set_deadline(time.monotonic(), functools.partial(self._continue, stream))
            return LATER
        return rest

    def resume_writing(self) -> None:
        """Output drained below the low-water mark (I/O thread): go on with a paused stream."""
        stream = self._paused
        if stream is None:
            return
        self._paused = None
        self._continue(stream)

    def job_done(self) -> None:
        """A batch's reply is with the connection (I/O thread): close after QUIT or an error.

        ``quit`` is set by the batch's handler, maybe on another thread; its reply coming
        back is when this thread learns of it. A protocol error is known when it is
        framed, but batches before it may still be running on a pool: the close waits
        until its reply, the last one owed, is out (``pending`` 0). ``close`` then sends
        what is queued and FIN; reading stops, and what still arrives is dropped.
        """
        if self.quit or (self._done and not self.connection.pending):
            self._done = self._slow = True
            self.connection.discard_waiting()  # batches read after QUIT are never run
            self.connection.close()
