"""Closing idle connections during a graceful stop without racing a request in flight.

A graceful stop (TERM, or a prefork worker retired by HUP, TTOU, max-requests or a
heartbeat replacement) must end every connection, and a connection that is idle
between requests is the hard one: the server cannot know that the client has not just
sent its next request. Closing at that moment makes the kernel answer the request with
a FIN or an RST, and the client sees a request that was never answered -- wrk's
"socket read errors", one per keep-alive connection at every restart.

So a drain has two steps, both visible to the protocol:

1. **The stop is announced** (``protocol.stop_requested()``, on the connection's
   thread, after what had already arrived was read): the protocol makes its next reply
   the final one and closes after it. HTTP answers with ``Connection: close``, which
   tells the client, in the reply itself, to send its next request elsewhere. A client
   that keeps the connection busy is therefore always told, never cut off.
2. **A connection that stays quiet is closed by the core** (:class:`QuietTracker`): no
   input for :data:`DRAIN_QUIET` seconds, no reply owed or queued, nothing unread in the
   kernel's receive buffer (a final ``MSG_PEEK``) and the protocol between requests
   (``protocol.is_idle()``). A client quiet that long has no request on the way, short
   of one sent in the microseconds between the final look and the FIN -- the same
   unavoidable window as any keep-alive time-out, which HTTP clients handle by retrying
   (RFC 9112, 9.3.1).

   The quiet period is for protocols whose final reply tells the client
   (``Protocol.tells_client_on_stop``, HTTP). One that cannot (echo, RESP: nothing in
   their replies says "go elsewhere") would wait in vain for a busy client to fall
   silent, then abort it at the graceful timeout; so its connection is closed at the
   first look that finds nothing owed and nothing unread -- between two requests, with
   no byte of a reply sent, which a client may retry on a new connection.
   A connection that has received nothing yet always gets ``fresh_quiet``: its first
   request may be on the way.

The cost is that a worker with idle keep-alive clients exits :data:`DRAIN_QUIET` seconds
later than it could; under load, no later at all (every busy connection gets its final
reply within a round trip). Nothing here runs on the per-event path: the tracker is
consulted every :data:`SCAN_INTERVAL` seconds, during a stop only.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Any, Iterable

#: Seconds without input (and with nothing owed) after which a draining connection is
#: taken to be idle and closed. Long against a round trip on any network a client of a
#: busy server uses; short against the graceful timeout.
DRAIN_QUIET = 0.5
#: How often a draining worker looks for quiet connections.
SCAN_INTERVAL = 0.05


def unread_input(sock: socket.socket) -> bool:
    """True if bytes wait in ``sock``'s receive buffer (or its state cannot be read)."""
    try:
        # socket.socket.recv: the raw kernel buffer, also under TLS (an SSLSocket's recv takes
        # no flags, and its SSL object may be in use by the serving thread right now).
        return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False  # reset or closed: nothing more will arrive


class QuietTracker:
    """Which connections of a draining worker have been quiet long enough to close.

    ``fresh_quiet`` is the quiet period for a connection that has received nothing at
    all yet: one accepted an instant before the stop has its first request on the way,
    possibly behind a TLS or TCP handshake, so it may be given longer.
    """

    def __init__(self, quiet: float = DRAIN_QUIET, fresh_quiet: float | None = None) -> None:
        self.quiet = quiet
        self.fresh_quiet = quiet if fresh_quiet is None else max(quiet, fresh_quiet)
        #: connection -> (bytes_received when last seen to change, when)
        self._seen: dict[Any, tuple[int, float]] = {}

    def quiet_ones(self, connections: Iterable[Any], now: float) -> list[Any]:
        """The connections to close now (each is forgotten once returned)."""
        seen, self._seen = self._seen, {}
        ready = []
        for conn in connections:
            if conn.closed:
                continue
            received = conn.bytes_received
            period = self.fresh_quiet if not received else self.quiet if _tells_client(conn) else 0.0
            last = seen.get(conn)
            if last is None or last[0] != received:
                last = self._seen[conn] = (received, now)
                if period:
                    continue
            if (now - last[1] < period or conn.pending or conn.output_size
                    or not _protocol_idle(conn) or unread_input(conn.sock)):
                self._seen[conn] = last
                continue
            ready.append(conn)
        return ready


def _tells_client(conn: Any) -> bool:
    protocol = conn.protocol
    return protocol is not None and protocol.tells_client_on_stop


def _protocol_idle(conn: Any) -> bool:
    protocol = conn.protocol
    return protocol is None or protocol.is_idle()


# -- closing the door ----------------------------------------------------------------------

#: ``SO_ATTACH_FILTER`` (asm-generic/socket.h; the socket module does not export it).
SO_ATTACH_FILTER = 26
#: One classic BPF instruction, ``ret #0``: accept no packet.
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)


def close_door(sock: socket.socket) -> None:
    """Let no new client into a listening socket, keeping the ones already queued.

    For a graceful stop of the whole server: a client whose connect completes while
    the server stops sends its request into a backlog nobody will accept from, and is
    reset when the listener closes -- a lost request. Closing or shutting down the
    listener resets the queued connections too. A socket filter that drops every packet
    stops new SYNs at the listener itself (the client retries its SYN a second later
    and is refused by then, having sent nothing), while the queued connections, whose
    packets go to their own sockets, stay for the workers' final accept. It acts on the
    socket, so in every process holding it. Where the filter cannot be attached,
    ``listen(0)`` shrinks the backlog to (about) one connection instead.
    """
    try:
        program = ctypes.create_string_buffer(_DROP_ALL)
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }; the
        # kernel copies the program during the call, so the buffer may go afterwards.
        fprog = struct.pack("HL", 1, ctypes.addressof(program))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        return
    except (OSError, ValueError, AttributeError):
        pass
    try:
        sock.listen(0)
    except OSError:
        pass
