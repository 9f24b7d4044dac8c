"""Forked workers around one acceptor, as a master runs them, and a stream of short connections.

The tests' harness and a measuring script at once (``python herd_harness.py`` prints the
table of the report). It does what a master does with an acceptor: ``bind`` once, then
for each slot ``listeners_for_worker`` (parent), ``os.fork``, ``worker_forked`` and
``start`` (child) — with a real :class:`EventLoop` on a real poller. Each child answers
every connection with one byte and closes it (the shortest possible connection), and on
a word from the parent stops accepting and reports its :class:`WorkerStats` through a
pipe. Counts, not timings, are the results: wasted wake-ups (``accept_eagain``) per
accepted connection, and the balance (the busiest worker's share over the mean share).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable

from netcore.reactor.loop import EventLoop
from netcore.reactor.poller import EVENT_READ
from netcore.stats import WorkerStats

#: How long anything here waits for something that must happen.
PATIENCE = 30.0
REPLY = b"k"


def make_poller(name: str):
    from netcore_pollers.epoll_poller import EpollPoller
    from netcore_pollers.poll_poller import PollPoller
    from netcore_pollers.select_poller import SelectPoller

    return {
        "select": SelectPoller,
        "poll": PollPoller,
        "epoll-lt": EpollPoller,
        "epoll-et": lambda: EpollPoller(edge_triggered=True),
    }[name]()


def make_acceptor(name: str):
    from netcore_acceptors.exclusive import ExclusiveAcceptor
    from netcore_acceptors.mutex import MutexAcceptor
    from netcore_acceptors.reuseport import ReuseportAcceptor
    from netcore_acceptors.shared import SharedAcceptor

    cls = {"shared": SharedAcceptor, "mutex": MutexAcceptor, "exclusive": ExclusiveAcceptor, "reuseport": ReuseportAcceptor}
    return cls[name](config=None)


class Worker:
    """The parent's handle on one forked worker."""

    def __init__(self, pid: int, slot: int, report_fd: int, control_fd: int) -> None:
        self.pid = pid
        self.slot = slot
        self.report_fd = report_fd
        self.control_fd = control_fd
        self.stats: WorkerStats | None = None
        #: Voluntary context switches while serving (see _child).
        self.wakeups = 0
        self.reaped = False


def answer_and_close(_loop: EventLoop, stats: WorkerStats) -> Callable[[socket.socket, Any], None]:
    """The default worker: one byte for every connection, then close it."""

    def on_connection(sock: socket.socket, _peer: Any) -> None:
        stats.connections_accepted += 1
        try:
            sock.send(REPLY)
        except OSError:
            stats.errors += 1
        sock.close()
        stats.connections_closed += 1

    return on_connection


def _child(acceptor, listeners, slot: int, poller: str, report_fd: int, control_fd: int, serve) -> None:
    """The worker: runs in the child and never returns (``os._exit``)."""
    code = 1
    try:
        acceptor.worker_forked(listeners, slot)
        loop = EventLoop(make_poller(poller), name=f"worker-{slot}")
        stats = WorkerStats(worker=slot, pid=os.getpid())
        on_connection = serve(loop, stats)

        def on_control(_mask: int) -> None:
            os.read(control_fd, 64)
            loop.unregister(control_fd)
            acceptor.stop_accepting()
            loop.stop()

        loop.register(control_fd, EVENT_READ, on_control)
        acceptor.start(loop, listeners, on_connection, stats)
        os.write(report_fd, b"R")
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        loop.run_forever()
        stats.poll_calls = loop.poll_calls
        report = stats.as_dict()
        # Voluntary context switches, all threads: every time this worker slept and was
        # woken. The kernel hides most of a herd from user space (epoll_wait re-checks a
        # woken worker's events and goes back to sleep if another took the connection),
        # so this, not accept_eagain, is the herd's full count.
        report["wakeups"] = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - switches
        os.write(report_fd, json.dumps(report).encode() + b"\n")
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


class Herd:
    """``with Herd("mutex", workers=4) as herd: herd.stream(400); stats = herd.stop()``.

    ``serve(loop, stats)`` makes each child's ``on_connection`` (default: answer one
    byte and close); it must count ``stats.connections_accepted``.
    """

    def __init__(
        self,
        acceptor: str,
        workers: int,
        poller: str = "epoll-lt",
        backlog: int = 1024,
        serve: Callable[[EventLoop, WorkerStats], Callable[[socket.socket, Any], None]] = answer_and_close,
    ) -> None:
        self.serve = serve
        self.acceptor_name = acceptor
        self.poller = poller
        self.acceptor = make_acceptor(acceptor)
        self.listeners = self.acceptor.bind(["127.0.0.1:0"], backlog)
        self.address = self.listeners[0].sock.getsockname()[:2]
        self.workers: list[Worker] = []
        self.retired: list[Worker] = []
        self._slots = workers

    def __enter__(self) -> Herd:
        try:
            for slot in range(self._slots):
                self.fork(slot)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- workers ------------------------------------------------------------------------
    def fork(self, slot: int) -> Worker:
        """Start the worker of ``slot`` (a new one, or the replacement of a dead one)."""
        listeners = self.acceptor.listeners_for_worker(self.listeners, slot)
        report_r, report_w = os.pipe()
        control_r, control_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(report_r)
            os.close(control_w)
            for other in self.workers:  # another worker's pipes are not this child's business
                os.close(other.report_fd)
                os.close(other.control_fd)
            _child(self.acceptor, listeners, slot, self.poller, report_w, control_r, self.serve)
        os.close(report_w)
        os.close(control_r)
        worker = Worker(pid, slot, report_r, control_w)
        self.workers.append(worker)
        if os.read(report_r, 1) != b"R":
            raise AssertionError(f"worker {slot} (pid {pid}) failed to start")
        return worker

    def kill(self, worker: Worker, sig: int = signal.SIGKILL) -> None:
        """Kill ``worker`` and reap it; it reports nothing."""
        os.kill(worker.pid, sig)
        self._reap(worker)
        self.workers.remove(worker)
        self.retired.append(worker)
        os.close(worker.report_fd)
        os.close(worker.control_fd)

    def stop_worker(self, worker: Worker) -> WorkerStats:
        """Stop one worker gracefully (it stops accepting and reports), reap it."""
        os.write(worker.control_fd, b"S")
        worker.stats = self._read_report(worker)
        self._reap(worker)
        self.workers.remove(worker)
        self.retired.append(worker)
        os.close(worker.report_fd)
        os.close(worker.control_fd)
        return worker.stats

    def stop(self) -> list[WorkerStats]:
        """Stop every worker; their stats in slot order."""
        for worker in list(self.workers):
            os.write(worker.control_fd, b"S")
        return [self.stop_worker_reported(worker) for worker in list(self.workers)]

    def stop_worker_reported(self, worker: Worker) -> WorkerStats:
        worker.stats = self._read_report(worker)
        self._reap(worker)
        self.workers.remove(worker)
        self.retired.append(worker)
        os.close(worker.report_fd)
        os.close(worker.control_fd)
        return worker.stats

    def _read_report(self, worker: Worker) -> WorkerStats:
        data = b""
        deadline = time.monotonic() + PATIENCE
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([worker.report_fd], [], [], remaining)[0]:
                raise AssertionError(f"worker {worker.slot} (pid {worker.pid}) did not report")
            chunk = os.read(worker.report_fd, 65536)
            if not chunk:
                raise AssertionError(f"worker {worker.slot} (pid {worker.pid}) died without a report")
            data += chunk
        report = json.loads(data)
        worker.wakeups = report.get("wakeups", 0)
        return WorkerStats.from_dict(report)

    def _reap(self, worker: Worker) -> None:
        deadline = time.monotonic() + PATIENCE
        while True:
            pid, _status = os.waitpid(worker.pid, os.WNOHANG)
            if pid:
                worker.reaped = True
                return
            if time.monotonic() > deadline:
                os.kill(worker.pid, signal.SIGKILL)
                os.waitpid(worker.pid, 0)
                worker.reaped = True
                raise AssertionError(f"worker {worker.slot} (pid {worker.pid}) did not exit")
            time.sleep(0.01)

    def close(self) -> None:
        """Kill whatever still runs, reap it, close everything (safe after a failure)."""
        for worker in list(self.workers):
            try:
                self.kill(worker)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.acceptor.close(self.listeners)

    # -- clients ------------------------------------------------------------------------
    def connect_and_wait(self) -> None:
        """One short connection: connect, get the worker's byte, close."""
        with socket.create_connection(self.address, timeout=PATIENCE) as sock:
            if sock.recv(1) != REPLY:
                raise AssertionError("the worker closed without answering")

    def stream(self, connections: int, clients: int = 1) -> None:
        """``connections`` short connections, from ``clients`` threads one after another each."""
        if clients == 1:
            for _ in range(connections):
                self.connect_and_wait()
            return
        errors: list[BaseException] = []
        share = [connections // clients + (1 if i < connections % clients else 0) for i in range(clients)]

        def run(n: int) -> None:
            try:
                for _ in range(n):
                    self.connect_and_wait()
            except BaseException as exc:  # reported by the caller
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in share]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE * 4)
        if errors:
            raise errors[0]
        assert not any(thread.is_alive() for thread in threads), "client threads did not finish"


def summary(stats: list[WorkerStats], wakeups: int = 0) -> dict[str, Any]:
    accepted = [s.connections_accepted for s in stats]
    total = sum(accepted)
    mean = total / len(accepted) if accepted else 0
    return {
        "accepted": accepted,
        "total": total,
        "wakeups": sum(s.accept_wakeups for s in stats),
        "eagain": sum(s.accept_eagain for s in stats),
        "eagain_per_conn": sum(s.accept_eagain for s in stats) / total if total else 0.0,
        "balance": max(accepted) / mean if mean else 0.0,
        "switches_per_conn": wakeups / total if total else 0.0,
    }


def measure(acceptor: str, workers: int, connections: int, clients: int, poller: str) -> dict[str, Any]:
    with Herd(acceptor, workers, poller=poller) as herd:
        herd.stream(connections, clients)
        stats = herd.stop()
        return summary(stats, sum(w.wakeups for w in herd.retired))


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acceptors", default="shared,mutex,exclusive,reuseport")
    parser.add_argument("--workers", default="2,4,8")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--poller", default="epoll-lt")
    args = parser.parse_args(argv)
    print("| acceptor | workers | connections | clients | wasted wake-ups / conn | context switches / conn | max/mean | per worker |")
    print("|---|---|---|---|---|---|---|---|")
    for workers in [int(w) for w in args.workers.split(",")]:
        for acceptor in args.acceptors.split(","):
            r = measure(acceptor, workers, args.connections, args.clients, args.poller)
            print(
                f"| {acceptor} | {workers} | {r['total']} | {args.clients} | {r['eagain_per_conn']:.3f} "
                f"| {r['switches_per_conn']:.2f} "
                f"| {r['balance']:.2f} | {' '.join(map(str, r['accepted']))} |",
                flush=True,
            )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
