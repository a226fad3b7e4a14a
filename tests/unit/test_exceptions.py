"""Exception messages, attributes, builtin mixins; no secrets or raw payloads in str()."""

from __future__ import annotations

import pytest

from livesync import (
    Attempt,
    ConnectTimeout,
    InvalidConfig,
    InvalidStatus,
    LiveSyncError,
    ReconnectExhausted,
    SessionClosed,
    SessionClosedError,
    SessionClosedOK,
    SetupRejected,
)


def test_tree_and_builtin_mixins() -> None:
    """Errors share one root and mix in the builtin they stand for."""
    assert issubclass(InvalidConfig, ValueError)
    assert issubclass(ConnectTimeout, TimeoutError)
    for cls in (InvalidConfig, InvalidStatus, SetupRejected, SessionClosedOK, ReconnectExhausted):
        assert issubclass(cls, LiveSyncError)
    assert issubclass(ReconnectExhausted, SessionClosedError)
    assert issubclass(SessionClosedOK, SessionClosed)


def test_close_codes_and_http_statuses_are_separate() -> None:
    """A close code lives in .code, an HTTP status in .status_code, on different types."""
    rejected = SetupRejected(1008, "models/x is not found for API version v1beta")
    assert rejected.code == 1008 and not hasattr(rejected, "status_code")
    status = InvalidStatus(429, "quota")
    assert status.status_code == 429 and not hasattr(status, "code")
    assert str(rejected) == "setup rejected: 1008 models/x is not found for API version v1beta"
    assert str(status) == "server rejected WebSocket connection: HTTP 429: quota"


def test_server_text_is_elided() -> None:
    """Long server text is cut so messages stay bounded."""
    error = SessionClosedError(1011, "x" * 5000)
    assert len(str(error)) < 200 and str(error).endswith("...")


def test_reconnect_exhausted_keeps_the_history() -> None:
    """ReconnectExhausted carries the attempts and the last close."""
    attempts = (Attempt(1, 0.5, code=1011), Attempt(2, 1.0, status_code=503))
    error = ReconnectExhausted(attempts, 1011, "Internal error encountered.")
    assert error.attempts == attempts
    assert str(error) == ("reconnect attempts exhausted after 2 attempts; "
                          "last close 1011 Internal error encountered.")


def test_invalid_config_names_the_field() -> None:
    """InvalidConfig carries the offending field."""
    with pytest.raises(ValueError) as info:
        raise InvalidConfig("bad", field="model")
    assert info.value.field == "model"  # type: ignore[attr-defined]
