"""Test helpers: a time unit, predicate waits and a callback recorder. No sleeps."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional

#: The test time unit, scaled by LIVESYNC_TESTS_TIMEOUT_FACTOR on slow machines.
TIMEOUT = 0.5 * float(os.environ.get("LIVESYNC_TESTS_TIMEOUT_FACTOR", "1"))


def wait_for(predicate: Callable[[], Any], timeout: float = 10 * TIMEOUT) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return whether it became true."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        event.wait(0.005)


class Recorder:
    """Records callback arguments by name; thread-safe; lets tests wait for them."""

    def __init__(self) -> None:
        self.calls: Dict[str, List[Any]] = {}
        self.threads: Dict[str, List[str]] = {}
        self._cond = threading.Condition()

    def __getattr__(self, name: str) -> Callable[[Any], None]:
        if not name.startswith("on_"):
            raise AttributeError(name)

        def callback(arg: Any) -> None:
            with self._cond:
                self.calls.setdefault(name, []).append(arg)
                self.threads.setdefault(name, []).append(threading.current_thread().name)
                self._cond.notify_all()

        return callback

    def callbacks(self) -> Dict[str, Callable[[Any], None]]:
        names = ("on_message", "on_goaway", "on_resumption_update", "on_close", "on_open",
                 "on_reconnect", "on_error")
        return {name: getattr(self, name) for name in names}

    def get(self, name: str) -> List[Any]:
        with self._cond:
            return list(self.calls.get(name, []))

    def wait(self, name: str, count: int = 1, timeout: float = 10 * TIMEOUT,
             where: Optional[Callable[[Any], bool]] = None) -> List[Any]:
        """Wait until ``count`` calls of ``name`` (matching ``where``) were recorded."""
        def matching() -> List[Any]:
            return [a for a in self.calls.get(name, []) if where is None or where(a)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError("%s called %d times, expected %d" % (
                    name, len(matching()), count))
            return matching()


def headers(record: Any) -> Dict[str, str]:
    """An emulator connection's upgrade headers as a lower-case dict."""
    return {k.lower(): v for k, v in record.headers}


def client_messages(record: Any) -> List[Any]:
    """Client messages after setup on an emulator connection (or in a session record)."""
    return [m for m in record.messages if m.kind != "setup"]


def realtime(record: Any, field: str) -> List[Any]:
    """The values of one realtimeInput field among ``record``'s client messages."""
    return [m.message["realtimeInput"][field] for m in client_messages(record)
            if field in m.message.get("realtimeInput", {})]
