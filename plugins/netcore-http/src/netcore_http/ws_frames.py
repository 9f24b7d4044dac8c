"""What the server does to frames itself, beside wsproto: framing what it sends, reassembly.

Server frames are unmasked and, without an extension, nothing but a two-to-ten-byte
header in front of the payload (RFC 6455 5.2): :func:`frame_header` builds it, where
wsproto's ``send`` would copy the payload three times -- per message, the cost an echo
benchmark measures. Received frames are parsed by wsproto; a fragmented message is put
back together by :class:`Fragments` in memory proportional to its size.
"""

from __future__ import annotations

import struct
from typing import Any


def frame_header(opcode: int, n: int) -> bytes:
    """The header of a final, unmasked frame of ``n`` payload bytes (a server's, RFC 6455 5.2)."""
    if n < 126:
        return bytes((0x80 | opcode, n))
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n)
    return struct.pack("!BBQ", 0x80 | opcode, 127, n)


#: Bytes of compressed input handed to wsproto at a time (WebSocketProtocol.data_received).
INFLATE_SLICE = 16 * 1024


class Fragments:
    """A fragmented message being reassembled, in memory proportional to its size.

    Binary fragments go into one bytearray. Text fragments (str, decoded by wsproto) are
    joined in groups, so a message sent as millions of one-byte fragments does not cost
    a Python object per fragment.
    """

    __slots__ = ("binary", "pending", "chunks", "size")

    def __init__(self, binary: bytearray | None) -> None:
        self.binary = binary
        self.pending: list[str] = []
        self.chunks: list[str] = []
        self.size = 0

    def add(self, data: Any) -> None:
        if self.binary is not None:
            self.binary += data
            return
        pending = self.pending
        pending.append(data)
        if len(pending) >= 64:
            self.chunks.append("".join(pending))
            pending.clear()

    def text(self) -> str:
        return "".join(self.chunks) + "".join(self.pending)


#: Above this a frame's header and payload are written separately, so that a large
#: payload is not copied once more only to put ten bytes in front of it.
JOIN_LIMIT = 64 * 1024
