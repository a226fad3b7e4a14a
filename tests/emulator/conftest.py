"""Fixtures for the emulator's own tests: raw websocket-client connections."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List, Optional

import pytest
import websocket

from livesync.emulator import Emulator
from tests.emulator.helpers import WsClient, abort


def _emulator_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("emulator-")]


@pytest.fixture(autouse=True)
def no_emulator_threads() -> Iterator[None]:
    """Fail a test that leaves an ``emulator-*`` thread alive after its emulators stopped."""
    before = set(_emulator_threads())
    yield
    leaked = [t for t in _emulator_threads() if t not in before]
    for thread in leaked:
        thread.join(5.0)
    alive = [t.name for t in leaked if t.is_alive()]
    assert not alive, f"emulator threads still alive: {alive}"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A default emulator (real time)."""
    return make_emulator()


@pytest.fixture
def connect(make_emulator: Callable[..., Emulator]) -> Iterator[Callable[..., WsClient]]:
    """Open raw client connections; they are aborted (no close handshake) after the test.

    ``connect(emu, url=None, key=True, headers=(), **kw)``: ``url`` defaults to the
    Gemini API v1beta endpoint; ``key=True`` sends ``x-goog-api-key``.
    """
    clients: List[WsClient] = []

    def connect(emu: Emulator, url: Optional[str] = None, *, key: bool = True,
                headers: Any = (), **options: Any) -> WsClient:
        header = list(headers)
        if key:
            header.append("x-goog-api-key: " + emu.api_key)
        ws = websocket.create_connection(
            url or emu.url(), header=header, timeout=5, skip_utf8_validation=True,
            suppress_origin=True, **options)
        client = WsClient(ws)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        try:
            abort(client.ws)
        except Exception:  # pragma: no cover
            pass
