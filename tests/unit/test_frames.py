"""WebSocket framing without I/O (livesync._frames); the transport tests run it on real sockets."""

from __future__ import annotations

import os
import struct
from typing import List, Optional, Tuple

import pytest

from livesync._frames import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    FrameParser,
    FramingError,
    MessageTooLarge,
    close_frame,
    text_frame,
)


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: Optional[bytes] = None,
                 rsv: int = 0) -> bytes:
    """A frame as a server (or a test) writes it, independently of the code under test."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def drain(parser: FrameParser) -> List[Tuple[int, bytes]]:
    out = []
    item = parser.next()
    while item is not None:
        out.append(item)
        item = parser.next()
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70001])
def test_text_frame_unmasks_to_the_payload(size: int) -> None:
    data = os.urandom(size)
    frame = text_frame(data)
    assert frame[0] == 0x81 and frame[1] & 0x80  # final text frame, masked
    parser = FrameParser()
    parser.feed(frame)
    assert parser.next() == (TEXT, data)  # the parser unmasks what it is given
    assert text_frame(data) != frame or size == 0  # a fresh key per frame


def test_close_frame_carries_the_code_and_a_reason_cut_to_123_bytes() -> None:
    frame = close_frame(1000, b"rotating")
    assert frame[0] == 0x88 and frame[1] == 0x80 | 10  # final close frame, masked
    parser = FrameParser()
    parser.feed(frame + close_frame(4000, b"x" * 200))
    assert drain(parser) == [(CLOSE, b"\x03\xe8rotating"), (CLOSE, b"\x0f\xa0" + b"x" * 123)]


def test_a_stream_fed_one_byte_at_a_time_gives_every_message_in_order() -> None:
    frames = [server_frame(BINARY, b"a" * 300), server_frame(PING, b"hi"),
              server_frame(TEXT, b"part 1, ", fin=False), server_frame(PING, b""),
              server_frame(0, b"part 2, ", fin=False), server_frame(0, b"end"),
              server_frame(BINARY, b"x" * 70_000), server_frame(CLOSE, b"\x03\xe8bye")]
    parser = FrameParser()
    got: List[Tuple[int, bytes]] = []
    for byte in b"".join(frames):
        parser.feed(bytes([byte]))
        got += drain(parser)
    assert got == [(BINARY, b"a" * 300), (PING, b"hi"), (PING, b""),
                   (TEXT, b"part 1, part 2, end"), (BINARY, b"x" * 70_000),
                   (CLOSE, b"\x03\xe8bye")]


def test_many_frames_in_one_read() -> None:
    parser = FrameParser()
    parser.feed(b"".join(server_frame(BINARY, b"%d" % i) for i in range(1000)))
    assert drain(parser) == [(BINARY, b"%d" % i) for i in range(1000)]


def test_empty_until_a_frame_or_a_message_is_half_read() -> None:
    """``empty`` (the transport's "nothing left to read" test) is False while part of a
    frame, or some fragments of a message, are buffered."""
    parser = FrameParser()
    assert parser.empty
    whole = server_frame(TEXT, b"hello")
    parser.feed(whole[:3])
    assert parser.next() is None and not parser.empty
    parser.feed(whole[3:] + server_frame(TEXT, b"first half", fin=False))
    assert parser.next() == (TEXT, b"hello") and not parser.empty
    assert parser.next() is None and not parser.empty  # the first fragment is in
    parser.feed(server_frame(0, b", second half"))
    assert parser.next() == (TEXT, b"first half, second half") and parser.empty


def test_a_frame_over_the_limit_is_refused_from_its_header() -> None:
    parser = FrameParser(max_size=1000)
    parser.feed(server_frame(BINARY, b"x" * 1000))
    assert parser.next() == (BINARY, b"x" * 1000)
    parser.feed(struct.pack("!BBQ", 0x82, 127, 2**40))  # 1 TiB announced, nothing more sent
    with pytest.raises(MessageTooLarge, match="1099511627776-byte message"):
        parser.next()


def test_fragments_count_towards_the_limit() -> None:
    parser = FrameParser(max_size=1000)
    parser.feed(server_frame(TEXT, b"x" * 600, fin=False) + server_frame(0, b"x" * 401))
    with pytest.raises(MessageTooLarge, match="1001-byte message"):
        parser.next()


def test_a_masked_server_frame_is_unmasked() -> None:
    parser = FrameParser()
    parser.feed(server_frame(TEXT, b"masked anyway", mask=b"\x01\x02\x03\x04"))
    assert parser.next() == (TEXT, b"masked anyway")


@pytest.mark.parametrize("frames, error", [
    ([server_frame(TEXT, b"x", rsv=0x40)], "reserved bits"),
    ([server_frame(0x3, b"x")], "reserved opcode 3"),
    ([server_frame(0, b"x")], "continuation frame without a message"),
    ([server_frame(TEXT, b"x", fin=False), server_frame(TEXT, b"y")], "inside a fragmented"),
    ([server_frame(PING, b"x", fin=False)], "control frame"),
    ([server_frame(PING, b"x" * 126)], "control frame"),
])
def test_framing_errors(frames: List[bytes], error: str) -> None:
    parser = FrameParser()
    parser.feed(b"".join(frames))
    with pytest.raises(FramingError, match=error):
        drain(parser)
