"""The commands beyond the first release, byte for byte against redis-server, and the
blocking pops across connections (served by a push, timing out) under three schemes."""

from __future__ import annotations

import threading
import time

import pytest

redis = pytest.importorskip("redis", reason="redis-py is the resp plugin's test dependency (pip install redis)")

PATIENCE = 20.0

#: Only commands whose replies do not depend on hash order or chance.
CASES = {
    "strings": b"SET s hello\r\nGETRANGE s 1 3\r\nGETRANGE s -3 -1\r\nGETRANGE s 10 20\r\nGETRANGE s x 1\r\n"
               b"SETRANGE s 1 a\r\nSETRANGE s 8 z\r\nGET s\r\nSETRANGE n 0 \"\"\r\nSETRANGE s -1 x\r\n"
               b"INCRBYFLOAT f 1.5\r\nINCRBYFLOAT f 0.25\r\nINCRBYFLOAT f x\r\nINCRBYFLOAT s 1\r\nGETDEL s\r\n"
               b"GETDEL s\r\nSETEX e 100 v\r\nTTL e\r\nSETEX e 0 v\r\nPSETEX p 100000 v\r\nGETEX e PERSIST\r\n"
               b"TTL e\r\nGETEX e EX 50\r\nTTL e\r\nGETEX e EX 0\r\nGETEX e FOO\r\nMSETNX a 1 b 2\r\n"
               b"MSETNX a 1 c 3\r\nMGET a b c\r\nSUBSTR a 0 0\r\n",
    "bits": b"SETBIT b 7 1\r\nSETBIT b 7 0\r\nSETBIT b 100 1\r\nGETBIT b 100\r\nGETBIT b 1000\r\nBITCOUNT b\r\n"
            b"SETBIT b x 1\r\nSETBIT b 1 2\r\nSET t foobar\r\nBITCOUNT t\r\nBITCOUNT t 1 1\r\nBITCOUNT t 5 30 BIT\r\n",
    "lists": b"RPUSH l a b c b a\r\nLINDEX l 0\r\nLINDEX l -1\r\nLINDEX l 9\r\nLSET l 1 B\r\nLSET l 9 x\r\n"
             b"LSET nope 0 x\r\nLINSERT l BEFORE c X\r\nLINSERT l AFTER nope Y\r\nLINSERT l MIDDLE c Y\r\n"
             b"LRANGE l 0 -1\r\nLREM l -1 a\r\nLREM l 0 b\r\nLRANGE l 0 -1\r\nLPOS l c\r\nLPOS l q\r\n"
             b"LPOS l a RANK -1 COUNT 0\r\nLPOS l a RANK 0\r\nLTRIM l 1 -1\r\nLRANGE l 0 -1\r\nLPUSHX nope x\r\n"
             b"RPUSHX l z\r\nLMOVE l m LEFT RIGHT\r\nRPOPLPUSH l m\r\nLRANGE m 0 -1\r\nLMOVE l m UP DOWN\r\n"
             b"BLPOP l m 0\r\nBRPOP nope 0.01\r\nBLPOP l -1\r\nBLPOP l x\r\nBLMOVE m l RIGHT LEFT 0\r\n",
    "hashes": b"HSET h a 1 b x\r\nHINCRBY h a 5\r\nHINCRBY h b 1\r\nHINCRBY h c x\r\nHINCRBYFLOAT h a 0.5\r\n"
              b"HMGET h a b nope\r\nHKEYS h\r\nHVALS h\r\nHLEN h\r\nHEXISTS h a\r\nHEXISTS h z\r\nHSETNX h a 9\r\n"
              b"HSETNX h n 9\r\nHSTRLEN h n\r\nHMSET h p 1 q\r\nHMSET h p 1\r\nHGETALL h\r\nHRANDFIELD nope\r\n",
    "sets": b"SADD s a b c\r\nSADD s a\r\nSCARD s\r\nSISMEMBER s a\r\nSMISMEMBER s a z\r\nSREM s a z\r\n"
            b"SADD t c d\r\nSINTER s t\r\nSINTERCARD 2 s t\r\nSMOVE s t b\r\nSCARD s\r\nSREM s c\r\nEXISTS s\r\n"
            b"SPOP nope\r\nSRANDMEMBER nope\r\nSET str v\r\nSADD str x\r\nSINTER t str\r\n",
    "keys": b"SET a 1\r\nEXPIRE a 100\r\nRENAME a b\r\nTTL b\r\nRENAME nope x\r\nRENAMENX b b\r\nSET c 2\r\n"
            b"RENAMENX b c\r\nCOPY b d\r\nCOPY b d\r\nCOPY b d REPLACE\r\nGET d\r\nTOUCH b c nope\r\n"
            b"OBJECT ENCODING b\r\nOBJECT ENCODING nope\r\nEXPIREAT c 1\r\nEXISTS c\r\nPEXPIREAT b 99999999999123\r\n"
            b"EXPIRETIME b\r\nPEXPIRETIME b\r\nPERSIST d\r\nEXPIRETIME d\r\nEXPIRETIME nope\r\nDEL d\r\nRANDOMKEY\r\nFUNCTION FLUSH\r\nCONFIG SET nosuch 1\r\n"
            b"CONFIG SET maxmemory-policy allkeys-lru\r\nCONFIG GET maxmemory-policy\r\n"
            b"CONFIG SET maxmemory-policy noeviction\r\nSCAN x\r\nSCAN 0 COUNT 0\r\nSCAN 0 FOO bar\r\n",
    "client-reply": b"CLIENT REPLY OFF\r\nSET a 1\r\nGET a\r\nNOSUCH\r\nCLIENT REPLY SKIP\r\nGET a\r\n"
                    b"CLIENT REPLY ON\r\nCLIENT REPLY SKIP\r\nGET a\r\nGET a\r\nCLIENT REPLY x\r\n",
    "lmpop": b"RPUSH a 1 2 3\r\nLMPOP 2 x a LEFT COUNT 2\r\nLMPOP 1 x LEFT\r\nLMPOP 0 a LEFT\r\n"
             b"LMPOP 1 a UP\r\nLMPOP 1 a LEFT COUNT 0\r\nBLMPOP 0.01 1 x RIGHT\r\nBLMPOP 0 1 a RIGHT COUNT 9\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name, same_bytes):
    same_bytes(CASES[name])






def test_blocked_clients_are_served_in_order_and_time_out(scheme_server):
    main = redis.Redis(*scheme_server.address, socket_timeout=PATIENCE)
    main.delete("q")
    started = time.monotonic()
    assert main.blpop(["q"], timeout=0.2) is None
    assert 0.15 < time.monotonic() - started < 5
    results: dict = {}
    waiters = []
    for i in range(3):
        conn = redis.Redis(*scheme_server.address, socket_timeout=PATIENCE)
        thread = threading.Thread(target=lambda i=i, conn=conn: results.__setitem__(i, conn.blpop(["q"], 10)))
        thread.start()
        waiters.append((thread, conn))
        deadline = time.monotonic() + PATIENCE  # until this one blocks, so that the order is known
        while main.info("clients")["blocked_clients"] != i + 1:
            assert time.monotonic() < deadline, "the client did not block"
    # Nothing else answers while they wait: other clients are served meanwhile.
    assert main.ping()
    main.rpush("q", "a", "b", "c")
    for thread, conn in waiters:
        thread.join(PATIENCE)
        conn.close()
    assert results == {0: (b"q", b"a"), 1: (b"q", b"b"), 2: (b"q", b"c")}
    pipe = main.pipeline(transaction=False)
    pipe.blpop(["q"], 0.1)
    pipe.ping()
    assert pipe.execute() == [None, True]
    main.close()
