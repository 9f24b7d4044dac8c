"""The echo protocol under every installed dispatch scheme, through ``ProtocolContract``.

Echo has no framing of its own (each read is a request, its reply the same bytes), so
what this checks is the part every scheme owns: replies in order, large replies to slow
readers, graceful stop with data in flight. Echo never closes a connection by itself and
its handler cannot fail, so those two behaviours are skipped here (they are covered with
a failing protocol by ``DispatcherContract`` in tests/behaviour).
"""

from __future__ import annotations

import random

from netcore.testing.protocol_contract import ProtocolContract

#: Larger than the client's receive buffer plus the server's largest send buffer (4 MiB
#: by default on Linux), so that the server itself must hold part of the reply.
LARGE = 6 * 1024 * 1024


class TestEchoContract(ProtocolContract):
    protocol = "echo"
    #: Handlers that take 0.2 s: the requests are being handled when SIGTERM arrives.
    term_serve_args = ("--set", "echo_delay=0.2")

    def request(self, i):
        return b"request %d;" % i

    def reply(self, i):
        return b"request %d;" % i

    def large_request(self):
        payload = random.Random(LARGE).randbytes(LARGE)
        return payload, payload
