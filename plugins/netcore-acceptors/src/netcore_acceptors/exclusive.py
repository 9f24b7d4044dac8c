"""``exclusive``: ``shared`` plus ``EPOLLEXCLUSIVE`` on each worker's registration of a listener.

Linux 4.5's answer to the herd: of the epoll instances watching a listener with
``EPOLLEXCLUSIVE``, a new connection wakes one that is waiting (or a few), not all. Only
the epoll pollers have it; the plugin's ``netcore_check_assembly`` refuses the others
before anything binds, naming the ``acceptor`` and ``poller`` settings.

**Balance.** The kernel tries the watchers in the order they registered and wakes the
first that is idle in ``epoll_wait``, so under a light load the first-registered worker
would take nearly every connection (measured: 982 of 1000 with 4 workers). On each
wake-up a channel therefore unregisters and registers its listener again (two
``epoll_ctl`` calls per accepted batch, not per connection), which moves that worker to
the back of the kernel's queue: connections go round the idle workers. A registration
that is re-made reports what is already queued, so nothing is left behind, whatever the
trigger mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcore.errors import UsageError
from netcore.reactor.poller import EVENT_EXCLUSIVE, EVENT_READ

from netcore_acceptors.channel import AcceptChannel
from netcore_acceptors.shared import SharedAcceptor

if TYPE_CHECKING:
    from netcore.acceptor import Listener, OnConnection
    from netcore.reactor.loop import EventLoop
    from netcore.stats import WorkerStats


class ExclusiveChannel(AcceptChannel):
    """An accept channel that goes to the back of the kernel's wake-up queue after accepting."""

    def handle_read(self, mask: int) -> None:
        if not (self.closed or self._held or self._paused):
            # Re-register first, then accept: registering again checks readiness at
            # once, and a queue we are about to drain only puts the listener on our own
            # ready list, where epoll_wait's re-check drops it. Re-registered after the
            # accepts, a connection arriving in between would be reported both to us and
            # to the worker the kernel woke for it: a wasted wake-up (measured: 0.07 per
            # connection with 4 workers and 4 clients, against 0.002 this way).
            loop = self.loop
            try:
                loop.unregister(self.fd)
                loop.register(self.fd, self.events, self.handle_read)
            except (OSError, ValueError, KeyError):
                self.closed = True  # the listener was closed under us: nothing left to watch
                return
        AcceptChannel.handle_read(self, mask)


class ExclusiveAcceptor(SharedAcceptor):
    """Every worker watches the shared listeners, registered with EVENT_EXCLUSIVE."""

    name = "exclusive"
    channel_events = EVENT_READ | EVENT_EXCLUSIVE
    channel_class = ExclusiveChannel

    def start(self, loop: EventLoop, listeners: list[Listener], on_connection: OnConnection, stats: WorkerStats) -> None:
        if not getattr(loop.poller, "supports_exclusive", False):
            raise UsageError(exclusive_problem(getattr(loop.poller, "name", type(loop.poller).__name__)))
        super().start(loop, listeners, on_connection, stats)


def exclusive_problem(poller: str) -> str:
    """The one-line refusal, shared by the assembly check and :meth:`ExclusiveAcceptor.start`."""
    return (
        f"setting 'acceptor': 'exclusive' needs EPOLLEXCLUSIVE, which only the epoll pollers have; "
        f"setting 'poller' is {poller!r}: use --poller epoll-lt or --poller epoll-et, "
        f"or another acceptor (mutex, reuseport, shared)"
    )
