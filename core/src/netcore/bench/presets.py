"""Named scenarios that put the essay's claims to the test (``netcore bench NAME``).

Each preset builds its cases from the command-line options it honours (``--poller``,
``--connections``, ``--size``, ``--duration``, ...), names a baseline case for every row
(ratios are against a configuration measured in the same run), and the columns to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from netcore.bench.cases import Case
from netcore.bench.generators import Load
from netcore.bench.matrix import expand, ints, netcore_case, split
from netcore.bench.registry import Installed
from netcore.bench.results import Column


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
            Column(f"vs {base or 'peer'}", "r:server_cpu_us_per_msg"),
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
            Column("srv CPU µs/msg (min-max)", "m:server_cpu_us_per_msg"), Column("vs 0 idle", "r:server_cpu_us_per_msg"),
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
            Column("vs shared", "r:server_cpu_us_per_conn"), *COMMON_TAIL]
    return Plan("herd", "Thundering herd: short connections against prefork workers", cases, cols,
                claim="a listener shared by every worker wakes them all for one connection (wasted wake-ups); "
                      "an accept mutex, EPOLLEXCLUSIVE or SO_REUSEPORT wake one",
                plot=("accept_eagain_per_conn", "wasted wake-ups per accepted connection"))


#: The dispatch preset's rows: (label, serve arguments). Pools have 8 threads, as the
#: dispatch issue asked; multi-reactor runs with 1 and 2 I/O loops.
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
            Column("msgs/s (min-max)", "m:messages_per_s", ",.0f"), Column("vs inline", "r:messages_per_s"),
            Column("p99 µs", "v:p99_us", ",.0f"), Column("CPU µs/msg", "v:server_cpu_us_per_msg"),
            Column("vs inline", "r:server_cpu_us_per_msg"), *COMMON_TAIL]
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
            Column("vs first", "r:server_cpu_us_per_msg"), Column("poll calls/msg", "m:poll_calls_per_msg", ".1f"),
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


PRESETS: dict[str, Callable[[dict[str, Any], Installed], Plan]] = {
    "default": default, "idle": idle, "herd": herd, "dispatch": dispatch, "edge": edge, "backlog": backlog}
