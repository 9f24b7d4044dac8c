"""Blocking ``accept()`` for the schemes that use no poller (iterative, threading, prethread/prefork-blocking).

A thread sleeps in ``accept()`` and the kernel wakes it with a connection. With one
listener that is all; with several, a thread can sleep on one socket only, so each waits
in ``poll()`` for any of them and then accepts without blocking. What goes wrong in
``accept()`` is handled with the same toolkit as the reactor's accept channel
(:mod:`netcore_acceptors.accept_errors`); what differs is how a thread backs off -- it
sleeps, having nothing else to wait for -- and that one spare descriptor serves all of a
server's accepting threads.

:class:`Accepting` knows the scheme only through two small interfaces, so that this
package needs nothing from the dispatchers: the worker it counts for (``index`` and
``count(**deltas)``) and the stop it watches (``stopping``, set once the server stops,
and, optionally, ``final_accepted()``: what a graceful stop's final accept took from the
backlog, for this thread to serve before it returns None).
"""

from __future__ import annotations

import select
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from netcore_acceptors.accept_errors import (
    NO_FDS,
    NO_MEMORY,
    NO_SPARE,
    PAUSE_SECONDS,
    REFUSED,
    RETRY,
    TAKEN,
    RateLimitedLog,
    SpareDescriptor,
    classify,
)

if TYPE_CHECKING:
    from netcore.acceptor import Listener

__all__ = ["Accepting", "SpareDescriptor", "prepare_listeners"]


class CountingWorker(Protocol):
    """The worker :class:`Accepting` counts for (the blocking schemes' ``BlockingWorker``)."""

    index: int

    def count(self, **deltas: int) -> None: ...


class StopFlag(Protocol):
    """The stop :class:`Accepting` watches: ``stopping`` is None while the server serves.

    A stop may also have ``final_accepted()`` (the blocking schemes' ``StopControl``): the
    next connection its final accept took from the backlog, or None. Optional, so that a
    bare flag is enough where there is no backlog to take (it then ends at once).
    """

    stopping: str | None


def prepare_listeners(listeners: list[Listener]) -> None:
    """One listener: blocking, so ``accept()`` sleeps in the kernel. Several: non-blocking.

    A thread can sleep in ``accept()`` on one socket only. With several listeners each
    thread waits in ``poll()`` for any of them, then accepts without blocking: a thread
    whose wake-up was taken by another must not go to sleep on one listener while
    clients queue on the others (this is the herd, counted in ``accept_eagain``).
    """
    for listener in listeners:
        if len(listeners) == 1:
            listener.sock.settimeout(None)
        else:
            listener.sock.setblocking(False)


class Accepting:
    """Blocking ``accept()`` for one thread, over the server's listeners.

    Counts ``accept_wakeups`` (each return of ``accept``, or each readable listener
    ``poll`` reported), ``accept_eagain`` (a wake-up another thread had taken first; with
    one listener Linux wakes a single sleeper, so this stays 0 -- the essay's point
    about the herd) and ``connections_accepted``. Once the server stops, returns what
    the stop's final accept took (``final_accepted``), one per call, then None.

    Out of descriptors, a blocking ``accept()`` fails with EMFILE at once, so a thread
    that simply retried would spin while the clients hang in the backlog: instead it
    takes the server's :class:`SpareDescriptor` (shared by all its accepting threads,
    see there for why its lock exists) and accepts one client into the spare's slot.
    """

    def __init__(
        self,
        listeners: list[Listener],
        worker: CountingWorker,
        control: StopFlag,
        spare: SpareDescriptor,
        *,
        tick: float | None = None,
    ) -> None:
        #: Seconds after which a wait for a connection gives up to look at ``control``
        #: again; None: wait until a connection or the stop's shutdown wakes us. A worker
        #: process sharing its listeners with siblings must not shut them down to stop (that
        #: would stop them all): it sets SO_RCVTIMEO on a lone listener (see
        #: ``prefork_blocking``), and ``tick`` makes the EAGAIN it brings a tick, not a herd.
        self.tick = tick
        self.listeners = listeners
        self.worker = worker
        self.control = control
        self.spare = spare
        self._by_fd = {listener.fileno(): listener for listener in listeners}
        self._poll = None
        if len(listeners) > 1:
            self._poll = select.poll()
            for fd in self._by_fd:
                self._poll.register(fd, select.POLLIN)
        self._log = RateLimitedLog(worker=worker.index)

    def accept(self) -> tuple[socket.socket, Any] | None:
        control = self.control
        while not control.stopping:
            if self._poll is None:
                got = self._accept_from(self.listeners[0])
                if got is not None:
                    return got
                continue
            for fd, _mask in self._poll.poll(None if self.tick is None else int(self.tick * 1000)):
                if control.stopping:
                    break
                got = self._accept_from(self._by_fd[fd])
                if got is not None:
                    return got
        # Stopping: the connections that were queued when the door closed are served too
        # (reset with the listener otherwise, requests and all).
        final = getattr(control, "final_accepted", None)
        got = final() if final is not None else None
        if got is not None:
            self.worker.count(connections_accepted=1)
        return got

    def _accept_from(self, listener: Listener) -> tuple[socket.socket, Any] | None:
        spare = self.spare
        if spare.exhausted:
            with spare.lock:
                return self._accept_once(listener, guarded=True)
        return self._accept_once(listener, guarded=False)

    def _accept_once(self, listener: Listener, *, guarded: bool) -> tuple[socket.socket, Any] | None:
        """One ``accept()``; ``guarded``: called holding the spare's lock."""
        spare = self.spare
        try:
            sock, peer = listener.sock.accept()
        except BlockingIOError:
            if self.control.stopping:
                return None  # the final accept made the listener non-blocking: not a herd
            if self.tick is None or self._poll is not None:
                self.worker.count(accept_wakeups=1, accept_eagain=1)
            return None  # else SO_RCVTIMEO expired: look at the stop flag, wait again
        except OSError as exc:
            if self.control.stopping:
                return None  # the stop shut the listener down: EINVAL is our wake-up
            self.worker.count(accept_wakeups=1)
            kind = classify(exc)
            if kind == NO_FDS:
                if guarded:
                    return self._refuse_one(listener, exc)
                spare.exhausted = True
                with spare.lock:
                    return self._refuse_one(listener, exc)
            if kind == RETRY:
                return None
            if kind == NO_MEMORY:
                self._log.warning("accept.no_memory", listener=listener.address, error=str(exc))
                time.sleep(PAUSE_SECONDS)  # back off rather than spin; nothing else to wait for
                return None
            raise
        self.worker.count(accept_wakeups=1, connections_accepted=1)
        if guarded:  # a descriptor was free: the shortage may be over
            spare.exhausted = not spare.reopen()
        return sock, peer

    def _refuse_one(self, listener: Listener, exc: OSError) -> tuple[socket.socket, Any] | None:
        """Under the spare's lock: take one client into the spare's slot; serve it if we can.

        With one listener the ``accept()`` blocks: it waits for the next client if none
        is queued. Its EAGAIN (several listeners) or the stop's wake-up just ends the try.
        """
        outcome, accepted = self.spare.take(listener.sock.accept)
        if outcome == TAKEN:
            # Descriptors were freed while we waited: serve this client after all.
            self.spare.exhausted = False
            self.worker.count(connections_accepted=1)
            return accepted
        if outcome == REFUSED:
            self.worker.count(errors=1)
            self._log.warning(
                "accept.refused",
                listener=listener.address,
                error=str(exc),
                reason="out of file descriptors: connection closed at once",
            )
        elif outcome == NO_SPARE:
            # No slot at all (another part of the process took it): back off, holding
            # the lock so that the other threads wait rather than spin.
            self._log.warning("accept.no_fds", listener=listener.address, error=str(exc))
            time.sleep(PAUSE_SECONDS)
        return None
