"""The in-process schemes under the signals an operator sends by habit: USR1, TTIN, TTOU, INT, QUIT.

Under a master these mean something (a log reopened by every worker, one worker more or
fewer, a fast stop whose stragglers are killed after ``KILL_GRACE``); an in-process server
(``inline``, ``pool``, ``multi-reactor``, the blocking schemes) has nobody to hand them
to. USR1 and TTIN/TTOU must then neither kill nor freeze it (their default actions), and
a fast stop must not wait for a handler that holds the process: it ends within about the
same second a master gives its workers, with the documented exit status and event.

Real ``netcore serve`` processes and real signals; the handler that holds the loop is a
protocol of a small plugin written for the test (it says when it starts holding).
"""

from __future__ import annotations

import os
import signal
import textwrap
import time

import pytest
from netcore.testing.clients import connect, recv_exactly
from netcore.testing.server_process import ServerProcess, module_env, process_state

IN_PROCESS = ("inline", "pool", "multi-reactor", "threading")

#: A protocol whose handler logs ``stall.holding`` and then blocks for ``stall_seconds``
#: on whatever thread runs handlers (under ``inline``, the loop's own).
STALL_PLUGIN = textwrap.dedent('''
    """Test plugin: the ``stall`` protocol, whose handler holds its thread for a long time."""
    import os
    import time

    import structlog
    from netcore import hookimpl
    from netcore.protocol import Protocol

    HOLD = float(os.environ.get("STALL_SECONDS", "30"))


    def hold(request):
        structlog.get_logger("test").warning("stall.holding", pid=os.getpid())
        time.sleep(HOLD)
        return request


    class StallProtocol(Protocol):
        def data_received(self, data):
            self.connection.submit(hold, data)


    @hookimpl
    def netcore_register_protocols(registry):
        registry.register("stall", "stall_plugin:StallProtocol", "test: a handler that holds its thread")
''')


@pytest.fixture
def stall_env(tmp_path):
    return {**module_env(tmp_path, "stall_plugin", STALL_PLUGIN), "STALL_SECONDS": "30"}


def echo_once(server: ServerProcess, payload: bytes) -> bytes:
    with connect(server.address, timeout=10) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


# -- USR1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", IN_PROCESS)
def test_usr1_is_logged_and_ignored_not_fatal(dispatch):
    """logrotate's postrotate sends USR1: a server with nothing to reopen goes on serving."""
    with ServerProcess("--dispatch", dispatch) as server:
        server.wait_event("worker.started")
        os.kill(server.pid, signal.SIGUSR1)
        ignored = server.wait_event("server.signal_ignored", 10, signal="SIGUSR1")
        assert dispatch in ignored["reason"] and "access_log_file" in ignored["reason"], ignored
        assert echo_once(server, b"after usr1") == b"after usr1"
        assert server.stop() == 0, server.describe()


def test_usr1_still_reopens_the_access_log_file_under_inline(tmp_path):
    """Where something reopens on USR1 (the http access log file), that is what USR1 does
    (a guard: the ignoring handler must not replace it)."""
    path = tmp_path / "access.log"
    with ServerProcess("--dispatch", "inline", "--protocol", "http", "--access-log-file", str(path)) as server:
        server.wait_event("worker.started")
        # A request first, answered and logged: the loop is past its last write to stderr
        # (the http protocol's USR1 handler logs from inside the signal handler, which
        # must not land in the middle of another log line's write).
        with connect(server.address, timeout=10) as sock:
            sock.sendall(b"GET /before HTTP/1.0\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.")
        os.rename(path, tmp_path / "access.log.1")
        os.kill(server.pid, signal.SIGUSR1)
        # The file itself, not http.access_log_reopened: that event is dropped when the
        # signal lands inside another write to stderr (the reopen stands).
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, f"not reopened; {server.describe()}"
            time.sleep(0.02)
        assert not server.events_named("server.signal_ignored")
        assert server.stop() == 0, server.describe()


# -- TTIN, TTOU ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ("inline", "pool"))
@pytest.mark.parametrize("signum", (signal.SIGTTIN, signal.SIGTTOU), ids=("TTIN", "TTOU"))
def test_ttin_and_ttou_are_logged_and_ignored_not_a_stop(dispatch, signum):
    """Their default action stops (freezes) the process: clients would hang until SIGCONT."""
    name = signal.Signals(signum).name
    with ServerProcess("--dispatch", dispatch) as server:
        server.wait_event("worker.started")
        os.kill(server.pid, signum)
        ignored = server.wait_event("server.signal_ignored", 10, signal=name)
        assert "master" in ignored["reason"], ignored
        assert process_state(server.pid) != "T"
        assert echo_once(server, b"not frozen") == b"not frozen"
        assert server.stop() == 0, server.describe()


# -- INT, QUIT: a fast stop is bounded -------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ("inline", "multi-reactor"))
@pytest.mark.parametrize("signum", (signal.SIGINT, signal.SIGQUIT), ids=("INT", "QUIT"))
def test_fast_stop_ends_a_process_whose_handler_holds_it(dispatch, signum, stall_env):
    """A handler holding the loop (30 s here) cannot be interrupted from Python: about one
    second after INT/QUIT the process ends anyway, exit 0, with ``server.stopped``."""
    name = signal.Signals(signum).name
    took, overdue, stopped = _stop_while_held(signum, stall_env, "--dispatch", dispatch)
    assert took < 5.0, f"exit {took:.2f} s after {name}: the handler was waited for"
    assert overdue["level"] == "warning" and overdue["reason"] == f"signal {name}", overdue
    assert stopped["reason"] == f"signal {name}", stopped
    assert stopped["stats"]["connections_accepted"] == 1, stopped


@pytest.mark.parametrize("dispatch", ("inline", "multi-reactor"))
def test_term_ends_a_process_whose_handler_holds_it_after_the_graceful_timeout(dispatch, stall_env):
    """TERM waits for the handler as long as graceful_timeout says (a stop's timer runs
    on the loop the handler holds, so it could not fire), then KILL_GRACE more; it waited
    for ever (30 s here: the handler's own end)."""
    took, overdue, stopped = _stop_while_held(signal.SIGTERM, stall_env, "--dispatch", dispatch,
                                              "--graceful-timeout", "1")
    assert 1.0 <= took < 8.0, f"exit {took:.2f} s after TERM with graceful_timeout 1"
    assert overdue["reason"] == "signal SIGTERM" and overdue["waited"] == 2.0, overdue
    assert stopped["reason"] == "signal SIGTERM"


def _stop_while_held(signum, stall_env, *args: str) -> tuple[float, dict, dict]:
    """Send ``signum`` while the stall protocol holds the loop (30 s): the seconds the
    process took to exit (status 0), its ``server.stop_overdue`` and ``server.stopped``."""
    with ServerProcess("-p", "stall_plugin", "--protocol", "stall", "--workers", "1", *args,
                       env=stall_env) as server:
        server.wait_event("worker.started")
        sock = connect(server.address, timeout=10)
        try:
            sock.sendall(b"hold")
            server.wait_event("stall.holding", 10)
            sent = time.monotonic()
            assert server.stop(signum, timeout=20) == 0, server.describe()
            took = time.monotonic() - sent
        finally:
            sock.close()
        return took, server.wait_event("server.stop_overdue", 1.0), server.stopped_event()


@pytest.mark.parametrize("dispatch", ("inline", "pool"))
def test_fast_stop_with_nothing_held_exits_at_once_as_before(dispatch):
    """The bound is a backstop: a server with nothing running stops as it always did."""
    with ServerProcess("--dispatch", dispatch) as server:
        server.wait_event("worker.started")
        assert echo_once(server, b"idle") == b"idle"
        assert server.stop(signal.SIGINT, timeout=10) == 0, server.describe()
        assert server.stopped_event()["reason"] == "signal SIGINT"
        assert not server.events_named("server.stop_overdue")
