"""The resp protocol under every in-process dispatch scheme, through ``ProtocolContract``.

Requests alternate ``SET key:i`` and ``GET`` of the key just set, so that any prefix of
the sequence is consistent on its own and a reply out of order shows as a wrong value.
The process-per-worker schemes are refused (each process would have its own keyspace):
the contract checks that each is a clean exit 2 with one line.
"""

from __future__ import annotations

import random

from netcore.testing.protocol_contract import ProtocolContract

LARGE = 6 * 1024 * 1024


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class TestRespContract(ProtocolContract):
    protocol = "resp"
    refused_dispatches = ("forking", "prefork", "prefork-blocking")

    def request(self, i):
        if i % 2 == 0:
            return command(b"SET", b"key:%d" % i, b"value:%d" % i)
        return command(b"GET", b"key:%d" % (i - 1))

    def reply(self, i):
        return b"+OK\r\n" if i % 2 == 0 else bulk(b"value:%d" % (i - 1))

    def large_request(self):
        # SET and GET of a 6 MiB value in one write; the GET's reply is the large one.
        value = random.Random(LARGE).randbytes(LARGE)
        return command(b"SET", b"large", value) + command(b"GET", b"large"), b"+OK\r\n" + bulk(value)

    def closing_request(self):
        return command(b"QUIT"), b"+OK\r\n"
