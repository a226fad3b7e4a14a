"""Exception messages, attributes, builtin mixins; no secrets or raw payloads in str()."""

from __future__ import annotations

import pytest

import livesync
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
from livesync.exceptions import ConnectError, TLSError


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
    assert str(rejected) == (
        "setup rejected: 1008 models/x is not found for API version v1beta (hint: check the "
        "model name; preview Live models exist only on v1beta, the default api_version)")
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


def test_invalid_status_carries_retry_after() -> None:
    """A refused upgrade keeps the server's Retry-After apart from the message."""
    status = InvalidStatus(503, "overloaded", retry_after=12.0)
    assert status.retry_after == 12.0
    assert InvalidStatus(503).retry_after is None
    assert str(status) == "server rejected WebSocket connection: HTTP 503: overloaded"


def test_tls_error_says_why() -> None:
    """A TLS failure is a ConnectError whose message names the reason."""
    error = TLSError("hostname mismatch", verify_code=62)
    assert isinstance(error, ConnectError) and not isinstance(error, TimeoutError)
    assert (error.reason, error.verify_code) == ("hostname mismatch", 62)
    assert str(error) == "certificate verification failed: hostname mismatch"
    bundle = TLSError("could not load the CA bundle (ca_certs): no such file or directory")
    assert str(bundle) == ("TLS setup failed: could not load the CA bundle (ca_certs): "
                           "no such file or directory")


def test_attempt_is_backwards_compatible() -> None:
    """Attempt still takes its first fields positionally; reason and retry_after default."""
    attempt = Attempt(1, 0.5, 1011, None, "closed")
    assert (attempt.reason, attempt.retry_after) == ("", None)
    assert Attempt(2, 0.0, status_code=429, retry_after=3.0).retry_after == 3.0


def test_known_server_reasons_carry_a_hint() -> None:
    """Issue 8 item 6: a close the user can act on says what to do."""
    error = livesync.SessionClosedError(1011, "Session duration limit exceeded. Enable it.")
    assert "context_window_compression" in str(error)
    busy = livesync.SetupRejected(1011, "Internal error encountered.")
    assert "handle store" in str(busy)
    assert "hint" not in str(livesync.SessionClosedError(1011, "Something else"))
