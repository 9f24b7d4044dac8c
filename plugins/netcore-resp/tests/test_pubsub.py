"""Pub/Sub: Redis's bytes, delivery in order across loops and threads, and the output limit."""

from __future__ import annotations

import socket
import threading
import time

import pytest

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 20.0
SERVER_ARGS = ["--set", "resp_pubsub_output_hard=1048576"]

CASES = {
    "subscribed-mode": b"SUBSCRIBE a b\r\nPING\r\nPING x\r\nGET k\r\nPSUBSCRIBE p*\r\nUNSUBSCRIBE b\r\nUNSUBSCRIBE\r\n"
                       b"PUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nGET k\r\nPING\r\n",
    "pubsub-info": b"PUBSUB\r\nPUBSUB FOO\r\nPUBSUB NUMSUB a b\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS\r\n"
                   b"PUBLISH a\r\nPUBLISH a m\r\nSUBSCRIBE\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name, same_bytes):
    same_bytes(CASES[name])


MESSAGES = 500




@pytest.mark.parametrize("protocol", [2, 3])
def test_messages_arrive_in_order_on_other_connections(scheme_server, protocol):
    """Several subscribers (multi-reactor spreads them over both loops), one publisher."""
    subscribers = [redis.Redis(*scheme_server.address, protocol=protocol, socket_timeout=PATIENCE) for _ in range(4)]
    publisher = redis.Redis(*scheme_server.address, protocol=protocol, socket_timeout=PATIENCE)
    channels = []
    try:
        for conn in subscribers:
            ps = conn.pubsub()
            ps.subscribe("news")
            ps.psubscribe("n*")
            for _ in range(2):
                assert ps.get_message(timeout=PATIENCE)["type"] in ("subscribe", "psubscribe")
            channels.append(ps)
        for i in range(MESSAGES):
            assert publisher.publish("news", str(i)) == 2 * len(subscribers)
        for ps in channels:
            got = {"message": [], "pmessage": []}
            deadline = time.monotonic() + PATIENCE
            while len(got["message"]) + len(got["pmessage"]) < 2 * MESSAGES and time.monotonic() < deadline:
                message = ps.get_message(timeout=1)
                if message is not None:
                    got[message["type"]].append(int(message["data"]))
            assert got["message"] == list(range(MESSAGES))
            assert got["pmessage"] == list(range(MESSAGES))
    finally:
        for ps in channels:
            ps.close()
        for conn in subscribers:
            conn.close()
        publisher.close()


def test_a_subscriber_that_does_not_read_is_disconnected(scheme_server):
    """Past the hard output limit (1 MB here) the subscriber goes; the publisher never waits."""
    slow = socket.create_connection(scheme_server.address, timeout=PATIENCE)
    publisher = redis.Redis(*scheme_server.address, socket_timeout=PATIENCE)
    try:
        slow.sendall(b"SUBSCRIBE flood\r\n")
        assert slow.recv(100).startswith(b"*3\r\n$9\r\nsubscribe")
        payload = b"x" * 65536
        deadline = time.monotonic() + PATIENCE
        sent = 0
        while publisher.pubsub_numsub("flood")[0][1] and time.monotonic() < deadline:
            started = time.monotonic()
            publisher.publish("flood", payload)
            assert time.monotonic() - started < 1.0, "PUBLISH waited for a slow subscriber"
            sent += 1
        assert publisher.pubsub_numsub("flood") == [(b"flood", 0)]
        # The kernel's socket buffers take a few MB before the connection's own queue grows.
        assert sent * len(payload) < 64 * 1024 * 1024, "disconnected only after far more than the limit"
        # The slow client finds its connection gone once it reads what reached it.
        slow.settimeout(PATIENCE)
        closed = False
        reader_deadline = time.monotonic() + PATIENCE
        while time.monotonic() < reader_deadline:
            try:
                if not slow.recv(1 << 20):
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
        assert closed
        assert publisher.ping()
    finally:
        slow.close()
        publisher.close()


def test_pubsub_between_two_threads_of_a_client(scheme_server):
    """redis-py's run_in_thread: a subscriber thread and a publisher on two connections."""
    conn = redis.Redis(*scheme_server.address, socket_timeout=PATIENCE)
    got: list = []
    done = threading.Event()

    def handler(message):
        got.append(message["data"])
        if len(got) == 50:
            done.set()

    ps = conn.pubsub()
    ps.subscribe(**{"t": handler})
    worker = ps.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        deadline = time.monotonic() + PATIENCE
        while conn.pubsub_numsub("t")[0][1] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(50):
            conn.publish("t", i)
        assert done.wait(PATIENCE)
        assert got == [str(i).encode() for i in range(50)]
    finally:
        worker.stop()
        worker.join(PATIENCE)
        ps.close()
        conn.close()
