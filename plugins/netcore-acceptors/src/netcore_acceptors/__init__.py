"""netcore-acceptors: listening sockets and the accept path for netcore.

* :mod:`netcore_acceptors.addresses` — the ``--bind`` forms, parsed.
* :mod:`netcore_acceptors.listeners` — opening, adopting (``fd://N``, systemd) and closing.
* :mod:`netcore_acceptors.accept_errors` — the accept toolkit: accept(2)'s errors, the
  spare descriptor, rate-limited warnings.
* :mod:`netcore_acceptors.channel` — accepting on a loop: batches, the herd counters, EMFILE.
* :mod:`netcore_acceptors.blocking_accept` — accepting in a blocking thread, for the
  dispatchers that use no poller.
* :mod:`netcore_acceptors.shared` — the ``shared`` acceptor built from those parts.

Other acceptors (``mutex``, ``exclusive``, ``reuseport``) differ from ``shared`` only in
how they bind and when a worker watches the listener; they reuse the parts above.
"""

__version__ = "0.1.0"
