"""Named scenarios that put the essay's claims to the test (``netcore bench NAME``).

Each preset builds its cases from the command-line options it honours (``--poller``,
``--connections``, ``--size``, ``--duration``, ...), names a baseline case for every row
(ratios are against a configuration measured in the same run), and the columns to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from netcore_bench.cases import Case, peer_case
from netcore_bench.generators import Load
from netcore_bench.matrix import expand, ints, netcore_case, split
from netcore_bench.peers import peer_names
from netcore_bench.registry import Installed
from netcore_bench.results import Column, Target


@dataclass
class Plan:
    name: str
    title: str
    cases: list[Case]
    columns: list[Column]
    #: what to read in the table: the essay's claim this preset tests
    claim: str = ""
    #: the metric plotted, per case, with its axis label
    plot: tuple[str, str] = ("server_cpu_us_per_msg", "server CPU µs per message")
    notes: list[str] = field(default_factory=list)
    #: the preset chose its peers (from ``--peers``): the CLI adds no echo peers to it
    peers_included: bool = False
    #: claims checked against this run's medians, printed under the table and kept in --json
    targets: list[Target] = field(default_factory=list)


def _load(opts: dict[str, Any], **defaults: Any) -> Load:
    base = Load(**defaults)
    return replace(base, warmup=opts.get("warmup", base.warmup), duration=opts.get("duration") or base.duration)


COMMON_TAIL = [Column("gen CPU%", "v:gen_cpu_percent", ".0f"), Column("ok", "ok"), Column("flags", "flags")]


def default(opts: dict[str, Any], inst: Installed) -> Plan:
    loads = [_load(opts, connections=c, size=s, idle=i)
             for c in ints(opts.get("connections"), 64) for s in ints(opts.get("size"), 64)
             for i in ints(opts.get("idle"), 0)]
    o = dict(opts)
    o.setdefault("poller", "all")
    o["poller"] = o["poller"] or "all"
    o["dispatch"] = o.get("dispatch") or "inline"
    o["protocol"] = o.get("protocol") or "echo"
    if o.get("peers") is None:
        o["peers"] = "asyncio,uvloop"
    cases = expand(o, inst, loads)
    peers = [c.server for c in cases if c.server != "netcore" and not c.skip]
    base = "uvloop" if "uvloop" in peers else next(iter(peers), None)
    cols = [Column("case", "label"), Column("msgs/s (min-max)", "m:messages_per_s", ",.0f"),
            Column("p99 µs", "v:p99_us", ",.0f"), Column("srv CPU µs/msg (min-max)", "m:server_cpu_us_per_msg"),
            Column(f"CPU/msg vs {base or 'peer'}", "r:server_cpu_us_per_msg"),
            Column("srv CPU%", "v:server_cpu_percent", ".0f"), *COMMON_TAIL]
    return Plan("default", "Echo ping-pong matrix", cases, cols,
                claim="server CPU per message of each combination, against the peers in the same run")


def idle(opts: dict[str, Any], inst: Installed) -> Plan:
    counts = ints(opts.get("idle"), 0) if opts.get("idle") else [0, 1000, 10000]
    pollers = split(opts.get("poller")) if opts.get("poller") not in (None, "all") else inst.available("poller")
    cases = []
    for poller in pollers or ["epoll-lt"]:
        first = None
        for n in counts:
            load = _load(opts, connections=ints(opts.get("connections"), 64)[0], size=ints(opts.get("size"), 64)[0],
                         idle=n)
            params = {"poller": poller, "dispatch": opts.get("dispatch") or "inline", "protocol": "echo", "idle": n}
            case = netcore_case(params, load, inst, key=f"{poller} +{n} idle",
                                extra=["--max-connections", str(load.connections + n + 1000), *opts.get("serve_args", [])])
            first = first or case.key
            case.baseline = first
            cases.append(case)
    cols = [Column("poller", "p:poller"), Column("idle", "p:idle"),
            Column("srv CPU µs/msg (min-max)", "m:server_cpu_us_per_msg"), Column("CPU/msg vs 0 idle", "r:server_cpu_us_per_msg"),
            Column("msgs/s", "v:messages_per_s", ",.0f"), Column("srv RSS KiB", "v:rss_kib", ",.0f"),
            Column("B per idle conn", "d:rss_per_idle_conn_bytes", ",.0f"), *COMMON_TAIL]
    return Plan("idle", "Idle connections: 64 active plus 0, 1,000, 10,000 idle", cases, cols,
                claim="epoll's cost per message does not grow with idle connections; poll's and select's do "
                      "(they hand the kernel every fd on every call)")


HERD_ACCEPTORS = ("shared", "mutex", "exclusive", "reuseport")


def herd(opts: dict[str, Any], inst: Installed) -> Plan:
    workers = ints(opts.get("workers"), 0) if opts.get("workers") else [2, 4, 8]
    acceptors = split(opts.get("acceptor")) if opts.get("acceptor") not in (None, "all") else list(HERD_ACCEPTORS)
    dispatch = opts.get("dispatch") or "prefork"
    load = _load(opts, connections=ints(opts.get("connections"), 32)[0], size=ints(opts.get("size"), 64)[0],
                 mode="reconnect")
    cases = []
    for n in workers:
        first = None
        for acc in acceptors:
            params = {"poller": opts.get("poller") or None, "dispatch": dispatch, "acceptor": acc, "workers": n,
                      "protocol": "echo"}
            case = netcore_case(params, load, inst, key=f"{dispatch} x{n} {acc}", extra=opts.get("serve_args", []))
            first = first or case.key
            case.baseline = first
            cases.append(case)
    cols = [Column("workers", "p:workers"), Column("acceptor", "p:acceptor"),
            Column("conns/s", "v:connections_per_s", ",.0f"),
            Column("wasted wake-ups/conn", "m:accept_eagain_per_conn", ".3f"),
            Column("wake-ups/conn", "v:accept_wakeups_per_conn", ".2f"),
            Column("ctx switches/conn", "m:context_switches_per_conn", ".2f"),
            Column("balance max/mean", "m:worker_balance", ".2f"),
            Column("srv CPU µs/conn", "m:server_cpu_us_per_conn", ".1f"),
            Column("CPU/conn vs shared", "r:server_cpu_us_per_conn"), *COMMON_TAIL]
    return Plan("herd", "Thundering herd: short connections against prefork workers", cases, cols,
                claim="a listener shared by every worker wakes them all for one connection (wasted wake-ups); "
                      "an accept mutex, EPOLLEXCLUSIVE or SO_REUSEPORT wake one",
                plot=("accept_eagain_per_conn", "wasted wake-ups per accepted connection"))


#: The dispatch preset's rows: (label, serve arguments). Pools have 8 threads, as in
#: docs/schemes.md's table; multi-reactor runs with 1 and 2 I/O loops.
DISPATCH_SCHEMES: dict[str, list[str]] = {
    "iterative": ["--dispatch", "iterative"],
    "forking": ["--dispatch", "forking"],
    "threading": ["--dispatch", "threading"],
    "prefork-blocking": ["--dispatch", "prefork-blocking", "--workers", "8"],
    "prethread-blocking": ["--dispatch", "prethread-blocking", "--workers", "8"],
    "inline": ["--dispatch", "inline"],
    "thread": ["--dispatch", "thread", "--threads", "8"],
    "thread-per-connection": ["--dispatch", "thread-per-connection"],
    "pool": ["--dispatch", "pool", "--threads", "8"],
    "multi-reactor": ["--dispatch", "multi-reactor", "--workers", "1"],
    "multi-reactor-2": ["--dispatch", "multi-reactor", "--workers", "2"],
    "prefork": ["--dispatch", "prefork", "--workers", "2"],
    "multi-reactor-pool": ["--dispatch", "multi-reactor-pool", "--workers", "1", "--threads", "8"],
}


def dispatch(opts: dict[str, Any], inst: Installed) -> Plan:
    wanted = split(opts.get("dispatch")) if opts.get("dispatch") not in (None, "all") else list(DISPATCH_SCHEMES)
    delay = opts.get("delay", 0.001)
    handlers = [("fast", []), (f"slow {delay * 1000:g} ms", ["--set", f"echo_delay={delay}"])]
    load = _load(opts, connections=ints(opts.get("connections"), 64)[0], size=ints(opts.get("size"), 64)[0],
                 duration=4.0)
    cases = []
    for handler, extra in handlers:
        base = f"inline {handler}"
        for label in wanted:
            scheme_args = DISPATCH_SCHEMES.get(label, ["--dispatch", label])
            params = {"dispatch": scheme_args[1], "protocol": "echo", "handler": handler, "scheme": label}
            case = netcore_case(params, load, inst, key=f"{label} {handler}",
                                extra=scheme_args[2:] + extra + list(opts.get("serve_args", [])))
            case.baseline = base
            cases.append(case)
    cols = [Column("scheme", "p:scheme"), Column("handler", "p:handler"),
            Column("msgs/s (min-max)", "m:messages_per_s", ",.0f"), Column("msgs/s vs inline", "r:messages_per_s"),
            Column("p99 µs", "v:p99_us", ",.0f"), Column("CPU µs/msg", "v:server_cpu_us_per_msg"),
            Column("CPU/msg vs inline", "r:server_cpu_us_per_msg"), *COMMON_TAIL]
    return Plan("dispatch", "Every dispatch scheme, fast handler and 1 ms blocking handler", cases, cols,
                claim="reactor + pool pays a hand-off per message; one loop per thread does not; a blocking "
                      "handler stalls a single reactor and not a pool",
                plot=("messages_per_s", "messages per second"))


def edge(opts: dict[str, Any], inst: Installed) -> Plan:
    pollers = split(opts.get("poller")) if opts.get("poller") not in (None, "all") else ["epoll-lt", "epoll-et"]
    sizes = ints(opts.get("size"), 0) if opts.get("size") else [65536]
    buf = opts.get("sockbuf") or 32768
    # A small read size makes each readiness report cover a fraction of a message: a
    # level-triggered loop reads once per wake-up, an edge-triggered one drains to EAGAIN.
    recv_size = ["--recv-size", "4096"] if not any(a.startswith("--recv-size") or a == "recv_size"
                                                    for a in opts.get("serve_args", [])) else []
    cases = []
    for size in sizes:
        first = None
        load = _load(opts, connections=ints(opts.get("connections"), 8)[0], size=size, rcvbuf=buf, sndbuf=buf)
        for poller in pollers:
            params = {"poller": poller, "dispatch": "inline", "protocol": "echo", "size": size}
            case = netcore_case(params, load, inst, key=f"{poller} {size} B",
                                extra=recv_size + list(opts.get("serve_args", [])))
            first = first or case.key
            case.baseline = first
            cases.append(case)
    cols = [Column("poller", "p:poller"), Column("size", "p:size"), Column("msgs/s", "v:messages_per_s", ",.0f"),
            Column("srv CPU µs/msg (min-max)", "m:server_cpu_us_per_msg", ".1f"),
            Column("CPU/msg vs first", "r:server_cpu_us_per_msg"), Column("poll calls/msg", "m:poll_calls_per_msg", ".1f"),
            Column("reads/msg", "m:reads_per_msg", ".1f"), Column("syscalls/msg", "v:syscalls_per_msg", ".1f"),
            *COMMON_TAIL]
    return Plan("edge", "Level- against edge-triggered epoll: large messages, 32 KiB client socket buffers, 4 KiB server reads", cases,
                cols, claim="edge-triggered readiness needs fewer wake-ups but must drain every socket until "
                            "EAGAIN; level-triggered wakes again while data remains",
                plot=("poll_calls_per_msg", "poll calls per message"))


def backlog(opts: dict[str, Any], inst: Installed) -> Plan:
    backlogs = [int(b) for b in split(opts.get("backlog"))] or [8, None]
    load = _load(opts, connections=ints(opts.get("connections"), 2000)[0], size=ints(opts.get("size"), 64)[0],
                 mode="burst", warmup=0.0, duration=15.0)
    cases = []
    first = None
    for b in backlogs:
        params = {"dispatch": opts.get("dispatch") or "inline", "protocol": "echo", "backlog": b}
        key = f"backlog {b}" if b is not None else "backlog somaxconn (default)"
        case = netcore_case(params, load, inst, key=key, extra=opts.get("serve_args", []))
        case.params["backlog"] = b if b is not None else "somaxconn"
        first = first or case.key
        case.baseline = first
        cases.append(case)
    cols = [Column("backlog", "p:backlog"), Column("connects", "v:connects", ",.0f"),
            Column("delayed >= 0.9 s", "m:delayed_1s", ",.0f"), Column("failed", "v:connect_errors", ",.0f"),
            Column("p50 ms", "v:connect_p50_ms", ",.1f"), Column("p99 ms", "m:connect_p99_ms", ",.0f"),
            Column("max ms", "v:connect_max_ms", ",.0f"), *COMMON_TAIL]
    return Plan("backlog", "A burst of connects against a small accept queue and against somaxconn", cases, cols,
                claim="a full accept queue drops SYNs: the client retries after the 1 s SYN timeout, so a "
                      "small backlog turns a burst into delayed connects",
                plot=("delayed_1s", "connects delayed by a SYN retransmission"))


def _peers(opts: dict[str, Any], protocol: str) -> list[str]:
    """``--peers a,b`` (unknown names become skipped rows), '' for none, else every peer of ``protocol``."""
    if opts.get("peers") is None:
        return peer_names(protocol)
    return split(opts["peers"])


WSGI_HELLO = "netcore_bench.peers.wsgi_hello:app"
ASGI_HELLO = "netcore_bench.peers.asgi_hello:app"
FASTAPI_JSON = "netcore_bench.peers.fastapi_json:app"
#: The http preset's netcore rows: label -> (dispatch, threads, app or None for the
#: built-in hello). The WSGI rows run the same app module as waitress and gunicorn
#: (``peers.wsgi_hello``), the ASGI row the raw callable uvicorn runs (``peers.asgi_hello``),
#: the FastAPI row the app uvicorn-fastapi runs (``peers.fastapi_json``).
HTTP_NETCORE: dict[str, tuple[str, int | None, str | None]] = {
    "netcore hello": ("inline", None, None),
    "netcore WSGI inline": ("inline", None, WSGI_HELLO),
    "netcore WSGI pool": ("pool", 4, WSGI_HELLO),
    "netcore ASGI inline": ("inline", None, ASGI_HELLO),
    "netcore FastAPI inline": ("inline", None, FASTAPI_JSON),
}
#: (netcore row, peer, minimum requests/s ratio): the http preset's targets.
HTTP_TARGETS = (("netcore hello", "uvicorn", 2.5), ("netcore WSGI inline", "waitress", 4.0),
                ("netcore WSGI inline", "gunicorn-gthread", 8.0), ("netcore WSGI pool", "waitress", 4.0),
                ("netcore WSGI pool", "gunicorn-gthread", 8.0), ("netcore ASGI inline", "uvicorn", 1.5),
                ("netcore FastAPI inline", "uvicorn-fastapi", 1.0))


def _http_columns(rate: str, unit: str) -> list[Column]:
    """The http and handshake presets' table: ``rate`` (req/s, conns/s) and CPU per ``unit``
    (req, conn), against uvicorn."""
    return [Column("server", "p:server"), Column("conns", "p:connections"),
            Column(f"{rate} (min-max)", "m:messages_per_s", ",.0f"), Column("p50 µs", "v:p50_us", ",.0f"),
            Column("p99 µs", "v:p99_us", ",.0f"),
            Column(f"srv CPU µs/{unit} (min-max)", "m:server_cpu_us_per_msg", ".1f"),
            Column(f"{rate} vs uvicorn", "r:messages_per_s"),
            Column(f"CPU/{unit} vs uvicorn", "r:server_cpu_us_per_msg"),
            Column("srv CPU%", "v:server_cpu_percent", ".0f"), *COMMON_TAIL]


#: Over ``--tls``: netcore hello's server CPU per request no higher than
#: uvicorn's and within 1.5x nginx's. A target reads "at least MINIMUM x", so each is the
#: peer's CPU per request over netcore's: (netcore row, peer, minimum of peer/netcore).
HTTP_TLS_TARGETS = (("netcore hello", "uvicorn", 1.0), ("netcore hello", "nginx", 1 / 1.5))


def http(opts: dict[str, Any], inst: Installed) -> Plan:
    """wrk keep-alive against netcore's hello and WSGI rows and the HTTP peers."""
    poller = opts.get("poller") if opts.get("poller") not in (None, "all") else None
    peers = _peers(opts, "http")
    cases: list[Case] = []
    targets: list[Target] = []
    for conns in ints(opts.get("connections"), 0) if opts.get("connections") else [64, 256]:
        load = _load(opts, connections=conns)
        keys: dict[str, str] = {}
        for label, (dispatch, threads, app) in HTTP_NETCORE.items():
            params = {"poller": poller, "dispatch": dispatch, "threads": threads, "protocol": "http",
                      "server": label, "connections": conns}
            extra = (["--app", app] if app else []) + list(opts.get("serve_args", []))
            keys[label] = f"{label} {conns}c"
            cases.append(netcore_case(params, load, inst, extra=extra, key=keys[label]))
        for peer in peers:
            keys[peer] = f"{peer} {conns}c"
            case = peer_case(peer, "http", load, key=keys[peer])
            case.params.update(server=peer, connections=conns)
            cases.append(case)
        base = keys.get("uvicorn")
        for case in cases[-len(keys):]:
            case.baseline = base
        if opts.get("tls"):
            targets += [Target(f"{conns}c {peer} CPU/req vs {a} (>= {minimum:.2f}: {a} at most {1 / minimum:g}x "
                               f"{peer}'s)", keys[peer], keys[a], minimum, "server_cpu_us_per_msg")
                        for a, peer, minimum in HTTP_TLS_TARGETS if peer in keys]
        else:
            targets += [Target(f"{conns}c {a} req/s vs {b}", keys[a], keys[b], minimum)
                        for a, b, minimum in HTTP_TARGETS if b in keys]
    return Plan("http", "HTTP hello, wrk -t1 keep-alive: netcore against uvicorn, waitress, gunicorn, nginx", cases,
                _http_columns("req/s", "req"),
                claim=("over TLS, netcore hello's server CPU per request no higher than uvicorn's and within "
                       "1.5x nginx's" if opts.get("tls") else
                       "netcore's built-in hello at least 2.5x uvicorn's requests/s; a WSGI hello app under "
                       "netcore at least 4x waitress's and 8x gunicorn gthread's; a raw ASGI hello at least "
                       "1.5x uvicorn's, a FastAPI JSON endpoint at least uvicorn's"),
                plot=("messages_per_s", "requests per second"), peers_included=True, targets=targets)


#: The handshake preset's peers unless ``--peers`` says otherwise (the comparison the TLS targets name).
HANDSHAKE_PEERS = ("uvicorn", "nginx")


def handshake(opts: dict[str, Any], inst: Installed) -> Plan:
    """wrk with ``Connection: close``: a new connection for every request (over ``--tls``, a handshake)."""
    poller = opts.get("poller") if opts.get("poller") not in (None, "all") else None
    peers = _peers(opts, "http") if opts.get("peers") is not None else list(HANDSHAKE_PEERS)
    cases: list[Case] = []
    for conns in ints(opts.get("connections"), 16):
        load = _load(opts, connections=conns, mode="reconnect")
        mine: list[Case] = []
        for dispatch in split(opts.get("dispatch")) or ["inline"]:
            params = {"poller": poller, "dispatch": dispatch, "protocol": "http", "server": f"netcore {dispatch}",
                      "connections": conns}
            mine.append(netcore_case(params, load, inst, extra=list(opts.get("serve_args", [])),
                                     key=f"netcore hello {dispatch} {conns}c"))
        for peer in peers:
            case = peer_case(peer, "http", load, key=f"{peer} {conns}c")
            case.params.update(server=peer, connections=conns)
            mine.append(case)
        base = f"uvicorn {conns}c" if "uvicorn" in peers else None
        for case in mine:
            case.baseline = base
        cases += mine
    tls = bool(opts.get("tls"))
    return Plan("handshake", "HTTP hello, a new connection per request (wrk -H 'Connection: close')", cases,
                _http_columns("conns/s", "conn"),
                claim="what a connection costs the server: accept, one request, close"
                      + (" -- and a TLS handshake, a resumed one: wrk keeps each connection slot's session"
                         if tls else "; --tls adds a handshake to each"),
                plot=("messages_per_s", "connections per second"), peers_included=True)


RESP_TESTS = ("ping_inline", "ping_mbulk", "set", "get")


def resp(opts: dict[str, Any], inst: Installed) -> Plan:
    """redis-benchmark, one test per run, -P 1 and -P 16, against netcore resp and redis-server."""
    poller = opts.get("poller") if opts.get("poller") not in (None, "all") else None
    dispatches = split(opts.get("dispatch")) or ["inline"]
    tests = [t.lower() for t in split(opts.get("tests"))] or list(RESP_TESTS)
    peers = _peers(opts, "resp")
    cases: list[Case] = []
    targets: list[Target] = []
    for pipeline in ints(opts.get("pipeline"), 0) if opts.get("pipeline") else [1, 16]:
        for test in tests:
            load = _load(opts, connections=ints(opts.get("connections"), 50)[0], size=ints(opts.get("size"), 3)[0],
                         pipeline=pipeline, test=test, requests=opts.get("requests") or 200_000, duration=0.0)
            load = replace(load, duration=0.0)  # bounded by -n, not by time
            mine: list[Case] = []
            for dispatch in dispatches:
                params = {"poller": poller, "dispatch": dispatch, "protocol": "resp", "server": f"netcore {dispatch}",
                          "pipeline": pipeline, "test": test}
                mine.append(netcore_case(params, load, inst, extra=list(opts.get("serve_args", [])),
                                         key=f"netcore {dispatch} -P{pipeline} {test}"))
            for peer in peers:
                case = peer_case(peer, "resp", load, key=f"{peer} -P{pipeline} {test}")
                case.params.update(server=peer, pipeline=pipeline, test=test)
                mine.append(case)
            base = f"redis-server -P{pipeline} {test}" if "redis-server" in peers else None
            for case in mine:
                case.baseline = base
            minimum = 0.95 if pipeline == 1 else 0.7 if pipeline == 16 and test in ("get", "set") else None
            if base and minimum:
                targets += [Target(f"{c.key} req/s vs redis-server", c.key, base, minimum)
                            for c in mine if c.server == "netcore"]
            cases += mine
    cols = [Column("server", "p:server"), Column("test", "p:test"), Column("-P", "p:pipeline"),
            Column("req/s (min-max)", "m:messages_per_s", ",.0f"), Column("p50 µs", "v:p50_us", ",.0f"),
            Column("p99 µs", "v:p99_us", ",.0f"),
            Column("srv CPU µs/req (min-max)", "m:server_cpu_us_per_msg", ".2f"),
            Column("req/s vs redis", "r:messages_per_s"), Column("CPU/req vs redis", "r:server_cpu_us_per_msg"),
            Column("srv CPU%", "v:server_cpu_percent", ".0f"), *COMMON_TAIL]
    return Plan("resp", "RESP, redis-benchmark: netcore --protocol resp against redis-server", cases, cols,
                claim="at -P 1 netcore resp at least 0.95x redis-server's requests/s; at -P 16 GET and SET at "
                      "least 0.7x",
                plot=("messages_per_s", "requests per second"), peers_included=True, targets=targets)


#: The overhead preset's options: label -> the serve arguments that turn it on. Metrics on
#: means a metrics listener and every per-protocol figure counted; the PROXY protocol in
#: ``any`` mode is checked on every new connection (the load sends no header: a keep-alive
#: run measures what it costs after the first read, which is all a long connection pays).
OVERHEAD_OPTIONS: dict[str, list[str]] = {
    "off": [],
    "metrics on": ["--metrics-bind", "127.0.0.1:0"],
    "proxy-protocol any": ["--proxy-protocol", "any"],
}
#: (option, minimum off/on CPU-per-message ratio): metrics within 2%, the PROXY protocol within 1%.
OVERHEAD_TARGETS = (("metrics on", 1 / 1.02), ("proxy-protocol any", 1 / 1.01))


def overhead(opts: dict[str, Any], inst: Installed) -> Plan:
    """What live metrics and the PROXY protocol cost per message: each against the same
    server with both off, in the same run (rounds rotate the rows: use a multiple of 3)."""
    poller = opts.get("poller") if opts.get("poller") not in (None, "all") else None
    dispatch = opts.get("dispatch") or "inline"
    protocols = [p for p in split(opts.get("protocol")) if p in ("echo", "http")] or ["echo", "http"]
    cases: list[Case] = []
    targets: list[Target] = []
    for protocol in protocols:
        load = (_load(opts, connections=ints(opts.get("connections"), 64)[0]) if protocol == "http" else
                _load(opts, connections=ints(opts.get("connections"), 64)[0], size=ints(opts.get("size"), 64)[0]))
        keys = {}
        for option, args in OVERHEAD_OPTIONS.items():
            params = {"poller": poller, "dispatch": dispatch, "protocol": protocol, "option": option}
            keys[option] = f"{protocol} {option}"
            case = netcore_case(params, load, inst, extra=[*args, *opts.get("serve_args", [])], key=keys[option])
            case.baseline = keys["off"]
            cases.append(case)
        # A target reads "at least MINIMUM x": off's CPU per message over the option's.
        targets += [Target(f"{protocol}: CPU/msg off vs {option} (>= {minimum:.3f}: {option} costs at most "
                           f"{(1 / minimum - 1) * 100:.0f}% more)", keys["off"], keys[option], minimum,
                           "server_cpu_us_per_msg")
                    for option, minimum in OVERHEAD_TARGETS]
    cols = [Column("protocol", "p:protocol"), Column("option", "p:option"),
            Column("msgs/s (min-max)", "m:messages_per_s", ",.0f"),
            Column("srv CPU µs/msg (min-max)", "m:server_cpu_us_per_msg", ".2f"),
            Column("CPU/msg vs off", "r:server_cpu_us_per_msg"),
            Column("srv CPU%", "v:server_cpu_percent", ".0f"), *COMMON_TAIL]
    return Plan("overhead", f"The cost of live metrics and of the PROXY protocol ({dispatch}, keep-alive)", cases,
                cols, claim="metrics on costs at most 2% server CPU per message, the PROXY protocol at most 1%",
                peers_included=True, targets=targets)


PRESETS: dict[str, Callable[[dict[str, Any], Installed], Plan]] = {
    "default": default, "idle": idle, "herd": herd, "dispatch": dispatch, "edge": edge, "backlog": backlog,
    "http": http, "resp": resp, "handshake": handshake, "overhead": overhead}
