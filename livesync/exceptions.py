"""Every exception livesync raises.

::

    LiveSyncError                                   root; never raised directly
    ├── InvalidConfig(LiveSyncError, ValueError)    bad arguments, raised before any I/O
    ├── ConnectError                                could not establish a connection
    │   ├── InvalidStatus                           HTTP upgrade refused: .status_code, .retry_after
    │   ├── SetupRejected                           closed before setupComplete: .code, .reason
    │   ├── ConnectTimeout(ConnectError, TimeoutError)
    │   ├── TLSError                                certificate verification failed: .reason (fatal)
    │   └── SessionBusy                             another connection holds the session key (lease)
    ├── ProtocolError                               malformed or unexpected server data
    ├── RestError                                   REST call failed: .status_code, .message
    │   ├── AuthError                               401/403, or 400 "API key not valid"
    │   ├── NotFound                                404 (e.g. no such model on this API version)
    │   ├── RateLimited                             429 after the retries: .retry_after
    │   └── RestTimeout(RestError, TimeoutError)    no answer in time
    ├── InvalidState(LiveSyncError, AssertionError) operation illegal in the current state
    ├── SendQueueFull                               outbound buffer full and the policy says fail
    ├── ToolCallPending                             ask() got a tool call it cannot answer: .calls
    └── SessionClosed                               terminal: .code, .reason; __cause__ = root cause
        ├── SessionClosedOK                         user close or normal closure
        │   └── SessionHandedOver                   another connection took the session over
        └── SessionClosedError                      anything else
            └── ReconnectExhausted                  .attempts: tuple of Attempt

Close codes (WebSocket) and HTTP statuses live in different attributes of
different classes. Messages never contain an API key, a token, a full
resumption handle, a setup payload or raw audio; server text is elided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

__all__ = [
    "Attempt",
    "AuthError",
    "ConnectError",
    "ConnectTimeout",
    "InvalidConfig",
    "InvalidState",
    "InvalidStatus",
    "LiveSyncError",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "ReconnectExhausted",
    "RestError",
    "RestTimeout",
    "SendQueueFull",
    "SessionClosed",
    "SessionClosedError",
    "SessionBusy",
    "SessionClosedOK",
    "SessionHandedOver",
    "SetupRejected",
    "TLSError",
]

MAX_REASON_IN_MESSAGE = 123


def _elide(text: str, limit: int = MAX_REASON_IN_MESSAGE) -> str:
    """Cut untrusted text for use in a message, so it stays readable and bounded."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Known server close reasons -> what the user can do about them (matched by substring).
HINTS: Tuple[Tuple[int, str, str], ...] = (
    (1011, "Session duration limit exceeded",
     "enable context_window_compression for sessions longer than 15 minutes "
     "(2 with video)"),
    (1011, "Internal error encountered",
     "if several processes share a handle store, another connection may still hold "
     "this session (see docs/handle-stores.md)"),
    (1008, "Requested entity was not found",
     "the resumption handle or the tool call id is unknown to the server"),
    (1007, "API key not valid", "check the API key"),
    (1008, "is not found for API version",
     "check the model name; preview Live models exist only on v1beta, the default "
     "api_version"),
    (1011, "Token has been used too many times",
     "the ephemeral token has no uses left (a resume may consume one): mint tokens "
     "with more uses, or pass a token_provider that mints a new one per dial"),
)


def hint_for(code: Optional[int], reason: str) -> str:
    """A short hint for a known server close (its reason contains a known text), or ""."""
    for known, prefix, hint in HINTS:
        if code == known and prefix in reason:
            return hint
    return ""


class LiveSyncError(Exception):
    """Root of every livesync exception."""


class InvalidConfig(LiveSyncError, ValueError):
    """An argument or configuration value is invalid.

    Raised synchronously, before anything is sent. ``field`` names the
    offending argument or configuration field when there is one.
    """

    def __init__(self, message: str, *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


class ConnectError(LiveSyncError):
    """A connection could not be established."""


class InvalidStatus(ConnectError):
    """The server refused the WebSocket upgrade with an HTTP status.

    ``body`` is an elided snippet of the response body (headers are never kept).
    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self, status_code: int, body: str = "", *, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = _elide(body)
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = "server rejected WebSocket connection: HTTP %d" % self.status_code
        return text + (": " + self.body if self.body else "")


class SetupRejected(ConnectError):
    """The server closed the connection before ``setupComplete``.

    ``code`` is the WebSocket close code (1006 when the connection was lost
    without a close frame) and ``reason`` the server's reason text.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        text = "setup rejected: %d" % self.code
        text += (" " + _elide(self.reason) if self.reason else "")
        hint = hint_for(self.code, self.reason)
        return text + (" (hint: %s)" % hint if hint else "")


class ConnectTimeout(ConnectError, TimeoutError):
    """Connecting, or waiting for ``setupComplete``, took longer than allowed."""


class TLSError(ConnectError):
    """TLS cannot be set up in a way that retrying would fix; never retried.

    The server's certificate failed verification (unknown CA or self-signed,
    hostname mismatch, expired, ...), or the configured CA bundle could not be
    loaded. ``reason`` says which, in a few words; ``verify_code`` is OpenSSL's
    ``X509_V_ERR_*`` code when verification failed.
    """

    def __init__(self, reason: str, *, verify_code: Optional[int] = None) -> None:
        super().__init__(reason, verify_code)
        self.reason = reason
        self.verify_code = verify_code

    def __str__(self) -> str:
        if self.verify_code is not None:
            return "certificate verification failed: %s" % _elide(self.reason)
        return "TLS setup failed: %s" % _elide(self.reason)


class SessionBusy(ConnectError):
    """Another connection holds the lease on this ``session_key``; nothing was dialed.

    Only one connection may hold a Live session at a time (the service refuses a
    resume while another connection is open). ``connect()`` raises this before
    dialing when a handle store with leases says another session holds the key.

    Attributes:
        session_key: the key that is held.
        waited: seconds ``connect(..., takeover=True)`` waited for the holder to
            hand over, or None when no hand-over was asked for.
    """

    def __init__(self, session_key: str, *, waited: Optional[float] = None) -> None:
        super().__init__(session_key, waited)
        self.session_key = session_key
        self.waited = waited

    def __str__(self) -> str:
        key = _elide(repr(self.session_key), 80)
        if self.waited is None:
            return ("session key %s is held by another connection; pass "
                    "connect(..., takeover=True) to ask it to hand the conversation over, "
                    "or close the other session" % key)
        return ("session key %s is still held by another connection after waiting %.1fs "
                "for a hand-over; the holder may be stuck (its lease expires if it stopped "
                "renewing), retry later or raise takeover_timeout" % (key, self.waited))


class ProtocolError(LiveSyncError):
    """The server sent data that is not a valid Live API message."""


class InvalidState(LiveSyncError, AssertionError):
    """The operation is not allowed in the current state."""


class SendQueueFull(LiveSyncError):
    """The outbound buffer is full and its policy forbids dropping this message."""


@dataclass(frozen=True)
class Attempt:
    """One reconnection attempt, as recorded in :class:`ReconnectExhausted`.

    Attributes:
        number: 1 for the first attempt after a connection was lost.
        delay: seconds waited before the attempt.
        code: close code that ended the attempt, when there was one.
        status_code: HTTP status that refused the upgrade, when there was one.
        error: a short description of what went wrong.
        reason: the close reason that came with ``code``.
        retry_after: the ``Retry-After`` the server sent with ``status_code``, in seconds.
    """

    number: int
    delay: float
    code: Optional[int] = None
    status_code: Optional[int] = None
    error: str = ""
    reason: str = ""
    retry_after: Optional[float] = None


class SessionClosed(LiveSyncError):
    """The session is closed; no more messages can be sent or received.

    ``code`` and ``reason`` describe the last close; ``__cause__`` holds the
    root cause when there is one.
    """

    def __init__(self, code: Optional[int] = None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        if self.code is None:
            return "session closed"
        text = "session closed: %d" % self.code
        text += (" " + _elide(self.reason) if self.reason else "")
        hint = hint_for(self.code, self.reason)
        return text + (" (hint: %s)" % hint if hint else "")


class SessionClosedOK(SessionClosed):
    """The session was closed by the user, or ended normally."""


class SessionHandedOver(SessionClosedOK):
    """Another connection asked for this session's ``session_key`` (``takeover=True``)
    and this session handed the conversation over: it saved its latest handle,
    closed its connection, released its lease and stopped.

    ``code`` is 1000 and ``reason`` ``"handed over"``. It is the ``error`` of the
    final :class:`~livesync.Closed` event, and sends (or ``ask()``) afterwards raise it.
    """

    def __init__(self, session_key: str = "") -> None:
        super().__init__(1000, "handed over")
        self.session_key = session_key

    def __str__(self) -> str:
        return "session closed: handed over session key %s to another connection" % (
            _elide(repr(self.session_key), 80))


class SessionClosedError(SessionClosed):
    """The session ended because of an error."""


class ReconnectExhausted(SessionClosedError):
    """Reconnection gave up: attempts or time budget used up, or a close storm."""

    def __init__(
        self,
        attempts: Tuple[Attempt, ...],
        code: Optional[int] = None,
        reason: str = "",
        *,
        why: str = "reconnect attempts exhausted",
    ) -> None:
        super().__init__(code, reason)
        self.attempts = attempts
        self.why = why

    def __str__(self) -> str:
        text = "%s after %d attempts" % (self.why, len(self.attempts))
        if self.code is not None:
            text += "; last close %d" % self.code
            if self.reason:
                text += " " + _elide(self.reason)
        return text


class ToolCallPending(LiveSyncError):
    """``ask()`` received a tool call that nothing is set up to answer.

    The model waits for a response: answer with ``Session.send_tool_response``
    (then call ``ask()`` again, or read the rest with ``receive()``), or pass
    ``ask(..., tools={name: function})``. ``calls`` holds the unanswered
    :class:`~livesync.FunctionCall` objects.
    """

    def __init__(self, calls: Tuple[Any, ...]) -> None:
        super().__init__(calls)
        self.calls = calls

    def __str__(self) -> str:
        names = ", ".join("%s (id %s)" % (getattr(c, "name", "?"), _elide(
            str(getattr(c, "id", None) or "-"), 40)) for c in self.calls)
        return ("the model called %s and nothing answers it: pass ask(..., tools={...}) "
                "or answer with send_tool_response()" % names)


class RestError(LiveSyncError):
    """A REST call (minting a token, looking up a model) failed.

    ``status_code`` is the HTTP status, or None when no response arrived (the
    connection failed or timed out). ``status`` is Google's error status
    (``"NOT_FOUND"``, ``"PERMISSION_DENIED"``, ...) when the body had one,
    ``message`` the server's message (elided), ``operation`` what was called
    (``"POST /v1alpha/auth_tokens"``) and ``retry_after`` the server's
    ``Retry-After`` in seconds. No field holds a key, a token or a header.
    """

    def __init__(
        self,
        status_code: Optional[int],
        message: str = "",
        *,
        status: str = "",
        operation: str = "",
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(status_code, message)
        self.status_code = status_code
        self.message = _elide(message, 300)
        self.status = status
        self.operation = operation
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = (self.operation + " failed") if self.operation else "REST call failed"
        if self.status_code is not None:
            text += ": HTTP %d" % self.status_code
            text += (" " + self.status) if self.status else ""
        return text + (": " + self.message if self.message else "")


class AuthError(RestError):
    """The server refused the credentials: HTTP 401 or 403, or 400 "API key not valid"."""


class NotFound(RestError):
    """HTTP 404: no such model (on this API version), or no such method."""


class RateLimited(RestError):
    """HTTP 429 after the retries: quota or rate limit (``retry_after`` when sent)."""


class RestTimeout(RestError, TimeoutError):
    """No answer within the timeout (per request) or the total time budget of the retries."""
