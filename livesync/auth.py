"""Credentials for the Live API: ephemeral tokens and ``token_provider`` callables.

* :func:`create_ephemeral_token` mints a short-lived token with the real API
  key (``POST /v1alpha/auth_tokens``, docs/protocol.md §2.1). Hand the token,
  never the key, to a less trusted process: ``Client(api_key=token.name)``.
* :class:`EphemeralTokenProvider` mints tokens as dials need them, for long
  sessions: ``Client(token_provider=EphemeralTokenProvider(key))``. By default
  every dial (the first, each rotation, each resume) gets a fresh one-use token,
  because a resume may consume a use on the real service (a resume with a
  ``uses=1`` token was closed with 1011 "Token has been used too many times",
  docs/protocol.md §6).
* :func:`google_auth_token_provider` turns a ``google-auth`` credential into a
  Vertex AI ``token_provider`` that refreshes it when it is not valid.

The request body of :func:`create_ephemeral_token` (camelCase, as google-genai
3.6.1 ``tokens.py`` builds it; times in RFC 3339 UTC)::

    POST {root}/v1alpha/auth_tokens      x-goog-api-key: <key>
    {"uses": 1,
     "expireTime": "2026-01-01T12:30:00Z",
     "newSessionExpireTime": "2026-01-01T12:01:00Z",
     "bidiGenerateContentSetup": {"model": "models/...", "generationConfig": {...}, ...},
     "fieldMask": "model,generationConfig.temperature"}

    200 {"name": "auth_tokens/...", "uses": 1, "expireTime": "...Z",
         "newSessionExpireTime": "...Z"}

Locking (``lock_additional_fields``), as the official SDK does it: None sends no
``fieldMask`` and the server locks everything in ``bidiGenerateContentSetup``;
a list sends a mask of the fields set in the constraints (two levels deep, e.g.
``generationConfig.temperature``) plus the listed ones (a bare generation field
such as ``"temperature"`` becomes ``generationConfig.temperature``; names are
sent in camelCase), and only those are locked.

``requests`` and ``google.auth`` are imported when first needed, so ``import
livesync`` imports neither.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import __version__
from ._config import coerce_config
from ._http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    TimeoutArg,
    call,
    check_rest_url,
    rest_options,
)
from ._messages import build_setup
from .client import (
    _CREDENTIAL_RE,
    GEMINI_REST_ROOT,
    TOKEN_PREFIX,
    _check_credential,
    _check_model,
)
from .exceptions import InvalidConfig, ProtocolError
from .types import LiveConfig, _GenerationFields, _safe_repr, _secret_hint

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = [
    "EphemeralToken",
    "EphemeralTokenProvider",
    "LiveConstraints",
    "create_ephemeral_token",
    "google_auth_token_provider",
]

REST_ROOT = GEMINI_REST_ROOT
TOKENS_PATH = "/v1alpha/auth_tokens"

# The service's defaults when a time is not sent (docs/protocol.md §2.1).
_DEFAULT_EXPIRE = datetime.timedelta(minutes=30)
_DEFAULT_NEW_SESSION_EXPIRE = datetime.timedelta(seconds=60)
_FIELD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
_GENERATION_NAMES = frozenset(f.name for f in dataclasses.fields(_GenerationFields))
_UPPER_RE = re.compile(r"(?<!^)(?=[A-Z])")
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})?"
)

TimeArg = Union[datetime.datetime, datetime.timedelta, None]
"""An aware ``datetime`` (any zone; sent in UTC), a ``timedelta`` from now, or None."""


@dataclasses.dataclass(frozen=True)
class LiveConstraints:
    """What an ephemeral token locks: the model and session configuration.

    ``config`` is a :class:`~livesync.LiveConfig` or a mapping (snake_case or
    camelCase), built into ``bidiGenerateContentSetup`` exactly as
    ``Client.connect`` builds ``setup``. A mapping ``{"model": ..., "config":
    ...}`` is accepted wherever a LiveConstraints is.
    """

    model: Optional[str] = None
    config: Union[LiveConfig, Mapping[str, Any], None] = None


@dataclasses.dataclass(frozen=True, repr=False)
class EphemeralToken:
    """A minted ephemeral token. Immutable; its repr masks the token.

    Attributes:
        name: the token itself, ``"auth_tokens/…"``: pass it as ``Client(api_key=...)``.
        expire_time: after it, sessions using the token are refused (aware, UTC).
        new_session_expire_time: after it, the token starts no new session (aware, UTC).
        uses: how many sessions it may start (0: unlimited).
    """

    name: str
    expire_time: datetime.datetime
    new_session_expire_time: datetime.datetime
    uses: int

    def __repr__(self) -> str:
        return _safe_repr(self, {"name": _secret_hint})

    __str__ = __repr__


def create_ephemeral_token(
    api_key: str,
    *,
    uses: int = 1,
    expire_time: TimeArg = None,
    new_session_expire_time: TimeArg = None,
    live_constraints: Union[LiveConstraints, Mapping[str, Any], None] = None,
    lock_additional_fields: Optional[Sequence[str]] = None,
    base_url: Optional[str] = None,
    timeout: TimeoutArg = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    total_timeout: Optional[float] = DEFAULT_TOTAL_TIMEOUT,
    session: Optional[requests.Session] = None,
) -> EphemeralToken:
    """Mint an ephemeral token for the Live API (``POST /v1alpha/auth_tokens``).

    Blocks the calling thread for at most about ``total_timeout`` seconds. Any
    thread. Not idempotent: each call mints a new token (a retried request may
    mint one the caller never sees, which is harmless).

    Args:
        api_key: the real Gemini API key (sent in the ``x-goog-api-key`` header only).
        uses: sessions the token may start; 0 for unlimited. The service's
            default is 1. Resuming may consume a use too (see the module docs).
        expire_time: when the token stops working for every session using it:
            an aware ``datetime`` or a ``timedelta`` from now. None: the
            service's default (30 minutes; at most 20 hours).
        new_session_expire_time: when the token stops starting new sessions
            (same forms). None: the service's default (60 seconds).
        live_constraints: a :class:`LiveConstraints` (or ``{"model", "config"}``
            mapping) locked into the token.
        lock_additional_fields: None locks every field of ``live_constraints``;
            a list locks only the fields set there plus these (see the module docs).
        base_url: the REST root, ``https://generativelanguage.googleapis.com``
            by default (``Emulator.rest_url`` for the emulator).
        timeout: per request, ``(connect, read)`` seconds or one number for both.
        retries: retries on 408/429/5xx and connection errors (0..20), with
            exponential backoff and jitter, honouring ``Retry-After``.
        total_timeout: bound on the whole call, waits included (None: no bound).
        session: a ``requests.Session`` to use (not closed); by default a new
            one per call (``requests`` sessions are not thread-safe).

    Returns:
        The token with its expiry times, as the server reports them.

    Raises:
        InvalidConfig: a bad argument (before any I/O); ``field`` names it.
        AuthError: the key was refused (401/403, or 400 "API key not valid").
        RateLimited: still 429 after the retries.
        RestTimeout: no answer within ``timeout``/``total_timeout``.
        RestError: any other failure (``status_code``, ``message``).
        ProtocolError: the answer has no token.
    """
    _check_key(api_key)
    body = token_request(
        uses=uses, expire_time=expire_time, new_session_expire_time=new_session_expire_time,
        live_constraints=live_constraints, lock_additional_fields=lock_additional_fields,
    )
    root = REST_ROOT if base_url is None else check_rest_url(base_url)
    options = rest_options(timeout, retries, total_timeout)
    _check_session(session)
    sent_at = _now()
    answer = call(
        "POST", root + TOKENS_PATH, "POST " + TOKENS_PATH,
        headers={
            "x-goog-api-key": api_key,
            "user-agent": _user_agent(),
            "x-goog-api-client": _user_agent(),
        },
        body=body, options=options, session=session, secret=api_key,
    )
    return _parse_token(answer, body, sent_at)


def token_request(
    *,
    uses: int = 1,
    expire_time: TimeArg = None,
    new_session_expire_time: TimeArg = None,
    live_constraints: Union[LiveConstraints, Mapping[str, Any], None] = None,
    lock_additional_fields: Optional[Sequence[str]] = None,
    now: Optional[datetime.datetime] = None,
) -> Dict[str, Any]:
    """The JSON body of ``POST /v1alpha/auth_tokens`` for these arguments. Pure; any thread.

    Raises:
        InvalidConfig: a bad argument; ``field`` names it.
    """
    value: object = uses
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise InvalidConfig("uses must be an int >= 0 (0: unlimited)", field="uses")
    now = now or _now()
    body: Dict[str, Any] = {"uses": int(uses)}
    for name, field, value in (
        ("expireTime", "expire_time", expire_time),
        ("newSessionExpireTime", "new_session_expire_time", new_session_expire_time),
    ):
        if value is not None:
            body[name] = rfc3339(_moment(value, field, now))
    setup = _constraints_setup(live_constraints)
    if setup:
        body["bidiGenerateContentSetup"] = setup
    mask = _field_mask(setup, lock_additional_fields)
    if mask:
        body["fieldMask"] = mask
    return body


class EphemeralTokenProvider:
    """A ``token_provider`` that mints ephemeral tokens before they are needed.

    ``Client(token_provider=EphemeralTokenProvider(api_key))``: the client calls
    it on every dial (first connect, goAway rotations, resumes). It hands out its
    current token while the token has uses left and at least ``refresh_margin``
    before both its ``newSessionExpireTime`` and its ``expireTime``; otherwise it
    mints a new one. With ``uses=1`` (the default) every dial gets a fresh token,
    which also covers a service that counts a resume as a use. A connection
    dialed with a token must end before the token's ``expireTime``: ``lifetime``
    (default 30 minutes) should exceed the longest connection (about 10 minutes
    on the Gemini API).

    Thread-safe: calls are serialized by a lock (the supervisor thread calls it;
    so may any other). Each call blocks for at most about ``total_timeout``
    when it has to mint, and returns at once otherwise. Not idempotent: it
    counts the times it handed out the current token.

    Args:
        api_key: the real Gemini API key (kept private; never in a repr).
        uses: uses per token; 0 for unlimited (then the token is reused until
            it gets within ``refresh_margin`` of a deadline).
        lifetime: ``expireTime`` of each token, from its minting (seconds or timedelta).
        new_session_lifetime: ``newSessionExpireTime`` of each token, from its minting.
        refresh_margin: mint a new token when less than this is left before a
            deadline (seconds or timedelta).
        live_constraints, lock_additional_fields, base_url, timeout, retries,
            total_timeout, session: as for :func:`create_ephemeral_token`.

    Raises:
        InvalidConfig: a bad argument (at construction, before any I/O).
    """

    def __init__(
        self,
        api_key: str,
        *,
        uses: int = 1,
        lifetime: Union[float, datetime.timedelta] = _DEFAULT_EXPIRE,
        new_session_lifetime: Union[float, datetime.timedelta] = _DEFAULT_NEW_SESSION_EXPIRE,
        refresh_margin: Union[float, datetime.timedelta] = 10.0,
        live_constraints: Union[LiveConstraints, Mapping[str, Any], None] = None,
        lock_additional_fields: Optional[Sequence[str]] = None,
        base_url: Optional[str] = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        total_timeout: Optional[float] = DEFAULT_TOTAL_TIMEOUT,
        session: Optional[requests.Session] = None,
    ) -> None:
        _check_key(api_key)
        self._lifetime = _duration(lifetime, "lifetime")
        self._new_session_lifetime = _duration(new_session_lifetime, "new_session_lifetime")
        margin = _duration(refresh_margin, "refresh_margin", allow_zero=True)
        if margin >= min(self._lifetime, self._new_session_lifetime):
            raise InvalidConfig(
                "refresh_margin must be shorter than lifetime and new_session_lifetime",
                field="refresh_margin",
            )
        self._margin = margin.total_seconds()
        # Validate everything now; each mint rebuilds the body with fresh times.
        token_request(uses=uses, live_constraints=live_constraints,
                      lock_additional_fields=lock_additional_fields)
        if base_url is not None:
            check_rest_url(base_url)
        rest_options(timeout, retries, total_timeout)
        _check_session(session)
        self._api_key = api_key
        self._uses = int(uses)
        self._create_args: Dict[str, Any] = dict(
            uses=uses, live_constraints=live_constraints,
            lock_additional_fields=lock_additional_fields, base_url=base_url,
            timeout=timeout, retries=retries, total_timeout=total_timeout, session=session,
        )
        self._lock = threading.Lock()
        self._token: Optional[EphemeralToken] = None
        self._handed_out = 0
        self._minted = 0

    def __call__(self) -> str:
        """Return a token for one dial, minting a new one when needed (see the class docs).

        Raises:
            RestError: minting failed (see :func:`create_ephemeral_token`); the
                session treats it as a failed dial and retries per its policy.
        """
        with self._lock:
            token = self._token
            if token is None or not self._usable(token, time.time()):
                token = create_ephemeral_token(
                    self._api_key,
                    expire_time=self._lifetime,
                    new_session_expire_time=self._new_session_lifetime,
                    **self._create_args,
                )
                self._token, self._handed_out = token, 0
                self._minted += 1
            self._handed_out += 1
            return token.name

    def _usable(self, token: EphemeralToken, now: float) -> bool:
        if token.uses and self._handed_out >= token.uses:
            return False
        deadline = min(token.expire_time, token.new_session_expire_time).timestamp()
        return now + self._margin < deadline

    @property
    def token(self) -> Optional[EphemeralToken]:
        """The current token (None before the first call). Any thread; never blocks."""
        with self._lock:
            return self._token

    @property
    def minted(self) -> int:
        """How many tokens this provider has minted. Any thread; never blocks."""
        with self._lock:
            return self._minted

    def __repr__(self) -> str:
        return "<livesync.auth.EphemeralTokenProvider uses=%d minted=%d token=%s>" % (
            self._uses, self._minted,
            _secret_hint(self._token.name) if self._token else "None",
        )


def google_auth_token_provider(credentials: Any, *, request: Any = None) -> Callable[[], str]:
    """Turn a ``google-auth`` credential into a Vertex AI ``token_provider``.

    ``Client(vertexai=True, project=..., location=...,
    token_provider=google_auth_token_provider(credentials))``: on every dial the
    provider refreshes the credential when it is not valid (no token yet, or
    expired or about to: google-auth's own test) and returns its access token.
    The scope Vertex needs is ``https://www.googleapis.com/auth/cloud-platform``,
    e.g. ``google.auth.default(scopes=[...])``.

    The returned callable is thread-safe (refreshes are serialized) and blocks
    for the duration of a refresh (google-auth's own timeouts), else returns
    at once.

    Args:
        credentials: a ``google.auth.credentials.Credentials`` (anything with
            ``token``, ``valid`` and ``refresh(request)``).
        request: a ``google.auth.transport.Request`` for refreshes; default a
            ``google.auth.transport.requests.Request()``, created once.

    Raises:
        ImportError: google-auth is missing and no ``request`` was given
            (``pip install 'livesync[vertex]'``).
        InvalidConfig: ``credentials`` has no ``refresh()`` method or ``token``.
    """
    if not callable(getattr(credentials, "refresh", None)) or not hasattr(credentials, "token"):
        raise InvalidConfig(
            "credentials must be a google-auth Credentials object (with token and "
            "refresh()), not %s" % type(credentials).__name__,
            field="credentials",
        )
    if request is None:
        request = _google_request()
    return _GoogleAuthProvider(credentials, request)


class _GoogleAuthProvider:
    """The callable :func:`google_auth_token_provider` returns."""

    def __init__(self, credentials: Any, request: Any) -> None:
        self._credentials = credentials
        self._request = request
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            credentials = self._credentials
            if not getattr(credentials, "valid", False) or not credentials.token:
                credentials.refresh(self._request)
            token = credentials.token
        if not isinstance(token, str) or not token:
            raise InvalidConfig("the credentials have no access token after a refresh",
                                field="credentials")
        return token

    def __repr__(self) -> str:
        return "<livesync.auth google_auth_token_provider(%s)>" % (
            type(self._credentials).__name__)


def _google_request() -> Any:
    try:
        from google.auth.transport.requests import Request
    except ImportError as exc:
        raise ImportError(
            "google_auth_token_provider needs google-auth: pip install 'livesync[vertex]'"
        ) from exc
    return Request()


# --- helpers -----------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _user_agent() -> str:
    import platform

    return "livesync/%s gl-python/%s" % (__version__, platform.python_version())


def _check_key(api_key: object) -> None:
    """A real API key: the Client's credential rule, and not a token (never echoed)."""
    _check_credential(api_key, "api_key")
    assert isinstance(api_key, str)
    if api_key.startswith(TOKEN_PREFIX):
        raise InvalidConfig(
            "api_key is an ephemeral token; tokens are minted with the real API key",
            field="api_key",
        )


def _check_session(session: object) -> None:
    if session is not None and not callable(getattr(session, "request", None)):
        raise InvalidConfig(
            "session must be a requests.Session, not %s" % type(session).__name__,
            field="session",
        )


def _duration(value: object, name: str, allow_zero: bool = False) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidConfig(
            "%s must be seconds or a timedelta, not %s" % (name, type(value).__name__),
            field=name,
        )
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidConfig("%s must be a positive duration" % name, field=name)
    return datetime.timedelta(seconds=seconds)


def _moment(value: object, name: str, now: datetime.datetime) -> datetime.datetime:
    """An aware datetime, or now + a timedelta, in UTC."""
    if isinstance(value, datetime.timedelta):
        if value.total_seconds() <= 0:
            raise InvalidConfig("%s must be a positive timedelta from now" % name, field=name)
        return now + value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidConfig(
                "%s must be timezone-aware (e.g. datetime.now(timezone.utc) + ...); a naive "
                "datetime is ambiguous" % name, field=name,
            )
        return value.astimezone(datetime.timezone.utc)
    raise InvalidConfig(
        "%s must be an aware datetime or a timedelta, not %s" % (name, type(value).__name__),
        field=name,
    )


def rfc3339(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with ``Z``; microseconds only when not zero."""
    moment = moment.astimezone(datetime.timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: object) -> Optional[datetime.datetime]:
    """An aware UTC datetime from an RFC 3339 string (any fraction digits); None if bad."""
    if not isinstance(text, str):
        return None
    match = _RFC3339_RE.fullmatch(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or "0"
    zone = match.group(8) or "Z"
    try:
        offset = datetime.timedelta(0)
        if zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = datetime.datetime(
            year, month, day, hour, minute, min(second, 59),
            int((fraction + "000000")[:6]), tzinfo=datetime.timezone(offset),
        )
    except ValueError:
        return None
    return moment.astimezone(datetime.timezone.utc)


def _constraints_setup(
    constraints: Union[LiveConstraints, Mapping[str, Any], None]
) -> Dict[str, Any]:
    """``bidiGenerateContentSetup`` for the constraints, built like ``connect``'s setup."""
    if constraints is None:
        return {}
    if isinstance(constraints, Mapping):
        unknown = set(constraints) - {"model", "config"}
        if unknown:
            raise InvalidConfig(
                "live_constraints takes the keys model and config, not %s"
                % ", ".join(sorted(map(str, unknown))), field="live_constraints",
            )
        constraints = LiveConstraints(constraints.get("model"), constraints.get("config"))
    if not isinstance(constraints, LiveConstraints):
        raise InvalidConfig(
            "live_constraints must be a LiveConstraints or a mapping, not %s"
            % type(constraints).__name__, field="live_constraints",
        )
    model = constraints.model
    if model is not None:
        _check_model(model)
        if not model.startswith(("models/", "tunedModels/")):
            model = "models/" + model
    try:
        config = coerce_config(constraints.config)
        setup = build_setup(model or "models/-", config, vertexai=False)
    except InvalidConfig as exc:
        raise InvalidConfig("live_constraints.config " + str(exc), field=exc.field) from None
    if model is None:
        del setup["model"]
    return setup


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field_mask(setup: Mapping[str, Any], extra: Optional[Sequence[str]]) -> str:
    """The ``fieldMask`` the official SDK sends (see the module docs); "" for none."""
    if extra is None:
        return ""
    if isinstance(extra, (str, bytes)) or not isinstance(extra, Sequence):
        raise InvalidConfig(
            "lock_additional_fields must be a list of field names, not %s"
            % type(extra).__name__, field="lock_additional_fields",
        )
    paths: List[str] = []
    for key, value in setup.items():
        if isinstance(value, Mapping) and value:
            paths.extend("%s.%s" % (key, sub) for sub in value)
        else:
            paths.append(key)
    for name in extra:
        if not isinstance(name, str) or not _FIELD_RE.fullmatch(name):
            raise InvalidConfig(
                "lock_additional_fields holds an invalid field name (letters, digits, _ "
                "and dots)", field="lock_additional_fields",
            )
        parts = name.split(".")
        if len(parts) == 1 and _UPPER_RE.sub("_", name).lower() in _GENERATION_NAMES:
            parts = ["generationConfig", name]
        path = ".".join(_camel(part) for part in parts)
        if path not in paths:
            paths.append(path)
    return ",".join(paths)


def _parse_token(answer: Mapping[str, Any], body: Mapping[str, Any],
                 sent_at: datetime.datetime) -> EphemeralToken:
    name = answer.get("name")
    if not isinstance(name, str) or not name.startswith(TOKEN_PREFIX) or not (
        _CREDENTIAL_RE.fullmatch(name)
    ):
        raise ProtocolError("the auth_tokens answer has no valid token name")
    expire = parse_rfc3339(answer.get("expireTime")) or parse_rfc3339(
        body.get("expireTime")) or sent_at + _DEFAULT_EXPIRE
    new_session = parse_rfc3339(answer.get("newSessionExpireTime")) or parse_rfc3339(
        body.get("newSessionExpireTime")) or sent_at + _DEFAULT_NEW_SESSION_EXPIRE
    uses = answer.get("uses", body.get("uses", 1))
    if isinstance(uses, str) and uses.isdigit():
        uses = int(uses)
    if isinstance(uses, bool) or not isinstance(uses, int):
        uses = int(body.get("uses", 1))
    return EphemeralToken(name=name, expire_time=expire, new_session_expire_time=new_session,
                          uses=uses)
