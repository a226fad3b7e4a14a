"""Fixtures shared by every test: thread-leak guard, proxy-free environment, emulator."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Iterator, List

import pytest

from tests.utils import TIMEOUT, wait_for

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the chaos soak (tests/chaos; see docs/chaos.md)."""
    group = parser.getgroup("chaos", "livesync chaos soak (tests/chaos, docs/chaos.md)")
    group.addoption("--chaos-long", action="store_true", default=False,
                    help="run the long chaos soak (about 20 minutes) instead of the short one")
    group.addoption("--chaos-seed", type=int, default=None,
                    help="seed of the chaos soak's fault schedule and workload (default: fixed)")


def _livesync_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("livesync-")]


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves a ``livesync-*`` thread running."""
    before = set(_livesync_threads())
    yield
    leaked = lambda: [t for t in _livesync_threads() if t not in before]  # noqa: E731
    if not wait_for(lambda: not leaked(), 10 * TIMEOUT):
        pytest.fail("threads leaked: %s" % ", ".join(t.name for t in leaked()))


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep loopback traffic off any proxy from the environment (websocket-client ≥1.9)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Any]]:
    """Start emulators with the given options; stop them all after the test."""
    from livesync.emulator import Emulator

    started: List[Any] = []

    def make(**options: Any) -> Any:
        emu = Emulator(**options)
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Any]) -> Any:
    """A default emulator (real time)."""
    return make_emulator()


@pytest.fixture
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
