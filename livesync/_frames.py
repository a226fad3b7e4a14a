"""WebSocket framing, client side (RFC 6455 §5), without I/O.

:func:`text_frame` and :func:`close_frame` build the masked frames a client sends;
:class:`FrameParser` splits the bytes read from the socket into server messages
and control frames. The transport owns the socket and one parser per
connection (its reader thread feeds it); nothing here blocks or takes a lock.

Reading through a buffer is the point: websocket-client reads a frame with three
or more ``recv`` calls sized to its header, length and payload; the parser
takes whatever one large ``recv`` returned, often many frames at once.
"""

from __future__ import annotations

import os
import struct
from typing import List, Optional, Tuple

__all__ = ["FrameParser", "FramingError", "MessageTooLarge", "text_frame", "close_frame",
           "CLOSE", "PING", "PONG", "TEXT", "BINARY"]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({TEXT, BINARY})
CONTROL_OPCODES = frozenset({CLOSE, PING, PONG})
#: How far a parser lets consumed bytes pile up before it compacts its buffer.
COMPACT_AT = 64 * 1024

_HEAD_7 = struct.Struct("!BB4s")
_HEAD_16 = struct.Struct("!BBH4s")
_HEAD_64 = struct.Struct("!BBQ4s")
_LENGTH_16 = struct.Struct("!H")
_LENGTH_64 = struct.Struct("!Q")


class FramingError(Exception):
    """The server broke the framing rules; the connection cannot go on."""


class MessageTooLarge(Exception):
    """A message is over the parser's ``max_size``; its payload was not buffered."""


def text_frame(data: bytes) -> bytes:
    """One final, masked text frame carrying ``data``."""
    return _masked(0x80 | TEXT, data)


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A masked close frame (§5.5.1): ``code``, then ``reason`` cut to 123 bytes."""
    return _masked(0x80 | CLOSE, _LENGTH_16.pack(code) + reason[:123])


def _masked(first: int, data: bytes) -> bytes:
    """A frame with first byte ``first``, masked with a key from ``os.urandom``
    (§10.3: unpredictable); the XOR runs on two big integers."""
    key = os.urandom(4)
    n = len(data)
    if n < 126:
        head = _HEAD_7.pack(first, 0x80 | n, key)
    elif n < 65536:
        head = _HEAD_16.pack(first, 0xFE, n, key)
    else:
        head = _HEAD_64.pack(first, 0xFF, n, key)
    return head + _xor(data, key)


def _xor(data: bytes, key: bytes) -> bytes:
    n = len(data)
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ mask).to_bytes(n, "little")


class FrameParser:
    """Server frames from a byte stream: whole messages and control frames, in order.

    Fragmented messages are put together (control frames may come between their
    fragments). ``max_size`` bounds a message; a frame announcing more is refused
    from its header, before its payload is read.
    """

    def __init__(self, max_size: Optional[int] = None) -> None:
        self._max_size = max_size
        self._buffer = bytearray()
        self._pos = 0  # start of the first unparsed byte
        self._fragments: List[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0

    @property
    def empty(self) -> bool:
        """No byte of an unfinished frame or message is buffered."""
        return self._pos == len(self._buffer) and not self._fragments

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        if self._pos and (self._pos == len(self._buffer) or self._pos >= COMPACT_AT):
            del self._buffer[:self._pos]
            self._pos = 0
        self._buffer += data

    def next(self) -> Optional[Tuple[int, bytes]]:
        """The next ``(opcode, payload)``: a whole TEXT or BINARY message, or a CLOSE,
        PING or PONG frame; None when more bytes are needed.

        Raises:
            FramingError: a reserved bit or opcode, a bad control frame, a
                continuation out of place.
            MessageTooLarge: a message over ``max_size``.
        """
        while True:
            header = self._header()
            if header is None:
                return None
            first, start, end, key = header
            opcode = first & 0x0F
            self._check(first, opcode, end - start)  # before the payload is buffered
            if end > len(self._buffer):
                return None
            with memoryview(self._buffer) as view:
                payload = bytes(view[start:end])
            self._pos = end
            if key is not None:  # servers must not mask; tolerated, as websocket-client does
                payload = _xor(payload, key)
            if opcode in CONTROL_OPCODES:
                return opcode, payload
            fin = first & 0x80
            if opcode != CONTINUATION and fin:
                return opcode, payload
            if opcode != CONTINUATION:
                self._fragment_opcode = opcode
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if fin:
                message = b"".join(self._fragments)
                self._fragments, self._fragment_size = [], 0
                return self._fragment_opcode, message

    def _header(self) -> Optional[Tuple[int, int, int, Optional[bytes]]]:
        """``(first byte, payload start, payload end, masking key)`` of the buffered
        frame, or None when its header is not all here."""
        buffer, pos = self._buffer, self._pos
        available = len(buffer) - pos
        if available < 2:
            return None
        first, second = buffer[pos], buffer[pos + 1]
        length = second & 0x7F
        start = pos + 2
        if length == 126:
            if available < 4:
                return None
            length = _LENGTH_16.unpack_from(buffer, start)[0]
            start += 2
        elif length == 127:
            if available < 10:
                return None
            length = _LENGTH_64.unpack_from(buffer, start)[0]
            start += 8
        key = None
        if second & 0x80:
            if len(buffer) < start + 4:
                return None
            key = bytes(buffer[start:start + 4])
            start += 4
        return first, start, start + length, key

    def _check(self, first: int, opcode: int, length: int) -> None:
        if first & 0x70:
            raise FramingError("reserved bits set (no extension was negotiated)")
        if opcode in CONTROL_OPCODES:
            if not first & 0x80 or length > 125:
                raise FramingError("fragmented or oversized control frame")
            return
        if opcode == CONTINUATION:
            if not self._fragments:
                raise FramingError("continuation frame without a message")
        elif opcode in DATA_OPCODES:
            if self._fragments:
                raise FramingError("new message inside a fragmented one")
        else:
            raise FramingError("reserved opcode %d" % opcode)
        size = self._fragment_size + length
        if self._max_size is not None and size > self._max_size:
            raise MessageTooLarge("a %d-byte message is over max_message_size" % size)
