"""REST calls with ``requests``: timeouts, retries with backoff, typed errors, no secrets.

The one module that talks HTTP (token minting in :mod:`livesync.auth`, model
lookups in :mod:`livesync.models`). ``requests`` is imported inside
:func:`call`, so ``import livesync`` never imports it.

Rules (docs/protocol.md §2, DEPENDENCIES.md §3.5):

- every request has a ``(connect, read)`` timeout, clipped to what is left of
  the call's total time budget;
- 408, 429, 500, 502, 503, 504 and connection errors or timeouts are retried
  ``retries`` times with exponential backoff and jitter (0.5 s, 1 s, 2 s, ...,
  at most 8 s, each between half and all of that), or after the server's
  ``Retry-After`` when it sent one (at most 120 s); a wait that would end after the budget is
  not started and the last error is raised instead (POST is retried too: a
  duplicate token is harmless);
- redirects are not followed (the key would go to the redirect target);
- errors map to :class:`~livesync.exceptions.RestError` subclasses carrying
  the server's message. The key travels in the ``x-goog-api-key`` header
  only, never in a URL, a message or a log record, and is scrubbed from
  server text.

Runs on the calling thread and blocks for at most about ``total_timeout``
seconds; safe from any thread (one ``requests.Session`` per call unless the
caller injects one).
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import math
import numbers
import random
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Final, Mapping, Optional, Tuple, Type, Union
from urllib.parse import urlsplit

from .exceptions import (
    AuthError,
    InvalidConfig,
    NotFound,
    RateLimited,
    RestError,
    RestTimeout,
)

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = ["RestOptions", "TimeoutArg", "call", "check_rest_url", "rest_options"]

logger = logging.getLogger("livesync.rest")

TimeoutArg = Union[float, Tuple[float, float]]
"""A ``(connect, read)`` pair of seconds, or one number for both."""

DEFAULT_TIMEOUT: Final = (5.0, 30.0)
DEFAULT_RETRIES: Final = 4
DEFAULT_TOTAL_TIMEOUT: Final = 60.0
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
INITIAL_DELAY: Final = 0.5
MAX_DELAY: Final = 8.0
MAX_RETRY_AFTER: Final = 120.0
_MAX_RETRIES: Final = 20
_MAX_SECONDS: Final = threading.TIMEOUT_MAX
_URL_BAD_RE = re.compile(r"[\x00-\x20\x7f]")
_SECURE: Final = "[secure]"


@dataclasses.dataclass(frozen=True)
class RestOptions:
    """How REST calls are made, validated once (internal)."""

    connect_timeout: float = DEFAULT_TIMEOUT[0]
    read_timeout: float = DEFAULT_TIMEOUT[1]
    retries: int = DEFAULT_RETRIES
    total_timeout: Optional[float] = DEFAULT_TOTAL_TIMEOUT
    proxy: Optional[str] = dataclasses.field(default=None, repr=False)
    ca_certs: Optional[str] = None


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidConfig(
            "%s must be a number of seconds, not %s" % (name, type(value).__name__), field=name
        )
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= _MAX_SECONDS):
        raise InvalidConfig(
            "%s must be a finite, positive number of seconds, not %r" % (name, seconds),
            field=name,
        )
    return seconds


def rest_options(
    timeout: object = DEFAULT_TIMEOUT,
    retries: object = DEFAULT_RETRIES,
    total_timeout: object = DEFAULT_TOTAL_TIMEOUT,
    *,
    proxy: Optional[str] = None,
    ca_certs: Optional[str] = None,
) -> RestOptions:
    """Check the public timeout arguments and return them as one :class:`RestOptions`.

    Raises:
        InvalidConfig: ``timeout`` is not a positive number or a pair of them,
            ``retries`` not an int in 0..20, ``total_timeout`` not positive or None.
    """
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise InvalidConfig(
                "timeout must be seconds or a (connect, read) pair of seconds", field="timeout"
            )
        connect, read = _seconds(timeout[0], "timeout"), _seconds(timeout[1], "timeout")
    else:
        connect = read = _seconds(timeout, "timeout")
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral):
        raise InvalidConfig(
            "retries must be an int, not %s" % type(retries).__name__, field="retries"
        )
    if not 0 <= int(retries) <= _MAX_RETRIES:
        raise InvalidConfig(
            "retries must be between 0 and %d, not %d" % (_MAX_RETRIES, retries), field="retries"
        )
    total = None if total_timeout is None else _seconds(total_timeout, "total_timeout")
    return RestOptions(connect, read, int(retries), total, proxy, ca_certs)


def check_rest_url(url: object, name: str = "base_url") -> str:
    """An ``http(s)://host[:port][/path]`` root without query, fragment or userinfo.

    The URL is never echoed (it could hold a password). Returns it without a
    trailing slash.
    """
    if not isinstance(url, str):
        raise InvalidConfig("%s must be a string, not %s" % (name, type(url).__name__), field=name)
    if not url.startswith(("http://", "https://")):
        raise InvalidConfig(
            "%s must start with http:// or https:// (for the emulator: Emulator.rest_url)"
            % name, field=name,
        )
    if _URL_BAD_RE.search(url) or "?" in url or "#" in url:
        raise InvalidConfig(
            "%s must not contain spaces, control characters, a query or a fragment" % name,
            field=name,
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise InvalidConfig("%s is not a valid URL" % name, field=name) from None
    if not parts.hostname:
        raise InvalidConfig("%s must name a host" % name, field=name)
    if "@" in parts.netloc:
        raise InvalidConfig("%s must not contain user:password@" % name, field=name)
    return url.rstrip("/")


def backoff(attempt: int, rng: Optional[random.Random] = None) -> float:
    """Seconds to wait before retry ``attempt`` (0 for the first retry): jittered, capped."""
    bound = min(MAX_DELAY, INITIAL_DELAY * 2.0 ** attempt)
    return bound / 2 + (rng or random).uniform(0.0, bound / 2)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None or moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _scrub(text: str, secret: Optional[str]) -> str:
    if secret and secret in text:
        text = text.replace(secret, _SECURE)
    return text


def _error_class(status_code: int, status: str, message: str, reasons: Tuple[str, ...]
                 ) -> Type[RestError]:
    if status_code in (401, 403):
        return AuthError
    if status_code == 400 and (
        "API_KEY_INVALID" in reasons or message.startswith("API key not valid")
    ):
        return AuthError
    if status_code == 404:
        return NotFound
    if status_code == 429:
        return RateLimited
    return RestError


def error_from_response(response: requests.Response, operation: str,
                        secret: Optional[str]) -> RestError:
    """Map an HTTP error response to a typed :class:`RestError` (no header is kept)."""
    message = status = ""
    reasons: Tuple[str, ...] = ()
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        status = str(error.get("status") or "")
        details = error.get("details")
        if isinstance(details, list):
            reasons = tuple(str(d.get("reason")) for d in details if isinstance(d, dict))
    elif data is None:
        message = response.text[:300].strip()
    message = _scrub(message, secret)
    status = _scrub(status, secret)[:64]
    cls = _error_class(response.status_code, status, message, reasons)
    return cls(
        response.status_code, message, status=status, operation=operation,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def call(
    method: str,
    url: str,
    operation: str,
    *,
    headers: Mapping[str, str],
    options: RestOptions,
    body: Optional[Mapping[str, Any]] = None,
    params: Optional[Mapping[str, Any]] = None,
    session: Optional[requests.Session] = None,
    secret: Optional[str] = None,
) -> Dict[str, Any]:
    """Make one REST call with retries; return the JSON object of the 2xx answer.

    ``operation`` names the call in messages and logs (``"GET /v1beta/models/x"``);
    ``secret`` is scrubbed from any server text. Blocks the calling thread for at
    most about ``options.total_timeout`` seconds.

    Raises:
        RestError: a subclass for 401/403 (:class:`AuthError`), 404
            (:class:`NotFound`), 429 (:class:`RateLimited`) or a timeout
            (:class:`RestTimeout`); a plain RestError otherwise.
    """
    import requests

    own = session is None
    http = requests.Session() if session is None else session
    kwargs: Dict[str, Any] = {"allow_redirects": False}
    if options.proxy is not None:
        kwargs["proxies"] = {"http": options.proxy, "https": options.proxy}
    if options.ca_certs is not None:
        kwargs["verify"] = options.ca_certs
    deadline = (None if options.total_timeout is None
                else time.monotonic() + options.total_timeout)
    waiter = threading.Event()
    try:
        attempt = 0
        while True:
            error = _attempt(http, method, url, operation, headers, body, params, options,
                             deadline, kwargs, secret)
            if isinstance(error, dict):
                return error
            retryable = error.status_code is None or error.status_code in RETRY_STATUSES
            if not retryable or attempt >= options.retries:
                raise error
            delay = backoff(attempt)
            if error.retry_after is not None:
                delay = min(error.retry_after, MAX_RETRY_AFTER)
            if deadline is not None and time.monotonic() + delay >= deadline:
                logger.debug("%s: %s; no time left for a retry", operation, error)
                raise error
            attempt += 1
            logger.debug("%s: %s; retry %d of %d in %.2f s",
                         operation, error, attempt, options.retries, delay)
            waiter.wait(delay)
    finally:
        if own:
            http.close()


def _attempt(
    http: requests.Session,
    method: str,
    url: str,
    operation: str,
    headers: Mapping[str, str],
    body: Optional[Mapping[str, Any]],
    params: Optional[Mapping[str, Any]],
    options: RestOptions,
    deadline: Optional[float],
    kwargs: Dict[str, Any],
    secret: Optional[str],
) -> Union[Dict[str, Any], RestError]:
    """One request: the JSON object of a 2xx answer, or the error (raised if not retryable)."""
    import requests

    connect, read = options.connect_timeout, options.read_timeout
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            return RestTimeout(None, "no answer within total_timeout", operation=operation)
        connect, read = min(connect, left), min(read, left)
    try:
        response = http.request(method, url, headers=dict(headers), json=body, params=params,
                                timeout=(connect, read), **kwargs)
    except requests.Timeout as exc:
        # The cause names host, port and path, never a header: kept for debugging.
        error: RestError = RestTimeout(None, "no answer in time (%s)" % type(exc).__name__,
                                       operation=operation)
        error.__cause__ = exc
        return error
    except requests.ConnectionError as exc:
        error = RestError(None, "connection failed (%s)" % type(exc).__name__,
                          operation=operation)
        error.__cause__ = exc
        return error
    except requests.RequestException as exc:
        raise RestError(None, "request failed (%s)" % type(exc).__name__,
                        operation=operation) from None
    with response:
        if 200 <= response.status_code < 300:
            try:
                data = response.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise RestError(response.status_code, "the answer is not a JSON object",
                                operation=operation)
            return data
        if 300 <= response.status_code < 400:
            raise RestError(response.status_code, "redirects are not followed",
                            operation=operation)
        return error_from_response(response, operation, secret)
