"""INFO: Redis's sections, in Redis's order, with the figures netcore has.

Sections: server, clients, memory, persistence, stats, replication, cpu, modules,
errorstats, cluster, keyspace (the default set), plus commandstats for ``all`` and
``everything`` or by name (counted from the first INFO on: netcore_resp.stats).
Figures netcore does not have are Redis's values for a server without them (no
persistence: ``rdb_changes_since_last_save:0``; no replicas). Everything is computed
when asked: nothing here runs per command.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any

#: What claims to be running, for clients that look (INFO's redis_version, HELLO).
REDIS_VERSION = b"7.0.0"

DEFAULT = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "errorstats",
           "cluster", "keyspace")
ALL = (*DEFAULT[:-1], "commandstats", "keyspace")


def _rss() -> int:
    """Resident memory in bytes (Linux ``/proc/self/statm``), 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _human(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def report(info: Any, names: list[bytes]) -> bytes:
    """The text of ``INFO [section ...]`` (``info``: commands.ServerInfo).

    The first INFO starts the per-command counting of commandstats (netcore_resp.stats).
    """
    info.stats.start()
    wanted: list[str] = []
    for name in [n.decode("latin-1").lower() for n in names] or ["default"]:
        chosen = DEFAULT if name == "default" else ALL if name in ("all", "everything") else (name,)
        wanted.extend(section for section in chosen if section not in wanted)
    parts = []
    for section in sorted(wanted, key=lambda s: ALL.index(s) if s in ALL else len(ALL)):
        lines = SECTIONS[section](info) if section in SECTIONS else None
        if lines is not None:
            parts.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(parts).encode()


def _server(info: Any) -> list[str]:
    uptime = int(time.monotonic() - info.started)
    return ["# Server", f"redis_version:{REDIS_VERSION.decode()}", "redis_mode:standalone",
            f"os:{platform.system()} {platform.release()} {platform.machine()}", "arch_bits:64",
            f"multiplexing_api:{info.poller or 'none'}", f"netcore_dispatch:{info.dispatch}",
            f"process_id:{os.getpid()}", f"tcp_port:{info.port_of()}", f"uptime_in_seconds:{uptime}",
            f"uptime_in_days:{uptime // 86400}", f"hz:{info.hz}", "executable:", "config_file:"]


def _clients(info: Any) -> list[str]:
    clients = info.clients.all()
    blocked = sum(1 for c in clients if c.blocked is not None)
    return ["# Clients", f"connected_clients:{len(clients)}", "cluster_connections:0",
            f"maxclients:{int(info.config.values.get(b'maxclients', b'10000'))}", "client_recent_max_input_buffer:0",
            "client_recent_max_output_buffer:0", f"blocked_clients:{blocked}", "tracking_clients:0",
            "clients_in_timeout_table:0"]


def _memory(info: Any) -> list[str]:
    rss = _rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return ["# Memory", f"used_memory:{rss}", f"used_memory_human:{_human(rss)}", f"used_memory_rss:{rss}",
            f"used_memory_rss_human:{_human(rss)}", f"used_memory_peak:{peak}",
            f"used_memory_peak_human:{_human(peak)}", "maxmemory:0", "maxmemory_human:0B",
            "maxmemory_policy:noeviction", "mem_fragmentation_ratio:1.00", "mem_allocator:pymalloc"]


def _persistence(info: Any) -> list[str]:
    return ["# Persistence", "loading:0", "async_loading:0", "rdb_changes_since_last_save:0",
            "rdb_bgsave_in_progress:0", f"rdb_last_save_time:{int(time.time() - (time.monotonic() - info.started))}",
            "rdb_last_bgsave_status:ok", "aof_enabled:0", "aof_rewrite_in_progress:0",
            "aof_last_bgrewrite_status:ok"]


def _stats(info: Any) -> list[str]:
    hub = getattr(info, "hub", None)
    return ["# Stats", f"total_connections_received:{info.clients.total_connections}",
            f"total_commands_processed:{info.clients.commands_processed()}", "instantaneous_ops_per_sec:0",
            "rejected_connections:0", f"expired_keys:{sum(ks.expired_keys for ks in info.keyspaces)}",
            "evicted_keys:0", f"pubsub_channels:{len(hub.channels) if hub else 0}",
            f"pubsub_patterns:{len(hub.patterns) if hub else 0}", "total_error_replies:0"]


def _replication(info: Any) -> list[str]:
    return ["# Replication", "role:master", "connected_slaves:0", "master_failover_state:no-failover",
            "master_replid:" + "0" * 40, "master_repl_offset:0", "repl_backlog_active:0"]


def _cpu(info: Any) -> list[str]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ["# CPU", f"used_cpu_sys:{me.ru_stime:.6f}", f"used_cpu_user:{me.ru_utime:.6f}",
            f"used_cpu_sys_children:{children.ru_stime:.6f}", f"used_cpu_user_children:{children.ru_utime:.6f}"]


def _commandstats(info: Any) -> list[str]:
    return ["# Commandstats", *info.stats.lines()]


def _keyspace(info: Any) -> list[str]:
    lines = ["# Keyspace"]
    for db, ks in enumerate(info.keyspaces):
        if ks.data:
            lines.append(f"db{db}:keys={len(ks.data)},expires={len(ks.expires)},avg_ttl={ks.average_ttl()}")
    return lines


SECTIONS = {"server": _server, "clients": _clients, "memory": _memory, "persistence": _persistence,
            "stats": _stats, "replication": _replication, "cpu": _cpu, "modules": lambda info: ["# Modules"],
            "errorstats": lambda info: ["# Errorstats"], "cluster": lambda info: ["# Cluster", "cluster_enabled:0"],
            "commandstats": _commandstats, "keyspace": _keyspace}
