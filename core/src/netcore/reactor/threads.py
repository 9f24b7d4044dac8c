"""Threads started by dispatchers and executors.

Stop signals are blocked in every such thread, so the kernel always delivers them to
the main thread, the one that handles them: a signal delivered to a worker thread would
leave a main thread that sleeps in ``accept()`` or ``epoll_wait`` unaware of it.
(Reactor loops also set a signal wake-up fd, which covers them either way.)
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

#: The signals a netcore server acts on; only the main thread should receive them.
HANDLED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                             signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2})


def start_thread(target: Callable[..., Any], *args: Any, name: str, daemon: bool = True) -> threading.Thread:
    """Start ``target(*args)`` in a new thread that never receives the handled signals.

    The mask is set around the start, not inside the new thread: a thread inherits its
    creator's mask at creation, so there is no moment when it could take a signal. A
    signal arriving meanwhile stays pending and reaches the main thread at the unblock.
    """
    thread = threading.Thread(target=target, args=args, name=name, daemon=daemon)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
