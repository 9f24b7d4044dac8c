"""The behaviour every :class:`~netcore.reactor.poller.Poller` must have, written once.

As in CPython's ``Lib/test/test_selectors.py``, the tests live in one base class and each
implementation's test module subclasses it, overriding :meth:`PollerContract.make_poller`::

    from netcore.testing.poller_contract import PollerContract

    class TestMyPoller(PollerContract):
        def make_poller(self):
            return MyPoller()

The base class is not named ``Test*``, so pytest collects it only through subclasses.
Everything runs over real sockets (``socketpair()`` and TCP on 127.0.0.1), because a
poller's whole job is to agree with the kernel. Timing assertions are loose: they check
that a timeout is honoured, not how fast a machine is. Needs pytest (for ``skip``).
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from netcore.reactor.poller import (
    EVENT_ERROR,
    EVENT_EXCLUSIVE,
    EVENT_RDHUP,
    EVENT_READ,
    EVENT_WRITE,
    Poller,
    PollerFlagError,
    PollerLimitError,
)

#: How long to wait for an event that must come; only a broken poller waits this long.
PATIENCE = 5.0


class PollerContract:
    """Subclass as ``Test<Name>`` and override :meth:`make_poller`."""

    def make_poller(self) -> Poller:
        raise NotImplementedError("override make_poller() to return a new poller")

    # -- fixtures -------------------------------------------------------------------------
    def setup_method(self, method) -> None:
        self._cleanups: list = []
        self.poller = self.new_poller()

    def teardown_method(self, method) -> None:
        # Last in, first out: unregister-before-close order is the caller's rule too.
        while self._cleanups:
            self._cleanups.pop()()

    def new_poller(self) -> Poller:
        poller = self.make_poller()
        self._cleanups.append(poller.close)
        return poller

    def socketpair(self) -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        for s in (a, b):
            s.setblocking(False)
            self._cleanups.append(s.close)
        return a, b

    def tcp_listener(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._cleanups.append(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        return listener

    def tcp_pair(self) -> tuple[socket.socket, socket.socket]:
        """A connected ``(server side, client side)`` TCP pair over loopback."""
        listener = self.tcp_listener()
        client = socket.create_connection(listener.getsockname(), timeout=PATIENCE)
        self._cleanups.append(client.close)
        listener.settimeout(PATIENCE)
        server, _ = listener.accept()
        self._cleanups.append(server.close)
        for s in (client, server):
            s.setblocking(False)
        return server, client

    # -- helpers ----------------------------------------------------------------------
    def poll_dict(self, timeout: float | None = 0) -> dict[int, int]:
        """One poll, as ``{fd: mask}``; fails if an fd is reported twice in one answer."""
        events = self.poller.poll(timeout)
        assert isinstance(events, list), f"poll() must return a list, not {type(events).__name__}"
        result: dict[int, int] = {}
        for fd, mask in events:
            assert fd not in result, f"fd {fd} reported twice in one poll(): {events}"
            result[fd] = mask
        return result

    def wait_for(self, fd: int, poller: Poller | None = None) -> int:
        """Poll until ``fd`` is reported (at most :data:`PATIENCE` seconds); return its mask."""
        return self.wait_for_all([fd], poller)[fd]

    def wait_for_all(self, fds, poller: Poller | None = None) -> dict[int, int]:
        """Poll until every fd in ``fds`` has been reported; return ``{fd: first mask}``.

        Collects across calls: an edge-triggered poller reports each fd once, so an event
        seen while waiting for another fd must not be thrown away.
        """
        poller = poller or self.poller
        wanted = set(fds)
        seen: dict[int, int] = {}
        deadline = time.monotonic() + PATIENCE
        while not wanted <= seen.keys():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"fds {sorted(wanted - seen.keys())} were never reported by {poller!r}"
            for fd, mask in poller.poll(remaining):
                seen.setdefault(fd, mask)
        return seen

    def high_fd(self, number: int, source: socket.socket) -> int:
        """Duplicate ``source`` onto fd ``number`` (raising RLIMIT_NOFILE if needed) or skip."""
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX
            pytest.skip("needs the resource module to reach a high fd number")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft <= number:
            if hard != resource.RLIM_INFINITY and hard <= number:
                pytest.skip(f"RLIMIT_NOFILE hard limit {hard} does not allow fd {number}")
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (number + 1, hard))
            except (OSError, ValueError) as exc:
                pytest.skip(f"cannot raise RLIMIT_NOFILE to reach fd {number}: {exc}")
            self._cleanups.append(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
        try:
            os.fstat(number)
        except OSError:
            pass
        else:
            pytest.skip(f"fd {number} is already in use in this process")
        os.dup2(source.fileno(), number, inheritable=False)
        self._cleanups.append(lambda: os.close(number))
        return number

    # -- the poller object ------------------------------------------------------------
    def test_is_a_poller_with_its_attributes(self):
        poller = self.poller
        assert isinstance(poller, Poller)
        assert isinstance(poller.name, str) and poller.name and poller.name != "abstract"
        assert isinstance(poller.edge_triggered, bool)
        assert poller.max_fd is None or (isinstance(poller.max_fd, int) and poller.max_fd > 0)
        assert isinstance(poller.fileno(), int)
        assert poller.name in repr(poller)

    def test_kernel_object_is_close_on_exec(self):
        fd = self.poller.fileno()
        if fd != -1:
            assert not os.get_inheritable(fd), "a child process must not inherit the poller's fd"

    def test_close_twice_is_harmless(self):
        poller = self.new_poller()
        poller.close()
        poller.close()

    # -- readiness ----------------------------------------------------------------------
    def test_readable_after_peer_writes(self):
        a, b = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        assert a.fileno() not in self.poll_dict(0)
        b.send(b"x")
        mask = self.wait_for(a.fileno())
        assert mask & EVENT_READ
        assert not mask & EVENT_WRITE, "write readiness was not asked for"

    def test_readable_after_peer_writes_over_tcp(self):
        server, client = self.tcp_pair()
        self.poller.register(server.fileno(), EVENT_READ)
        client.send(b"hello")
        assert self.wait_for(server.fileno()) & EVENT_READ
        assert server.recv(100) == b"hello"

    def test_listening_socket_is_readable_when_a_connection_waits(self):
        listener = self.tcp_listener()
        self.poller.register(listener.fileno(), EVENT_READ)
        assert listener.fileno() not in self.poll_dict(0)
        client = socket.create_connection(listener.getsockname(), timeout=PATIENCE)
        self._cleanups.append(client.close)
        assert self.wait_for(listener.fileno()) & EVENT_READ

    def test_fresh_socket_is_writable_at_once(self):
        server, _client = self.tcp_pair()
        a, _b = self.socketpair()
        self.poller.register(server.fileno(), EVENT_WRITE)
        self.poller.register(a.fileno(), EVENT_WRITE)
        ready = self.poll_dict(0)
        assert ready.get(server.fileno(), 0) & EVENT_WRITE
        assert ready.get(a.fileno(), 0) & EVENT_WRITE
        assert not ready[a.fileno()] & EVENT_READ

    def test_read_and_write_readiness_come_in_one_pair(self):
        a, b = self.socketpair()
        b.send(b"x")
        self.poller.register(a.fileno(), EVENT_READ | EVENT_WRITE)
        mask = self.poll_dict(0)[a.fileno()]  # poll_dict fails on a duplicate fd
        assert mask & EVENT_READ and mask & EVENT_WRITE

    def test_results_are_int_pairs(self):
        a, b = self.socketpair()
        b.send(b"x")
        self.poller.register(a.fileno(), EVENT_READ)
        events = self.poller.poll(0)
        assert isinstance(events, list) and len(events) == 1
        ((fd, mask),) = events
        assert type(fd) is int and type(mask) is int and fd == a.fileno()

    def test_interest_zero_reports_nothing(self):
        a, b = self.socketpair()
        self.poller.register(a.fileno(), 0)
        b.send(b"x")
        assert a.fileno() not in self.poll_dict(0), "an fd registered with 0 must stay silent"
        self.poller.modify(a.fileno(), EVENT_READ)
        assert self.wait_for(a.fileno()) & EVENT_READ
        self.poller.modify(a.fileno(), 0)
        assert a.fileno() not in self.poll_dict(0)

    def test_modify_changes_what_is_reported(self):
        a, b = self.socketpair()
        fd = a.fileno()
        self.poller.register(fd, EVENT_READ)
        b.send(b"x")
        assert self.wait_for(fd) == EVENT_READ
        self.poller.modify(fd, EVENT_WRITE)
        assert self.poll_dict(0)[fd] == EVENT_WRITE
        self.poller.modify(fd, EVENT_READ | EVENT_WRITE)
        assert self.poll_dict(0)[fd] == EVENT_READ | EVENT_WRITE

    def test_unregister_stops_reports(self):
        a, b = self.socketpair()
        fd = a.fileno()
        self.poller.register(fd, EVENT_READ | EVENT_WRITE)
        b.send(b"x")
        assert fd in self.poll_dict(0)
        self.poller.unregister(fd)
        assert fd not in self.poll_dict(0)
        # The fd number can be registered again once released.
        self.poller.register(fd, EVENT_READ)
        assert self.wait_for(fd) & EVENT_READ

    def test_peer_close_is_readable(self):
        a, b = self.socketpair()
        server, client = self.tcp_pair()
        for sock in (a, server):
            self.poller.register(sock.fileno(), EVENT_READ)
        b.close()
        client.close()
        masks = self.wait_for_all([a.fileno(), server.fileno()])
        for sock in (a, server):
            mask = masks[sock.fileno()]
            assert mask & EVENT_READ, f"peer close must be readable (so recv() returns b''): {mask:#x}"
            assert not mask & ~(EVENT_READ | EVENT_ERROR | EVENT_RDHUP), f"unexpected bits in {mask:#x}"
            assert sock.recv(10) == b""

    def test_edge_triggered_reports_fin_that_came_with_data(self):
        """Data and FIN in one edge: the mask must say RDHUP, or a reader that stops at a
        short read (the cheap way to drain) would never learn of the FIN."""
        if not self.poller.edge_triggered:
            pytest.skip("level-triggered pollers report EOF again after the data is read")
        server, client = self.tcp_pair()
        client.sendall(b"last words")
        client.shutdown(socket.SHUT_WR)
        # Wait until both the data and the FIN are queued before the first poll.
        deadline = time.monotonic() + 5
        while server.recv(64, socket.MSG_PEEK) != b"last words" and time.monotonic() < deadline:
            pass
        self.poller.register(server.fileno(), EVENT_READ)
        masks = self.wait_for_all([server.fileno()])
        assert masks[server.fileno()] & EVENT_RDHUP

    def test_many_fds_are_each_reported(self):
        pairs = [self.socketpair() for _ in range(200)]
        for a, _ in pairs:
            self.poller.register(a.fileno(), EVENT_READ)
        expected = {a.fileno() for i, (a, b) in enumerate(pairs) if i % 3 == 0}
        for i, (_, b) in enumerate(pairs):
            if i % 3 == 0:
                b.send(b"x")
        ready = self.wait_for_all(expected)
        assert set(ready) == expected, "only the fds whose peer wrote may be reported"
        assert all(mask == EVENT_READ for mask in ready.values())

    # -- registration errors --------------------------------------------------------------
    def test_unknown_fd_raises_key_error(self):
        a, _ = self.socketpair()
        with pytest.raises(KeyError):
            self.poller.unregister(a.fileno())
        with pytest.raises(KeyError):
            self.poller.modify(a.fileno(), EVENT_READ)

    def test_unregister_twice_raises_key_error(self):
        a, _ = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        self.poller.unregister(a.fileno())
        with pytest.raises(KeyError):
            self.poller.unregister(a.fileno())

    def test_double_register_raises_file_exists_error(self):
        # The chosen behaviour: FileExistsError, which is what epoll_ctl's EEXIST becomes,
        # and the first registration stands unchanged.
        a, b = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        with pytest.raises(FileExistsError):
            self.poller.register(a.fileno(), EVENT_WRITE)
        assert a.fileno() not in self.poll_dict(0), "the refused registration must not apply"
        b.send(b"x")
        assert self.wait_for(a.fileno()) == EVENT_READ

    def test_fd_at_the_limit_raises_poller_limit_error(self):
        limit = self.poller.max_fd
        if limit is None:
            pytest.skip(f"{self.poller!r} has no fd limit of its own")
        a, _ = self.socketpair()
        fd = self.high_fd(limit, a)
        with pytest.raises(PollerLimitError) as info:
            self.poller.register(fd, EVENT_READ)
        assert str(fd) in str(info.value) and str(limit) in str(info.value)
        assert isinstance(info.value, ValueError)
        with pytest.raises(KeyError):
            self.poller.unregister(fd)  # the refused fd was not half-registered

    def test_fd_just_below_the_limit_works(self):
        limit = self.poller.max_fd
        if limit is None:
            pytest.skip(f"{self.poller!r} has no fd limit of its own")
        a, b = self.socketpair()
        fd = self.high_fd(limit - 1, a)
        self.poller.register(fd, EVENT_READ)
        b.send(b"x")
        assert self.wait_for(fd) & EVENT_READ
        self.poller.unregister(fd)

    # -- timeouts -------------------------------------------------------------------------
    def test_timeout_zero_returns_at_once(self):
        a, _ = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        start = time.monotonic()
        assert self.poller.poll(0) == []
        assert time.monotonic() - start < 1.0

    def test_positive_timeout_waits_that_long(self):
        a, _ = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        timeout = 0.2
        start = time.monotonic()
        assert self.poller.poll(timeout) == []
        elapsed = time.monotonic() - start
        assert timeout * 0.8 <= elapsed < timeout + 1.0, elapsed

    def test_sub_millisecond_timeout_is_not_rounded_down_to_zero(self):
        # A timer due in 0.4 ms: a poller that rounds to 0 ms returns at once, and the loop
        # calls it again and again until the timer is due (a busy spin).
        timeout = 0.0004
        start = time.monotonic()
        assert self.poller.poll(timeout) == []
        assert time.monotonic() - start >= timeout * 0.8

    def test_none_blocks_until_an_event_arrives(self):
        a, b = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        polling = threading.Event()

        def write_once_polling() -> None:
            if polling.wait(PATIENCE):
                b.send(b"x")

        writer = threading.Thread(target=write_once_polling, daemon=True)
        writer.start()
        try:
            polling.set()
            events = self.poller.poll(None)
        finally:
            writer.join(PATIENCE)
        assert [fd for fd, _ in events] == [a.fileno()]
        assert events[0][1] & EVENT_READ

    # -- trigger modes --------------------------------------------------------------------
    def test_level_triggered_reports_again_while_data_is_unread(self):
        if self.poller.edge_triggered:
            pytest.skip("edge-triggered poller")
        a, b = self.socketpair()
        self.poller.register(a.fileno(), EVENT_READ)
        b.send(b"xx")
        assert self.wait_for(a.fileno()) & EVENT_READ
        assert self.poll_dict(0).get(a.fileno(), 0) & EVENT_READ
        a.recv(1)
        assert self.poll_dict(0).get(a.fileno(), 0) & EVENT_READ, "one byte is still unread"
        a.recv(1)
        assert a.fileno() not in self.poll_dict(0)

    def test_edge_triggered_reports_once_per_change(self):
        if not self.poller.edge_triggered:
            pytest.skip("level-triggered poller")
        a, b = self.socketpair()
        fd = a.fileno()
        self.poller.register(fd, EVENT_READ)
        b.send(b"x")
        assert self.wait_for(fd) & EVENT_READ
        assert fd not in self.poll_dict(0), "same unread data must not be reported twice"
        b.send(b"y")
        assert self.wait_for(fd) & EVENT_READ, "new data is a new edge"
        assert fd not in self.poll_dict(0)

    def test_edge_triggered_modify_rearms(self):
        if not self.poller.edge_triggered:
            pytest.skip("level-triggered poller")
        a, b = self.socketpair()
        fd = a.fileno()
        self.poller.register(fd, EVENT_READ)
        b.send(b"x")
        assert self.wait_for(fd) & EVENT_READ
        assert fd not in self.poll_dict(0)
        self.poller.modify(fd, EVENT_READ)
        assert self.poll_dict(0).get(fd, 0) & EVENT_READ, "modify() must report current readiness"

    def test_edge_triggered_writable_is_reported_once(self):
        if not self.poller.edge_triggered:
            pytest.skip("level-triggered poller")
        a, _ = self.socketpair()
        self.poller.register(a.fileno(), EVENT_WRITE)
        assert self.poll_dict(0).get(a.fileno(), 0) & EVENT_WRITE
        assert a.fileno() not in self.poll_dict(0)

    # -- the EVENT_EXCLUSIVE registration flag -------------------------------------------------
    def test_exclusive_refused_clearly_where_unsupported(self):
        if self.poller.supports_exclusive:
            pytest.skip(f"{self.poller!r} supports EVENT_EXCLUSIVE")
        listener = self.tcp_listener()
        with pytest.raises(PollerFlagError) as info:
            self.poller.register(listener.fileno(), EVENT_READ | EVENT_EXCLUSIVE)
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert "EVENT_EXCLUSIVE" in message and "epoll" in message and self.poller.name in message
        with pytest.raises(KeyError):
            self.poller.unregister(listener.fileno())  # nothing was half-registered
        self.poller.register(listener.fileno(), EVENT_READ)  # the plain registration still works

    def test_exclusive_listener_reports_a_waiting_connection(self):
        if not self.poller.supports_exclusive:
            pytest.skip(f"{self.poller!r} has no EVENT_EXCLUSIVE")
        listener = self.tcp_listener()
        other = self.new_poller()  # a second watcher of the same listener, as another worker's
        for poller in (self.poller, other):
            poller.register(listener.fileno(), EVENT_READ | EVENT_EXCLUSIVE)
        client = socket.create_connection(listener.getsockname(), timeout=PATIENCE)
        self._cleanups.append(client.close)
        mask = self.wait_for(listener.fileno())
        assert mask & EVENT_READ and not mask & EVENT_EXCLUSIVE, f"the flag is not an event: {mask:#x}"

    def test_exclusive_registration_can_change_its_mask(self):
        """epoll refuses EPOLL_CTL_MOD on an exclusive fd; modify() must still work."""
        if not self.poller.supports_exclusive:
            pytest.skip(f"{self.poller!r} has no EVENT_EXCLUSIVE")
        a, b = self.socketpair()
        fd = a.fileno()
        self.poller.register(fd, EVENT_READ | EVENT_EXCLUSIVE)
        assert fd not in self.poll_dict(0)
        self.poller.modify(fd, EVENT_READ | EVENT_WRITE)
        assert self.poll_dict(0)[fd] & EVENT_WRITE
        self.poller.modify(fd, 0)
        assert fd not in self.poll_dict(0)
        self.poller.modify(fd, EVENT_READ)
        b.send(b"x")
        assert self.wait_for(fd) & EVENT_READ
        self.poller.unregister(fd)
        with pytest.raises(KeyError):
            self.poller.modify(fd, EVENT_READ)
        self.poller.register(fd, EVENT_READ)  # registered again, plainly this time
        self.poller.modify(fd, EVENT_WRITE)
        assert self.poll_dict(0)[fd] == EVENT_WRITE

    # -- resources ------------------------------------------------------------------------
    def test_no_fds_leak(self):
        if not os.path.isdir("/proc/self/fd"):
            pytest.skip("needs /proc/self/fd to count open fds")
        before = len(os.listdir("/proc/self/fd"))
        poller = self.make_poller()
        a, b = socket.socketpair()
        try:
            poller.register(a.fileno(), EVENT_READ | EVENT_WRITE)
            b.send(b"x")
            assert a.fileno() in dict(poller.poll(PATIENCE))
            poller.modify(a.fileno(), EVENT_READ)
            poller.unregister(a.fileno())
        finally:
            a.close()
            b.close()
            poller.close()
        assert len(os.listdir("/proc/self/fd")) == before
