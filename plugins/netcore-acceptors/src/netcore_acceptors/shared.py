"""``shared``: one listening socket per address, and every worker polls it.

The simplest acceptor and the baseline for the others: :meth:`SharedAcceptor.bind` opens
the sockets once, before any fork, so that every worker process inherits the same
sockets; each worker's :meth:`SharedAcceptor.start` puts them in its own loop. Under
prefork every worker is then woken for every connection and all but one find nothing —
the thundering herd, which this acceptor does nothing about on purpose and which the
``accept_eagain`` counter makes visible. ``mutex``, ``exclusive`` and ``reuseport``
are the cures to compare it with.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from netcore.acceptor import Acceptor, Listener, OnConnection
from netcore.reactor.poller import EVENT_READ

from netcore_acceptors.channel import MAX_BATCH, AcceptChannel
from netcore_acceptors.listeners import close_listeners, open_listeners

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop
    from netcore.stats import WorkerStats


class SharedAcceptor(Acceptor):
    """Every worker watches every listener; the kernel decides who wins each connection."""

    name = "shared"
    #: Whether sockets handed over by systemd are adopted (always, per the design).
    use_systemd = True
    #: Per-wake-up accept limit under a level-triggered poller.
    max_batch = MAX_BATCH
    #: How each channel registers its listener (``exclusive`` adds EVENT_EXCLUSIVE).
    channel_events = EVENT_READ
    #: The channel type (``exclusive`` re-registers after each wake-up).
    channel_class = AcceptChannel

    def __init__(self, config) -> None:
        super().__init__(config)
        self.channels: list[AcceptChannel] = []
        # start() may run on several loop threads at once (one acceptor, N reactors).
        self._lock = threading.Lock()

    def bind(self, addresses: list[str], backlog: int) -> list[Listener]:
        return open_listeners(list(addresses), backlog, use_systemd=self.use_systemd)

    def start(
        self,
        loop: EventLoop,
        listeners: list[Listener],
        on_connection: OnConnection,
        stats: WorkerStats,
    ) -> None:
        channels = []
        try:
            for listener in listeners:
                channels.append(
                    self.channel_class(
                        loop, listener, on_connection, stats, max_batch=self.max_batch, events=self.channel_events
                    )
                )
        except BaseException:
            for channel in channels:
                channel.close()
            raise
        with self._lock:
            self.channels.extend(channels)

    def pause_accepting(self, loop: EventLoop) -> None:
        for channel in self._channels_of(loop):
            channel.hold()

    def resume_accepting(self, loop: EventLoop) -> None:
        for channel in self._channels_of(loop):
            channel.release()

    def _channels_of(self, loop: EventLoop) -> list[AcceptChannel]:
        with self._lock:
            return [c for c in self.channels if c.loop is loop]

    def stop_accepting(self) -> None:
        """Unregister channels; the sockets stay open for workers still accepting.

        Called on a loop's thread (a worker stopping), it stops that loop's channels
        only: threads sharing this acceptor (several reactors in one process) stop one
        by one, each in its own graceful stop. Called from any other thread it stops
        them all, queueing each close to its loop when that loop is running, because a
        channel's poller belongs to its loop's thread.
        """
        with self._lock:
            mine = [c for c in self.channels if c.loop.in_loop_thread()]
            channels = mine or self.channels
            self.channels = [c for c in self.channels if c not in channels]
        for channel in channels:
            loop = channel.loop
            if loop.in_loop_thread() or not loop.is_running():
                channel.close()
            else:
                loop.call_soon_threadsafe(channel.close)

    def close(self, listeners: list[Listener]) -> None:
        """Close the sockets (and our Unix socket files); channels still open are stopped first."""
        while self.channels:
            self.stop_accepting()
        close_listeners(listeners)
