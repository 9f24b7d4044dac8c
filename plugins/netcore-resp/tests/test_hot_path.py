"""Pipelined GETs and SETs in one batch, under every feature that changes what they do.

Each case is pipelined in ONE write of multibulk commands, so that the whole case is
one batch through the fast path's splitter and the executor's loop over it; the replies are
compared byte for byte with a real redis-server where Redis's answer is the same. The
features that replace a command or the client's table (WATCH, keyspace notifications,
INFO's commandstats, MULTI, CLIENT REPLY, HELLO, SELECT) must take effect at the very
command of the batch where they start. Cross-connection cases (WATCH, keyspace
notifications) run under the schemes of conftest's ``scheme_server`` (inline, pool,
multi-reactor): under the pool the batch runs on a handler thread.
"""

from __future__ import annotations

import socket
import time

import pytest
from netcore.testing.server_process import ServerProcess

PATIENCE = 20.0


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def pipeline(*commands: tuple[bytes, ...]) -> bytes:
    return b"".join(command(*args) for args in commands)


class Client:
    """A raw connection that reads exactly what it expects (bounded in time)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=PATIENCE)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def expect(self, want: bytes) -> None:
        deadline = time.monotonic() + PATIENCE
        while len(self.buffer) < len(want):
            assert time.monotonic() < deadline, f"wanted {want!r}, got {self.buffer!r} within {PATIENCE}s"
            chunk = self.sock.recv(65536)
            assert chunk, f"closed; wanted {want!r}, got {self.buffer!r}"
            self.buffer += chunk
        got, self.buffer = self.buffer[:len(want)], self.buffer[len(want):]
        assert got == want

    def until(self, end: bytes) -> bytes:
        deadline = time.monotonic() + PATIENCE
        while end not in self.buffer:
            assert time.monotonic() < deadline, f"no {end!r} within {PATIENCE}s; got {self.buffer[-300:]!r}"
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before {end!r}; got {self.buffer[-300:]!r}"
            self.buffer += chunk
        cut = self.buffer.index(end) + len(end)
        got, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return got

    def close(self) -> None:
        self.sock.close()


BIG = b"v" * 5000  # past SMALL_REPLY: GET's Large reply (counted toward the batch's part size)

CASES = {
    "plain": [(b"SET", b"k", b"v"), (b"GET", b"k"), (b"GET", b"missing"), (b"SET", b"k", b""), (b"GET", b"k")],
    "arity": [(b"SET", b"k"), (b"GET",), (b"GET", b"k", b"x"), (b"SET", b"k", b"v", b"NX"), (b"GET", b"k")],
    "case": [(b"set", b"k", b"1"), (b"get", b"k"), (b"SeT", b"k", b"2"), (b"gEt", b"k")],
    "wrongtype": [(b"LPUSH", b"l", b"a"), (b"GET", b"l"), (b"SET", b"l", b"s"), (b"GET", b"l")],
    "ttl": [(b"SET", b"t", b"1", b"EX", b"100"), (b"GET", b"t"), (b"SET", b"t", b"2"), (b"TTL", b"t"),
            (b"GET", b"t")],
    "large": [(b"SET", b"big", BIG), (b"GET", b"big"), (b"GET", b"big"), (b"STRLEN", b"big")],
    "select": [(b"SET", b"k", b"0"), (b"SELECT", b"1"), (b"GET", b"k"), (b"SET", b"k", b"1"), (b"SELECT", b"0"),
               (b"GET", b"k"), (b"SWAPDB", b"0", b"1"), (b"GET", b"k"), (b"SELECT", b"1"), (b"GET", b"k"),
               (b"SELECT", b"0"), (b"FLUSHALL",)],
    "multi": [(b"MULTI",), (b"SET", b"m", b"1"), (b"GET", b"m"), (b"EXEC",), (b"GET", b"m"), (b"MULTI",),
              (b"SET", b"m"), (b"EXEC",), (b"GET", b"m")],
    "client-reply": [(b"CLIENT", b"REPLY", b"OFF"), (b"SET", b"r", b"1"), (b"GET", b"r"),
                     (b"CLIENT", b"REPLY", b"ON"), (b"CLIENT", b"REPLY", b"SKIP"), (b"GET", b"r"), (b"GET", b"r")],
    "delete": [(b"SET", b"d", b"1"), (b"DEL", b"d"), (b"GET", b"d"), (b"SET", b"d", b"2"), (b"GETDEL", b"d"),
               (b"GET", b"d")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_batch_same_bytes_as_redis(name, raw, redis_server, resp_inline):
    for address in (resp_inline.address, redis_server):
        assert raw.exchange(address, command(b"FLUSHALL")) == (b"+OK\r\n", False)
    case = pipeline(*CASES[name])
    got, want = raw.exchange(resp_inline.address, case), raw.exchange(redis_server, case)
    assert got == want


def test_resp3_nulls_after_hello_3_in_the_same_batch(resp_inline):
    client = Client(resp_inline.address)
    try:
        client.send(pipeline((b"FLUSHALL",), (b"GET", b"nothing"), (b"HELLO", b"3"), (b"GET", b"nothing"),
                             (b"SET", b"k", b"v"), (b"GET", b"k"), (b"HELLO", b"2"), (b"GET", b"nothing")))
        client.expect(b"+OK\r\n$-1\r\n")
        client.until(b"modules\r\n*0\r\n")  # HELLO 3's map ends with its empty module list
        client.expect(b"_\r\n+OK\r\n$1\r\nv\r\n")
        client.until(b"modules\r\n*0\r\n")
        client.expect(b"$-1\r\n")
    finally:
        client.close()


def test_a_deadline_passed_expires_the_key_on_get():
    """A pipelined GET of a key whose deadline has passed expires it lazily, as Redis's
    does (the active sweep is made too slow to get there first)."""
    with ServerProcess("--protocol", "resp", "--resp-expire-interval", "60") as server:
        client = Client(server.address)
        try:
            client.send(pipeline((b"SET", b"e", b"1", b"PX", b"30"), (b"SET", b"keep", b"2"), (b"GET", b"e")))
            client.expect(b"+OK\r\n+OK\r\n$1\r\n1\r\n")
            passed = time.monotonic() + 0.06  # a deadline is a time: nothing to wait on but the clock
            while time.monotonic() < passed:
                time.sleep(0.01)
            client.send(pipeline((b"GET", b"e"), (b"GET", b"keep"), (b"DBSIZE",)))
            client.expect(b"$-1\r\n$1\r\n2\r\n:1\r\n")
            client.send(command(b"INFO", b"stats"))
            assert b"expired_keys:1\r\n" in client.until(b"\r\n\r\n")
        finally:
            client.close()
        server.stop()


def test_commandstats_count_every_pipelined_get_and_set(resp_inline):
    client = Client(resp_inline.address)
    try:
        client.send(pipeline((b"CONFIG", b"RESETSTAT"), (b"INFO", b"commandstats")))
        client.expect(b"+OK\r\n")
        client.until(b"\r\n\r\n")
        client.send(command(b"CONFIG", b"RESETSTAT"))
        client.expect(b"+OK\r\n")
        client.send(pipeline(*[(b"SET", b"s%d" % i, b"x") for i in range(16)], *[(b"GET", b"s%d" % i)
                                                                               for i in range(16)]))
        client.expect(b"+OK\r\n" * 16 + b"$1\r\nx\r\n" * 16)
        client.send(command(b"INFO", b"commandstats"))
        stats = client.until(b"\r\n\r\n")
        assert b"cmdstat_set:calls=16," in stats and b"cmdstat_get:calls=16," in stats, stats
    finally:
        client.close()


def test_a_pipelined_set_invalidates_another_clients_watch(scheme_server):
    server = scheme_server
    watcher, writer = Client(server.address), Client(server.address)
    try:
        watcher.send(pipeline((b"SET", b"w", b"1"), (b"WATCH", b"w")))
        watcher.expect(b"+OK\r\n+OK\r\n")
        writer.send(pipeline((b"GET", b"w"), (b"SET", b"w", b"2"), (b"GET", b"w")))
        writer.expect(b"$1\r\n1\r\n+OK\r\n$1\r\n2\r\n")
        watcher.send(pipeline((b"MULTI",), (b"GET", b"w"), (b"EXEC",)))
        watcher.expect(b"+OK\r\n+QUEUED\r\n*-1\r\n")
        # Nobody watches any more: the plain SET is back, and still writes.
        writer.send(pipeline((b"SET", b"w", b"3"), (b"GET", b"w")))
        writer.expect(b"+OK\r\n$1\r\n3\r\n")
    finally:
        watcher.close()
        writer.close()


def test_keyspace_notifications_see_pipelined_sets_and_stop_when_turned_off(scheme_server):
    server = scheme_server
    subscriber, writer = Client(server.address), Client(server.address)
    channel = b"__keyspace@0__:n"
    try:
        writer.send(command(b"CONFIG", b"SET", b"notify-keyspace-events", b"K$"))
        writer.expect(b"+OK\r\n")
        subscriber.send(command(b"SUBSCRIBE", channel))
        subscriber.expect(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(channel), channel))
        writer.send(pipeline((b"SET", b"n", b"1"), (b"GET", b"n"), (b"SET", b"n", b"2")))
        writer.expect(b"+OK\r\n$1\r\n1\r\n+OK\r\n")
        message = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$3\r\nset\r\n" % (len(channel), channel)
        subscriber.expect(message * 2)
        writer.send(pipeline((b"CONFIG", b"SET", b"notify-keyspace-events", b""), (b"SET", b"n", b"3"),
                             (b"PUBLISH", channel, b"marker")))
        writer.expect(b"+OK\r\n+OK\r\n:1\r\n")
        # The marker comes right after the two notifications: the SET once they were off sent none.
        subscriber.expect(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$6\r\nmarker\r\n" % (len(channel), channel))
    finally:
        subscriber.close()
        writer.close()
