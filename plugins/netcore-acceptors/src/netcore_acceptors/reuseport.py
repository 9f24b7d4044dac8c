"""``reuseport``: a listening socket per worker slot, and the kernel balances (``SO_REUSEPORT``).

Linux (3.9+) spreads the connections for one address over every listening socket bound
to it with ``SO_REUSEPORT`` (by a hash of the connection's addresses), so each worker
polls a socket no other worker polls: no herd, and no lock. Three decisions:

* **A reservation per address, never listening.** :meth:`ReuseportAcceptor.bind`
  binds one ``SO_REUSEPORT`` socket per address without ``listen()``. It resolves port
  0 once (every slot then binds the real port) and keeps the address ours while slots
  come and go; a socket that is not listening is not in the kernel's group, so it
  takes no connection that nobody would accept.
* **Slot sockets live in the master, across worker generations.**
  :meth:`listeners_for_worker` opens a slot's listening sockets once, in the master,
  and keeps them: a connection queued on a slot whose worker died or is being replaced
  on HUP waits there for the replacement instead of being reset. The child closes the
  other slots' sockets (:meth:`worker_forked`): a child holding a retired slot's socket
  would keep it in the group, with connections queued there and never accepted.
  Slot 0's sockets are opened by ``bind`` itself, so that schemes without a master
  (``inline``, ``multi-reactor``, the blocking ones) serve from them unchanged.
* **Unix sockets and inherited sockets (``fd://N``, systemd) are refused**, naming
  ``bind`` and ``acceptor``: ``SO_REUSEPORT`` does nothing for a Unix path, and an
  inherited listening socket can neither be multiplied nor left unaccepted. Falling
  back to one shared socket would quietly bring the herd back under a name that
  promises its absence; ``mutex`` and ``exclusive`` serve those addresses.

``SO_REUSEPORT`` lets any process of the same user join the group by binding the same
address with the option: do not run two servers on one port by mistake.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

from netcore.acceptor import Listener
from netcore.errors import UsageError

from netcore_acceptors.addresses import Address, format_sockname, parse_address
from netcore_acceptors.listeners import adopt_systemd_listeners, close_listeners
from netcore_acceptors.shared import SharedAcceptor

if TYPE_CHECKING:
    from netcore.reactor.loop import EventLoop


def _refuse(what: str, why: str) -> UsageError:
    return UsageError(
        f"setting 'acceptor': 'reuseport' cannot serve {what} (setting 'bind'): {why}; "
        "use --acceptor mutex or --acceptor exclusive for it"
    )


def _reuseport_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _reserve(address: Address) -> socket.socket:
    """Bind (without listening) the first address ``address`` resolves to, as ``shared`` does."""
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, address.family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
        family, _type, _proto, _canon, sockaddr = infos[0]
        sock = _reuseport_socket(family)
    except OSError as exc:
        raise UsageError(f"cannot listen on {address.text}: {exc}") from None
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {address.text}: {exc}") from None
    return sock


class ReuseportAcceptor(SharedAcceptor):
    """One ``SO_REUSEPORT`` listening socket per address per worker slot."""

    name = "reuseport"
    use_systemd = False

    def __init__(self, config) -> None:
        super().__init__(config)
        #: Bound, not listening: one per address, in ``--bind`` order.
        self.reservations: list[socket.socket] = []
        #: slot -> that slot's listening sockets, one per reservation.
        self.slots: dict[int, list[Listener]] = {}
        #: In a forked worker: the slot it serves (its sockets leave with its stop).
        self.worker_slot: int | None = None
        self._backlog = 0

    # -- master -----------------------------------------------------------------------------
    def bind(self, addresses: list[str], backlog: int) -> list[Listener]:
        parsed = [parse_address(text) for text in addresses]  # every typo before any bind
        for address in parsed:
            if address.kind == "unix":
                raise _refuse(address.text, "SO_REUSEPORT does not spread connections over Unix sockets")
            if address.kind == "fd":
                raise _refuse(address.text, "an inherited socket cannot be given one socket per worker")
        inherited = adopt_systemd_listeners()
        if inherited:
            what = ", ".join(f"{listener.address} (systemd)" for listener in inherited)
            close_listeners(inherited)
            raise _refuse(what, "an inherited socket cannot be given one socket per worker")
        self._backlog = backlog
        try:
            for address in parsed:
                self.reservations.append(_reserve(address))
            return self.listeners_for_worker([], 0)
        except BaseException:
            self._close_all()
            raise

    def listeners_for_worker(self, listeners: list[Listener], slot: int) -> list[Listener]:
        """The slot's own listening sockets, opened on first use and kept for its next workers."""
        own = self.slots.get(slot)
        if own is None:
            own = []
            try:
                for reservation in self.reservations:
                    own.append(self._open_slot_socket(reservation))
            except BaseException:
                close_listeners(own)
                raise
            self.slots[slot] = own
        return own

    def _open_slot_socket(self, reservation: socket.socket) -> Listener:
        sockaddr = reservation.getsockname()
        sock = _reuseport_socket(reservation.family)
        try:
            sock.bind(sockaddr)
            sock.listen(self._backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen on {format_sockname(reservation)} with SO_REUSEPORT: {exc}") from None
        return Listener(sock=sock, address=format_sockname(sock), kind="tcp")

    def retire_slot(self, slot: int) -> None:
        """Close the master's copy of the slot's sockets (one worker less, for good).

        A slot's socket leaves the kernel's group when its last copy closes, and the
        connections queued on it then are reset — unless ``net.ipv4.tcp_migrate_req``
        is 1 (Linux 5.14+), when the kernel moves them to the group's other sockets.
        To keep that set small, call this when the slot's last worker is told to stop:
        that worker closes its own copy as soon as it stops accepting
        (:meth:`stop_accepting`), so the socket leaves the group within a signal's
        delivery instead of collecting connections through the graceful timeout; and a
        worker accepting to the end leaves only what arrived in that short interval.
        """
        close_listeners(self.slots.pop(slot, []))

    # -- worker -----------------------------------------------------------------------------
    def worker_forked(self, listeners: list[Listener], slot: int) -> None:
        """Keep only this slot's sockets: the others would stay in the group through us."""
        keep = {id(listener.sock) for listener in listeners}
        for own in self.slots.values():
            close_listeners([listener for listener in own if id(listener.sock) not in keep])
        for reservation in self.reservations:
            reservation.close()
        self.reservations = []
        self.slots = {slot: list(listeners)}
        self.worker_slot = slot
        self.channels = []
        self._lock = threading.Lock()

    def stop_accepting(self) -> None:
        """Stop accepting; in a forked worker also close this worker's copy of its slot's sockets.

        The master keeps a copy of a live slot (HUP: the replacement accepts what is
        queued), so closing ours loses nothing; for a retired slot ours is the last
        copy, and closing it now takes the socket out of the kernel's group at once.
        """
        with self._lock:
            before = list(self.channels)
        super().stop_accepting()
        if self.worker_slot is None:
            return
        with self._lock:
            busy = bool(self.channels)  # other loops of this process still accept from them
        # Only once every channel is unregistered: epoll keeps reporting an fd closed
        # while the socket lives on in the master, to a loop that no longer knows it.
        if not busy and all(channel.closed for channel in before):
            for listener in self.slots.get(self.worker_slot, []):
                try:
                    listener.sock.close()
                except OSError:
                    pass

    def close(self, listeners: list[Listener]) -> None:
        super().close(listeners)
        self._close_all()

    def _close_all(self) -> None:
        for slot in list(self.slots):
            close_listeners(self.slots.pop(slot))
        for reservation in self.reservations:
            reservation.close()
        self.reservations = []

    def start(self, loop: EventLoop, listeners: list[Listener], on_connection, stats) -> None:
        for listener in listeners:
            if listener.sock.fileno() == -1:
                raise RuntimeError(
                    f"reuseport: the socket for {listener.address} is closed; a worker must be "
                    "started with the listeners listeners_for_worker() returned for its slot"
                )
        super().start(loop, listeners, on_connection, stats)
