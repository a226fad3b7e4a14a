"""Offline Gemini Live API emulator for livesync's tests, examples and demos.

``livesync.emulator`` is an independent server-side implementation of the Live
protocol (docs/protocol.md) on ``websockets.sync.server``; it imports nothing from
livesync. Install the ``emulator`` extra (``websockets>=15,<18``). See
``docs/emulator.md``.

Example::

    from livesync.emulator import Emulator

    with Emulator(time_scale=0.01) as emu:
        print(emu.base_url, emu.rest_url)
"""

from __future__ import annotations

from ._model import CANNED
from ._options import EmulatorOptions
from ._records import (
    ClientMessageRecord,
    ConnectionRecord,
    HandleRecord,
    RestRecord,
    SessionRecord,
    TokenRecord,
    Turn,
    UpgradeRecord,
)
from ._server import DEFAULT_MODELS, Emulator, Responder

__all__ = [
    "CANNED",
    "DEFAULT_MODELS",
    "ClientMessageRecord",
    "ConnectionRecord",
    "Emulator",
    "EmulatorOptions",
    "HandleRecord",
    "Responder",
    "RestRecord",
    "SessionRecord",
    "TokenRecord",
    "Turn",
    "UpgradeRecord",
]
