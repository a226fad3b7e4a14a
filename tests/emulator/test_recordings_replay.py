"""Replay the client side of the 19 real recordings through the emulator.

The recordings (``../shared/recordings`` beside the repository, see its README)
hold real Live API traffic. Each client message is sent to the emulator as
recorded; the emulator must reach the same outcome as the real server.

"Same" is defined on the **turn structure**, because the scripted model does not
say what the real model said:

* the server stream is reduced to the tokens ``setupComplete``, ``toolCall``,
  ``toolCallCancellation``, ``interrupted``, ``turnComplete`` and ``goAway``, in
  order. Model content (``modelTurn`` parts, transcriptions,
  ``generationComplete``) is left out: the real model sometimes sends only
  ``generationComplete``, writes ``executableCode`` before a ``toolCall``, or
  speaks after an orphan tool response, and its wording differs anyway.
  ``sessionResumptionUpdate`` and ``usageMetadata`` are left out too.
* the recorded tokens must be a prefix of the emulator's (the recordings stop
  when the recording test had what it needed);
* where the real server went on, the emulator must not close: after it has
  processed every replayed message, its connection is still open.

The test skips when the recordings folder is missing (it fails on CI, like
the other recording tests, since a missing folder would prove nothing there).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from livesync.emulator import Emulator
from tests.emulator.helpers import Closed, WsClient

Connect = Callable[..., WsClient]

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
EXPECTED_FILES = 19
TOKENS = ("setupComplete", "toolCall", "toolCallCancellation", "goAway")
FLAGS = ("interrupted", "turnComplete")
_HEADER = re.compile(rb"([<>])([0-9]+) ")


def frames(path: Path) -> List[Tuple[str, Any]]:
    """``(direction, decoded JSON)`` for each frame of a ``*.websocket.log`` file."""
    data = path.read_bytes()
    out: List[Tuple[str, Any]] = []
    pos = 0
    while pos < len(data):
        match = _HEADER.match(data, pos)
        assert match is not None, f"bad recording {path.name} at byte {pos}"
        end = match.end() + int(match.group(2))
        direction = "client" if match.group(1) == b">" else "server"
        out.append((direction, json.loads(data[match.end():end])))
        pos = end
    return out


def tokens(message: Dict[str, Any]) -> List[str]:
    """The turn-structure tokens of one server message (see the module docstring)."""
    out = [key for key in message if key in TOKENS]
    content = message.get("serverContent") or {}
    out.extend(flag for flag in FLAGS if content.get(flag))
    return out


def recordings() -> List[Path]:
    return sorted(RECORDINGS.glob("*.websocket.log")) if RECORDINGS.is_dir() else []


def require_recordings() -> None:
    if recordings():
        return
    message = f"recorded Live API sessions not found at {RECORDINGS}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def replay(emu: Emulator, connect: Connect, recorded: List[Tuple[str, Any]]) -> List[str]:
    """Send the recorded client messages; return the emulator's tokens (prefix length)."""
    sent = [message for direction, message in recorded if direction == "client"]
    expected = sum((tokens(m) for d, m in recorded if d == "server"), [])
    vertex = "/publishers/" in sent[0]["setup"]["model"]
    headers = ["Authorization: Bearer " + emu.api_key] if vertex else []
    client = connect(emu, emu.url("vertex" if vertex else "gemini"), headers=headers)
    for message in sent:
        client.send(message)
    record = emu.wait_for_connections(1)[-1]
    emu.wait_for(lambda: len(record.messages) == len(sent) and record.backlog == 0
                 or not record.open)
    got: List[str] = []
    try:
        while len(got) < len(expected):
            got.extend(tokens(client.message()))
    except Closed as exc:
        got.append(f"close {exc.code} {exc.reason}")
    assert record.open and record.close_code is None, (record.close_code, record.close_reason)
    return got[:len(expected)] if len(got) >= len(expected) else got


def test_all_recordings_are_present() -> None:
    """The folder holds the 19 recordings this test is about."""
    require_recordings()
    assert len(recordings()) == EXPECTED_FILES


@pytest.mark.parametrize("name", [p.name[:-len(".websocket.log")] for p in recordings()]
                         or ["(no recordings)"])
def test_replay_matches_the_real_server(emu: Emulator, connect: Connect, name: str) -> None:
    """The emulator goes on where the real server went on, with the same turn structure."""
    require_recordings()
    recorded = frames(RECORDINGS / f"{name}.websocket.log")
    expected = sum((tokens(m) for d, m in recorded if d == "server"), [])
    assert replay(emu, connect, recorded) == expected
