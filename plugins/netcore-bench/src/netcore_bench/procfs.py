"""What ``/proc`` says about a server: CPU time, syscalls and memory of a process tree.

A server under test may be one process with threads, a master with forked workers, or a
process that forks a child per connection; the bench charges it for all of them. CPU is
read from ``/proc/PID/stat`` including ``cutime``/``cstime``, so a child that exits and is
reaped during the measured window does not take its CPU time with it.
"""

from __future__ import annotations

import os
import resource

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks) of ``pid``, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and ')': split after the last ')'; rest[0] is field 3.
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (one scan of /proc; a pid is visited once)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                parents[int(name)] = st[0]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo, seen = [], [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or (pid != root and pid not in parents):
            continue
        seen.add(pid)
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads and reaped children)."""
    return sum(st[1] for st in map(_stat, pids) if st is not None) / CLK_TCK


def tree_syscalls(pids: list[int]) -> int | None:
    """``syscr + syscw`` from /proc/PID/io summed over the processes; None if unreadable.

    These count read(2)/write(2)-family calls on files and pipes; on Linux 6.x socket
    recv/send do not go through the counted path (a busy echo server shows 0), so the bench
    reports syscalls per message only when this is non-zero, and otherwise relies on the
    server's own counters (poll calls, reads with data).
    """
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/io") as f:
                fields = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
        except OSError:
            return None
        total += int(fields.get("syscr", 0)) + int(fields.get("syscw", 0))
    return total


def tree_context_switches(pids: list[int]) -> int:
    """Voluntary context switches of every thread of these processes.

    A thread that blocks in ``epoll_wait`` and is woken counts one each time: the
    thundering herd's real cost, even when epoll hides the wake-up from user space.
    """
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
                            break
            except (OSError, ValueError):
                pass
    return total


def tree_rss_kib(pids: list[int]) -> int:
    """Resident memory of these processes in KiB (from /proc/PID/statm)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            pass
    return total


def raise_nofile() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit; the new soft limit.

    Run in the child before exec (servers and the generator), so that 10,000 idle
    connections fit; an unprivileged process may go up to the hard limit and no further.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def nofile_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def child_setup(cpu: int | None):
    """A ``preexec_fn``: pin to ``cpu`` (if any) and raise the fd limit."""
    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        raise_nofile()
    return setup
