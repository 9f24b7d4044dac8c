"""Sorted sets, SORT, LCS, streams and the 16 databases byte for byte against redis-server; DUMP and
RESTORE between netcore servers (and a redis-server payload refused); the
blocking pops' Redis semantics (served after the command or the whole EXEC, any command
that makes the key) and CLIENT UNBLOCK across connections, under three schemes.

Scores in the byte-for-byte cases are exact binary fractions: redis-server 7.0 prints
scores with 17 significant digits (``0.10000000000000001``), netcore the shortest text
that reads back (``0.1``, as Redis 7.2 does) -- docs/resp.md lists it.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 20.0

CASES = {
    "zadd": b"ZADD z 1 a 2 b 3 c\r\nZADD z NX 5 a 6 d\r\nZADD z XX CH 7 a 8 e\r\nZADD z GT CH 1 b 9 c\r\n"
            b"ZADD z LT 10 c\r\nZADD z INCR 2.5 a\r\nZADD z XX NX 1 a\r\nZADD z GT LT 1 a\r\nZADD z INCR 1 a 2 b\r\n"
            b"ZADD z 1\r\nZADD z x a\r\nZADD z NX INCR 1 a\r\nZADD nope XX 1 a\r\nZINCRBY z 1.5 b\r\nZINCRBY z x b\r\n"
            b"ZSCORE z a\r\nZSCORE z nope\r\nZMSCORE z a nope b\r\nZCARD z\r\nZCARD nope\r\nZREM z a nope\r\n"
            b"ZADD i 1 x\r\nZINCRBY i +inf x\r\nZINCRBY i -inf x\r\nZSCORE i x\r\nSET s x\r\nZADD s 1 a\r\n"
            b"ZRANGE s 0 1\r\nTYPE z\r\nOBJECT ENCODING nope\r\n",
    "zrange": b"ZADD z 1 a 2 b 3 c 4 d 5 e\r\nZRANK z c\r\nZREVRANK z c\r\nZRANK z nope\r\nZCOUNT z 2 (4\r\n"
              b"ZCOUNT z -inf +inf\r\nZCOUNT z x 1\r\nZRANGE z 0 -1 WITHSCORES\r\nZRANGE z 1 2 REV\r\n"
              b"ZRANGE z -2 100\r\nZRANGE z (2 +inf BYSCORE LIMIT 1 2 WITHSCORES\r\n"
              b"ZRANGE z +inf -inf BYSCORE REV LIMIT 0 2\r\nZRANGE z 0 -1 LIMIT 0 1\r\nZRANGE z 0 -1 FOO\r\n"
              b"ZRANGEBYSCORE z -inf 3 WITHSCORES\r\nZRANGEBYSCORE z 2 4 LIMIT -1 2\r\n"
              b"ZRANGEBYSCORE z 2 4 LIMIT 1 -1\r\nZREVRANGEBYSCORE z 9 (3\r\nZREVRANGE z 0 0 WITHSCORES\r\n"
              b"ZRANGESTORE dst z 0 1\r\nZRANGE dst 0 -1 WITHSCORES\r\nZRANGESTORE dst z 10 20\r\nEXISTS dst\r\n"
              b"ZREMRANGEBYSCORE z -inf 2\r\nZREMRANGEBYRANK z 0 0\r\nZRANGE z 0 -1 WITHSCORES\r\n"
              b"ZPOPMIN z\r\nZPOPMAX z 2\r\nZPOPMIN z -1\r\nZPOPMIN nope\r\nZPOPMIN nope 2\r\nEXISTS z\r\n",
    "zlex": b"ZADD l 0 a 0 b 0 c 0 d 0 e\r\nZRANGEBYLEX l - +\r\nZRANGEBYLEX l [b (d\r\n"
            b"ZREVRANGEBYLEX l + (b LIMIT 1 2\r\nZLEXCOUNT l [b [d\r\nZLEXCOUNT l - +\r\nZRANGEBYLEX l b d\r\n"
            b"ZRANGEBYLEX l + -\r\nZREMRANGEBYLEX l [a (c\r\nZRANGE l [c + BYLEX\r\n"
            b"ZRANGE l 0 -1 BYLEX WITHSCORES\r\nZRANGE l - + BYLEX REV LIMIT 0 1\r\n",
    "zalgebra": b"ZADD a 1 x 2 y 3 z\r\nZADD b 10 y 20 z 30 w\r\nSADD s x w\r\n"
                b"ZUNIONSTORE u 2 a b WEIGHTS 1 2 AGGREGATE MAX\r\nZRANGE u 0 -1 WITHSCORES\r\n"
                b"ZINTERSTORE i 2 a b AGGREGATE MIN\r\nZRANGE i 0 -1 WITHSCORES\r\nZINTERSTORE i 3 a b s\r\n"
                b"EXISTS i\r\nZDIFFSTORE d 2 a b\r\nZRANGE d 0 -1 WITHSCORES\r\nZUNION 2 a s WITHSCORES\r\n"
                b"ZINTER 2 a b WITHSCORES\r\nZDIFF 2 b a\r\nZINTERCARD 2 a b\r\nZINTERCARD 2 a b LIMIT 1\r\n"
                b"ZUNIONSTORE u 0 a\r\nZUNIONSTORE u 3 a b\r\nZUNIONSTORE u 2 a b WEIGHTS 1 x\r\n"
                b"ZUNIONSTORE u 2 a b AGGREGATE avg\r\nSET str x\r\nZUNION 2 a str\r\n"
                b"ZMPOP 2 nope a MIN COUNT 2\r\nZMPOP 1 a MAX\r\nZMPOP 0 a MIN\r\nZMPOP 1 a UP\r\n"
                b"BZMPOP 0.01 1 nope MIN\r\nBZPOPMIN nope 0.01\r\nBZPOPMAX b 0\r\nZRANDMEMBER nope\r\n"
                b"ZRANDMEMBER nope 3\r\nZRANDMEMBER b 0\r\nZSCAN b 0 MATCH y\r\n",
    "sort": b"RPUSH l 3 1 2 10\r\nSORT l\r\nSORT l DESC LIMIT 1 2\r\nSORT l ALPHA\r\nSET w_1 30\r\nSET w_2 20\r\n"
            b"SET w_3 10\r\nSORT l BY w_*\r\nSORT l BY w_* GET # GET w_*\r\nHSET h_1 f 5\r\n"
            b"SORT l BY h_*->f GET h_*->f\r\nSORT l BY nosort STORE dst\r\nLRANGE dst 0 -1\r\nRPUSH bad a b\r\n"
            b"SORT bad\r\nSORT l STOREX\r\nSORT_RO l STORE x\r\nZADD z 3 a 1 b 2 c\r\nSORT z BY nosort\r\n"
            b"SORT z BY nosort DESC LIMIT 0 2\r\nSADD s 5 4 6\r\nSORT s\r\nSORT nope\r\nSET str x\r\nSORT str\r\n",
    "lcs": b"SET a ohmytext\r\nSET b mynewtext\r\nLCS a b\r\nLCS a b LEN\r\nLCS a b IDX\r\n"
           b"LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN\r\nLCS a b LEN IDX\r\nLCS a nope\r\nRPUSH l x\r\nLCS a l\r\n",
    "streams": b"XADD s 1-1 a 1\r\nXADD s 1-1 a 1\r\nXADD s 0-0 a 1\r\nXADD s 2 b 2\r\nXADD s 2-* c 3\r\n"
               b"XADD s 3-5 d 4 e 5\r\nXLEN s\r\nXRANGE s - +\r\nXRANGE s (1-1 + COUNT 2\r\n"
               b"XREVRANGE s + - COUNT 1\r\nXDEL s 2-0 9-9\r\nXLEN s\r\nXGROUP CREATE s g 0\r\n"
               b"XGROUP CREATE s g 0\r\nXGROUP CREATE nope g 0\r\nXREADGROUP GROUP g alice COUNT 1 STREAMS s >\r\n"
               b"XREADGROUP GROUP g bob STREAMS s >\r\nXREADGROUP GROUP g bob STREAMS s >\r\n"
               b"XREADGROUP GROUP g alice STREAMS s 0\r\nXACK s g 1-1\r\nXGROUP CREATECONSUMER s g carol\r\n"
               b"XGROUP DELCONSUMER s g bob\r\nXREAD COUNT 1 STREAMS s 0\r\nXTRIM s MAXLEN 1\r\n"
               b"XRANGE s - +\r\nXADD s NOMKSTREAM MAXLEN 1 9-1 f v\r\nXLEN s\r\nXADD nope2 NOMKSTREAM * f v\r\n"
               b"TYPE s\r\nXADD s bad f v\r\nXADD s 10-1 f\r\nCOPY s s2\r\nXRANGE s2 - +\r\n",
    "infinite-increments": b"HINCRBYFLOAT hx f +inf\r\nEXISTS hx\r\nHSET hx g 1\r\nHINCRBYFLOAT hx g -inf\r\n"
                           b"INCRBYFLOAT s +inf\r\nEXISTS s\r\n",
    "databases": b"SET a 1\r\nSELECT 3\r\nGET a\r\nSET b 2\r\nMOVE b 0\r\nMOVE b 3\r\nMOVE b 16\r\nSELECT 0\r\n"
                 b"GET b\r\nDBSIZE\r\nSWAPDB 0 3\r\nDBSIZE\r\nSWAPDB 0 x\r\nSWAPDB 0 99\r\nCOPY x y DB 99\r\n"
                 b"SET c 3\r\nCOPY c c\r\nCOPY c c DB 5\r\nSELECT 5\r\nGET c\r\nSELECT 16\r\nSELECT -1\r\n"
                 b"MULTI\r\nSELECT 2\r\nSET q 1\r\nEXEC\r\nDBSIZE\r\nSELECT 0\r\nINFO keyspace\r\nFLUSHALL\r\n"
                 b"DBSIZE\r\nSELECT 2\r\nDBSIZE\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name, same_bytes):
    same_bytes(CASES[name])


def connect(server, **options):
    return redis.Redis(*server.address, socket_timeout=PATIENCE, **options)


def wait_blocked(client, count: int) -> None:
    deadline = time.monotonic() + PATIENCE
    while client.info("clients")["blocked_clients"] != count:
        assert time.monotonic() < deadline, f"not {count} blocked clients within {PATIENCE}s"


def in_thread(fn):
    """Run ``fn()`` on a thread; ``result()`` joins it (bounded) and returns its value."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.__setitem__("v", fn()))
    thread.start()

    def result():
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the blocked call never returned"
        return out["v"]
    return result


def test_bzpopmin_is_served_by_zadd_in_both_protocols(scheme_server):
    main = connect(scheme_server)
    main.delete("z")
    for protocol in (2, 3):
        waiter = connect(scheme_server, protocol=protocol)
        got = in_thread(lambda waiter=waiter: waiter.bzpopmin("z", 10))
        wait_blocked(main, 1)
        main.zadd("z", {"a": 1.5, "b": 2})
        assert tuple(got()) == (b"z", b"a", 1.5)  # redis-py: a tuple in RESP2, a list in RESP3
        assert main.zrange("z", 0, -1, withscores=True) == [(b"b", 2.0)]
        main.delete("z")
        waiter.close()
    main.close()


def test_a_push_undone_in_the_same_exec_wakes_nobody(scheme_server):
    """Redis serves blocked clients after the command, or after the whole EXEC."""
    main = connect(scheme_server)
    main.delete("q")
    waiter = connect(scheme_server)
    got = in_thread(lambda: waiter.blpop(["q"], 10))
    wait_blocked(main, 1)
    pipe = main.pipeline(transaction=True)
    pipe.lpush("q", "early").delete("q").set("q", "now a string")
    pipe.execute()
    assert main.info("clients")["blocked_clients"] == 1
    main.delete("q")
    main.lpush("src", "late")
    main.rename("src", "q")  # a key made by RENAME serves its waiters too
    assert got() == (b"q", b"late")
    waiter.close()
    main.close()


def test_brpoplpush_to_a_key_of_another_type_answers_wrongtype_and_keeps_the_value(scheme_server):
    main = connect(scheme_server)
    main.delete("src", "dst")
    main.set("dst", "not a list")
    waiter = connect(scheme_server)

    def call():
        try:
            return waiter.brpoplpush("src", "dst", 10)
        except redis.ResponseError as exc:
            return str(exc)
    got = in_thread(call)
    wait_blocked(main, 1)
    main.rpush("src", "v")
    assert got().startswith("WRONGTYPE")
    assert main.lrange("src", 0, -1) == [b"v"]
    waiter.close()
    main.close()


def test_client_unblock(scheme_server):
    main = connect(scheme_server)
    main.delete("q")
    for how, expected in (("TIMEOUT", None), ("ERROR", "UNBLOCKED client unblocked via CLIENT UNBLOCK")):
        waiter = connect(scheme_server)
        waiter_id = waiter.client_id()

        def call(waiter=waiter):
            try:
                return waiter.blpop(["q"], 10)
            except redis.ResponseError as exc:
                return str(exc)
        got = in_thread(call)
        wait_blocked(main, 1)
        assert main.client_unblock(waiter_id, error=how == "ERROR") == 1
        assert got() == expected
        assert main.client_unblock(waiter_id) == 0  # no longer blocked
        waiter.close()
    main.close()


def test_each_connection_has_its_database(scheme_server):
    zero, one = connect(scheme_server, db=0), connect(scheme_server, db=1)
    zero.flushall()
    zero.set("k", "zero")
    one.set("k", "one")
    assert (zero.get("k"), one.get("k")) == (b"zero", b"one")
    assert one.move("k", 2) is True and one.get("k") is None
    assert zero.swapdb(0, 2) is True
    assert zero.get("k") == b"one"
    lines = zero.client_list()
    assert {entry["db"] for entry in lines} >= {"0", "1"}
    zero.close()
    one.close()


def test_dump_restore_round_trip_and_foreign_payloads(resp_inline, redis_server):
    r = redis.Redis(*resp_inline.address, socket_timeout=PATIENCE)
    r.flushall()
    r.rpush("l", "a", "b" * 70000)
    r.hset("h", mapping={"f": "v", "g": ""})
    r.sadd("s", "x", "y")
    r.zadd("z", {"m": 1.5, "n": -2})
    r.set("str", "val")
    for key in ("l", "h", "s", "z", "str"):
        payload = r.dump(key)
        assert r.restore(key + "-copy", 0, payload)
        assert r.dump(key + "-copy") == payload
        assert r.type(key + "-copy") == r.type(key)
    assert r.zrange("z-copy", 0, -1, withscores=True) == [(b"n", -2.0), (b"m", 1.5)]
    with pytest.raises(redis.ResponseError, match="BUSYKEY"):
        r.restore("l-copy", 0, r.dump("l"))
    assert r.restore("l-copy", 100_000, r.dump("s"), replace=True) and r.type("l-copy") == b"set"
    assert 0 < r.pttl("l-copy") <= 100_000
    assert r.dump("nope") is None
    theirs = redis.Redis(*redis_server, socket_timeout=PATIENCE)
    theirs.set("k", "v")
    for payload in (theirs.dump("k"), r.dump("l")[:-1] + b"?", b""):
        with pytest.raises(redis.ResponseError, match="payload version or checksum are wrong"):
            r.restore("foreign", 0, payload)
    theirs.close()
    r.close()


def test_keyspace_notifications_follow_the_flags(scheme_server):
    main = connect(scheme_server)
    main.flushall()
    listener = connect(scheme_server).pubsub()
    listener.psubscribe("__key*__:*")
    assert listener.get_message(timeout=PATIENCE)["type"] == "psubscribe"
    try:
        assert main.config_set("notify-keyspace-events", "KEl")
        assert main.config_get("notify-keyspace-events") == {"notify-keyspace-events": "lKE"}
        main.set("ignored", "strings are not in 'l'")
        main.rpush("q", "a")
        main.lrem("q", 0, "missing")  # nothing changed: no event
        main.lpop("q")  # emptied: lpop, then del (a generic event, not asked for: not sent)
        main.config_set("notify-keyspace-events", "Egx")
        main.set("t", "v", px=50)
        main.delete("nope")  # nothing deleted: no event
        expected = [("__keyspace@0__:q", "rpush"), ("__keyevent@0__:rpush", "q"), ("__keyspace@0__:q", "lpop"),
                    ("__keyevent@0__:lpop", "q"), ("__keyevent@0__:expired", "t")]
        got = []
        deadline = time.monotonic() + PATIENCE
        while len(got) < len(expected) and time.monotonic() < deadline:
            message = listener.get_message(timeout=1)
            if message and message["type"] == "pmessage":
                got.append((message["channel"].decode(), message["data"].decode()))
        assert got == expected
        with pytest.raises(redis.ResponseError, match=r"Invalid event class character\. Use 'Ag\$lshzxeKEtmdn'\."):
            main.config_set("notify-keyspace-events", "KQ")  # Redis 7.0's text
    finally:
        main.config_set("notify-keyspace-events", "")
        listener.close()
        main.close()


def test_commandstats_count_from_the_first_info(resp_inline):
    r = redis.Redis(*resp_inline.address, socket_timeout=PATIENCE)
    r.config_resetstat()
    r.info()  # the first INFO (of this server, or after RESETSTAT counting goes on)
    for _ in range(3):
        r.set("k", "v")
    with pytest.raises(redis.ResponseError):
        r.execute_command("INCR", "k")
    stats = r.info("commandstats")
    assert stats["cmdstat_set"]["calls"] == 3 and stats["cmdstat_set"]["failed_calls"] == 0
    assert stats["cmdstat_incr"] == {**stats["cmdstat_incr"], "calls": 1, "failed_calls": 1}
    everything = r.info("all")
    assert "rejected_calls" in everything["cmdstat_set"] and "used_cpu_user" in everything
    r.close()


def test_replies_before_a_blocking_command_are_sent_at_once(scheme_server):
    """A pipelined LPUSH then BLPOP: the earlier waiter gets the value, and the LPUSH's
    reply reaches its client while that client's BLPOP waits (Redis's fairness test)."""
    main = connect(scheme_server)
    main.delete("fair")
    first = connect(scheme_server)
    got = in_thread(lambda: first.blpop(["fair"], 10))
    wait_blocked(main, 1)
    with socket.create_connection(scheme_server.address, timeout=PATIENCE) as pipelined:
        pipelined.sendall(b"LPUSH fair 1\r\nBLPOP fair 0\r\n")
        assert pipelined.recv(100) == b":1\r\n"
        assert tuple(got()) == (b"fair", b"1")
        wait_blocked(main, 1)  # the pipelined BLPOP now waits
        main.lpush("fair", "2")
        assert pipelined.recv(100) == b"*2\r\n$4\r\nfair\r\n$1\r\n2\r\n"
    first.close()
    main.close()
