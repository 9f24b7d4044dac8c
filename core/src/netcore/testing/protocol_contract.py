"""The behaviour every protocol must have under every dispatch scheme, written once.

A protocol is framing plus handlers; where the handlers run is the dispatcher's choice
(inline, a thread per request, a pool, another process...). A protocol that is right
answers identically under all of them, so this suite runs one protocol under **every
installed dispatch scheme** (:func:`netcore.testing.schemes.installed_dispatches`, the
registry ``netcore plugins --json`` reports). As with
:class:`~netcore.testing.poller_contract.PollerContract`, the tests live in a base class
not named ``Test*`` and a protocol's test module subclasses it::

    from netcore.testing.protocol_contract import ProtocolContract

    class TestUppercaseContract(ProtocolContract):
        protocol = "uppercase"

        def request(self, i):
            return b"line %d\\n" % i

        def reply(self, i):
            return b"LINE %d\\n" % i

        def closing_request(self):            # a too-long line: an error line, then close
            return b"x" * 100 + b"\\n", b"ERR line too long\\n"

What a subclass gives (only ``protocol``, ``request`` and ``reply`` are required):

* ``protocol`` (the ``--protocol`` name), ``serve_args`` (more ``netcore serve``
  arguments: ``("--app", "mod:app")``), :meth:`server_env` (environment of the server).
* :meth:`request` ``(i)`` and :meth:`reply` ``(i)``: request number ``i`` and the reply
  expected to it, byte for byte. Replies that are not byte-constant (an HTTP ``Date``
  line) are read by :meth:`read_reply`, which returns a normal form to compare with.
* :meth:`large_request`, :meth:`closing_request`, :meth:`failing_request`: a request
  whose reply is large, one after which the server closes, one whose handler fails —
  each with its expected reply, or None to skip that behaviour.
* ``dispatches`` narrows the schemes (None: all installed); ``refused_dispatches`` are
  schemes the protocol refuses: each must exit with status 2 and one line, before
  binding. ``known_failures`` marks ``(test name, scheme)`` pairs ``xfail(strict=True)``
  with the bug they show (scheme ``"*"``: every scheme).

The behaviours, each a test, per scheme: (a) pipelined requests sent in one write are
answered in order; (b) a large reply reaches a client that reads it slowly through a
small receive buffer, while another client is served; (c) after the final reply the
server closes, nothing lost; (d) on ``SIGTERM`` requests already sent are answered, then
``server.stopped`` and exit 0; (e) a failing handler closes its own connection only, and
``errors`` counts it. (a)-(c) share one server per scheme; (d) and (e) need their own
(their counters and stop are the test). Every request sent is counted and must get its
reply (:class:`netcore.testing.clients.Client`): an EOF with replies owed is a failure,
not a short read. Nothing waits by sleeping; every wait has a deadline.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from netcore.testing.clients import TIMEOUT, Client
from netcore.testing.schemes import SERIAL, installed_dispatches, scheme_args
from netcore.testing.server_process import ServerProcess, run_netcore

#: Receive buffer of the slow reader in the large-reply test: the server must queue.
SLOW_RCVBUF = 16 * 1024
#: The slow reader's ``recv`` size, and how many bytes it reads between two requests of
#: the other client.
SLOW_CHUNK = 4096
SLOW_INTERLEAVE = 512 * 1024


#: The tests that run only if the subclass gives what they need: test name -> method.
OPTIONAL_BEHAVIOURS = {
    "test_large_reply_to_a_slow_reader_while_others_are_served": "large_request",
    "test_server_closes_after_the_final_reply": "closing_request",
    "test_failing_handler_closes_only_its_connection": "failing_request",
}


class ProtocolContract:
    """Subclass as ``Test<Name>`` and set ``protocol``, :meth:`request` and :meth:`reply`."""

    protocol: str = ""
    serve_args: tuple[str, ...] = ()
    #: The schemes to run under; None: every installed one (minus ``refused_dispatches``).
    dispatches: tuple[str, ...] | None = None
    #: Schemes the protocol refuses at assembly: exit status 2, one line, nothing bound.
    refused_dispatches: tuple[str, ...] = ()
    #: ``{(test name, scheme or "*"): reason}``: known bugs, run as ``xfail(strict=True)``.
    known_failures: dict[tuple[str, str], str] = {}
    #: Requests in the single write of the pipelining test.
    pipeline_depth = 100
    #: Requests left in flight when the server is told to stop.
    in_flight = 10
    #: More arguments for that test's server: a slow handler (``echo_delay``) makes sure
    #: the requests are still being handled when the signal arrives.
    term_serve_args: tuple[str, ...] = ()

    # -- what a subclass supplies ---------------------------------------------------------
    def server_env(self) -> dict[str, str] | None:
        """Environment additions for the server process (``PYTHONPATH`` for an app)."""
        return None

    def request(self, i: int) -> bytes:
        raise NotImplementedError("override request(i) to return request number i")

    def reply(self, i: int) -> bytes:
        raise NotImplementedError("override reply(i) to return the reply expected to request(i)")

    def read_reply(self, client: Client, expected: bytes) -> bytes:
        """Read one reply from ``client`` and return what is compared with ``expected``.

        The default reads ``len(expected)`` bytes: right for protocols whose replies are
        byte-constant. Override for replies that vary (parse, then return a normal form);
        the normal form must not be longer than the bytes it was read from.
        """
        return client.read_exactly(len(expected))

    def large_request(self) -> tuple[bytes, bytes] | None:
        """``(request, expected reply)`` for a reply of several MiB, or None to skip."""
        return None

    def closing_request(self) -> tuple[bytes, bytes] | None:
        """``(request, expected reply)`` after which the server closes, or None to skip."""
        return None

    def failing_request(self) -> tuple[bytes, bytes] | None:
        """``(request, what the client reads before the close)`` for a request whose
        handler fails (``b""``: nothing), or None to skip."""
        return None

    # -- parametrization ------------------------------------------------------------------
    def schemes(self) -> list[str]:
        installed = installed_dispatches()
        wanted = installed if self.dispatches is None else self.dispatches
        return [name for name in wanted if name not in self.refused_dispatches]

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """Each test runs once per scheme; the scheme is class-scoped, so that the tests
        of one scheme share a server."""
        name = metafunc.function.__name__
        if "scheme" in metafunc.fixturenames:
            installed = installed_dispatches()
            params = []
            hook = OPTIONAL_BEHAVIOURS.get(name)
            given = hook is None or getattr(self, hook)() is not None
            for scheme in self.schemes() if given else ():
                marks = []
                if scheme not in installed:
                    marks.append(pytest.mark.skip(reason=f"dispatch {scheme!r} is not installed"))
                reason = self.known_failures.get((name, scheme)) or self.known_failures.get((name, "*"))
                if reason:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                params.append(pytest.param(scheme, id=scheme, marks=marks))
            if not given:  # one skipped test, not one per scheme
                params = [pytest.param(None, id="not-given", marks=pytest.mark.skip(
                    reason=f"protocol {self.protocol!r}: {hook}() gives None"))]
            elif not params:
                params = [pytest.param(None, id="none", marks=pytest.mark.skip(reason="no dispatch scheme installed"))]
            metafunc.parametrize("scheme", params, scope="class")
        if "refused_scheme" in metafunc.fixturenames:
            installed = installed_dispatches()
            params = [pytest.param(scheme, id=scheme, marks=[] if scheme in installed else
                                   [pytest.mark.skip(reason=f"dispatch {scheme!r} is not installed")])
                      for scheme in self.refused_dispatches]
            if not params:
                params = [pytest.param(None, id="none", marks=pytest.mark.skip(
                    reason=f"protocol {self.protocol!r} refuses no scheme"))]
            metafunc.parametrize("refused_scheme", params)

    # -- servers and clients --------------------------------------------------------------
    def command(self, scheme: str) -> list[str]:
        return ["--protocol", self.protocol, *self.serve_args, *scheme_args(scheme)]

    def start(self, scheme: str, *extra: str) -> ServerProcess:
        server = ServerProcess(*self.command(scheme), *extra, env=self.server_env())
        try:
            return server.start()
        except BaseException:
            server.__exit__(None, None, None)
            raise

    @pytest.fixture(scope="class")
    @classmethod
    def contract_server(cls, scheme):
        """One server per scheme for the tests that do not stop it; checked at the end:
        exit 0, every connection closed, no error.

        A class-scoped fixture is a classmethod (pytest gives each test a new instance);
        an instance of its own calls the overridable hooks (``start``, ``server_env``).
        """
        server = cls().start(scheme)
        try:
            yield server
            assert server.stop() == 0, server.describe()
            stats = server.stopped_event()["stats"]
            assert stats["connections_closed"] == stats["connections_accepted"], stats
            assert stats["errors"] == 0, (stats, server.describe())
        finally:
            server.__exit__(None, None, None)

    def client(self, server: ServerProcess, **kwargs: Any) -> Client:
        return Client(server.address, **kwargs)

    def expect(self, client: Client, expected: bytes, what: str) -> None:
        """Read one reply, compare it with ``expected`` and count it."""
        got = self.read_reply(client, expected)
        assert got == expected, f"{what}: got {got[:200]!r}... ({len(got)} bytes), expected {expected[:200]!r}... " \
                                f"({len(expected)} bytes)"
        client.answered()

    def exchange(self, client: Client, i: int) -> None:
        client.send(self.request(i))
        self.expect(client, self.reply(i), f"reply to request {i}")

    def serves_one_at_a_time(self, scheme: str) -> bool:
        return scheme in SERIAL

    # -- (a) pipelining -------------------------------------------------------------------
    def test_pipelined_requests_answered_in_order(self, contract_server):
        """Requests sent in one write arrive in one or a few reads: the framing must cut
        them all out, and a scheme that runs handlers on several threads must still
        write the replies in request order."""
        n = self.pipeline_depth
        with self.client(contract_server) as client:
            client.send(b"".join(self.request(i) for i in range(n)), requests=n)
            for i in range(n):
                self.expect(client, self.reply(i), f"reply {i} of {n} pipelined")
            client.assert_all_answered()

    # -- (b) a large reply, read slowly ---------------------------------------------------
    def test_large_reply_to_a_slow_reader_while_others_are_served(self, contract_server, scheme):
        """A reply larger than the socket buffers to a client that reads it slowly: the
        server must queue it and finish it (partial writes, write interest, water marks),
        and must not stop serving other clients while it waits on this one (under a
        scheme that serves one client at a time there is no other: the reply only)."""
        large = self.large_request()
        if large is None:
            pytest.skip(f"protocol {self.protocol!r} gives no large request")
        request, expected = large
        others_served = 0
        other = None if self.serves_one_at_a_time(scheme) else self.client(contract_server)
        slow = self.client(contract_server, rcvbuf=SLOW_RCVBUF)
        errors: list[BaseException] = []

        def send() -> None:
            try:
                slow.sock.sendall(request)  # may be large too (echo): sent while the reply is read
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        try:
            slow.sent = 1  # counted before it is sent: an EOF from now on is a failure
            sender.start()
            slow.chunk = SLOW_CHUNK
            deadline = time.monotonic() + TIMEOUT * 2
            next_other = 0
            # Read most of the reply raw and slowly, a small recv at a time; another client
            # is served every SLOW_INTERLEAVE bytes, so while this reply is still owed.
            while len(slow.buffer) < len(expected) - SLOW_CHUNK:
                assert time.monotonic() < deadline, f"{len(slow.buffer)} of {len(expected)} bytes in {TIMEOUT * 2}s"
                if other is not None and len(slow.buffer) >= next_other:
                    self.exchange(other, others_served)
                    others_served += 1
                    next_other += SLOW_INTERLEAVE
                slow.fill(deadline)
            sender.join(TIMEOUT)
            assert not sender.is_alive(), "the large request was not taken in"
            assert not errors, errors
            self.expect(slow, expected, "the large reply")
            slow.assert_all_answered()
            if other is not None:
                assert others_served >= 2, others_served
                other.assert_all_answered()
        finally:
            slow.close()
            if other is not None:
                other.close()
            sender.join(TIMEOUT)

    # -- (c) the server closes after a final request --------------------------------------
    def test_server_closes_after_the_final_reply(self, contract_server):
        """The replies before it and the final reply arrive whole, then a clean EOF: a
        close that does not wait for replies owed, or that resets, loses the tail."""
        final = self.closing_request()
        if final is None:
            pytest.skip(f"protocol {self.protocol!r} gives no closing request")
        request, expected = final
        n = 5
        with self.client(contract_server) as client:
            client.send(b"".join(self.request(i) for i in range(n)), requests=n)
            client.send(request)
            for i in range(n):
                self.expect(client, self.reply(i), f"reply {i} before the final one")
            self.expect(client, expected, "the final reply")
            client.read_eof()
            client.assert_all_answered()

    # -- (d) graceful stop with requests in flight ---------------------------------------
    def test_term_answers_requests_in_flight_then_stops(self, scheme):
        """SIGTERM stops accepting, but what a connection already sent is answered before
        it closes; then ``server.stopped`` and exit status 0."""
        server = self.start(scheme, *self.term_serve_args)
        try:
            with self.client(server) as client:
                self.exchange(client, 0)  # accepted and registered before the stop
                n = self.in_flight
                client.send(b"".join(self.request(i) for i in range(1, n + 1)), requests=n)
                server.proc.send_signal(signal.SIGTERM)
                for i in range(1, n + 1):
                    self.expect(client, self.reply(i), f"reply {i} of {n} in flight at SIGTERM")
                client.assert_all_answered()
                client.read_eof()
            assert server.stop() == 0, server.describe()
            stopped = server.stopped_event()
            assert stopped["reason"] == "signal SIGTERM", stopped
            assert stopped["stats"]["connections_closed"] == stopped["stats"]["connections_accepted"] == 1, stopped
        finally:
            server.__exit__(None, None, None)

    # -- (e) a failing handler -----------------------------------------------------------
    def test_failing_handler_closes_only_its_connection(self, scheme):
        """A handler that raises costs its own connection, not the server's or another
        client's; the failure is counted in ``errors``."""
        failing = self.failing_request()
        if failing is None:
            pytest.skip(f"protocol {self.protocol!r} gives no failing request")
        request, expected = failing
        server = self.start(scheme)
        serial = self.serves_one_at_a_time(scheme)
        try:
            other = None if serial else self.client(server)
            if other is not None:
                self.exchange(other, 0)
            with self.client(server) as bad:
                bad.send(request)
                if expected:
                    self.expect(bad, expected, "the reply to the failing request")
                else:
                    bad.answered()  # the close is its answer
                bad.read_eof()
            if other is None:  # one client at a time: the next one, once the failed one is gone
                other = self.client(server)
            for i in range(1, 4):
                self.exchange(other, i)
            other.assert_all_answered()
            other.close()
            assert server.stop() == 0, server.describe()
            stats = server.stopped_event()["stats"]
            assert stats["errors"] == 1, stats
            assert stats["connections_closed"] == stats["connections_accepted"] == 2, stats
        finally:
            server.__exit__(None, None, None)

    # -- refused schemes -----------------------------------------------------------------
    def test_refused_scheme_exits_2_with_one_line(self, refused_scheme):
        """A combination that cannot work is refused before anything binds: exit status
        2 and one line naming the scheme, no traceback."""
        done = run_netcore("serve", *self.command(refused_scheme), "--bind", "127.0.0.1:0",
                           env=self.server_env(), timeout=60)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, (done.returncode, done.stderr)
        assert len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr and refused_scheme in lines[0], lines[0]
