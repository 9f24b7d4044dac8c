"""Zero lost requests through every restart: HUP, TTIN/TTOU, max-requests, TERM.

Two load generators run against HTTP under ``prefork`` (each acceptor) and
``prefork-blocking`` while the master is signalled:

* :class:`HttpLoad`, a Python client that counts every request it sent and every
  response it read, per keep-alive connection, and reports an EOF or a reset after a
  sent request *separately* (a loss) from a refused connect (nothing was sent). It
  honours ``Connection: close`` -- the server's way of saying "go elsewhere" -- and
  never retries a request, so a server that loses one cannot hide it.
* wrk with its default settings, whose "Socket errors" line must stay empty.

A drain is allowed to close a connection only after a final response that says so, or
while the client is silent; these clients are never silent for long, so every close
must come after a ``Connection: close`` response.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from http_load import HttpLoad, assert_no_loss
from netcore.testing.server_process import ServerProcess

#: Each load phase is a few seconds; every wait below is bounded.
PHASE = 3.0
ACCEPTORS = ("shared", "mutex", "reuseport", "exclusive")


def serve_http(dispatch: str, acceptor: str, *extra: str, workers: str = "2", **kw) -> ServerProcess:
    # prefork-blocking serves one connection per worker process at a time: the clients
    # need as many workers, plus room for the new generation's.
    return ServerProcess("--protocol", "http", "--dispatch", dispatch, "--acceptor", acceptor,
                         "--workers", workers, "--timeout", "30", *extra, **kw)


SCHEMES = [("prefork", a) for a in ACCEPTORS] + [("prefork-blocking", "shared")]


def load_size(dispatch: str) -> tuple[str, int]:
    """(workers, client connections) for a scheme.

    The blocking schemes serve one connection per worker (process or thread) at a
    time, ``iterative`` one in all: a client beyond that would wait in the backlog
    for the whole phase, so they get fewer clients than workers.
    """
    if dispatch == "iterative":
        return ("1", 1)
    return ("6", 4) if dispatch in ("prefork-blocking", "prethread-blocking") else ("2", 16)


# -- HUP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dispatch", "acceptor"), SCHEMES)
def test_ten_hups_in_a_few_seconds_lose_no_request(dispatch, acceptor):
    workers, clients = load_size(dispatch)
    with serve_http(dispatch, acceptor, workers=workers) as server:
        server.wait_events("worker.started", int(workers))
        with HttpLoad(server.address, clients) as load:
            load.wait_for(200)
            for i in range(10):
                os.kill(server.pid, signal.SIGHUP)
                # the new generation is serving before the next HUP
                server.wait_events("master.reloaded", i + 1, timeout=30)
                load.wait_for(50)
                time.sleep(PHASE / 10)  # spread the HUPs over the phase (pacing, not sync)
            load.stop()
        assert_no_loss(load)
        assert load.counts["told_to_close"] > 0, "no drained connection was told to close"
        assert server.stop() == 0


# -- max-requests, TTIN/TTOU -----------------------------------------------------------------------


@pytest.mark.parametrize(("dispatch", "acceptor"), SCHEMES)
def test_max_requests_recycling_loses_no_request(dispatch, acceptor):
    workers, clients = load_size(dispatch)
    with serve_http(dispatch, acceptor, "--max-requests", "300", "--max-requests-jitter", "50",
                    workers=workers) as server:
        server.wait_events("worker.started", int(workers))
        with HttpLoad(server.address, clients) as load:
            server.wait_events("worker.exited", 3, timeout=60, reason="max requests")
            load.stop()
        assert_no_loss(load)
        assert server.stop() == 0


@pytest.mark.parametrize(("dispatch", "acceptor"), SCHEMES)
def test_ttin_and_ttou_with_busy_workers_lose_no_request(dispatch, acceptor):
    workers, clients = load_size(dispatch)
    n = int(workers)
    with serve_http(dispatch, acceptor, workers=workers) as server:
        server.wait_events("worker.started", n)
        with HttpLoad(server.address, clients) as load:
            load.wait_for(200)
            os.kill(server.pid, signal.SIGTTIN)
            server.wait_event("worker.started", 20, worker=n)
            load.wait_for(200)
            for count in (1, 2):
                os.kill(server.pid, signal.SIGTTOU)
                server.wait_events("worker.exited", count, timeout=30)
                load.wait_for(200)
            load.stop()
        assert_no_loss(load)
        assert server.stop() == 0


# -- TERM ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dispatch", "acceptor"), SCHEMES + [("inline", "shared"), ("pool", "shared"),
                                                              ("multi-reactor", "shared"), ("threading", "shared"),
                                                              ("iterative", "shared"),
                                                              ("prethread-blocking", "shared")])
def test_term_under_keep_alive_load_answers_every_request_sent(dispatch, acceptor):
    workers, clients = load_size(dispatch)
    if dispatch in ("inline", "pool", "multi-reactor", "threading"):
        workers = "2" if dispatch == "multi-reactor" else "1"
    with serve_http(dispatch, acceptor, workers=workers) as server:
        if dispatch.startswith("prefork"):
            server.wait_events("worker.started", int(workers))
        with HttpLoad(server.address, clients) as load:
            load.wait_for(200)
            assert server.stop(timeout=20) == 0
            load.stop()
        # Every request sent got its response; each connection was closed after a
        # response saying so (new connects are then refused: not a loss).
        assert_no_loss(load)
        assert load.counts["told_to_close"] >= 1


# -- wrk ------------------------------------------------------------------------------------------------


def run_wrk(address: tuple[str, int], seconds: float, connections: int = 16) -> dict[str, int]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"http://{address[0]}:{address[1]}/"],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        errors = dict(zip(errors, map(int, match.groups())))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    requests = re.search(r"(\d+) requests in", out)
    errors["requests"] = int(requests.group(1)) if requests else 0
    errors["output"] = out  # type: ignore[assignment]
    return errors


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.parametrize(("dispatch", "acceptor"), SCHEMES)
def test_wrk_sees_no_socket_error_through_hups_and_recycling(dispatch, acceptor):
    workers, clients = load_size(dispatch)
    with serve_http(dispatch, acceptor, "--max-requests", "2000", "--max-requests-jitter", "200",
                    workers=workers) as server:
        server.wait_events("worker.started", int(workers))
        result: dict = {}
        wrk = threading.Thread(target=lambda: result.update(run_wrk(server.address, PHASE + 1, clients)))
        wrk.start()
        time.sleep(0.5)  # wrk has connected (pacing only)
        for _ in range(5):
            os.kill(server.pid, signal.SIGHUP)
            time.sleep(PHASE / 5)
        wrk.join(PHASE + 60)
        assert result, "wrk did not finish"
        failed = {k: v for k, v in result.items() if k in ("connect", "read", "write", "timeout", "non2xx") and v}
        assert not failed, result["output"]
        assert result["requests"] > 0
        assert server.stop() == 0
