"""RESET, the subscribed-mode refusals, strtod/strtold number parsing and RESTORE's checks,
against the replies redis-server 7.0.15 gives (recorded here: no redis-server needed)."""

from __future__ import annotations

import struct
import zlib

import pytest

NOT_ALLOWED = (b" only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n")
SUBSCRIBED_X = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n"
NOT_FLOAT = b"-ERR value is not a valid float\r\n"


def run(raw, server, script: bytes) -> bytes:
    """FLUSHALL, then ``script`` on one connection: its replies (FLUSHALL's +OK left out)."""
    got, closed = raw.exchange(server.address, b"FLUSHALL\r\n" + script)
    assert not closed and got.startswith(b"+OK\r\n")
    return got[5:]


# -- RESET ------------------------------------------------------------------------------
@pytest.mark.parametrize("script, reply", [
    (b"RESET\r\n", b"+RESET\r\n"),
    (b"reset\r\n", b"+RESET\r\n"),
    (b"RESET x\r\n", b"-ERR wrong number of arguments for 'reset' command\r\n"),
    # database 0 again
    (b"SELECT 3\r\nSET x 1\r\nRESET\r\nGET x\r\n", b"+OK\r\n+OK\r\n+RESET\r\n$-1\r\n"),
    # the name goes (clearClientConnectionState frees it)
    (b"CLIENT SETNAME foo\r\nRESET\r\nCLIENT GETNAME\r\n", b"+OK\r\n+RESET\r\n$-1\r\n"),
    # MULTI discarded, at once, not queued
    (b"MULTI\r\nRESET\r\nPING\r\n", b"+OK\r\n+RESET\r\n+PONG\r\n"),
    (b"SELECT 2\r\nMULTI\r\nSET a 1\r\nRESET\r\nEXEC\r\nGET a\r\n",
     b"+OK\r\n+OK\r\n+QUEUED\r\n+RESET\r\n-ERR EXEC without MULTI\r\n$-1\r\n"),
    (b"MULTI\r\nRESET x\r\nEXEC\r\n", b"+OK\r\n-ERR wrong number of arguments for 'reset' command\r\n"
     b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
    # unwatched: the write after it does not fail the next transaction
    (b"WATCH a\r\nRESET\r\nSET a 2\r\nMULTI\r\nEXEC\r\n", b"+OK\r\n+RESET\r\n+OK\r\n+OK\r\n*0\r\n"),
    # subscriptions dropped (without unsubscribe messages): plain commands work again
    (b"SUBSCRIBE x\r\nPSUBSCRIBE y*\r\nRESET\r\nSET a 1\r\nGET a\r\nPUBSUB NUMSUB x\r\nPUBSUB NUMPAT\r\n",
     SUBSCRIBED_X + b"*3\r\n$10\r\npsubscribe\r\n$2\r\ny*\r\n:2\r\n+RESET\r\n+OK\r\n$1\r\n1\r\n"
     b"*2\r\n$1\r\nx\r\n:0\r\n:0\r\n"),
    # CLIENT REPLY OFF ends and RESET answers; under SKIP RESET's own reply is the one skipped
    (b"CLIENT REPLY OFF\r\nPING\r\nRESET\r\nPING\r\n", b"+RESET\r\n+PONG\r\n"),
    (b"CLIENT REPLY SKIP\r\nRESET\r\nPING\r\n", b"+PONG\r\n"),
])
def test_reset(raw, resp_inline, script, reply):
    assert run(raw, resp_inline, script) == reply


def test_reset_goes_back_to_resp2(raw, resp_inline):
    got = run(raw, resp_inline, b"HELLO 3\r\nSUBSCRIBE x\r\nRESET\r\nHGETALL nokey\r\nGET nokey\r\n")
    assert got.startswith(b"%7\r\n")
    assert got.endswith(b">3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n+RESET\r\n*0\r\n$-1\r\n")


# -- RESP2 subscribed mode and EXEC's refusals --------------------------------------------
@pytest.mark.parametrize("script, reply", [
    (b"MULTI\r\n", b"-ERR Can't execute 'multi':" + NOT_ALLOWED),
    (b"EXEC\r\n", b"-EXECABORT Transaction discarded because of: Can't execute 'exec':" + NOT_ALLOWED),
    (b"WATCH a\r\n", b"-ERR Can't execute 'watch':" + NOT_ALLOWED),
    (b"DISCARD\r\n", b"-ERR Can't execute 'discard':" + NOT_ALLOWED),
    (b"UNWATCH\r\n", b"-ERR Can't execute 'unwatch':" + NOT_ALLOWED),
    # arity first, then the refusal; container commands by their full name
    (b"GET\r\n", b"-ERR wrong number of arguments for 'get' command\r\n"),
    (b"WATCH\r\n", b"-ERR wrong number of arguments for 'watch' command\r\n"),
    (b"EXEC x\r\n", b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"),
    (b"PUBSUB NUMSUB x\r\n", b"-ERR Can't execute 'pubsub|numsub':" + NOT_ALLOWED),
    (b"CLIENT REPLY OFF\r\n", b"-ERR Can't execute 'client|reply':" + NOT_ALLOWED),
    (b"CLIENT REPLY\r\n", b"-ERR wrong number of arguments for 'client|reply' command\r\n"),
    (b"CLIENT FOO\r\n", b"-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"),
    (b"FOO\r\n", b"-ERR unknown command 'FOO', with args beginning with: \r\n"),
    (b"RESET\r\nGET a\r\n", b"+RESET\r\n$-1\r\n"),
])
def test_subscribed_mode_refusals(raw, resp_inline, script, reply):
    assert run(raw, resp_inline, b"SUBSCRIBE x\r\n" + script + b"RESET\r\n") == SUBSCRIBED_X + reply + b"+RESET\r\n"


@pytest.mark.parametrize("script, reply", [
    (b"EXEC x\r\n", b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"),
    # EXEC refused: the transaction is discarded
    (b"MULTI\r\nEXEC x\r\nEXEC\r\n", b"+OK\r\n-EXECABORT Transaction discarded because of: wrong number of "
     b"arguments for 'exec' command\r\n-ERR EXEC without MULTI\r\n"),
    # ... and the keys unwatched
    (b"WATCH a\r\nEXEC x\r\nSET a 1\r\nMULTI\r\nEXEC\r\n", b"+OK\r\n-EXECABORT Transaction discarded because of: "
     b"wrong number of arguments for 'exec' command\r\n+OK\r\n+OK\r\n*0\r\n"),
    # a refused MULTI, WATCH or DISCARD inside MULTI fails the transaction
    (b"MULTI\r\nMULTI x\r\nEXEC\r\n", b"+OK\r\n-ERR wrong number of arguments for 'multi' command\r\n"
     b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
    (b"MULTI\r\nWATCH\r\nEXEC\r\n", b"+OK\r\n-ERR wrong number of arguments for 'watch' command\r\n"
     b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
    (b"MULTI\r\nDISCARD x\r\nEXEC\r\n", b"+OK\r\n-ERR wrong number of arguments for 'discard' command\r\n"
     b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
])
def test_transaction_refusals(raw, resp_inline, script, reply):
    assert run(raw, resp_inline, script) == reply


# -- numbers as strtod / strtold read them -------------------------------------------------
ONE_E400 = (b"10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324"
            b"16052209405392731761620029582277725925573402382897659334066101779744743454617391786244811667497172"
            b"37789438243915933380474706750262466844013592375136038303437354855052449559649790218250382800910684"
            b"14947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430"
            b"221946880")


@pytest.mark.parametrize("script, reply", [
    (b"SET s 10\r\nINCRBYFLOAT s 1_0\r\n", b"+OK\r\n" + NOT_FLOAT),
    (b"SET s 10\r\nINCRBYFLOAT s 0x10\r\n", b"+OK\r\n$2\r\n26\r\n"),
    (b"SET s 1\r\nINCRBYFLOAT s 0x1.8p1\r\n", b"+OK\r\n$1\r\n4\r\n"),
    (b"INCRBYFLOAT s \" 1\"\r\nINCRBYFLOAT s \"1 \"\r\nINCRBYFLOAT s \"\"\r\n", NOT_FLOAT * 3),
    (b"INCRBYFLOAT s 1e5000\r\nINCRBYFLOAT s 1e-5000\r\n", NOT_FLOAT * 2),
    (b"INCRBYFLOAT s inf\r\n", b"-ERR increment would produce NaN or Infinity\r\n"),
    # long double: 0.1 + 0.2 is 0.3 to 17 decimals, 1e400 is a number, printed %.17Lf
    (b"SET a 0.1\r\nINCRBYFLOAT a 0.2\r\n", b"+OK\r\n$3\r\n0.3\r\n"),
    (b"INCRBYFLOAT a 1e400\r\n", b"$401\r\n" + ONE_E400 + b"\r\n"),
    (b"SET y 1e40\r\nINCRBYFLOAT y 0.5\r\n", b"+OK\r\n$40\r\n9999999999999999999783686092270256259072\r\n"),
    (b"SET x 3000\r\nINCRBYFLOAT x -3000\r\nINCRBYFLOAT x -0.000000000000000001\r\nINCRBYFLOAT x 1e-17\r\n"
     b"INCRBYFLOAT x 1.23456789012345678e-10\r\n",
     b"+OK\r\n$1\r\n0\r\n$1\r\n0\r\n$19\r\n0.00000000000000001\r\n$18\r\n0.0000000001234568\r\n"),
    (b"SET f 1.5\r\nINCRBYFLOAT f 1e308\r\nINCRBYFLOAT f 1e308\r\nSTRLEN f\r\n",
     None),  # checked below: two finite long doubles, no NaN-or-Infinity error
    (b"HINCRBYFLOAT h f 1e400\r\nHINCRBYFLOAT h f 1_0\r\nHINCRBYFLOAT h g inf\r\nHINCRBYFLOAT h g 0x10\r\n",
     b"$401\r\n" + ONE_E400 + b"\r\n" + NOT_FLOAT + b"-ERR value is NaN or Infinity\r\n$2\r\n16\r\n"),
    (b"ZADD z 1_000 m\r\nZADD z 1e400 m\r\nZADD z 1e-400 m\r\nZADD z \" 1\" m\r\nEXISTS z\r\n",
     NOT_FLOAT * 4 + b":0\r\n"),
    (b"ZADD z 0x10 a\r\nZINCRBY z 0x1p1 a\r\nZADD z 4e-320 b\r\nZCARD z\r\n", b":1\r\n$2\r\n18\r\n:1\r\n:2\r\n"),
    (b"ZADD z 1 a\r\nZRANGEBYSCORE z 1_0 +inf\r\nZCOUNT z \" 1\" 0x2\r\nZCOUNT z \"\" 1e400\r\nZCOUNT z ( 1\r\n"
     b"ZCOUNT z \"1 \" 2\r\n",
     b":1\r\n-ERR min or max is not a float\r\n:1\r\n:1\r\n:1\r\n-ERR min or max is not a float\r\n"),
    (b"ZADD z 1 a\r\nZUNIONSTORE d 1 z WEIGHTS 1_0\r\nZUNIONSTORE d 1 z WEIGHTS 1e400\r\n"
     b"ZUNIONSTORE d 1 z WEIGHTS 0x2\r\nZSCORE d a\r\n",
     b":1\r\n-ERR weight value is not a float\r\n-ERR weight value is not a float\r\n:1\r\n$1\r\n2\r\n"),
    (b"RPUSH l 3 1_0 2\r\nSORT l\r\n", b":3\r\n-ERR One or more scores can't be converted into double\r\n"),
    (b"RPUSH l 3 0x10 2\r\nSORT l\r\n", b":3\r\n*3\r\n$1\r\n2\r\n$1\r\n3\r\n$4\r\n0x10\r\n"),
    (b"RPUSH l 1e400 1\r\nSORT l\r\n", b":2\r\n-ERR One or more scores can't be converted into double\r\n"),
    (b"BLPOP x 1_0\r\nBLPOP x \"0.01 \"\r\nBLPOP x \"\"\r\n", b"-ERR timeout is not a float or out of range\r\n" * 3),
    (b"BLPOP x 1e400\r\nBLPOP x inf\r\nBLPOP x 1e16\r\n", b"-ERR timeout is negative\r\n" * 3),
    # hexadecimal, and a timeout below a millisecond waits one millisecond (not for ever)
    (b"BLPOP x 0x0.01\r\nBLPOP x 0.0001\r\nBLPOP x 1e-400\r\n", b"*-1\r\n" * 3),
])
def test_numbers_as_redis_reads_them(raw, resp_inline, script, reply):
    got = run(raw, resp_inline, script)
    if reply is None:
        assert got.startswith(b"+OK\r\n$308\r\n9999999999999999999668587965584564566056") and got.endswith(b":309\r\n")
        assert b"$309\r\n1999999999999999999933717593116912913211" in got
    else:
        assert got == reply


# -- RESTORE -------------------------------------------------------------------------------
MAGIC = b"\x00netcore-dump-1\x00"


def payload(kind: bytes, items: list[bytes]) -> bytes:
    body = MAGIC + kind + struct.pack("<Q", len(items)) + b"".join(struct.pack("<Q", len(i)) + i for i in items)
    return body + struct.pack("<I", zlib.crc32(body))


def restore(key: bytes, data: bytes) -> bytes:
    return b"*4\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$1\r\n0\r\n$%d\r\n%s\r\n" % (len(key), key, len(data), data)


@pytest.mark.parametrize("data", [
    payload(b"l", []), payload(b"h", []), payload(b"S", []), payload(b"z", []),
    payload(b"z", [b"a", struct.pack("<d", float("nan")), b"b", struct.pack("<d", 1.0)]),
    payload(b"S", [b"a", b"a"]),
    payload(b"h", [b"f", b"1", b"f", b"2"]),
    payload(b"z", [b"a", struct.pack("<d", 1.0), b"a", struct.pack("<d", 2.0)]),
], ids=["list", "hash", "set", "zset", "nan-score", "set-twice", "hash-twice", "zset-twice"])
def test_restore_refuses_impossible_values(raw, resp_inline, data):
    assert run(raw, resp_inline, restore(b"k", data) + b"EXISTS k\r\n") == b"-ERR Bad data format\r\n:0\r\n"


def test_restore_still_takes_good_payloads(raw, resp_inline):
    data = payload(b"z", [b"a", struct.pack("<d", 1.5), b"b", struct.pack("<d", float("inf"))])
    assert run(raw, resp_inline, restore(b"k", data) + b"ZRANGE k 0 -1 WITHSCORES\r\n") == (
        b"+OK\r\n*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$3\r\ninf\r\n")


# -- argument-check order and error texts --------------------------------------------------
INT_RANGE = b"-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"


@pytest.mark.parametrize("script, reply", [
    (b"LINDEX nokey RIGHT\r\nLSET nokey XX 10\r\n", b"$-1\r\n-ERR no such key\r\n"),
    (b"ZADD z 1 a\r\nSMOVE nokey z m\r\n", b":1\r\n:0\r\n"),
    (b"SET a 1\r\nMOVE a 99999999999\r\nCOPY a b DB 99999999999\r\nSWAPDB 1 99999999999\r\n",
     b"+OK\r\n" + INT_RANGE * 2 + b"-ERR invalid second DB index\r\n"),
    (b"OBJECT FOO b\r\nOBJECT ENCODING\r\nOBJECT HELP x\r\n", b"-ERR unknown subcommand 'FOO'. Try OBJECT HELP.\r\n"
     b"-ERR wrong number of arguments for 'object|encoding' command\r\n"
     b"-ERR wrong number of arguments for 'object|help' command\r\n"),
    (b"COMMAND INFO nosuch\r\n", b"*1\r\n$-1\r\n"),
])
def test_check_order_and_texts(raw, resp_inline, script, reply):
    assert run(raw, resp_inline, script) == reply
