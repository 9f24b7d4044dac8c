"""The connected clients of one server: CLIENT LIST / INFO / KILL and INFO's clients figures.

Each connection registers itself when made and leaves when lost (a dict insert and pop:
nothing per command). A CLIENT LIST line has Redis 7's fields in Redis's order; the
figures netcore does not track per client (query and output buffer sizes, memory, the
last command of other clients) are 0 or ``NULL``, which docs/resp.md lists. ``addr`` is
``connection.peer``: behind a PROXY header, the original client's address, where a
balancer's own would be useless; ``laddr`` the local end of the socket.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from netcore.reactor.base import peer_text

from netcore_resp.framing import error_reply, string2ll
from netcore_resp.replies import OK, SYNTAX, Reply, integer

NO_SUCH_CLIENT = error_reply("No such client")


class Clients:
    def __init__(self, local_address: Any = None) -> None:
        self.by_id: dict[int, Any] = {}
        self._guard = threading.Lock()
        #: INFO stats: connections accepted, and the commands of clients gone since.
        self.total_connections = 0
        self.commands_of_gone = 0
        #: ``() -> str``: the server's listening address, for a connection without a socket.
        self.local_address = local_address or (lambda: "-")

    def add(self, client: Any) -> None:
        with self._guard:  # connections arrive on several loops (multi-reactor) at once
            self.by_id[client.id] = client
            self.total_connections += 1

    def remove(self, client: Any) -> None:
        with self._guard:
            if self.by_id.pop(client.id, None) is not None:
                self.commands_of_gone += client.connection.requests

    def all(self) -> list[Any]:
        return list(self.by_id.values())  # one C call: safe while other threads add and remove

    def commands_processed(self) -> int:
        return self.commands_of_gone + sum(c.connection.requests for c in self.all())

    # -- CLIENT LIST / INFO -------------------------------------------------------------
    def laddr(self, client: Any) -> str:
        sock = getattr(client.connection, "sock", None)
        try:
            return peer_text(sock.getsockname()) if sock is not None else self.local_address()
        except OSError:
            return self.local_address()

    def line(self, client: Any, me: Any) -> bytes:
        """One CLIENT LIST line (without its newline), Redis 7.2's fields in its order."""
        now = time.monotonic()
        flags = ""
        if client.multi is not None:
            flags += "x"
        if client.blocked is not None:
            flags += "b"
        if client.channels or client.patterns:
            flags += "P"
        multi = -1 if client.multi is None else len(client.multi)
        cmd = "client|list" if client is me else "NULL"
        fields = [
            f"id={client.id}", f"addr={peer_text(client.connection.peer)}", f"laddr={self.laddr(client)}",
            f"fd={getattr(client.connection, 'fd', -1)}", "name=" + (client.name or b"").decode("latin-1"),
            f"age={int(now - client.created)}", f"idle={int(now - client.active)}", f"flags={flags or 'N'}",
            f"db={client.db}", f"sub={len(client.channels)}", f"psub={len(client.patterns)}", "ssub=0",
            f"multi={multi}", "qbuf=0", "qbuf-free=0", "argv-mem=0", "multi-mem=0", "rbs=0", "rbp=0", "obl=0",
            "oll=0", "omem=0", "tot-mem=0", "events=r", f"cmd={cmd}", "user=default", "redir=-1",
            f"resp={client.proto}", "lib-name=" + client.lib_name.decode("latin-1"),
            "lib-ver=" + client.lib_ver.decode("latin-1"),
        ]
        return " ".join(fields).encode("latin-1")

    def list_(self, argv: list, me: Any) -> bytes:
        """CLIENT LIST [TYPE normal|pubsub|...] [ID id...]: one line per client, then a newline."""
        chosen = self.all()
        if len(argv) > 2:
            opt = argv[2].lower()
            if opt == b"type" and len(argv) == 4:
                kind = argv[3].lower()
                if kind not in (b"normal", b"pubsub", b"master", b"replica", b"slave"):
                    raise Reply(error_reply(b"Unknown client type '%s'" % argv[3]))
                chosen = [c for c in chosen if _kind(c) == kind]
            elif opt == b"id" and len(argv) >= 4:
                ids = []
                for arg in argv[3:]:
                    number = string2ll(arg)
                    if number is None or number <= 0:
                        raise Reply(error_reply("Invalid client ID"))
                    ids.append(number)
                chosen = [self.by_id[i] for i in ids if i in self.by_id]
            else:
                raise Reply(SYNTAX)
        chosen.sort(key=lambda c: c.id)
        return b"".join(self.line(c, me) + b"\n" for c in chosen)

    # -- CLIENT KILL ----------------------------------------------------------------------
    def kill(self, argv: list, me: Any) -> bytes:
        """CLIENT KILL addr:port (old form: +OK or an error), or the filters of the new form
        (ID, ADDR, LADDR, USER, TYPE, SKIPME, MAXAGE: how many were killed)."""
        if len(argv) == 3:
            wanted = argv[2].decode("latin-1")
            victims = [c for c in self.all() if peer_text(c.connection.peer) == wanted]
            if not victims:
                raise Reply(NO_SUCH_CLIENT)
            for victim in victims:
                self._close(victim, me)
            return OK
        if len(argv) % 2:
            raise Reply(SYNTAX)
        tests = []
        skipme = True
        for i in range(2, len(argv), 2):
            opt, value = argv[i].lower(), argv[i + 1]
            text = value.decode("latin-1")
            if opt == b"id":
                number = string2ll(value)
                if number is None or number <= 0:
                    raise Reply(error_reply("client-id should be greater than 0"))
                tests.append(lambda c, n=number: c.id == n)
            elif opt == b"addr":
                tests.append(lambda c, t=text: peer_text(c.connection.peer) == t)
            elif opt == b"laddr":
                tests.append(lambda c, t=text: self.laddr(c) == t)
            elif opt == b"user":
                if value != b"default":
                    raise Reply(error_reply(b"No such user '%s'" % value))
            elif opt == b"type":
                kind = value.lower()
                if kind not in (b"normal", b"pubsub", b"master", b"replica", b"slave"):
                    raise Reply(error_reply(b"Unknown client type '%s'" % value))
                tests.append(lambda c, k=kind: _kind(c) == k)
            elif opt == b"skipme":
                if value.lower() not in (b"yes", b"no"):
                    raise Reply(SYNTAX)
                skipme = value.lower() == b"yes"
            elif opt == b"maxage":
                age = string2ll(value)
                if age is None:
                    raise Reply(SYNTAX)
                tests.append(lambda c, a=age: time.monotonic() - c.created >= a)
            else:
                raise Reply(SYNTAX)
        victims = [c for c in self.all() if all(test(c) for test in tests) and not (skipme and c is me)]
        for victim in victims:
            self._close(victim, me)
        return integer(len(victims))

    @staticmethod
    def _close(victim: Any, me: Any) -> None:
        if victim is me:
            victim.quit = True  # after this reply, as Redis's CLIENT_CLOSE_AFTER_REPLY
            return
        victim.connection.run_on_io_thread(victim.connection.abort)


def _kind(client: Any) -> bytes:
    return b"pubsub" if client.channels or client.patterns else b"normal"
