"""The :class:`Client`: endpoints, credentials and ``connect()``.

Which endpoint and header a dial uses (PROTOCOL.md §1):

- Gemini API key → ``…v1beta.GenerativeService.BidiGenerateContent`` with
  ``x-goog-api-key`` (never in the URL);
- ephemeral token (``auth_tokens/…``) →
  ``…v1alpha.GenerativeService.BidiGenerateContentConstrained`` with ``Authorization: Token …``;
- Vertex → ``{location}-aiplatform…/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/…``
  with ``Authorization: Bearer …`` from ``token_provider``, called on every dial.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from . import __version__
from ._codec import build_setup, coerce_config
from ._dispatch import Callbacks
from ._transport import TransportOptions
from .events import Closed, ErrorEvent, Opened, Reconnected
from .exceptions import InvalidConfig
from .reconnect import ReconnectPolicy
from .session import Dialer, Session
from .store import HandleStore
from .types import GoAway, LiveConfig, LiveServerMessage, SessionResumptionUpdate

__all__ = ["Client"]

GEMINI_HOST = "wss://generativelanguage.googleapis.com"
GEMINI_PATH = "/ws/google.ai.generativelanguage.%s.GenerativeService.%s"
VERTEX_PATH = "/ws/google.cloud.aiplatform.%s.LlmBidiService/BidiGenerateContent"
TOKEN_PREFIX = "auth_tokens/"
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$")
_LOCATION_RE = re.compile(r"^[a-z0-9\-]+$")

_DEFAULT_POLICY = ReconnectPolicy()


class Client:
    """Entry point: holds credentials and endpoint settings; makes sessions.

    Args:
        api_key: Gemini API key, or an ephemeral token ``auth_tokens/…``. When None
            (and no ``token_provider``), ``GEMINI_API_KEY`` then ``GOOGLE_API_KEY``.
        base_url: override the service root, e.g. ``ws://127.0.0.1:8765`` for the
            emulator or a proxy. The ``/ws/…`` path is appended.
        api_version: ``v1beta`` (Gemini API), ``v1beta1`` (Vertex) by default.
            Ephemeral tokens always use ``v1alpha``.
        vertexai: use Vertex AI; needs ``project`` and ``location`` and a
            ``token_provider`` returning an OAuth access token (or an ``api_key``
            for express mode).
        token_provider: a callable returning a fresh credential, called on every
            dial (Vertex bearer tokens; re-minted ephemeral tokens).
        headers: extra headers for the upgrade request.
        ca_certs: CA bundle path for TLS (default: the system store).
        proxy: ``"http://host:port"``; None honours ``https_proxy``/``no_proxy``.

    A Client is cheap and thread-safe; ``connect()`` may be called from any thread.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        api_version: Optional[str] = None,
        vertexai: bool = False,
        project: Optional[str] = None,
        location: Optional[str] = None,
        token_provider: Optional[Callable[[], str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        ca_certs: Optional[str] = None,
        proxy: Optional[str] = None,
    ) -> None:
        if api_key is None and token_provider is None:
            api_key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise InvalidConfig("api_key must be a non-empty string", field="api_key")
        if token_provider is not None and not callable(token_provider):
            raise InvalidConfig("token_provider must be callable", field="token_provider")
        if vertexai:
            _check_vertex(project, location, api_key, token_provider)
        elif api_key is None and token_provider is None:
            raise InvalidConfig(
                "no API key: pass api_key or set GEMINI_API_KEY", field="api_key"
            )
        if base_url is not None and not re.match(r"^wss?://[^/?#\s]+", base_url):
            raise InvalidConfig("base_url must start with ws:// or wss://", field="base_url")
        self._api_key = api_key
        self._token_provider = token_provider
        self._vertexai = vertexai
        self._project = project
        self._location = location
        self._api_version = api_version
        self._base_url = base_url.rstrip("/") if base_url else None
        self._headers = dict(headers or {})
        self._transport_options = TransportOptions(ca_certs=ca_certs, proxy=proxy)

    def __repr__(self) -> str:
        backend = "vertex" if self._vertexai else "gemini"
        return "<livesync.Client backend=%s base_url=%s>" % (backend, self._base_url or "default")

    @property
    def vertexai(self) -> bool:
        """Whether this client talks to Vertex AI."""
        return self._vertexai

    def model_name(self, model: str) -> str:
        """The ``setup.model`` string for ``model`` on this client's backend.

        Raises:
            InvalidConfig: the name is empty or contains ``..``, ``?``, ``&`` or spaces.
        """
        if not isinstance(model, str) or not model or ".." in model or not _MODEL_RE.match(model):
            raise InvalidConfig("invalid model name %r" % (model,)[:80], field="model")
        if not self._vertexai:
            if model.startswith(("models/", "tunedModels/")):
                return model
            return "models/" + model
        if model.startswith(("projects/", "models/")):
            return model
        if not model.startswith("publishers/"):
            publisher, _, name = model.rpartition("/")
            model = "publishers/%s/models/%s" % (publisher or "google", name)
        if self._project and self._location:
            return "projects/%s/locations/%s/%s" % (self._project, self._location, model)
        return model

    def endpoint(self, credential: Optional[str]) -> Tuple[str, Dict[str, str]]:
        """The URL and headers of one dial with ``credential`` (no secret in the URL)."""
        headers = {
            "user-agent": _user_agent(),
            "x-goog-api-client": _user_agent(),
        }
        if self._vertexai:
            version = self._api_version or "v1beta1"
            root = self._base_url or "wss://" + _vertex_host(self._location)
            url = root + VERTEX_PATH % version
            if self._project and credential is not None:
                headers["authorization"] = "Bearer " + credential
            elif credential is not None:
                headers["x-goog-api-key"] = credential
        elif credential is not None and credential.startswith(TOKEN_PREFIX):
            url = (self._base_url or GEMINI_HOST) + GEMINI_PATH % (
                "v1alpha", "BidiGenerateContentConstrained"
            )
            headers["authorization"] = "Token " + credential
        else:
            version = self._api_version or "v1beta"
            url = (self._base_url or GEMINI_HOST) + GEMINI_PATH % (version, "BidiGenerateContent")
            if credential is not None:
                headers["x-goog-api-key"] = credential
        headers.update(self._headers)
        return url, headers

    def credential(self) -> Optional[str]:
        """Return the credential for a dial (calls ``token_provider`` when set)."""
        if self._token_provider is None:
            return self._api_key
        token = self._token_provider()
        if not isinstance(token, str) or not token:
            raise InvalidConfig("token_provider returned no token", field="token_provider")
        return token

    def connect(
        self,
        model: str,
        *,
        config: Union[LiveConfig, Mapping[str, Any], None] = None,
        # Callbacks: each takes one argument and runs on the dispatcher thread.
        on_message: Optional[Callable[[LiveServerMessage], Any]] = None,
        on_goaway: Optional[Callable[[GoAway], Any]] = None,
        on_resumption_update: Optional[Callable[[SessionResumptionUpdate], Any]] = None,
        on_close: Optional[Callable[[Closed], Any]] = None,
        on_open: Optional[Callable[[Opened], Any]] = None,
        on_reconnect: Optional[Callable[[Reconnected], Any]] = None,
        on_error: Optional[Callable[[ErrorEvent], Any]] = None,
        fail_fast: bool = False,
        # Session maintenance.
        reconnect: Union[ReconnectPolicy, bool] = True,
        resumption_handle: Optional[str] = None,
        handle_store: Optional[HandleStore] = None,
        session_key: Optional[str] = None,
        # Timeouts and keepalive, in seconds.
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        write_timeout: float = 10.0,
        ping_interval: Optional[float] = 30.0,
        ping_timeout: Optional[float] = 60.0,
        # Buffers.
        max_buffered_media: int = 2_000_000,
        max_buffered_messages: int = 1_000,
        max_receive_queue: int = 10_000,
        # Logging.
        logger: Optional[Union[logging.Logger, logging.LoggerAdapter[Any]]] = None,
    ) -> Session:
        """Open a session; return once the server's first ``setupComplete`` arrived.

        Blocks the calling thread for at most about ``open_timeout`` seconds. Any
        thread. Arguments are checked before any network I/O.

        Args:
            model: e.g. ``"gemini-live-2.5-flash-preview"``.
            config: a :class:`LiveConfig`, or a mapping in snake_case or camelCase.
            on_message: every server message, in order.
            on_goaway: the ``goAway`` payload (rotation is automatic).
            on_resumption_update: every ``sessionResumptionUpdate`` payload.
            on_close: a :class:`Closed`, exactly once per session, last.
            on_open: an :class:`Opened`, once, first.
            on_reconnect: a :class:`Reconnected` for each connection change.
            on_error: an :class:`ErrorEvent` for callback exceptions and bad frames.
            fail_fast: end the session on the first callback exception.
            reconnect: a :class:`ReconnectPolicy`; True for the default; False to end
                the session when its connection ends.
            resumption_handle: resume an earlier session.
            handle_store: persist handles under ``session_key`` (see :mod:`livesync.store`);
                a stored handle is used when ``resumption_handle`` is None.
            session_key: the key in ``handle_store``; required with it.
            open_timeout: bound on dial + setup of each connection.
            close_timeout: bound on ``close()``.
            write_timeout: bound on one socket write; a stuck write drops the connection.
            ping_interval: seconds between client pings; None disables keepalive.
            ping_timeout: a connection silent this long after a ping is dead.
            max_buffered_media: bytes of audio/video kept for replay; older is dropped.
            max_buffered_messages: other messages kept for replay before sends fail.
            max_receive_queue: messages kept for ``receive()``; older ones are dropped
                (logged and counted) when nobody reads them. Without ``on_message``
                they are kept from the start, otherwise from the first ``receive()``.
            logger: a logger or adapter (default ``livesync.session``).

        Raises:
            InvalidConfig: a bad argument (before any I/O).
            InvalidStatus: the upgrade was refused (e.g. 401, 404, 429).
            SetupRejected: the server closed before ``setupComplete`` (code, reason).
            ConnectTimeout: no ``setupComplete`` within ``open_timeout``.
        """
        model_name = self.model_name(model)
        live_config = coerce_config(config)
        setup = build_setup(model_name, live_config, vertexai=self._vertexai)
        transparent = _transparent(setup, self._vertexai)
        if resumption_handle is None:
            resumption_handle = (setup.get("sessionResumption") or {}).get("handle")
        setup.pop("sessionResumption", None)
        policy = _policy(reconnect)
        _check_timeouts(open_timeout, close_timeout, write_timeout, ping_interval, ping_timeout)
        if handle_store is not None and not session_key:
            raise InvalidConfig("session_key is required with handle_store", field="session_key")
        if resumption_handle is not None and not isinstance(resumption_handle, str):
            raise InvalidConfig("resumption_handle must be a string", field="resumption_handle")
        dialer = Dialer(
            endpoint=self.endpoint,
            credential=self.credential,
            options=TransportOptions(
                ca_certs=self._transport_options.ca_certs,
                proxy=self._transport_options.proxy,
                write_timeout=write_timeout,
            ),
        )
        callbacks = Callbacks(
            on_message=on_message, on_goaway=on_goaway,
            on_resumption_update=on_resumption_update, on_close=on_close, on_open=on_open,
            on_reconnect=on_reconnect, on_error=on_error,
        )
        session = Session(
            dialer=dialer, setup=setup, vertexai=self._vertexai, callbacks=callbacks,
            policy=policy,
            transparent=transparent, resumption_handle=resumption_handle,
            handle_store=handle_store, session_key=session_key,
            open_timeout=open_timeout, close_timeout=close_timeout,
            ping_interval=ping_interval, ping_timeout=ping_timeout, fail_fast=fail_fast,
            max_buffered_media=max_buffered_media, max_buffered_messages=max_buffered_messages,
            max_receive_queue=max_receive_queue, logger=logger,
        )
        session._start()
        return session


def _policy(reconnect: Union[ReconnectPolicy, bool]) -> Optional[ReconnectPolicy]:
    if reconnect is True:
        return _DEFAULT_POLICY
    if reconnect is False:
        return None
    if isinstance(reconnect, ReconnectPolicy):
        return reconnect
    raise InvalidConfig("reconnect must be a ReconnectPolicy or a bool", field="reconnect")


def _transparent(setup: Mapping[str, Any], vertexai: bool) -> bool:
    """Transparent resumption: Vertex only, on by default there."""
    if not vertexai:
        return False
    value = (setup.get("sessionResumption") or {}).get("transparent")
    return True if value is None else bool(value)


def _check_timeouts(*values: Optional[float]) -> None:
    names = ("open_timeout", "close_timeout", "write_timeout", "ping_interval", "ping_timeout")
    for name, value in zip(names, values):
        if value is None and name.startswith("ping"):
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise InvalidConfig("%s must be a positive number of seconds" % name, field=name)


def _check_vertex(
    project: Optional[str],
    location: Optional[str],
    api_key: Optional[str],
    token_provider: Optional[Callable[[], str]],
) -> None:
    if project is not None and not location:
        raise InvalidConfig("vertexai with a project needs a location", field="location")
    if location is not None and not _LOCATION_RE.match(location):
        raise InvalidConfig("invalid location %r" % (location,)[:60], field="location")
    if project is not None and token_provider is None:
        raise InvalidConfig(
            "vertexai with a project needs a token_provider returning an access token",
            field="token_provider",
        )
    if project is None and api_key is None and token_provider is None:
        raise InvalidConfig(
            "vertexai needs project and location, or an api_key (express mode)",
            field="project",
        )


def _vertex_host(location: Optional[str]) -> str:
    if not location or location == "global":
        return "aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return "aiplatform.%s.rep.googleapis.com" % location
    return "%s-aiplatform.googleapis.com" % location


def _user_agent() -> str:
    return "livesync/%s gl-python/%s" % (__version__, platform.python_version())
