"""Byte-for-byte against a real redis-server: every command, its replies and its errors.

Each case is one connection: ``FLUSHALL`` then the commands, all pipelined in one write
(inline commands, so the bytes stay readable; the multibulk ones exercise the same
commands through the fast path). The same bytes go to redis-server (run by the test with
``--databases 16``, Redis's default and netcore's) and to netcore; the replies, and
whether the server closed the connection, must be identical. Values that depend on the
clock (PTTL, INFO's uptime) and on hash order (KEYS with several results) are left to the
client tests.
"""

from __future__ import annotations

import pytest

CASES = {
    "connection": b"PING\r\nPING hello\r\nPING a b\r\nECHO\r\nECHO hi\r\nECHO a b\r\nSELECT 0\r\nSELECT 1\r\n"
                  b"SELECT x\r\nSELECT -1\r\nSELECT 99999999999\r\nSELECT\r\n",
    "client": b"CLIENT\r\nCLIENT FOO\r\nCLIENT GETNAME\r\nCLIENT SETNAME\r\nCLIENT SETNAME a b\r\n"
              b"CLIENT SETNAME \"a b\"\r\nCLIENT SETNAME conn1\r\nCLIENT GETNAME\r\nCLIENT getname x\r\n"
              b"CLIENT SETNAME \"\"\r\nCLIENT GETNAME\r\n",
    "unknown": b"FOO\r\nFOO a b\r\nfoo \"a\\r\\nb\" c\r\n*2\r\n$3\r\nfoo\r\n$3\r\na\r\n\r\n"
               b"*1\r\n$3\r\nf\x00o\r\nFOO " + b"x" * 200 + b" y\r\n",
    "keyspace": b"DBSIZE\r\nSET a 1\r\nSET b 2\r\nDBSIZE\r\nDBSIZE x\r\nEXISTS a a b c\r\nEXISTS\r\nTYPE a\r\n"
                b"TYPE nope\r\nDEL a c\r\nDEL\r\nUNLINK b\r\nUNLINK\r\nDBSIZE\r\nSET c 3\r\nFLUSHDB x\r\n"
                b"FLUSHDB ASYNC\r\nFLUSHALL SYNC\r\nFLUSHALL x y\r\nDBSIZE\r\nSET one 1\r\nKEYS\r\nKEYS o*\r\n"
                b"KEYS [^x]n?\r\nKEYS nomatch*\r\nKEYS o\\ne\r\nINFO keyspace\r\nFLUSHDB\r\nINFO keyspace\r\n",
    "get-set": b"GET\r\nGET a b\r\nGET a\r\nSET a\r\nSET a v\r\nGET a\r\nSET a v2 GET\r\nSET new v GET\r\n"
               b"SET a w NX\r\nSET a w XX\r\nGET a\r\nSET z w XX\r\nSET z w NX\r\nSET a x NX GET\r\n"
               b"SET a x XX GET\r\nSET a b foo\r\nSET a b EX\r\nSET a b EX x\r\nSET a b EX 0\r\nSET a b EX -1\r\n"
               b"SET a b PX 0\r\nSET a b EX 10 PX 10\r\nSET a b NX XX\r\nSET a b KEEPTTL EX 1\r\n"
               b"SET a b EX 1 KEEPTTL\r\nSET a b EX 99999999999999999\r\nSET a b ex 100 ex 200\r\nTTL a\r\n"
               b"SET a c KEEPTTL\r\nTTL a\r\nSET a d\r\nTTL a\r\nSET a b EXAT 1\r\nGET a\r\nSET a b PXAT 1\r\n"
               b"EXISTS a\r\nSET a b EXAT 99999999999\r\nTTL a\r\nLPUSH l x\r\nSET l v GET\r\nGET l\r\n"
               b"SET l v\r\nGET l\r\n",
    "getset-setnx-mget-mset": b"GETSET a\r\nGETSET a 1\r\nGETSET a 2\r\nSET t v EX 100\r\nGETSET t w\r\nTTL t\r\n"
                              b"SETNX a x\r\nSETNX b x\r\nSETNX b\r\nMGET\r\nMGET a b nope\r\nRPUSH l x\r\n"
                              b"MGET a l\r\nMSET\r\nMSET a\r\nMSET a 1 b\r\nMSET a 10 b 20\r\nMGET a b\r\n"
                              b"GETSET l x\r\n",
    "counters": b"INCR\r\nINCR n\r\nINCR n\r\nDECR n\r\nINCRBY n 10\r\nINCRBY n x\r\nINCRBY n\r\nDECRBY n 3\r\n"
                b"DECRBY n -3\r\nSET s abc\r\nINCR s\r\nSET s 012\r\nINCR s\r\nSET s \" 1\"\r\nINCR s\r\n"
                b"SET s +1\r\nINCR s\r\nSET s -0\r\nINCR s\r\nSET s 0\r\nINCR s\r\n"
                b"SET m 9223372036854775807\r\nINCR m\r\nINCRBY m -1\r\nDECRBY m -1\r\n"
                b"SET m -9223372036854775808\r\nDECR m\r\nDECRBY x -9223372036854775808\r\n"
                b"INCRBY x 9223372036854775808\r\nINCRBY x 1.5\r\nLPUSH l a\r\nINCR l\r\nDECRBY l 1\r\n"
                b"SET e 5 EX 100\r\nINCR e\r\nTTL e\r\n",
    "append-strlen": b"APPEND a\r\nAPPEND a x\r\nAPPEND a yz\r\nGET a\r\nSTRLEN a\r\nSTRLEN nope\r\nSTRLEN\r\n"
                     b"SET n 12\r\nAPPEND n 3\r\nINCR n\r\nHSET h f v\r\nAPPEND h x\r\nSTRLEN h\r\n",
    "expiry": b"SET e v\r\nEXPIRE e x\r\nEXPIRE e 100 nx\r\nEXPIRE e 100 xx\r\nEXPIRE e 50 gt\r\nEXPIRE e 50 lt\r\n"
              b"TTL e\r\nEXPIRE e 10 nx xx\r\nEXPIRE e 10 gt lt\r\nEXPIRE e 10 foo\r\nEXPIRE e x foo\r\n"
              b"EXPIRE e 200 GT\r\nTTL e\r\nPERSIST e\r\nPERSIST e\r\nTTL e\r\nPTTL e\r\nTTL nope\r\n"
              b"PTTL nope\r\nPERSIST nope\r\nEXPIRE nope 10\r\nEXPIRE e 99999999999999999\r\n"
              b"PEXPIRE e 9223372036854775807\r\nEXPIRE e -9223372036854775808\r\nEXPIRE e 10 lt\r\nTTL e\r\n"
              b"PEXPIRE e 100000\r\nTTL e\r\nEXPIRE e -1\r\nEXISTS e\r\nSET e v\r\nPEXPIRE e 0\r\nGET e\r\n"
              b"EXPIRE\r\nEXPIRE e\r\nTTL\r\nPTTL a b\r\nPERSIST\r\nSET f v EX 100\r\nEXPIRE f 5 NX\r\n"
              b"EXPIRE f 50 XX\r\nTTL f\r\n",
    "lists": b"LPUSH l\r\nLPUSH l a b c\r\nRPUSH l d e\r\nLRANGE l 0 -1\r\nLLEN l\r\nLRANGE l 1 2\r\n"
             b"LRANGE l -2 -1\r\nLRANGE l -100 100\r\nLRANGE l 3 1\r\nLRANGE l 10 20\r\nLRANGE l x 1\r\n"
             b"LRANGE l 0\r\nLRANGE nope 0 -1\r\nLPOP l\r\nRPOP l\r\nLPOP l 2\r\nLPOP l 0\r\nLPOP l -1\r\n"
             b"LPOP l x\r\nLPOP l 1 2\r\nRPOP l 10\r\nEXISTS l\r\nLPOP l\r\nLPOP l 2\r\nRPOP nope 0\r\n"
             b"LLEN nope\r\nLLEN\r\nSET s v\r\nLPUSH s x\r\nRPUSH s x\r\nLPOP s\r\nRPOP s 2\r\nLRANGE s 0 1\r\n"
             b"LLEN s\r\nTYPE l\r\nRPUSH l2 x\r\nTYPE l2\r\n",
    "hashes": b"HSET h\r\nHSET h a\r\nHSET h a b c\r\nHSET h a 1 b 2\r\nHSET h a 3 c 4\r\nHGET h a\r\nHGET h z\r\n"
              b"HGET nope a\r\nHGET h\r\nHGETALL h\r\nHGETALL nope\r\nHGETALL\r\nHDEL h a x\r\nHDEL h\r\n"
              b"HDEL nope a\r\nHDEL h b c\r\nEXISTS h\r\nTYPE h\r\nHSET h2 f v\r\nTYPE h2\r\nSET s v\r\n"
              b"HSET s f v\r\nHGET s f\r\nHGETALL s\r\nHDEL s f\r\nGET h2\r\nINCR h2\r\nLPOP h2\r\n",
    "config": b"CONFIG\r\nCONFIG FOO\r\nCONFIG GET\r\nCONFIG GET save\r\nCONFIG GET appendonly\r\n",
    "inline-quoting": b"ECHO \"a\\x41b\"\r\nECHO 'a\\'b'\r\nECHO \"tab\\there\"\r\nECHO 'x y'  \r\n"
                      b"ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\"\r\n  PING  \r\n\r\n\nPING\nECHO a\rb\r\n",
    "quit": b"PING\r\nQUIT\r\nPING\r\n",
    "quit-with-args": b"QUIT now please\r\nPING\r\n",
    "unbalanced-quotes": b"PING\r\nECHO \"abc\r\nPING\r\n",
    "quote-not-followed-by-space": b"ECHO \"a\"b\r\n",
    "multibulk-not-a-number": b"PING\r\n*x\r\n",
    "multibulk-plus-sign": b"*+1\r\n$4\r\nPING\r\n",
    "multibulk-minus-zero": b"*-0\r\n",
    "multibulk-space": b"*1 \r\n$4\r\nPING\r\n",
    "multibulk-leading-zero": b"*01\r\n$4\r\nPING\r\n",
    "multibulk-too-many": b"*3000000000\r\n",
    "multibulk-empty-and-negative": b"*0\r\n*-1\r\n*-5\r\nPING\r\n",
    "bulk-not-a-number": b"*1\r\n$x\r\n",
    "bulk-negative": b"*1\r\n$-1\r\n",
    "bulk-leading-zero": b"*1\r\n$04\r\nPING\r\n",
    "bulk-over-limit": b"*2\r\n$4\r\nECHO\r\n$600000000\r\n",
    "expected-dollar": b"*1\r\n+PING\r\n",
    "expected-dollar-int": b"*2\r\n$4\r\nECHO\r\n:1\r\n",
    "expected-dollar-nested": b"*1\r\n*1\r\n$4\r\nPING\r\n",
    "cr-without-lf": b"*1\r$4\r\nPING\r\n",
    "unchecked-trailer": b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n",
    "too-big-inline": b"P" * 70000,
    "too-big-multibulk-count": b"*" + b"1" * 70000,
    "too-big-bulk-count": b"*1\r\n$" + b"1" * 70000,
    "commands-before-error-run": b"SET k v\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$x\r\nGET k\r\n",
}

#: Cases that end with the server closing the connection (a protocol error or QUIT).
CLOSING = {name for name in CASES if not name.startswith(("connection", "client", "unknown", "keyspace", "get-set",
                                                          "getset", "counters", "append", "expiry", "lists",
                                                          "hashes", "config", "inline", "multibulk-empty",
                                                          "unchecked"))}


def as_multibulk(script: bytes) -> bytes:
    """The inline lines of ``script`` re-encoded as multibulk commands (the fast path)."""
    from netcore_resp.framing import splitargs

    out = []
    for line in script.split(b"\r\n"):
        args = splitargs(line)
        if args:
            out.append(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return b"".join(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name, raw, redis_server, resp_inline):
    script = b"FLUSHALL\r\n" + CASES[name]
    # A case that closes gets no end marker: after a protocol error nothing more is read.
    end = None if name in CLOSING else b"ECHO"
    expected = raw.exchange(redis_server, script, end)
    got = raw.exchange(resp_inline.address, script, end)
    assert got == expected
    assert expected[1] == (name in CLOSING), "the case list's idea of which cases close is wrong"


MULTIBULK_CASES = ["connection", "client", "keyspace", "get-set", "getset-setnx-mget-mset", "counters",
                   "append-strlen", "expiry", "lists", "hashes", "config"]


@pytest.mark.parametrize("name", MULTIBULK_CASES)
def test_same_bytes_as_redis_multibulk(name, raw, redis_server, resp_inline):
    script = as_multibulk(b"FLUSHALL\r\n" + CASES[name])
    assert raw.exchange(resp_inline.address, script) == raw.exchange(redis_server, script)
