"""The last differences from redis-server 7.0.15 a hostile review found, in the replies
Redis 7.0.15 gives (written here) and checked against both netcore and, where it is
installed, a real redis-server: option order and texts of BITCOUNT, GETEX (and SET, whose
option parser it shares), SCAN/SSCAN/HSCAN/ZSCAN (cursors read as ``strtoul`` reads
them), EXPIREAT/PEXPIREAT (NX/XX/GT/LT, as EXPIRE), LPOS, the ZRANGE family, XGROUP,
XINFO, the stream commands, CONFIG SET/GET, EXPIRETIME's rounding, WAIT and MONITOR.

CONFIG cases put back what they change: the oracle and the resp server are shared.
"""

from __future__ import annotations

import re
import shutil

import pytest


@pytest.fixture
def check(raw, resp_inline, request):
    """``check(script, reply)``: FLUSHALL then ``script`` on netcore and (if installed) on
    redis-server; each must answer ``reply`` (FLUSHALL's +OK left out) and stay open."""
    servers = [("netcore", resp_inline.address)]
    if shutil.which("redis-server"):
        servers.append(("redis-server", request.getfixturevalue("redis_server")))

    def run(script: bytes, reply: bytes, mask=None) -> None:
        for name, address in servers:
            got, closed = raw.exchange(address, b"FLUSHALL\r\n" + script)
            got = got if mask is None else mask(got)
            assert (name, closed, got) == (name, False, b"+OK\r\n" + reply)
    return run


def cases(*pairs):
    return pytest.mark.parametrize("script, reply", pairs)


# -- bitcount ------------------------------------------------------------------------
@cases(
    (b'BITCOUNT nokey 0\r\n',
     b':0\r\n'),
    (b'BITCOUNT nokey 0 1 2 3\r\n',
     b':0\r\n'),
    (b'BITCOUNT nokey a b\r\n',
     b':0\r\n'),
    (b'BITCOUNT nokey 0 1 foo\r\n',
     b':0\r\n'),
    (b'SET s foobar\r\nBITCOUNT s -1 -2 foo\r\nBITCOUNT s -1 -2 bit\r\nBITCOUNT s 0 1 foo\r\nBITCOUNT s 0\r\n'
     b'BITCOUNT s a 1 foo\r\nBITCOUNT s 5 30 bit\r\n',
     b'+OK\r\n:0\r\n:0\r\n-ERR syntax error\r\n-ERR syntax error\r\n'
     b'-ERR value is not an integer or out of range\r\n:17\r\n'),
    (b'LPUSH l a\r\nBITCOUNT l 0 1 foo\r\n',
     b':1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'),
)
def test_bitcount_looks_the_key_up_first(check, script, reply):
    """A missing key counts 0 whatever the arguments; an empty negative range answers before the
    unit is read."""
    check(script, reply)


# -- getex ---------------------------------------------------------------------------
@cases(
    (b'GETEX nokey EX abc\r\nGETEX nokey EX 0\r\nGETEX nokey PX 10 EX 10\r\nGETEX nokey FOO\r\n',
     b'$-1\r\n$-1\r\n-ERR syntax error\r\n-ERR syntax error\r\n'),
    (b'LPUSH l a\r\nGETEX l FOO\r\nGETEX l EX abc\r\n',
     b':1\r\n-ERR syntax error\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'),
    (b'SET s v\r\nGETEX s EX 10 EX 20\r\nTTL s\r\nGETEX s PX 10 PX 20000\r\nTTL s\r\nGETEX s PERSIST PERSIST\r\n'
     b'TTL s\r\n',
     b'+OK\r\n$1\r\nv\r\n:20\r\n$1\r\nv\r\n:20\r\n$1\r\nv\r\n:-1\r\n'),
    (b'SET s v\r\nGETEX s EX 10 PERSIST\r\nGETEX s PERSIST EX 10\r\nGETEX s EX 10 PX 10\r\n'
     b'GETEX s EX 9223372036854775\r\nGETEX s PX 9223372036854775807\r\nGETEX s EX 0\r\nGETEX s EXAT 1\r\n'
     b'EXISTS s\r\n',
     b'+OK\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n'
     b"-ERR invalid expire time in 'getex' command\r\n-ERR invalid expire time in 'getex' command\r\n"
     b"-ERR invalid expire time in 'getex' command\r\n$1\r\nv\r\n:0\r\n"),
    (b'SET s v EX 10 EX 20\r\nTTL s\r\nSET s v EX 9223372036854775\r\nSET s v PX 10 EX 10\r\n'
     b'SET s v KEEPTTL EX 10\r\n',
     b"+OK\r\n:20\r\n-ERR invalid expire time in 'set' command\r\n-ERR syntax error\r\n-ERR syntax error\r\n"),
)
def test_getex_reads_options_as_set_does(check, script, reply):
    """One parser for SET and GETEX (Redis's parseExtendedStringArgumentsOrReply): a repeated
    EX/PX/PERSIST is taken, the number is read after the key (nil for a missing key), an
    overflowing deadline is refused."""
    check(script, reply)


# -- scan ----------------------------------------------------------------------------
@cases(
    (b'SCAN 18446744073709551615\r\nSCAN 18446744073709551616\r\nSCAN -1\r\nSCAN +5\r\nSCAN ""\r\nSCAN 007\r\n'
     b'SCAN -0\r\nSCAN " 1"\r\nSCAN 0x10\r\nSCAN 1.5\r\n',
     b'*2\r\n$1\r\n0\r\n*0\r\n-ERR invalid cursor\r\n*2\r\n$1\r\n0\r\n*0\r\n*2\r\n$1\r\n0\r\n*0\r\n*2\r\n$1\r\n'
     b'0\r\n*0\r\n*2\r\n$1\r\n0\r\n*0\r\n*2\r\n$1\r\n0\r\n*0\r\n-ERR invalid cursor\r\n-ERR invalid cursor\r\n'
     b'-ERR invalid cursor\r\n'),
    (b'SSCAN nokey 0 FOO\r\nSSCAN nokey 0 COUNT 0\r\nHSCAN nokey 0 COUNT abc\r\nZSCAN nokey 0 MATCH\r\n'
     b'SSCAN nokey abc FOO\r\n',
     b'*2\r\n$1\r\n0\r\n*0\r\n*2\r\n$1\r\n0\r\n*0\r\n*2\r\n$1\r\n0\r\n*0\r\n*2\r\n$1\r\n0\r\n*0\r\n'
     b'-ERR invalid cursor\r\n'),
    (b'SET a 1\r\nSSCAN a abc\r\nHSCAN a x COUNT 0\r\nSSCAN a 0 FOO\r\n',
     b'+OK\r\n-ERR invalid cursor\r\n-ERR invalid cursor\r\n'
     b'-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'),
    (b'SADD s a\r\nSSCAN s 0 COUNT 0\r\nSSCAN s 0 COUNT -5\r\nSSCAN s 0 COUNT abc\r\nSSCAN s 0 MATCH\r\n'
     b'SSCAN s 0 MATCH b MATCH a\r\nSSCAN s 0 COUNT 1 MATCH a COUNT 5\r\nSSCAN s 0 TYPE string\r\n'
     b'SSCAN s 18446744073709551616\r\n',
     b':1\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR value is not an integer or out of range\r\n'
     b'-ERR syntax error\r\n*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n'
     b'-ERR syntax error\r\n-ERR invalid cursor\r\n'),
    # an intset (as a hash or sorted set this small) comes whole whatever the cursor; a
    # small set of strings is a hash table in Redis 7.0, where such a cursor is a bucket
    (b'SADD n 5\r\nSSCAN n 18446744073709551615\r\nSSCAN n -1 COUNT 1\r\n',
     b':1\r\n*2\r\n$1\r\n0\r\n*1\r\n$1\r\n5\r\n*2\r\n$1\r\n0\r\n*1\r\n$1\r\n5\r\n'),
    (b'HSET h f v\r\nHSCAN h 0 COUNT 0\r\nHSCAN h 0 MATCH g MATCH f COUNT 1\r\nHSCAN h -1\r\n'
     b'HSCAN h 18446744073709551615 MATCH f\r\n',
     b':1\r\n-ERR syntax error\r\n*2\r\n$1\r\n0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$1\r\n0\r\n*2\r\n$1\r\nf\r\n'
     b'$1\r\nv\r\n*2\r\n$1\r\n0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n'),
    (b'ZADD z 1 a\r\nZSCAN z 18446744073709551615\r\nZSCAN z 0 COUNT 0\r\n',
     b':1\r\n*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n-ERR syntax error\r\n'),
)
def test_scan_cursors_and_options(check, script, reply):
    """Cursors as strtoul reads them (any unsigned 64-bit number, a sign, the empty string);
    HSCAN/SSCAN/ZSCAN: the cursor, then the key (missing: an empty scan whatever the options),
    then the options."""
    check(script, reply)


# -- expireat ------------------------------------------------------------------------
@cases(
    (b'EXPIREAT nokey 100 FOO\r\nEXPIREAT nokey abc FOO\r\nEXPIREAT nokey 100 NX XX\r\nEXPIREAT nokey 100 GT LT\r\n'
     b'EXPIREAT nokey 9223372036854776\r\nEXPIREAT nokey -9223372036854776\r\n',
     b'-ERR Unsupported option FOO\r\n-ERR Unsupported option FOO\r\n'
     b'-ERR NX and XX, GT or LT options at the same time are not compatible\r\n'
     b'-ERR GT and LT options at the same time are not compatible\r\n'
     b"-ERR invalid expire time in 'expireat' command\r\n-ERR invalid expire time in 'expireat' command\r\n"),
    (b'SET k v\r\nEXPIREAT k 99999999999 NX\r\nEXPIREAT k 99999999999 NX\r\nEXPIREAT k 99999999998 XX\r\n'
     b'EXPIRETIME k\r\nEXPIREAT k 99999999999 GT\r\nEXPIREAT k 99999999997 GT\r\nEXPIREAT k 99999999999 LT\r\n'
     b'EXPIREAT k 99999999996 lt\r\nEXPIRETIME k\r\n',
     b'+OK\r\n:1\r\n:0\r\n:1\r\n:99999999998\r\n:1\r\n:0\r\n:0\r\n:1\r\n:99999999996\r\n'),
    (b'SET k v\r\nEXPIREAT k 99999999996 NX GT\r\nEXPIREAT k 99999999996 GT NX\r\n'
     b'EXPIREAT k 99999999996 XX GT LT\r\nEXPIREAT k abc NX XX\r\nEXPIREAT k 99999999996 FOO\r\n'
     b'EXPIREAT k 9223372036854776\r\n',
     b'+OK\r\n-ERR NX and XX, GT or LT options at the same time are not compatible\r\n'
     b'-ERR NX and XX, GT or LT options at the same time are not compatible\r\n'
     b'-ERR GT and LT options at the same time are not compatible\r\n'
     b'-ERR NX and XX, GT or LT options at the same time are not compatible\r\n-ERR Unsupported option FOO\r\n'
     b"-ERR invalid expire time in 'expireat' command\r\n"),
    (b'SET k v\r\nPEXPIREAT k 99999999999999 GT\r\nPEXPIREAT k 99999999999999 LT\r\nPEXPIRETIME k\r\n'
     b'PEXPIREAT k 99999999999999 XX\r\nPEXPIREAT k 1 NX\r\nEXISTS k\r\nPEXPIREAT k 1 XX\r\nEXISTS k\r\n',
     b'+OK\r\n:0\r\n:1\r\n:99999999999999\r\n:1\r\n:0\r\n:1\r\n:1\r\n:0\r\n'),
    (b'SET k v\r\nEXPIREAT k -5 LT\r\nEXISTS k\r\n',
     b'+OK\r\n:1\r\n:0\r\n'),
)
def test_expireat_takes_nx_xx_gt_lt(check, script, reply):
    """EXPIREAT/PEXPIREAT share EXPIRE's body: options first, then the time and its overflow checks,
    then the key."""
    check(script, reply)


# -- lpos ----------------------------------------------------------------------------
@cases(
    (b'RPUSH l a b c a b c a\r\nLPOS l a RANK -9223372036854775808\r\n'
     b'LPOS l a RANK -9223372036854775808 COUNT 0\r\nLPOS l a COUNT abc\r\nLPOS l a MAXLEN abc\r\n'
     b'LPOS l a COUNT 99999999999999999999\r\nLPOS l a FOO RANK 0\r\nLPOS l a COUNT -1 RANK 0\r\n'
     b'LPOS l a RANK 0 COUNT -1\r\nLPOS l a MAXLEN -1 COUNT abc\r\n',
     b":7\r\n:6\r\n*3\r\n:6\r\n:3\r\n:0\r\n-ERR COUNT can't be negative\r\n-ERR MAXLEN can't be negative\r\n"
     b"-ERR COUNT can't be negative\r\n-ERR syntax error\r\n-ERR COUNT can't be negative\r\n"
     b"-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative t"
     b"o start from the end of the list\r\n-ERR MAXLEN can't be negative\r\n"),
)
def test_lpos_option_names_first(check, script, reply):
    """Each option's name is checked before its number; COUNT and MAXLEN have one text for junk and
    negatives; RANK LLONG_MIN acts as -1 in Redis 7.0."""
    check(script, reply)


# -- zrange --------------------------------------------------------------------------
@cases(
    (b'SET s v\r\nZRANGEBYSCORE s a 1\r\nZRANGEBYLEX s a b\r\nZREVRANGEBYSCORE s 1 a\r\nZREVRANGEBYLEX s + b\r\n'
     b'ZRANGE s a b\r\nZRANGE s 0 1 BYLEX\r\nZREMRANGEBYSCORE s a b\r\nZREMRANGEBYLEX s a b\r\n'
     b'ZREMRANGEBYRANK s a b\r\nZRANGESTORE d s a b\r\n',
     b'+OK\r\n-ERR min or max is not a float\r\n-ERR min or max not valid string range item\r\n'
     b'-ERR min or max is not a float\r\n-ERR min or max not valid string range item\r\n'
     b'-ERR value is not an integer or out of range\r\n-ERR min or max not valid string range item\r\n'
     b'-ERR min or max is not a float\r\n-ERR min or max not valid string range item\r\n'
     b'-ERR value is not an integer or out of range\r\n-ERR value is not an integer or out of range\r\n'),
    (b'ZADD z 0 a 0 b 0 c\r\nZRANGE z 0 -1 BYSCORE BYLEX\r\nZRANGE z 0 -1 REV REV\r\nZRANGE z [a [c BYLEX BYLEX\r\n'
     b'ZREVRANGE z 0 -1 REV\r\nZRANGESTORE d z 0 -1 WITHSCORES LIMIT a b\r\n',
     b':3\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n'
     b'-ERR syntax error\r\n'),
)
def test_zrange_family_reads_the_range_before_the_key(check, script, reply):
    """The range before the key's type; BYSCORE/BYLEX and REV at most once; ZRANGESTORE refuses
    WITHSCORES at once."""
    check(script, reply)


# -- xgroup --------------------------------------------------------------------------
@cases(
    (b'XGROUP HELP\r\nXGROUP HELP x\r\nXGROUP FOO\r\nXGROUP FOO a b\r\nXGROUP CREATE s g\r\n'
     b'XGROUP DESTROY s g x\r\nXGROUP CREATECONSUMER s g\r\nXGROUP SETID s g\r\n',
     b'*17\r\n+XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n'
     b'+CREATE <key> <groupname> <id|$> [option]\r\n+    Create a new consumer group. Options are:\r\n'
     b'+    * MKSTREAM\r\n+      Create the empty stream if it does not exist.\r\n'
     b"+    * ENTRIESREAD entries_read\r\n+      Set the group's entries_read counter (internal use).\r\n"
     b'+CREATECONSUMER <key> <groupname> <consumer>\r\n+    Create a new consumer in the specified group.\r\n'
     b'+DELCONSUMER <key> <groupname> <consumer>\r\n+    Remove the specified consumer.\r\n'
     b'+DESTROY <key> <groupname>\r\n+    Remove the specified group.\r\n'
     b'+SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]\r\n'
     b'+    Set the current group ID and entries_read counter.\r\n+HELP\r\n+    Prints this help.\r\n'
     b"-ERR wrong number of arguments for 'xgroup|help' command\r\n"
     b"-ERR unknown subcommand 'FOO'. Try XGROUP HELP.\r\n-ERR unknown subcommand 'FOO'. Try XGROUP HELP.\r\n"
     b"-ERR wrong number of arguments for 'xgroup|create' command\r\n"
     b"-ERR wrong number of arguments for 'xgroup|destroy' command\r\n"
     b"-ERR wrong number of arguments for 'xgroup|createconsumer' command\r\n"
     b"-ERR wrong number of arguments for 'xgroup|setid' command\r\n"),
    (b'XGROUP CREATE nokey g $\r\nXGROUP SETID nokey g 0\r\nXGROUP DESTROY nokey g\r\n'
     b'XGROUP CREATECONSUMER nokey g c\r\nXGROUP DELCONSUMER nokey g c\r\nXGROUP CREATE nokey g abc MKSTREAM\r\n'
     b'XGROUP CREATE nokey g $ FOO\r\n',
     b'-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MK'
     b'STREAM option to create an empty stream automatically.\r\n'
     b'-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MK'
     b'STREAM option to create an empty stream automatically.\r\n'
     b'-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MK'
     b'STREAM option to create an empty stream automatically.\r\n'
     b'-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MK'
     b'STREAM option to create an empty stream automatically.\r\n'
     b'-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MK'
     b'STREAM option to create an empty stream automatically.\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b"-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n"),
    (b'XGROUP CREATE s g $ MKSTREAM\r\nXGROUP CREATE s g2 $ FOO\r\nXGROUP CREATE s g2 $ MKSTREAM FOO\r\n'
     b'XGROUP CREATE s g2 $ ENTRIESREAD\r\nXGROUP CREATE s g2 $ ENTRIESREAD abc\r\n'
     b'XGROUP CREATE s g2 $ ENTRIESREAD -5\r\nXGROUP CREATE s g2 - \r\nXGROUP CREATE s g2 +\r\n'
     b'XGROUP CREATE s g2 $ MKSTREAM MKSTREAM MKSTREAM MKSTREAM\r\nXGROUP CREATE s g2 1\r\n',
     b"+OK\r\n-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n"
     b"-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n"
     b"-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n"
     b'-ERR value is not an integer or out of range\r\n-ERR value for ENTRIESREAD must be positive or -1\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b"-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n+OK\r\n"),
    (b'XGROUP CREATE s g $ MKSTREAM\r\nXGROUP SETID s g 0 ENTRIESREAD -3\r\nXGROUP SETID s g 0 ENTRIESREAD abc\r\n'
     b'XGROUP SETID s g 0 FOO\r\nXGROUP SETID s g 0 FOO bar\r\nXGROUP SETID s nog 0\r\nXGROUP SETID s g -\r\n'
     b'XGROUP DESTROY s nog\r\nXGROUP CREATECONSUMER s g c\r\nXGROUP CREATECONSUMER s g c\r\n'
     b'XGROUP CREATECONSUMER s nog c\r\nXGROUP DELCONSUMER s g c\r\nXGROUP DELCONSUMER s g c\r\n'
     b'XGROUP DELCONSUMER s nog c\r\nXGROUP DESTROY s g\r\nXGROUP DESTROY s g\r\n',
     b'+OK\r\n-ERR value for ENTRIESREAD must be positive or -1\r\n-ERR value is not an integer or out of range\r\n'
     b"-ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP.\r\n"
     b"-ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP.\r\n"
     b"-NOGROUP No such consumer group 'nog' for key name 's'\r\n+OK\r\n:0\r\n:1\r\n:0\r\n"
     b"-NOGROUP No such consumer group 'nog' for key name 's'\r\n:0\r\n:0\r\n"
     b"-NOGROUP No such consumer group 'nog' for key name 's'\r\n:1\r\n:0\r\n"),
    (b'SET str v\r\nXGROUP CREATE str g $\r\nXGROUP CREATE str g $ FOO\r\n',
     b'+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'
     b"-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n"),
)
def test_xgroup_subcommands(check, script, reply):
    """XGROUP as Redis 7.0's container command: subcommand and arity first, HELP, the options before
    the key, key and group checks per subcommand."""
    check(script, reply)


# -- xinfo groups --------------------------------------------------------------------
@cases(
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 a 2\r\nXGROUP CREATE s g 0\r\nXGROUP CREATE s g2 $\r\n'
     b'XGROUP CREATE s a 0 ENTRIESREAD 1\r\nXINFO GROUPS s\r\nXREADGROUP GROUP g c COUNT 1 STREAMS s >\r\n'
     b'XGROUP SETID s g2 0\r\nXINFO GROUPS s\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n+OK\r\n+OK\r\n+OK\r\n*3\r\n*12\r\n$4\r\nname\r\n$1\r\na\r\n$9\r\nconsumers\r\n'
     b':0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n:1\r\n$3\r\n'
     b'lag\r\n:1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\n'
     b'last-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n:2\r\n*12\r\n$4\r\nname\r\n'
     b'$2\r\ng2\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n1-2\r\n$12\r\n'
     b'entries-read\r\n$-1\r\n$3\r\nlag\r\n:0\r\n*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n'
     b'$1\r\n1\r\n+OK\r\n*3\r\n*12\r\n$4\r\nname\r\n$1\r\na\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n'
     b'$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n:1\r\n$3\r\nlag\r\n:1\r\n*12\r\n$4\r\n'
     b'name\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:1\r\n$17\r\nlast-delivered-id\r\n$3\r\n1-1\r\n'
     b'$12\r\nentries-read\r\n:1\r\n$3\r\nlag\r\n:1\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:0\r\n'
     b'$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n'
     b':2\r\n'),
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 a 2\r\nXADD s 1-3 a 2\r\nXGROUP CREATE s g 0\r\nXDEL s 1-2\r\n'
     b'XREADGROUP GROUP g c COUNT 1 STREAMS s >\r\nXINFO GROUPS s\r\nXREADGROUP GROUP g c COUNT 5 STREAMS s >\r\n'
     b'XINFO GROUPS s\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n$3\r\n1-3\r\n+OK\r\n:1\r\n*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n'
     b'$1\r\na\r\n$1\r\n1\r\n*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:1\r\n'
     b'$17\r\nlast-delivered-id\r\n$3\r\n1-1\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n$-1\r\n*1\r\n*2\r\n'
     b'$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-3\r\n*2\r\n$1\r\na\r\n$1\r\n2\r\n*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\n'
     b'consumers\r\n:1\r\n$7\r\npending\r\n:2\r\n$17\r\nlast-delivered-id\r\n$3\r\n1-3\r\n$12\r\nentries-read\r\n'
     b':3\r\n$3\r\nlag\r\n:0\r\n'),
)
def test_xinfo_groups_and_read_counters(check, script, reply):
    """XINFO GROUPS (by name), entries-read and lag as Redis 7.0 keeps them (unknown: nil)."""
    check(script, reply)


# -- xinfo ---------------------------------------------------------------------------
@cases(
    (b'XINFO FOO\r\nXINFO HELP\r\nXINFO HELP x\r\nXINFO STREAM\r\nXINFO GROUPS\r\nXINFO CONSUMERS s\r\n'
     b'XINFO STREAM nokey\r\nXINFO GROUPS nokey\r\nXINFO CONSUMERS nokey g\r\n',
     b"-ERR unknown subcommand 'FOO'. Try XINFO HELP.\r\n*9\r\n"
     b'+XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+CONSUMERS <key> <groupname>\r\n'
     b'+    Show consumers of <groupname>.\r\n+GROUPS <key>\r\n+    Show the stream consumer groups.\r\n'
     b'+STREAM <key> [FULL [COUNT <count>]\r\n+    Show information about the stream.\r\n+HELP\r\n'
     b"+    Prints this help.\r\n-ERR wrong number of arguments for 'xinfo|help' command\r\n"
     b"-ERR wrong number of arguments for 'xinfo|stream' command\r\n"
     b"-ERR wrong number of arguments for 'xinfo|groups' command\r\n"
     b"-ERR wrong number of arguments for 'xinfo|consumers' command\r\n-ERR no such key\r\n-ERR no such key\r\n"
     b'-ERR no such key\r\n'),
    (b'SET str v\r\nXINFO GROUPS str\r\nXINFO CONSUMERS str g\r\nXINFO STREAM str FOO\r\n',
     b'+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'
     b'-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'
     b'-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'),
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 b 2\r\nXINFO STREAM s FOO\r\nXINFO STREAM s FULL FOO\r\n'
     b'XINFO STREAM s FULL COUNT abc\r\nXINFO STREAM s FULL COUNT\r\nXINFO stream s count 5\r\n'
     b'XINFO CONSUMERS s nog\r\nXINFO STREAM s FULL COUNT 1\r\nXINFO STREAM s FULL COUNT 0\r\n'
     b'XINFO STREAM s FULL COUNT -1\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n'
     b"-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.\r\n"
     b"-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.\r\n"
     b'-ERR value is not an integer or out of range\r\n'
     b"-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.\r\n"
     b"-ERR unknown subcommand or wrong number of arguments for 'stream'. Try XINFO HELP.\r\n"
     b"-NOGROUP No such consumer group 'nog' for key name 's'\r\n*18\r\n$6\r\nlength\r\n:2\r\n$15\r\n"
     b'radix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n1-2\r\n$20\r\n'
     b'max-deleted-entry-id\r\n$3\r\n0-0\r\n$13\r\nentries-added\r\n:2\r\n$23\r\nrecorded-first-entry-id\r\n$3\r\n'
     b'1-1\r\n$7\r\nentries\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n$6\r\ngroups\r\n*0\r\n*18\r\n'
     b'$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\n'
     b'last-generated-id\r\n$3\r\n1-2\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n0-0\r\n$13\r\nentries-added\r\n:2\r\n'
     b'$23\r\nrecorded-first-entry-id\r\n$3\r\n1-1\r\n$7\r\nentries\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n'
     b'$1\r\n1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n$6\r\ngroups\r\n*0\r\n*18\r\n$6\r\nlength\r\n'
     b':2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n'
     b'1-2\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n0-0\r\n$13\r\nentries-added\r\n:2\r\n$23\r\n'
     b'recorded-first-entry-id\r\n$3\r\n1-1\r\n$7\r\nentries\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n'
     b'1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n$6\r\ngroups\r\n*0\r\n'),
    (b'XGROUP CREATE e g $ MKSTREAM\r\nXINFO STREAM e\r\nXINFO STREAM e FULL\r\n',
     b'+OK\r\n*20\r\n$6\r\nlength\r\n:0\r\n$15\r\nradix-tree-keys\r\n:0\r\n$16\r\nradix-tree-nodes\r\n:1\r\n$17\r\n'
     b'last-generated-id\r\n$3\r\n0-0\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n0-0\r\n$13\r\nentries-added\r\n:0\r\n'
     b'$23\r\nrecorded-first-entry-id\r\n$3\r\n0-0\r\n$6\r\ngroups\r\n:1\r\n$11\r\nfirst-entry\r\n$-1\r\n$10\r\n'
     b'last-entry\r\n$-1\r\n*18\r\n$6\r\nlength\r\n:0\r\n$15\r\nradix-tree-keys\r\n:0\r\n$16\r\n'
     b'radix-tree-nodes\r\n:1\r\n$17\r\nlast-generated-id\r\n$3\r\n0-0\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n'
     b'0-0\r\n$13\r\nentries-added\r\n:0\r\n$23\r\nrecorded-first-entry-id\r\n$3\r\n0-0\r\n$7\r\nentries\r\n*0\r\n'
     b'$6\r\ngroups\r\n*1\r\n*14\r\n$4\r\nname\r\n$1\r\ng\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\n'
     b'entries-read\r\n$-1\r\n$3\r\nlag\r\n:0\r\n$9\r\npel-count\r\n:0\r\n$7\r\npending\r\n*0\r\n$9\r\n'
     b'consumers\r\n*0\r\n'),
)
def test_xinfo_subcommands_and_options(check, script, reply):
    """XINFO as a container; STREAM's FULL [COUNT n] and its texts; the radix-tree figures of a one-
    node stream."""
    check(script, reply)


# -- xadd ----------------------------------------------------------------------------
@cases(
    (b'XADD s 18446744073709551615-18446744073709551615 a 1\r\nXADD s 1-1 a 1\r\nXADD s * a 1\r\n'
     b'XADD s 18446744073709551615-* a 1\r\nXLEN s\r\n',
     b'$41\r\n18446744073709551615-18446744073709551615\r\n'
     b'-ERR The stream has exhausted the last possible ID, unable to add more items\r\n'
     b'-ERR The stream has exhausted the last possible ID, unable to add more items\r\n'
     b'-ERR The stream has exhausted the last possible ID, unable to add more items\r\n:1\r\n'),
    (b'XADD s 3-18446744073709551615 a 1\r\nXADD s 3-* a 1\r\nXADD s 2-* a 1\r\nXADD s 4-* a 1\r\n'
     b'XADD s 007-1 a 1\r\nXADD s +8-1 a 1\r\nXADD s " 9-1" a 1\r\nXADD s 18446744073709551616-1 a 1\r\n'
     b'XADD s 10-" 5" a 1\r\n',
     b'$22\r\n3-18446744073709551615\r\n-ERR Elements are too large to be stored\r\n'
     b'-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n$3\r\n4-0\r\n$3\r\n'
     b'7-1\r\n$3\r\n8-1\r\n$3\r\n9-1\r\n-ERR Invalid stream ID specified as stream command argument\r\n$4\r\n'
     b'10-5\r\n'),
    (b'XADD s MAXLEN abc * a 1\r\nXADD s MAXLEN 9223372036854775808 * a 1\r\nXADD s MAXLEN = 5 LIMIT 10 * a 1\r\n'
     b'XADD s MAXLEN 5 LIMIT 10 * a 1\r\nXADD s MAXLEN ~ 5 LIMIT abc * a 1\r\nXADD s MAXLEN ~ 5 LIMIT -1 * a 1\r\n'
     b'XADD s MINID 1-1 MAXLEN 5 * a 1\r\nXADD s MAXLEN 5 MAXLEN 6 * a 1\r\nXADD s LIMIT 10 * a 1\r\n'
     b'XADD s FOO * a 1\r\nXADD s MINID ~ - * a 1\r\nEXISTS s\r\n',
     b'-ERR value is not an integer or out of range\r\n-ERR value is not an integer or out of range\r\n'
     b'-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n'
     b'-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n'
     b'-ERR value is not an integer or out of range\r\n-ERR The LIMIT argument must be >= 0.\r\n'
     b'-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n'
     b'-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n'
     b'-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n:0\r\n'),
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 a 1\r\nXADD s MAXLEN 1 1-3 a 1\r\nXADD s MINID 1-3 1-4 a 1\r\nXRANGE s - +\r\n'
     b'XADD s NOMKSTREAM MAXLEN 1 1-5 a 1\r\nXLEN s\r\nXADD nokey NOMKSTREAM * a 1\r\nEXISTS nokey\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n$3\r\n1-3\r\n$3\r\n1-4\r\n*2\r\n*2\r\n$3\r\n1-3\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n'
     b'*2\r\n$3\r\n1-4\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n$3\r\n1-5\r\n:1\r\n$-1\r\n:0\r\n'),
)
def test_xadd_ids_and_trim_options(check, script, reply):
    """IDs are unsigned 64-bit (string2ull); the last possible ID; XADD's and XTRIM's shared option
    parser and its texts."""
    check(script, reply)


# -- xrange --------------------------------------------------------------------------
@cases(
    (b'XADD s 1-0 a 1\r\nXADD s 1-5 a 2\r\nXADD s 2-0 a 3\r\nXRANGE s - + COUNT -1\r\nXRANGE s - + COUNT 0\r\n'
     b'XRANGE s - + COUNT 1 COUNT 2\r\nXRANGE s - + COUNT 1 FOO\r\nXRANGE s - (0-0\r\n'
     b'XRANGE s (18446744073709551615-18446744073709551615 +\r\nXRANGE s (1-0 +\r\nXRANGE s - (2\r\n'
     b'XRANGE s 1 1\r\nXRANGE s ( +\r\nXRANGE s (- +\r\n',
     b'$3\r\n1-0\r\n$3\r\n1-5\r\n$3\r\n2-0\r\n*-1\r\n*-1\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n'
     b'*2\r\n$3\r\n1-5\r\n*2\r\n$1\r\na\r\n$1\r\n2\r\n-ERR syntax error\r\n-ERR invalid end ID for the interval\r\n'
     b'-ERR invalid start ID for the interval\r\n*2\r\n*2\r\n$3\r\n1-5\r\n*2\r\n$1\r\na\r\n$1\r\n2\r\n*2\r\n$3\r\n'
     b'2-0\r\n*2\r\n$1\r\na\r\n$1\r\n3\r\n*3\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n1-5\r\n'
     b'*2\r\n$1\r\na\r\n$1\r\n2\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$1\r\n3\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n'
     b'$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n1-5\r\n*2\r\n$1\r\na\r\n$1\r\n2\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'),
    (b'XREVRANGE s + - COUNT 1 COUNT 2\r\nXREVRANGE s + - COUNT 0\r\nXRANGE nokey - + COUNT 0\r\n'
     b'XRANGE nokey abc +\r\nSET str v\r\nXRANGE str - + COUNT 0\r\nXRANGE str - + FOO\r\n',
     b'*0\r\n*0\r\n*0\r\n-ERR Invalid stream ID specified as stream command argument\r\n+OK\r\n'
     b'-WRONGTYPE Operation against a key holding the wrong kind of value\r\n-ERR syntax error\r\n'),
    (b'XADD s 1-0 a 1\r\nXADD s 2-0 a 1\r\nXREVRANGE s (2 (1\r\nXREVRANGE s (2-0 -\r\n'
     b'XREVRANGE s + (18446744073709551615-18446744073709551615 COUNT 1\r\n',
     b'$3\r\n1-0\r\n$3\r\n2-0\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n*2\r\n$3\r\n1-0\r\n'
     b'*2\r\n$1\r\na\r\n$1\r\n1\r\n-ERR invalid start ID for the interval\r\n'),
)
def test_xrange_bounds_and_count(check, script, reply):
    """Exclusive bounds step past the ends with Redis's texts; COUNT repeatable, negative as 0, 0 is
    a null array."""
    check(script, reply)


# -- xdel xtrim ----------------------------------------------------------------------
@cases(
    (b'XDEL nokey abc\r\nSET str v\r\nXDEL str abc\r\nXADD s 1-0 a 1\r\nXDEL s 1\r\nXDEL s 1-0 abc\r\nXLEN s\r\n',
     b':0\r\n+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$3\r\n1-0\r\n:1\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n:0\r\n'),
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 a 1\r\nXADD s 1-3 a 1\r\nXTRIM s MAXLEN abc\r\nXTRIM s MAXLEN 100 LIMIT 10\r\n'
     b'XTRIM s MAXLEN ~ 100 LIMIT abc\r\nXTRIM s MAXLEN ~ 100 LIMIT -1\r\nXTRIM s MAXLEN 100 MAXLEN 10\r\n'
     b'XTRIM s MINID 1-1 MAXLEN 1\r\nXTRIM s MAXLEN ~\r\nXTRIM s LIMIT 10\r\nXTRIM s MINID -\r\n'
     b'XTRIM s MAXLEN 9223372036854775808\r\nXTRIM s MAXLEN = 1 LIMIT 0\r\nXTRIM s MAXLEN = 2\r\n'
     b'XTRIM s MINID 1-3\r\nXLEN s\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n$3\r\n1-3\r\n-ERR value is not an integer or out of range\r\n'
     b'-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n'
     b'-ERR value is not an integer or out of range\r\n-ERR The LIMIT argument must be >= 0.\r\n'
     b'-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n'
     b'-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n'
     b'-ERR value is not an integer or out of range\r\n'
     b'-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b'-ERR value is not an integer or out of range\r\n'
     b'-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n:1\r\n:1\r\n:1\r\n'),
    (b'XTRIM nokey MAXLEN abc\r\nXTRIM nokey FOO 1\r\nSET str v\r\nXTRIM str FOO 1\r\nXTRIM str MAXLEN 1\r\n',
     b'-ERR value is not an integer or out of range\r\n-ERR syntax error\r\n+OK\r\n-ERR syntax error\r\n'
     b'-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'),
)
def test_xdel_and_xtrim_order_of_checks(check, script, reply):
    """XDEL: the key before the IDs; XTRIM: options first, with Redis's texts."""
    check(script, reply)


# -- xack xclaim ---------------------------------------------------------------------
@cases(
    (b'XACK nokey g abc\r\nXADD s 1-1 a 1\r\nXACK s nog abc\r\nXGROUP CREATE s g 0\r\nXACK s g abc\r\n',
     b':0\r\n$3\r\n1-1\r\n:0\r\n+OK\r\n-ERR Invalid stream ID specified as stream command argument\r\n'),
    (b'XCLAIM nokey g c 0 1-1\r\nXADD s 1-1 a 1\r\nXCLAIM s nog c abc 1-1\r\nXGROUP CREATE s g 0\r\n'
     b'XCLAIM s g c abc 1-1\r\nXCLAIM s g c 0 1-1 IDLE abc\r\nXCLAIM s g c 0 1-1 TIME abc\r\n'
     b'XCLAIM s g c 0 1-1 RETRYCOUNT abc\r\nXCLAIM s g c 0 1-1 LASTID abc\r\nXCLAIM s g c 0 1-1 LASTID -\r\n'
     b'XCLAIM s g c 0 1-1 FOO\r\n',
     b"-NOGROUP No such key 'nokey' or consumer group 'g'\r\n$3\r\n1-1\r\n"
     b"-NOGROUP No such key 's' or consumer group 'nog'\r\n+OK\r\n"
     b'-ERR Invalid min-idle-time argument for XCLAIM\r\n-ERR Invalid IDLE option argument for XCLAIM\r\n'
     b'-ERR Invalid TIME option argument for XCLAIM\r\n-ERR Invalid RETRYCOUNT option argument for XCLAIM\r\n'
     b'-ERR Invalid stream ID specified as stream command argument\r\n'
     b"-ERR Invalid stream ID specified as stream command argument\r\n-ERR Unrecognized XCLAIM option 'FOO'\r\n"),
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 a 1\r\nXGROUP CREATE s g 0\r\nXREADGROUP GROUP g c STREAMS s >\r\n'
     b'XCLAIM s g d 0 1-1 RETRYCOUNT 9 JUSTID\r\nXCLAIM s g d 0 1-2 LASTID 5-5 JUSTID\r\nXINFO GROUPS s\r\n'
     b'XCLAIM s g d 0 1-2 LASTID 0-1 JUSTID\r\nXINFO GROUPS s\r\nXADD s 1-3 a 1\r\nXCLAIM s g d 0 1-3 FORCE\r\n'
     b'XCLAIM s g d 0 1-3 JUSTID\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n+OK\r\n*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n'
     b'1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n$3\r\n1-1\r\n*1\r\n$3\r\n1-2\r\n*1\r\n*12\r\n'
     b'$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:2\r\n$7\r\npending\r\n:2\r\n$17\r\nlast-delivered-id\r\n$3\r\n'
     b'5-5\r\n$12\r\nentries-read\r\n:2\r\n$3\r\nlag\r\n:0\r\n*1\r\n$3\r\n1-2\r\n*1\r\n*12\r\n$4\r\nname\r\n$1\r\n'
     b'g\r\n$9\r\nconsumers\r\n:2\r\n$7\r\npending\r\n:2\r\n$17\r\nlast-delivered-id\r\n$3\r\n5-5\r\n$12\r\n'
     b'entries-read\r\n:2\r\n$3\r\nlag\r\n:0\r\n$3\r\n1-3\r\n*1\r\n*2\r\n$3\r\n1-3\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n'
     b'*1\r\n$3\r\n1-3\r\n'),
    (b'XAUTOCLAIM nokey g c 0 0\r\nXADD s 1-1 a 1\r\nXAUTOCLAIM s nog c 0 0\r\nXAUTOCLAIM s nog c abc 0\r\n'
     b'XAUTOCLAIM s nog c 0 abc\r\nXAUTOCLAIM s nog c 0 0 COUNT 0\r\n'
     b'XAUTOCLAIM s nog c 0 0 COUNT 922337203685477580\r\n'
     b'XAUTOCLAIM s nog c 0 (18446744073709551615-18446744073709551615\r\n',
     b"-NOGROUP No such key 'nokey' or consumer group 'g'\r\n$3\r\n1-1\r\n"
     b"-NOGROUP No such key 's' or consumer group 'nog'\r\n-ERR Invalid min-idle-time argument for XAUTOCLAIM\r\n"
     b'-ERR Invalid stream ID specified as stream command argument\r\n-ERR COUNT must be > 0\r\n'
     b'-ERR COUNT must be > 0\r\n-ERR invalid start ID for the interval\r\n'),
    (b'XADD s 1-1 a 1\r\nXADD s 1-2 a 1\r\nXADD s 1-3 a 1\r\nXADD s 1-4 a 1\r\nXGROUP CREATE s g 0\r\n'
     b'XREADGROUP GROUP g c STREAMS s >\r\nXDEL s 1-2 1-3\r\nXAUTOCLAIM s g c2 0 0 COUNT 1 JUSTID\r\n'
     b'XAUTOCLAIM s g c2 0 0 COUNT 1 JUSTID\r\nXAUTOCLAIM s g c2 0 (1-1 COUNT 1 JUSTID\r\n'
     b'XAUTOCLAIM s g c2 0 (1-1 COUNT 1 JUSTID\r\nXAUTOCLAIM s g c3 0 0 COUNT 1 COUNT 5\r\n',
     b'$3\r\n1-1\r\n$3\r\n1-2\r\n$3\r\n1-3\r\n$3\r\n1-4\r\n+OK\r\n*1\r\n*2\r\n$1\r\ns\r\n*4\r\n*2\r\n$3\r\n1-1\r\n'
     b'*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n1-3\r\n*2\r\n$1\r\n'
     b'a\r\n$1\r\n1\r\n*2\r\n$3\r\n1-4\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n:2\r\n*3\r\n$3\r\n1-2\r\n*1\r\n$3\r\n1-1\r\n'
     b'*0\r\n*3\r\n$3\r\n1-2\r\n*1\r\n$3\r\n1-1\r\n*0\r\n*3\r\n$3\r\n1-3\r\n*0\r\n*1\r\n$3\r\n1-2\r\n*3\r\n$3\r\n'
     b'1-4\r\n*0\r\n*1\r\n$3\r\n1-3\r\n*3\r\n$3\r\n0-0\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n'
     b'*2\r\n$3\r\n1-4\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*0\r\n'),
)
def test_xack_xclaim_xautoclaim(check, script, reply):
    """XACK reads no ID without a group; XCLAIM and XAUTOCLAIM: Redis's order, texts and options
    (RETRYCOUNT, LASTID, FORCE, exclusive start, COUNT's range, deleted entries)."""
    check(script, reply)


# -- expiretime wait monitor ---------------------------------------------------------
@cases(
    (b'SET k v\r\nPEXPIREAT k 99999999999500\r\nEXPIRETIME k\r\nPEXPIRETIME k\r\nPEXPIREAT k 99999999999499\r\n'
     b'EXPIRETIME k\r\n',
     b'+OK\r\n:1\r\n:100000000000\r\n:99999999999500\r\n:1\r\n:99999999999\r\n'),
    (b'MONITOR x\r\nWAIT\r\nWAIT 0 0\r\nWAIT abc 0\r\nWAIT 0 abc\r\nWAIT 0 -1\r\nWAIT -1 0\r\nWAIT 0 1.5\r\n'
     b'WAIT 99999999999999999999 0\r\nMULTI\r\nWAIT 1 0\r\nEXEC\r\n',
     b"-ERR wrong number of arguments for 'monitor' command\r\n"
     b"-ERR wrong number of arguments for 'wait' command\r\n:0\r\n-ERR value is not an integer or out of range\r\n"
     b'-ERR timeout is not an integer or out of range\r\n-ERR timeout is negative\r\n:0\r\n'
     b'-ERR timeout is not an integer or out of range\r\n-ERR value is not an integer or out of range\r\n+OK\r\n'
     b'+QUEUED\r\n*1\r\n:0\r\n'),
)
def test_expiretime_rounds_wait_and_monitor(check, script, reply):
    """EXPIRETIME rounds to the nearest second; WAIT as a Redis without replicas; MONITOR refused
    with its arity checked."""
    check(script, reply)


# -- config --------------------------------------------------------------------------
@cases(
    (b'CONFIG SET maxmemory-policy foo\r\nCONFIG SET maxmemory-policy ALLKEYS-LRU\r\n'
     b'CONFIG GET maxmemory-policy\r\nCONFIG SET maxmemory-policy noeviction\r\n',
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of"
     b' the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, '
     b'allkeys-random, noeviction\r\n+OK\r\n*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n+OK\r\n'),
    (b'CONFIG SET databases 5\r\nCONFIG SET DATABASES abc\r\nCONFIG SET daemonize yes\r\nCONFIG SET dir /tmp\r\n'
     b'CONFIG SET dbfilename x.rdb\r\nCONFIG SET DATABASES 4 foo 1\r\nCONFIG SET foo 1 DATABASES 4\r\n'
     b'CONFIG GET daemonize\r\n',
     b"-ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'DATABASES') - can't set immutable config\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'DATABASES') - can't set immutable config\r\n"
     b"-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n*2\r\n$9\r\ndaemonize\r\n$2\r\nno\r\n"),
    (b'CONFIG SET maxmemory 1gb\r\nCONFIG GET maxmemory\r\nCONFIG SET maxmemory 100MB\r\nCONFIG GET MAXMEMORY\r\n'
     b'CONFIG SET maxmemory 1k\r\nCONFIG GET maxmemory\r\nCONFIG SET maxmemory 2m\r\nCONFIG GET maxmemory\r\n'
     b'CONFIG SET maxmemory 5b\r\nCONFIG GET maxmemory\r\nCONFIG SET maxmemory abc\r\nCONFIG SET maxmemory -1\r\n'
     b'CONFIG SET maxmemory 1.5gb\r\nCONFIG SET maxmemory 1t\r\nCONFIG SET MAXMEMORY " 1"\r\n'
     b'CONFIG GET maxmemory\r\nCONFIG SET maxmemory 0\r\n',
     b'+OK\r\n*2\r\n$9\r\nmaxmemory\r\n$10\r\n1073741824\r\n+OK\r\n*2\r\n$9\r\nMAXMEMORY\r\n$9\r\n104857600\r\n'
     b'+OK\r\n*2\r\n$9\r\nmaxmemory\r\n$4\r\n1000\r\n+OK\r\n*2\r\n$9\r\nmaxmemory\r\n$7\r\n2000000\r\n+OK\r\n*2\r\n'
     b'$9\r\nmaxmemory\r\n$1\r\n5\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
     b'*2\r\n$9\r\nmaxmemory\r\n$1\r\n5\r\n+OK\r\n'),
    (b'CONFIG SET maxmemory 1 maxmemory 2\r\nCONFIG SET maxmemory 1 mb\r\n'
     b'CONFIG SET maxmemory 5 maxmemory-policy foo\r\nCONFIG GET maxmemory\r\n'
     b'CONFIG SET timeout 5 maxmemory abc\r\nCONFIG GET timeout\r\n',
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter\r\n"
     b'-ERR syntax error\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of"
     b' the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, '
     b'allkeys-random, noeviction\r\n*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
     b'*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n'),
    (b'CONFIG SET maxclients abc\r\nCONFIG SET maxclients 0\r\nCONFIG SET timeout -1\r\nCONFIG SET timeout 05\r\n'
     b'CONFIG SET port 70000\r\nCONFIG SET slowlog-log-slower-than -2\r\nCONFIG SET active-expire-effort 11\r\n'
     b'CONFIG SET hash-max-ziplist-entries abc\r\nCONFIG SET proto-max-bulk-len 1\r\n'
     b'CONFIG SET proto-max-bulk-len abc\r\nCONFIG SET hz abc\r\n',
     b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into"
     b' an integer\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be between 1 and 4"
     b'294967295 inclusive\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and 2147"
     b'483647 inclusive\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument couldn't be parsed into an"
     b' integer\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'port') - argument must be between 0 and 65535 i"
     b'nclusive\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be be"
     b'tween -1 and 9223372036854775807 inclusive\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'active-expire-effort') - argument must be betwe"
     b'en 1 and 10 inclusive\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'hash-max-ziplist-entries') - argument couldn't "
     b'be parsed into an integer\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be between"
     b' 1048576 and 9223372036854775807 inclusive\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be a memor"
     b'y value\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer\r\n"),
    (b'CONFIG SET appendonly maybe\r\nCONFIG SET lazyfree-lazy-expire YES\r\nCONFIG GET lazyfree-lazy-expire\r\n'
     b'CONFIG SET lazyfree-lazy-expire no\r\nCONFIG SET appendfsync foo\r\n'
     b'CONFIG SET sanitize-dump-payload maybe\r\nCONFIG SET notify-keyspace-events Z\r\nCONFIG SET save "100 a"\r\n'
     b'CONFIG SET save 100\r\nCONFIG SET client-output-buffer-limit foo\r\n'
     b'CONFIG SET client-output-buffer-limit "foo 1 2 3"\r\n'
     b'CONFIG SET client-output-buffer-limit "normal a 2 3"\r\n',
     b"-ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'\r\n"
     b'+OK\r\n*2\r\n$20\r\nlazyfree-lazy-expire\r\n$3\r\nyes\r\n+OK\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the "
     b'following: everysec, always, no\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'sanitize-dump-payload') - argument(s) must be o"
     b'ne of the following: no, yes, clients\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class "
     b"character. Use 'Ag$lshzxeKEtmdn'.\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters\r\n"
     b"-ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Wrong number of "
     b'arguments in buffer limit configuration.\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Invalid client c"
     b'lass specified in buffer limit configuration.\r\n'
     b"-ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Error in hard, s"
     b'oft or soft_seconds setting in buffer limit configuration.\r\n'),
    (b'CONFIG SET client-output-buffer-limit "normal 1mb 2mb 3 replica 1k 2k 4"\r\n'
     b'CONFIG GET client-output-buffer-limit\r\n'
     b'CONFIG SET client-output-buffer-limit "normal 0 0 0 slave 268435456 67108864 60"\r\n'
     b'CONFIG GET client-output-buffer-limit\r\n',
     b'+OK\r\n*2\r\n$26\r\nclient-output-buffer-limit\r\n$69\r\n'
     b'normal 1048576 2097152 3 slave 1000 2000 4 pubsub 33554432 8388608 60\r\n+OK\r\n*2\r\n$26\r\n'
     b'client-output-buffer-limit\r\n$67\r\nnormal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60\r\n'),
    (b'CONFIG SET list-max-ziplist-size 5\r\nCONFIG GET list-max-listpack-size\r\n'
     b'CONFIG SET list-max-listpack-size -2\r\nCONFIG GET list-max-ziplist-size\r\n'
     b'CONFIG SET hash-max-listpack-value 1kb\r\nCONFIG GET hash-max-listpack-value\r\n'
     b'CONFIG SET hash-max-listpack-value 64\r\n',
     b'+OK\r\n*2\r\n$22\r\nlist-max-listpack-size\r\n$1\r\n5\r\n+OK\r\n*2\r\n$21\r\nlist-max-ziplist-size\r\n$2\r\n'
     b'-2\r\n+OK\r\n*2\r\n$23\r\nhash-max-listpack-value\r\n$4\r\n1024\r\n+OK\r\n'),
    (b'CONFIG HELP\r\nCONFIG HELP x\r\nCONFIG REWRITE x\r\nCONFIG GET HZ\r\n',
     b'*11\r\n+CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+GET <pattern>\r\n'
     b'+    Return parameters matching the glob-like <pattern> and their values.\r\n+SET <directive> <value>\r\n'
     b'+    Set the configuration <directive> to <value>.\r\n+RESETSTAT\r\n'
     b'+    Reset statistics reported by the INFO command.\r\n+REWRITE\r\n+    Rewrite the configuration file.\r\n'
     b"+HELP\r\n+    Prints this help.\r\n-ERR wrong number of arguments for 'config|help' command\r\n"
     b"-ERR wrong number of arguments for 'config|rewrite' command\r\n*2\r\n$2\r\nHZ\r\n$2\r\n10\r\n"),
)
def test_config_set_checks_and_get_normalises(check, script, reply):
    """CONFIG SET checks names (unknown, immutable, protected, repeated) then values with Redis
    7.0's types and texts; memory values read back in bytes; CONFIG HELP."""
    check(script, reply)


def test_xinfo_consumers(check):
    """XINFO CONSUMERS: Redis 7.0's three fields, consumers by name (idle times masked)."""
    check(b"XADD s 1-1 a 1\r\nXADD s 1-2 a 1\r\nXGROUP CREATE s g 0\r\nXREADGROUP GROUP g zc COUNT 1 STREAMS s >\r\n"
          b"XGROUP CREATECONSUMER s g ac\r\nXINFO CONSUMERS s g\r\n",
          b"$3\r\n1-1\r\n$3\r\n1-2\r\n+OK\r\n"
          b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
          b":1\r\n*2\r\n*6\r\n$4\r\nname\r\n$2\r\nac\r\n$7\r\npending\r\n:0\r\n$4\r\nidle\r\n:N\r\n"
          b"*6\r\n$4\r\nname\r\n$2\r\nzc\r\n$7\r\npending\r\n:1\r\n$4\r\nidle\r\n:N\r\n",
          mask=lambda got: re.sub(rb"idle\r\n:\d+\r\n", b"idle\r\n:N\r\n", got))
