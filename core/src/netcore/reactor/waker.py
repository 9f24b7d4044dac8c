"""Wake a loop blocked in its poller from another thread or from a signal handler.

An eventfd is one fd and one 8-byte counter: many wake-ups before the loop runs collapse
into one readable event. Where eventfd does not exist a non-blocking pipe does the same job.
"""

from __future__ import annotations

import os


class Waker:
    """``wake()`` is safe from any thread and from Python signal handlers."""

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read_fd = self._write_fd = fd
            self._wake_bytes = (1).to_bytes(8, "little")
        else:  # pragma: no cover - non-Linux
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)
            self._wake_bytes = b"\0"

    def fileno(self) -> int:
        return self._read_fd

    def wake(self) -> None:
        try:
            os.write(self._write_fd, self._wake_bytes)
        except (BlockingIOError, InterruptedError):
            pass  # the counter (or pipe) is already full: the loop will wake anyway
        except OSError:
            pass  # closed during shutdown: nobody is waiting any more

    def drain(self) -> None:
        try:
            while os.read(self._read_fd, 4096):
                if self._read_fd == self._write_fd:
                    break  # an eventfd read resets the counter in one go
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        fds = {self._read_fd, self._write_fd}
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
