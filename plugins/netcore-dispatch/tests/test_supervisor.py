"""What the one supervisor gives both process schemes, and where a dispatcher's identity lives.

The master's own signals (HUP, TTIN, TTOU, TERM, INT) are tested against real servers
in ``tests/test_master_signals.py``; here the ``forking`` parent, which takes the same
signals through the same table and has no ``handle_`` method for the pool signals.
"""

from __future__ import annotations

import signal

import pytest
from netcore.dispatch import Dispatcher
from netcore.plugins import PluginHost
from netcore.testing.clients import TIMEOUT, connect, recv_exactly
from netcore.testing.server_process import ServerProcess


def test_forking_parent_logs_and_ignores_pool_signals_then_stops_gracefully():
    with ServerProcess("--dispatch", "forking") as server:
        # The parent takes its signals from here on (server.started comes before: a HUP
        # then would still find the default action, which ends the process).
        server.wait_event("worker.started")
        sock = connect(server.address)
        try:
            for number, signum in enumerate((signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU), start=1):
                server.proc.send_signal(signum)
                # One at a time: the kernel may merge signals still pending together.
                ignored = server.wait_events("master.signal_ignored", number, timeout=TIMEOUT)
                assert ignored[-1]["signal"] == signum.name
            sock.sendall(b"still here\n")
            assert recv_exactly(sock, 11) == b"still here\n"  # the child serving it was left alone
        finally:
            sock.close()
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
    assert stats["requests"] == 1 and stats["connections_closed"] == 1  # the child's counters came back
    assert not server.events_named("worker.exited")  # a clean child exit is not announced


def dispatch_registrations():
    host = PluginHost()
    return [entry for entry in host.registries["dispatch"] if entry.distribution == "netcore-dispatch"]


@pytest.mark.parametrize("entry", dispatch_registrations(), ids=lambda entry: entry.name)
def test_a_dispatcher_is_what_its_registration_says(entry):
    cls = entry.load()
    restated = [attr for klass in cls.__mro__ if klass is not Dispatcher and klass is not object
                for attr in ("name", "scheme", "uses_poller") if attr in vars(klass)]
    assert restated == []  # one identity: the registration's
    dispatcher = cls(None, registration=entry)
    assert dispatcher.registration is entry
    assert dispatcher.uses_poller is ("blocking" not in entry.provides)
    assert dispatcher.scheme == entry.scheme


def test_a_dispatcher_made_without_a_registration_uses_the_poller():
    dispatcher = Dispatcher(None)
    assert dispatcher.registration is None
    assert dispatcher.uses_poller is True and dispatcher.scheme is None
