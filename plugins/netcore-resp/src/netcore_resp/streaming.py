"""Replies too large for one write: produced and sent in parts, under output flow control.

A read of pipelined commands is one batch and normally one reply (one ``send`` per read
is what makes pipelining fast). But 1,000 pipelined GETs of a 1 MB value would make that
reply 1 GB, built in one go while the loop serves nobody else and memory holds all of
it. So the executor stops once a batch's output passes :data:`PART` bytes and hands the
rest of the batch to a :class:`ReplyStream`, which alternates between running commands
(under the keyspace lock, one part's worth at a time) and sending what they produced in
slices of at most :data:`PART` bytes through ``connection.send`` (never holding the lock
while sending). ``send`` is the connection contract's flow control, whatever the scheme:

* on a handler thread (``pool``, ``thread``...) it blocks while the peer is behind;
  other clients are served meanwhile by the loop and the other threads;
* on the I/O thread (``inline``, ``multi-reactor``) it returns False once output is above
  the connection's high-water mark: the stream stops, the handler returns ``LATER`` and
  the protocol's ``resume_writing`` pumps again when the output has drained;
* on a blocking connection it writes before returning.

On a loop, ``send`` saying yes is not enough: a client reading as fast as loopback
carries keeps the kernel taking every part, and the stream would run to its end in one
event while the other clients wait. So one turn sends at most :data:`TURN` bytes, then
yields (the protocol continues on the next loop iteration, after the other events).

Memory stays near one command's reply plus the connection's buffer, however long the
pipeline, and one large reply (a GET of a 512 MB value) is never copied into the output
buffer whole: the slices are views of it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from netcore_resp.replies import SMALL_REPLY, Large

#: Output of a batch past which the rest is streamed; also the largest slice per send.
#: The size of the reactor's default high-water mark: one part fills the buffer once.
PART = 256 * 1024
#: Bytes one turn of a stream on a loop sends before the other connections get theirs.
TURN = 4 * PART


class _Yield:
    __slots__ = ()

    def __repr__(self) -> str:
        return "YIELD"


#: :meth:`ReplyStream.pump` used its turn: call it again on the next loop iteration.
YIELD: object = _Yield()


class ReplyStream:
    """The rest of a batch: its remaining commands and the reply not yet sent."""

    __slots__ = ("run", "client", "commands", "view", "pos", "more")

    def __init__(self, run: Callable[[Any, Any], tuple[bytes, bool]], client: Any, commands: Any,
                 first: bytes) -> None:
        #: ``run(client, commands) -> (reply, more)``: the next part's commands, locked.
        self.run = run
        self.client = client
        self.commands = commands
        self.view = memoryview(first)
        self.pos = 0
        self.more = True

    def pump(self, send: Callable[[Any], bool], turn: int | None = TURN) -> Any:
        """Send parts until ``send`` says stop (None), ``turn`` bytes went (:data:`YIELD`),
        or only a last small part is left.

        That last part (``b""`` once everything was sent) is returned to be the batch's
        final reply, so that the connection's ``job_done`` follows it as after any reply.
        ``turn`` None: no limit (a blocking connection has its own thread).
        """
        budget = turn
        while True:
            if self.pos >= len(self.view):
                if not self.more:
                    return b""
                reply, self.more = self.run(self.client, self.commands)
                if not self.more and len(reply) <= PART:
                    self.view = memoryview(b"")
                    return reply
                self.view = memoryview(reply)
                self.pos = 0
                continue
            part = self.view[self.pos:self.pos + PART]
            self.pos += len(part)
            if not send(part):
                return None
            if budget is not None:
                budget -= len(part)
                if budget <= 0:
                    return YIELD


def count_large(tables: Iterable[dict], bounded: frozenset[str]) -> None:
    """Wrap each command of ``tables`` not in ``bounded`` to raise its long replies as
    :class:`~netcore_resp.replies.Large`, the only ones the executor counts.

    A batch of small replies -- the pipelined GETs and SETs a benchmark sends -- then
    runs without a size check per command; a command that can answer with a lot (LRANGE,
    HGETALL, MGET, KEYS, ...) pays one length test. Commands added to a table later (the
    queueing tables, Pub/Sub's) answer small or raise ``Switched``, which is counted too.
    """
    small = SMALL_REPLY

    def sized(fn: Callable[[list, Any], bytes]) -> Callable[[list, Any], bytes]:
        def run(argv: list, client: Any) -> bytes:
            reply = fn(argv, client)
            if len(reply) >= small:
                raise Large(reply)
            return reply

        run.__name__ = getattr(fn, "__name__", "run")
        return run

    for table in tables:
        for name, fn in list(table.items()):
            if name.decode("latin-1").lower() not in bounded:
                table[name] = sized(fn)
