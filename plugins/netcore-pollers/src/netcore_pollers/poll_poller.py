"""The ``poll`` poller: ``poll(2)``, whose answer the loop can use without a copy.

``poll`` has no ``FD_SETSIZE`` ceiling, but the kernel still walks every registered fd on
every call, so its cost grows with the number of connections, idle or not; ``epoll``
is the answer to that. What it saves over ``select`` is the Python side: the kernel's
``(fd, revents)`` list is already what :meth:`Poller.poll` promises, because
:data:`EVENT_READ` and friends *are* ``POLLIN`` and friends (the base class checks that
when this class is defined).

Everything but the class attributes is :class:`~netcore_pollers.poll_like.PollLikePoller`'s,
including :meth:`~netcore_pollers.poll_like.PollLikePoller.poll`, which converts the
timeout to poll(2)'s milliseconds.
"""

from __future__ import annotations

import select

from netcore_pollers.poll_like import PollLikePoller


class PollPoller(PollLikePoller):
    """One ``select.poll`` object; the base class keeps the set of fds it will not tell us."""

    name = "poll"
    edge_triggered = False
    max_fd = None
    supports_exclusive = False  # EPOLLEXCLUSIVE is epoll's alone
    #: POLLRDHUP (Linux) reports a peer's FIN without read interest (a paused connection asks for it).
    reports_rdhup = hasattr(select, "POLLRDHUP")
    _kernel_factory = select.poll
    _EVENT_READ = select.POLLIN
    _EVENT_WRITE = select.POLLOUT
    _EVENT_ERROR = select.POLLERR | select.POLLHUP
