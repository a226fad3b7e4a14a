"""Wire quirks: binary frames, pretty-printed JSON, omitted defaults, text-frame option."""

from __future__ import annotations

import json
from typing import Callable

from livesync.emulator import Emulator
from tests.emulator.helpers import GEMINI_MODEL, OP_BINARY, OP_TEXT, WsClient

Connect = Callable[..., WsClient]


def test_binary_frames_and_pretty_json_by_default(emu: Emulator, connect: Connect) -> None:
    """Server JSON arrives in binary frames, indented by 2 spaces, defaults omitted."""
    client = connect(emu)
    client.send({"setup": {"model": GEMINI_MODEL, "sessionResumption": {}}})
    assert client.frame() == (OP_BINARY, b'{\n  "setupComplete": {}\n}')
    opcode, data = client.frame()
    assert opcode == OP_BINARY and data.startswith(b'{\n  "sessionResumptionUpdate": {\n    ')
    client.text("hi")
    assert client.frame() == (OP_BINARY, b'{\n  "sessionResumptionUpdate": {}\n}')


def test_text_frames_option(make_emulator: Callable[..., Emulator], connect: Connect) -> None:
    """text_frames=True sends the same JSON in text frames."""
    emu = make_emulator(text_frames=True)
    client = connect(emu)
    client.send({"setup": {"model": GEMINI_MODEL}})
    opcode, data = client.frame()
    assert opcode == OP_TEXT and json.loads(data) == {"setupComplete": {}}


def test_client_binary_frames_are_accepted(emu: Emulator, connect: Connect) -> None:
    """Client JSON in a binary frame is decoded like a text frame."""
    client = connect(emu)
    client.ws.send_binary(json.dumps({"setup": {"model": GEMINI_MODEL}}).encode())
    assert client.message() == {"setupComplete": {}}
