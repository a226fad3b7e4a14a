"""Offline Gemini Live API emulator for livesync's tests, examples and demos.

``livesync.emulator`` is an independent server-side implementation of the Live
protocol (docs/protocol.md) on ``websockets.sync.server``; it imports nothing from
livesync. Install the ``emulator`` extra (``websockets>=15,<18``). See
``docs/emulator.md``.

Example::

    from livesync.emulator import Emulator

    with Emulator(time_scale=0.01) as emu:
        print(emu.base_url, emu.rest_url)

For load tests, :class:`LoadServer` is a lean server on one asyncio thread
(canned audio replies, handles, goAway; no model, VAD or faults).
"""

from __future__ import annotations

from ._load import LoadOptions, LoadServer, LoadStats
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
    "LoadOptions",
    "LoadServer",
    "LoadStats",
    "Responder",
    "RestRecord",
    "SessionRecord",
    "TokenRecord",
    "Turn",
    "UpgradeRecord",
]
