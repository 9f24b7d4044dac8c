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
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
from typing import Any

import structlog

log = structlog.get_logger("netcore.master")

#: Where systemd's protocol puts the first inherited descriptor.
FIRST_FD = 3


class PidFile:
    """``--pid FILE``: written atomically, renamed ``.oldbin`` during an upgrade."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path) if path else ""

    def write(self) -> None:
        if not self.path:
            return
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(temporary, self.path)  # readers never see an empty or half file

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
        if self.path and self._ours(self.path + ".oldbin"):
            os.replace(self.path + ".oldbin", self.path)

    def remove(self) -> None:
        for path in (self.path, self.path + ".oldbin") if self.path else ():
            if self._ours(path):
                try:
                    os.unlink(path)
                except OSError:
                    pass


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
