"""The master upgrades itself (USR2, as nginx and gunicorn) and keeps a pid file.

USR2 executes a new master -- the same command line, so the code and the
configuration on disk now -- that inherits the listening sockets, the way systemd
hands them over (``LISTEN_FDS``/``LISTEN_PID``, descriptors from 3 up), which every
acceptor that accepts inherited sockets already understands. Both masters then serve
from the same sockets, so nobody is refused; the operator checks the new one, then
sends TERM to the old one, which drains its workers as on any graceful stop, or sends
TERM to the new one to go back. The old master leaves the sockets' backlog alone when
it stops (``Server.listeners_shared``): it is the new master's now.

``--pid FILE`` holds the pid of the master serving under that name: an upgrade
renames the old master's file to ``FILE.oldbin`` (gunicorn's name) before the new
master writes ``FILE``; if the new master dies before taking over, the old one renames
it back. Each master removes only a file that still holds its own pid.

A master never takes ``FILE`` from a running one (gunicorn: "Already running on
PID ..."): overwritten, the first master's signals would go to the second, and the
second would delete the file at its exit, leaving the first with none. A file whose
process is gone (a crash, a reboot), or now belongs to a program that is not netcore
(the pid was reused), is stale and replaced. A USR2 successor finds no ``FILE``: its
predecessor has renamed it ``FILE.oldbin`` first.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
from typing import Any

import structlog
from netcore.errors import InUse, SettingError
from netcore.privileges import switch_identity

log = structlog.get_logger("netcore.master")

#: Where systemd's protocol puts the first inherited descriptor.
FIRST_FD = 3


class PidFile:
    """``--pid FILE``: written atomically, renamed ``.oldbin`` during an upgrade."""

    def __init__(self, path: str, source: str = "") -> None:
        self.path = os.path.abspath(path) if path else ""
        #: Where the setting came from, for messages (``--pid``, a TOML file ...).
        self.source = source

    @classmethod
    def of(cls, config: Any) -> PidFile:
        path = str(config.get("pid", "") or "")
        return cls(path, config.source("pid") if path else "")

    def _refused(self, allowed: str) -> SettingError:
        return SettingError("pid", self.path, allowed, self.source)

    def _already_running(self, pid: int) -> InUse:
        where = f" (from {self.source})" if self.source else ""
        return InUse(f"setting 'pid'{where}: already running on PID {pid} "
                     f"({self.path} names that live netcore process)")

    def check(self, config: Any) -> None:
        """Before anything is bound (``serve`` and ``--check-config``): the directory exists
        and the master can write there as the identity it writes as (after ``--user``), and
        no running master holds the file (:class:`InUse`)."""
        if not self.path:
            return
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise self._refused(f"a file in an existing directory ({directory} is not one)")
        if not _writable_as_master(directory, config):
            raise self._refused(f"a file in a directory the master can write as its user ({directory} is not)")
        running = self.running_master()
        if running is not None:
            raise self._already_running(running)

    def running_master(self) -> int | None:
        """The pid ``FILE`` names if it is a live netcore process other than this one; None
        if there is no such file, it holds no pid, or it is stale."""
        try:
            with open(self.path) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            return None
        if pid <= 0 or pid == os.getpid():
            return None  # our own pid: a file left by an earlier life of this pid (a container's 1)
        return pid if _netcore_process(pid) else None

    def write(self) -> None:
        """Claim ``FILE`` for this master, atomically and never over a running master's.

        Linked into place, which fails if the file exists, so that of two masters
        starting at once only one gets it; an existing file is replaced only if stale.
        Readers never see an empty or half-written file.
        """
        if not self.path:
            return
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            try:
                try:
                    os.link(temporary, self.path)
                    return
                except OSError:
                    pass  # it exists (or this file system has no hard links): look first
                running = self.running_master()
                if running is not None:
                    raise self._already_running(running)
                os.replace(temporary, self.path)
            finally:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
        except OSError as exc:
            raise self._refused(f"a file in a directory the master can write ({exc.strerror})") from None

    def _ours(self, path: str) -> bool:
        try:
            with open(path) as fh:
                return fh.read().strip() == str(os.getpid())
        except (OSError, ValueError):
            return False

    def to_oldbin(self) -> None:
        if self.path and self._ours(self.path):
            os.replace(self.path, self.path + ".oldbin")

    def back_from_oldbin(self) -> None:
        if not (self.path and self._ours(self.path + ".oldbin")):
            return
        running = self.running_master()
        if running is not None:
            # Another master took FILE while ours was FILE.oldbin: replacing it would
            # leave that one without its file. Ours stays FILE.oldbin.
            log.warning("master.pid_file_taken", pid_file=self.path, running=running,
                        reason=f"this master's pid stays in {self.path}.oldbin")
            return
        os.replace(self.path + ".oldbin", self.path)

    def remove(self) -> None:
        for path in (self.path, self.path + ".oldbin") if self.path else ():
            if self._ours(path):
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _netcore_process(pid: int) -> bool:
    """Whether ``pid`` is alive and, as far as can be told, netcore (its command line, or
    its process title, names netcore): a pid reused by another program makes a file stale."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            command = fh.read()
    except OSError:
        return True  # alive, and nothing says what it is: it may well be the master
    return b"netcore" in command  # empty for a zombie: a dead master


def _writable_as_master(directory: str, config: Any) -> bool:
    """Whether the master can create a file in ``directory`` as the identity it writes as:
    after ``--user``/``--group`` when started as root (the file is written once the
    identity is switched). Asked of the kernel, in a child that switches (groups and ACLs
    count), not guessed from mode bits."""
    if not (config.get("user") or config.get("group")) or os.geteuid() != 0:
        return os.access(directory, os.W_OK | os.X_OK)
    pid = os.fork()
    if pid == 0:
        try:
            switch_identity(config)
            os._exit(0 if os.access(directory, os.W_OK | os.X_OK) else 1)
        except BaseException:  # noqa: BLE001 - the child must never return into the caller
            os._exit(1)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def exec_successor(listeners: list[Any]) -> int:
    """Fork and execute a new master with ``listeners`` as its inherited sockets; its pid.

    The child moves the sockets to descriptors 3.. (through descriptors above them, so
    that no socket is overwritten by another's move), unblocks every signal (a mask
    survives exec) and executes the interpreter with the original command line. Every
    other descriptor of the master is close-on-exec, as Python opens them all.
    """
    fds = [listener.sock.fileno() for listener in listeners]
    env = dict(os.environ)
    env.pop("LISTEN_FDNAMES", None)
    env["LISTEN_FDS"] = str(len(fds))
    argv = list(sys.orig_argv)
    from netcore import cli

    start_dir = cli.ORIGINAL_CWD  # where the command line was given (before --chdir)
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        above = FIRST_FD + len(fds)
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, above) for fd in fds]
        for index, fd in enumerate(moved):
            os.dup2(fd, FIRST_FD + index, inheritable=True)
            os.close(fd)
        env["LISTEN_PID"] = str(os.getpid())
        if start_dir is not None:
            os.chdir(start_dir)
        os.execve(sys.executable, argv, env)
    except BaseException:  # noqa: BLE001 - the child must never return into the master
        os._exit(127)
    raise AssertionError("unreachable")  # pragma: no cover
