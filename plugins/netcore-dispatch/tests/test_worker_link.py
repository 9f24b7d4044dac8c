"""The arithmetic of the master's link with its workers: beat intervals, request limits,
and the messages a worker writes, read back through a real pipe."""

from __future__ import annotations

import json
import os

from netcore.stats import WorkerStats
from netcore_dispatch.worker_link import MasterLink, beat_interval, request_limit


def test_beat_interval_is_a_quarter_of_the_timeout_at_most_a_second():
    assert beat_interval(2.0) == 0.5
    assert beat_interval(30.0) == 1.0
    assert beat_interval(0) == 1.0  # no timeout: beats still show the master a live worker
    assert beat_interval(0.001) == 0.02


def test_request_limit_adds_jitter_within_bounds():
    assert request_limit(0, 100) == 0
    assert request_limit(50, 0) == 50
    limits = {request_limit(50, 5) for _ in range(200)}
    assert limits <= set(range(50, 56)) and len(limits) > 1


def test_messages_are_whole_lines_and_recycle_is_asked_once():
    r, w = os.pipe()
    life_r, life_w = os.pipe()
    try:
        link = MasterLink(3, w, life_r, timeout=2.0, max_requests=10)
        link.beat()
        link.ready()
        link.check_requests(9)
        link.check_requests(10)
        link.check_requests(11)
        link.report(WorkerStats(worker=3, pid=1, requests=11))
        lines = os.read(r, 65536).split(b"\n")
        assert lines[0] == b""  # the heartbeat
        messages = [json.loads(line) for line in lines[1:] if line]
        assert messages[0] == {"ready": True}
        assert messages[1] == {"recycle": 10}
        assert messages[2]["stats"]["requests"] == 11 and len(messages) == 3
        assert not link.master_gone()
        os.close(life_w)
        life_w = None
        assert link.master_gone()  # the master's end closed: EOF
    finally:
        for fd in (r, w, life_r, life_w):
            if fd is not None:
                os.close(fd)
