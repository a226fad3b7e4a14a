"""The :class:`Client`: endpoints, credentials and ``connect()``.

Which endpoint and header a dial uses (docs/protocol.md §2):

- Gemini API key → ``…v1beta.GenerativeService.BidiGenerateContent`` with
  ``x-goog-api-key`` (never in the URL);
- ephemeral token (``auth_tokens/…``) →
  ``…v1alpha.GenerativeService.BidiGenerateContentConstrained`` with ``Authorization: Token …``;
- Vertex → ``{location}-aiplatform…/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/…``
  with ``Authorization: Bearer …`` from ``token_provider``, called on every dial.

Model lookups (``get_model``, ``list_models``, ``connect(validate_model=True)``)
are REST ``GET {root}/{api_version}/models[/{name}]`` calls with the API key
(Gemini API only), made through :mod:`livesync._http`.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import platform
import re
import threading
import weakref
from typing import Any, Callable, Dict, Final, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

from . import __version__
from ._config import coerce_config
from ._dispatch import Callbacks
from ._driver import Dialer, SessionOptions
from ._http import DEFAULT_TIMEOUT, RestOptions, TimeoutArg, call, rest_options
from ._messages import build_setup, encode
from ._transport import TransportOptions
from .events import Closed, ErrorEvent, Opened, Reconnected
from .exceptions import InvalidConfig, NotFound
from .models import ModelInfo
from .reconnect import ReconnectPolicy
from .session import Session, open_session
from .store import HandleStore, LeaseStore
from .types import GoAway, LiveConfig, LiveServerMessage, SessionResumptionUpdate

__all__ = ["Client"]

GEMINI_HOST = "wss://generativelanguage.googleapis.com"
GEMINI_REST_ROOT = "https://generativelanguage.googleapis.com"
GEMINI_PATH = "/ws/google.ai.generativelanguage.%s.GenerativeService.%s"
VERTEX_PATH = "/ws/google.cloud.aiplatform.%s.LlmBidiService/BidiGenerateContent"
TOKEN_PREFIX = "auth_tokens/"
# Names are checked for their first character outside these sets (and for ``..``).
_MODEL_CHAR_RE = re.compile(r"[^A-Za-z0-9._/\-]")
_MAX_MODEL_CHARS: Final = 1024
_LOCATION_CHAR_RE = re.compile(r"[^a-z0-9\-]")
_PROJECT_CHAR_RE = re.compile(r"[^A-Za-z0-9.:_\-]")
_API_VERSION_CHAR_RE = re.compile(r"[^A-Za-z0-9]")
# RFC 9110 field names (tokens), and values without CR, LF or other controls but HTAB.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Keys and tokens are visible ASCII: no spaces, controls or line breaks.
_CREDENTIAL_RE = re.compile(r"[\x21-\x7e]+")
_URL_BAD_RE = re.compile(r"[\x00-\x20\x7f]")
_PROXY_SCHEMES: Final = ("http", "socks4", "socks4a", "socks5", "socks5h")
_PREVIEW_CHARS: Final = 40
_MAX_SECONDS: Final = threading.TIMEOUT_MAX
_CALLBACKS: Final = (
    "on_message", "on_goaway", "on_resumption_update", "on_close", "on_open",
    "on_reconnect", "on_error",
)

_DEFAULT_POLICY = ReconnectPolicy()


class Client:
    """Entry point: holds credentials and endpoint settings; makes sessions.

    Args:
        api_key: Gemini API key, or an ephemeral token ``auth_tokens/…``. When None
            (and no ``token_provider``), ``GEMINI_API_KEY`` then ``GOOGLE_API_KEY``.
        base_url: override the service root, e.g. ``ws://127.0.0.1:8765`` for the
            emulator or a proxy. The ``/ws/…`` path is appended. No query or
            fragment; userinfo (``user:password@``) is not sent (the WebSocket
            library ignores it) and is masked in the repr.
            REST calls (:meth:`get_model`, :meth:`list_models`) go to the same
            host, port and path with ``http://`` for ``ws://`` and ``https://``
            for ``wss://`` (the emulator answers model GETs on its WebSocket port).
        api_version: the API version in the endpoint path (letters and digits).
            Gemini API: ``v1beta`` by default (preview Live models exist only
            there), ``v1`` (google-genai 3.x's default; stable models only) or
            ``v1alpha``. Vertex: ``v1beta1`` by default, or ``v1``. Ephemeral
            tokens (``auth_tokens/…``) always use ``v1alpha``, the only version
            that serves them. Other names are sent as given (future versions).
        vertexai: use Vertex AI; needs ``project`` and ``location`` and a
            ``token_provider`` returning an OAuth access token (or an ``api_key``
            for express mode).
        token_provider: a callable returning a fresh credential, called on every
            dial (Vertex bearer tokens; re-minted ephemeral tokens).
        headers: extra headers for the upgrade request: names are HTTP tokens,
            values strings without line breaks.
        ca_certs: path of a CA bundle file for TLS (default: the system store).
        proxy: ``"http://host:port"`` (or ``socks5://``, ``socks5h://``,
            ``socks4://``, ``socks4a://``); None honours ``https_proxy``/``no_proxy``.

    Raises:
        InvalidConfig: a bad argument; ``field`` names it. The message never
            contains a key, a token, a header value or a URL.

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
        ca_certs: Union[str, os.PathLike[str], None] = None,
        proxy: Optional[str] = None,
    ) -> None:
        # Every argument is checked here, before anything is stored or sent;
        # secrets (key, URL userinfo, proxy, header values) are never echoed.
        if token_provider is not None and not callable(token_provider):
            raise InvalidConfig(
                "token_provider must be callable, not %s" % _type_name(token_provider),
                field="token_provider",
            )
        source = "api_key"
        if api_key is None and token_provider is None:
            for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
                if os.environ.get(name):
                    api_key, source = os.environ[name], name
                    break
        if api_key is not None:
            _check_credential(api_key, source)
        if not isinstance(vertexai, bool):
            raise InvalidConfig(
                "vertexai must be a bool, not %s" % _type_name(vertexai), field="vertexai"
            )
        project = _check_name(project, "project", _PROJECT_CHAR_RE, 128)
        location = _check_name(location, "location", _LOCATION_CHAR_RE, 63)
        api_version = _check_name(api_version, "api_version", _API_VERSION_CHAR_RE, 32)
        if vertexai:
            _check_vertex(project, location, api_key, token_provider)
        elif api_key is None and token_provider is None:
            raise InvalidConfig(
                "no API key: pass api_key or set GEMINI_API_KEY", field="api_key"
            )
        self._api_key = api_key
        self._token_provider = token_provider
        self._vertexai = vertexai
        self._project = project
        self._location = location
        self._api_version = api_version
        self._base_url, self._shown_base_url = _check_base_url(base_url)
        self._headers = _check_headers(headers)
        self._transport_options = TransportOptions(
            ca_certs=_check_ca_certs(ca_certs), proxy=_check_proxy(proxy)
        )
        self._sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def sessions(self) -> List[Session]:
        """The sessions this client opened that are not closed yet. Any thread.

        In a notebook, ``for s in client.sessions: s.close()`` (or ``client.close()``)
        ends the sessions of earlier runs of a cell.
        """
        return [s for s in list(self._sessions) if not s.closed]

    def close(self) -> None:
        """Close every session this client opened (each within its ``close_timeout``).

        Idempotent; the client stays usable for new sessions. Any thread.
        """
        for session in self.sessions:
            session.close()

    def __repr__(self) -> str:
        backend = "vertex" if self._vertexai else "gemini"
        return "<livesync.Client backend=%s base_url=%s>" % (
            backend, self._shown_base_url or "default"
        )

    @property
    def vertexai(self) -> bool:
        """Whether this client talks to Vertex AI."""
        return self._vertexai

    def model_name(self, model: str) -> str:
        """The ``setup.model`` string for ``model`` on this client's backend.

        Raises:
            InvalidConfig: the name is not a string, is empty or too long, does not
                start with a letter or digit, or contains ``..`` or a character other
                than letters, digits, ``.``, ``_``, ``-`` and ``/``. The message shows
                at most the 40 characters before the first bad one.
        """
        _check_model(model)
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
        """Return the credential for a dial (calls ``token_provider`` when set).

        Raises:
            InvalidConfig: the provider returned something other than a non-empty
                string of visible ASCII characters (the value is not shown).
        """
        if self._token_provider is None:
            return self._api_key
        token = self._token_provider()
        if not isinstance(token, str) or not token:
            raise InvalidConfig("token_provider returned no token", field="token_provider")
        if not _CREDENTIAL_RE.fullmatch(token):
            raise InvalidConfig(
                "token_provider returned a token with spaces, control or non-ASCII characters",
                field="token_provider",
            )
        return token

    def get_model(self, model: str, *, timeout: TimeoutArg = DEFAULT_TIMEOUT) -> ModelInfo:
        """Look a model up over REST: ``GET {root}/{api_version}/models/{model}``.

        The REST root is derived from ``base_url`` (``ws://`` → ``http://``,
        ``wss://`` → ``https://``, same host, port and path; by default
        ``https://generativelanguage.googleapis.com``); the API version is the
        client's (``v1beta`` by default). The key goes in ``x-goog-api-key``;
        ``proxy``, ``ca_certs`` and ``headers`` apply. Retries 408/429/5xx and
        connection errors with backoff (at most 4 retries in 60 s).

        Blocks the calling thread (any thread) for one request, or a few with
        retries; idempotent.

        Args:
            model: ``"gemini-live-2.5-flash"`` or ``"models/gemini-live-2.5-flash"``.
            timeout: per request, ``(connect, read)`` seconds or one number for both.

        Raises:
            InvalidConfig: a bad name or timeout; a Vertex client (not supported);
                no API key (ephemeral tokens work only for Live connections,
                a ``token_provider`` is not used for REST: pass ``api_key`` too).
            NotFound: no such model on this API version.
            AuthError: the key was refused.
            RestError: any other failure (``RestTimeout``, ``RateLimited``, ...).
        """
        return self._get_model(self.model_name(model), rest_options(timeout))

    def list_models(
        self, *, page_size: int = 50, timeout: TimeoutArg = DEFAULT_TIMEOUT
    ) -> List[ModelInfo]:
        """List the models of this client's API version over REST, every page.

        ``GET {root}/{api_version}/models?pageSize=N[&pageToken=T]`` until the
        answer has no ``nextPageToken`` (see :meth:`get_model` for the root, the
        key and the retries). Live models are those with ``supports_live``.
        Blocks the calling thread (any thread) for one request per page;
        idempotent.

        Args:
            page_size: models per page (1..1000).
            timeout: per request, ``(connect, read)`` seconds or one number for both.

        Raises:
            InvalidConfig, AuthError, RestError: as for :meth:`get_model`.
        """
        if (isinstance(page_size, bool) or not isinstance(page_size, int)
                or not 1 <= page_size <= 1000):
            raise InvalidConfig("page_size must be an int between 1 and 1000",
                                field="page_size")
        options = rest_options(timeout)
        root, key, headers = self._rest_target()
        path = "/%s/models" % (self._api_version or "v1beta")
        models: List[ModelInfo] = []
        token, seen = "", set()
        while True:
            params: Dict[str, Any] = {"pageSize": page_size}
            if token:
                params["pageToken"] = token
            data = call("GET", root + path, "GET " + path, headers=headers,
                        options=self._rest_options(options), params=params, secret=key)
            page = data.get("models")
            for item in page if isinstance(page, list) else ():
                if isinstance(item, dict):
                    models.append(ModelInfo.from_json(item))
            token = data.get("nextPageToken") or ""
            if not isinstance(token, str) or not token or token in seen:
                return models
            seen.add(token)

    def _get_model(self, name: str, options: RestOptions) -> ModelInfo:
        root, key, headers = self._rest_target()
        path = "/%s/%s" % (self._api_version or "v1beta", name)
        data = call("GET", root + path, "GET " + path, headers=headers,
                    options=self._rest_options(options), secret=key)
        return ModelInfo.from_json(data)

    def _rest_options(self, options: RestOptions) -> RestOptions:
        return rest_options(
            (options.connect_timeout, options.read_timeout), options.retries,
            options.total_timeout, proxy=self._transport_options.proxy,
            ca_certs=self._transport_options.ca_certs,
        )

    def _rest_target(self) -> Tuple[str, str, Dict[str, str]]:
        """The REST root, the API key and the headers of a REST call (see get_model)."""
        if self._vertexai:
            raise InvalidConfig(
                "model lookups (get_model, list_models, validate_model) are not supported "
                "on Vertex AI", field="vertexai",
            )
        key = self._api_key
        if key is None or key.startswith(TOKEN_PREFIX):
            raise InvalidConfig(
                "model lookups need an API key: ephemeral tokens work only for Live "
                "connections, and a token_provider is not used for REST (pass api_key too)",
                field="api_key",
            )
        if self._base_url is None:
            root = GEMINI_REST_ROOT
        else:
            root = ("https" if self._base_url.startswith("wss:") else "http") + (
                self._base_url[self._base_url.index(":"):])
        headers = {"user-agent": _user_agent(), "x-goog-api-client": _user_agent(),
                   "x-goog-api-key": key}
        headers.update(self._headers)
        return root, key, headers

    def _validate_model(self, name: str, timeout: float) -> None:
        """``connect(validate_model=True)``: the model exists here and speaks Live."""
        version = self._api_version or "v1beta"
        try:
            info = self._get_model(name, rest_options(timeout, total_timeout=timeout))
        except NotFound as exc:
            raise NotFound(
                exc.status_code, "model %s was not found on API version %s (%s)"
                % (name, version, exc.message or "no message"),
                status=exc.status, operation=exc.operation,
            ) from exc
        if not info.supports_live:
            raise InvalidConfig(
                "model %s does not support the Live API on %s: bidiGenerateContent is not "
                "among its methods (%s); Live models: [m.id for m in client.list_models() "
                "if m.supports_live]" % (
                    name, version, ", ".join(info.supported_generation_methods) or "none"),
                field="model",
            )

    def connect(
        self,
        model: str,
        *,
        config: Union[LiveConfig, Mapping[str, Any], None] = None,
        validate_model: bool = False,
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
        takeover: bool = False,
        takeover_timeout: float = 30.0,
        # Timeouts and keepalive, in seconds.
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        write_timeout: float = 10.0,
        ping_interval: Optional[float] = 30.0,
        ping_timeout: Optional[float] = 60.0,
        stall_timeout: Optional[float] = 60.0,
        # Buffers.
        max_buffered_media: int = 2_000_000,
        max_buffered_media_age: Optional[float] = None,
        max_buffered_messages: int = 1_000,
        max_receive_queue: int = 10_000,
        max_queue: int = 1_000,
        max_queue_bytes: int = 32 * 1024 * 1024,
        max_message_size: Optional[int] = 16 * 1024 * 1024,
        # Logging.
        logger: Optional[Union[logging.Logger, logging.LoggerAdapter[Any]]] = None,
    ) -> Session:
        """Open a session; return once the server's first ``setupComplete`` arrived.

        Blocks the calling thread for at most about ``open_timeout`` seconds. Any
        thread. Arguments are checked before any network I/O: callbacks must be
        callable or None, timeouts finite positive numbers of seconds, buffer
        sizes positive ints, flags bools.

        Args:
            model: e.g. ``"gemini-live-2.5-flash-preview"``.
            config: a :class:`LiveConfig`, or a mapping in snake_case or camelCase.
            validate_model: before dialing, look the model up over REST
                (:meth:`get_model`, bounded by ``open_timeout``) and fail early
                with :class:`NotFound` when the API version does not have it, or
                :class:`InvalidConfig` (field ``model``) when it does not support
                ``bidiGenerateContent``. Gemini API with an API key only.
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
            session_key: the key in ``handle_store`` (a non-empty string); required with it.
                With a store that has leases (:class:`~livesync.store.LeaseStore`:
                the memory and Redis stores), the session holds the key's lease
                until it ends; another session connecting with the key gets
                :class:`~livesync.SessionBusy`, before anything is dialed.
            takeover: if another session holds ``session_key``, ask it to hand the
                conversation over instead of raising ``SessionBusy``: it finishes
                at its next safe point (see ``docs/handle-stores.md``), saves its
                handle and ends with :class:`~livesync.SessionHandedOver`; this
                session then resumes with that handle. Needs a store with leases.
            takeover_timeout: the longest wait for the holder to hand over, in
                seconds; ``connect`` may block this long plus ``open_timeout``.
            open_timeout: bound on dial + setup of each connection.
            close_timeout: bound on ``close()``.
            write_timeout: bound on one socket write; a stuck write drops the connection.
            ping_interval: seconds between client pings; None disables keepalive.
            ping_timeout: a connection silent this long after a ping is dead.
            stall_timeout: a server that sends nothing for this long while it owes
                output (a generation in flight, a question or a tool response not
                answered yet; not while a tool call waits for you) is treated as a
                failed connection: livesync resumes and replays. ``Reconnected.cause``
                starts with "stall", ``stats().stalls`` counts them. None disables it.
            max_buffered_media: bytes of audio/video kept for replay; older is dropped.
            max_buffered_media_age: audio/video queued or sent more than this many
                seconds ago is evicted from the replay buffer (None: bounded by bytes
                only); checked at each send. As with the byte bound, evicted media
                is counted as dropped only if a resume needs it (unsent media: at once).
            max_buffered_messages: other messages kept for replay before sends fail.
            max_receive_queue: messages kept for ``receive()``; older ones are dropped
                (logged and counted) when nobody reads them. Without ``on_message``
                they are kept from the start, otherwise from the first ``receive()``.
            max_queue: server messages waiting for callbacks before livesync stops
                reading the socket until they catch up (back-pressure; counted in
                ``stats().backpressure``, with a WARNING at most every 10 s).
            max_queue_bytes: the same bound on their total size in bytes.
            max_message_size: the largest server message accepted; a larger one
                ends the session with close code 1009 (None: no limit).
            logger: a logger or adapter (default ``livesync.session``).

        Raises:
            InvalidConfig: a bad argument (before any I/O); ``field`` names it.
            InvalidStatus: the upgrade was refused (e.g. 401, 404, 429).
            SetupRejected: the server closed before ``setupComplete`` (code, reason).
            ConnectTimeout: no ``setupComplete`` within ``open_timeout``.
            SessionBusy: another session holds ``session_key`` (and, with
                ``takeover``, did not hand over within ``takeover_timeout``).
        """
        model_name = self.model_name(model)
        callbacks = Callbacks(
            on_message=on_message, on_goaway=on_goaway,
            on_resumption_update=on_resumption_update, on_close=on_close, on_open=on_open,
            on_reconnect=on_reconnect, on_error=on_error,
        )
        for name in _CALLBACKS:
            value = getattr(callbacks, name)
            if value is not None and not callable(value):
                raise InvalidConfig(
                    "%s must be callable or None, not %s" % (name, _type_name(value)), field=name
                )
        if not isinstance(fail_fast, bool):
            raise InvalidConfig(
                "fail_fast must be a bool, not %s" % _type_name(fail_fast), field="fail_fast"
            )
        policy = _policy(reconnect)
        open_timeout = _check_seconds(open_timeout, "open_timeout")
        close_timeout = _check_seconds(close_timeout, "close_timeout")
        write_timeout = _check_seconds(write_timeout, "write_timeout")
        ping_interval = _check_optional_seconds(ping_interval, "ping_interval")
        ping_timeout = _check_optional_seconds(ping_timeout, "ping_timeout")
        stall_timeout = _check_optional_seconds(stall_timeout, "stall_timeout")
        max_buffered_media = _check_count(max_buffered_media, "max_buffered_media")
        max_buffered_media_age = _check_optional_seconds(
            max_buffered_media_age, "max_buffered_media_age"
        )
        max_buffered_messages = _check_count(max_buffered_messages, "max_buffered_messages")
        max_receive_queue = _check_count(max_receive_queue, "max_receive_queue")
        max_queue = _check_count(max_queue, "max_queue")
        max_queue_bytes = _check_count(max_queue_bytes, "max_queue_bytes")
        if max_message_size is not None:
            max_message_size = _check_count(max_message_size, "max_message_size")
        if logger is not None and not isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
            raise InvalidConfig(
                "logger must be a logging.Logger or LoggerAdapter, not %s" % _type_name(logger),
                field="logger",
            )
        _check_store(handle_store, session_key)
        takeover_timeout = _check_takeover(takeover, takeover_timeout, handle_store)
        if resumption_handle is not None:
            _check_handle(resumption_handle)
        live_config = coerce_config(config)
        setup = build_setup(model_name, live_config, vertexai=self._vertexai)
        try:
            encode({"setup": setup})
        except InvalidConfig as exc:
            raise InvalidConfig("config " + str(exc), field="config") from None
        transparent = _transparent(setup, self._vertexai)
        if resumption_handle is None:
            resumption_handle = (setup.get("sessionResumption") or {}).get("handle")
            if resumption_handle is not None:
                _check_handle(resumption_handle, "session_resumption.handle")
        setup.pop("sessionResumption", None)
        if not isinstance(validate_model, bool):
            raise InvalidConfig("validate_model must be a bool, not %s"
                                % _type_name(validate_model), field="validate_model")
        if validate_model:
            self._validate_model(model_name, open_timeout)
        dialer = Dialer(
            endpoint=self.endpoint,
            credential=self.credential,
            options=TransportOptions(
                ca_certs=self._transport_options.ca_certs,
                proxy=self._transport_options.proxy,
                write_timeout=write_timeout,
                max_message_size=max_message_size,
            ),
            renewable=self._token_provider is not None,
        )
        options = SessionOptions(
            callbacks=callbacks, policy=policy, transparent=transparent,
            resumption_handle=resumption_handle, handle_store=handle_store,
            session_key=session_key, open_timeout=open_timeout, close_timeout=close_timeout,
            ping_interval=ping_interval, ping_timeout=ping_timeout,
            stall_timeout=stall_timeout, fail_fast=fail_fast,
            max_buffered_media=max_buffered_media, max_buffered_messages=max_buffered_messages,
            max_receive_queue=max_receive_queue, max_queue=max_queue,
            max_queue_bytes=max_queue_bytes, logger=logger,
            takeover=takeover, takeover_timeout=takeover_timeout,
            max_buffered_media_age=max_buffered_media_age,
        )
        session = open_session(dialer, setup, options, vertexai=self._vertexai)
        self._sessions.add(session)
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


def _type_name(value: object) -> str:
    return type(value).__name__


def _preview(text: str) -> str:
    """``repr`` of at most the first 40 characters of ``text``, marked when cut."""
    if len(text) <= _PREVIEW_CHARS:
        return repr(text)
    return "%r\u2026 (%d chars)" % (text[:_PREVIEW_CHARS], len(text))


def _check_credential(value: object, source: str) -> None:
    """An API key or token: a non-empty string of visible ASCII (never echoed)."""
    if not isinstance(value, str):
        raise InvalidConfig(
            "%s must be a string, not %s" % (source, _type_name(value)), field="api_key"
        )
    if not value.strip():
        raise InvalidConfig("%s must be a non-empty string" % source, field="api_key")
    if not _CREDENTIAL_RE.fullmatch(value):
        raise InvalidConfig(
            "%s must not contain spaces, control or non-ASCII characters" % source,
            field="api_key",
        )


def _check_name(
    value: object, name: str, bad_char: re.Pattern[str], max_chars: int, label: str = ""
) -> Optional[str]:
    """None, or a name of allowed characters starting with a letter or digit.

    The message shows at most 40 characters before the first bad one and that
    character, never what follows: ``"m?key=…"`` must not echo the key.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfig("%s must be a string, not %s" % (name, _type_name(value)), field=name)
    if not value:
        raise InvalidConfig("%s must be a non-empty string" % name, field=name)
    label = label or name
    if len(value) > max_chars:
        raise InvalidConfig(
            "%s too long (%d chars, at most %d)" % (label, len(value), max_chars), field=name
        )
    match = bad_char.search(value)
    bad_at = match.start() if match else len(value)
    what = repr(value[bad_at]) if match else ""
    dots = value.find("..")
    if 0 <= dots < bad_at:
        bad_at, what = dots, "'..'"
    if not value[0].isascii() or not value[0].isalnum():
        bad_at, what = 0, repr(value[0])
    if not what:
        return value
    if bad_at == 0:
        raise InvalidConfig(
            "invalid %s: must start with a letter or digit, not %s" % (label, what), field=name
        )
    raise InvalidConfig(
        "invalid %s %s: %s at position %d is not allowed"
        % (label, _preview(value[:bad_at]), what, bad_at),
        field=name,
    )


def _check_model(model: object) -> str:
    """A model name; the message shows at most 40 characters before the first bad one."""
    if model is None:
        raise InvalidConfig("model must be a string, not NoneType", field="model")
    result = _check_name(model, "model", _MODEL_CHAR_RE, _MAX_MODEL_CHARS, "model name")
    assert result is not None
    return result


def _check_base_url(base_url: object) -> Tuple[Optional[str], Optional[str]]:
    """Return the URL to dial and the one to show, both without userinfo secrets.

    The URL is never echoed: its userinfo may hold a password. websocket-client
    ignores userinfo, so it is dropped from the dialed URL and masked in reprs.
    """
    if base_url is None:
        return None, None
    if not isinstance(base_url, str):
        raise InvalidConfig(
            "base_url must be a string, not %s" % _type_name(base_url), field="base_url"
        )
    if not base_url.startswith(("ws://", "wss://")):
        raise InvalidConfig("base_url must start with ws:// or wss://", field="base_url")
    if _URL_BAD_RE.search(base_url):
        raise InvalidConfig(
            "base_url must not contain spaces or control characters", field="base_url"
        )
    if "?" in base_url or "#" in base_url:
        raise InvalidConfig("base_url must not have a query or fragment", field="base_url")
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise InvalidConfig("base_url is not a valid URL", field="base_url") from None
    if not parts.hostname:
        raise InvalidConfig("base_url must name a host", field="base_url")
    if "@" not in parts.netloc:
        url = base_url.rstrip("/")
        return url, url
    host = parts.netloc.rpartition("@")[2]
    dialed = urlunsplit(parts._replace(netloc=host)).rstrip("/")
    shown = urlunsplit(parts._replace(netloc="***@" + host)).rstrip("/")
    return dialed, shown


def _check_headers(headers: object) -> Dict[str, str]:
    """Header names must be tokens, values strings without line breaks (never echoed)."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidConfig(
            "headers must be a mapping of names to values, not %s" % _type_name(headers),
            field="headers",
        )
    result: Dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
            raise InvalidConfig(
                "header names must be HTTP tokens (letters, digits, -, _ ...)", field="headers"
            )
        if not isinstance(value, str):
            raise InvalidConfig(
                "header %s must have a string value, not %s" % (_preview(name), _type_name(value)),
                field="headers",
            )
        if _HEADER_VALUE_BAD_RE.search(value):
            raise InvalidConfig(
                "header %s value must not contain line breaks or control characters"
                % _preview(name),
                field="headers",
            )
        result[name] = value
    return result


def _check_ca_certs(ca_certs: object) -> Optional[str]:
    if ca_certs is None:
        return None
    if isinstance(ca_certs, os.PathLike):
        ca_certs = os.fspath(ca_certs)
    if not isinstance(ca_certs, str) or not ca_certs:
        raise InvalidConfig(
            "ca_certs must be the path of a CA bundle file, not %s" % _type_name(ca_certs),
            field="ca_certs",
        )
    if not os.path.isfile(ca_certs):
        raise InvalidConfig("ca_certs: no such file %s" % _preview(ca_certs), field="ca_certs")
    return ca_certs


def _check_proxy(proxy: object) -> Optional[str]:
    """``scheme://[user:password@]host[:port]``; the value is never echoed."""
    if proxy is None:
        return None
    if not isinstance(proxy, str):
        raise InvalidConfig("proxy must be a string, not %s" % _type_name(proxy), field="proxy")
    error = InvalidConfig(
        "proxy must be a URL starting with %s" % ", ".join(s + "://" for s in _PROXY_SCHEMES),
        field="proxy",
    )
    if _URL_BAD_RE.search(proxy):
        raise error
    try:
        parts = urlsplit(proxy)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise error from None
    if (
        parts.scheme not in _PROXY_SCHEMES
        or not proxy.startswith(parts.scheme + "://")
        or not parts.hostname
    ):
        raise error
    return proxy


def _check_seconds(value: object, name: str) -> float:
    """A finite, positive number of seconds, as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidConfig(
            "%s must be a number of seconds, not %s" % (name, _type_name(value)), field=name
        )
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidConfig(
            "%s must be a finite, positive number of seconds, not %r" % (name, seconds),
            field=name,
        )
    if seconds > _MAX_SECONDS:
        raise InvalidConfig(
            "%s is too large (at most %d seconds)" % (name, _MAX_SECONDS), field=name
        )
    return seconds


def _check_optional_seconds(value: object, name: str) -> Optional[float]:
    return None if value is None else _check_seconds(value, name)


def _check_count(value: object, name: str) -> int:
    """A positive integer (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidConfig(
            "%s must be an int, not %s" % (name, _type_name(value)), field=name
        )
    if value < 1:
        raise InvalidConfig("%s must be at least 1, not %d" % (name, value), field=name)
    return int(value)


def _check_takeover(takeover: object, timeout: object, handle_store: object) -> float:
    """``takeover`` is a bool and needs a store with leases; return the timeout."""
    if not isinstance(takeover, bool):
        raise InvalidConfig(
            "takeover must be a bool, not %s" % _type_name(takeover), field="takeover")
    if takeover and not isinstance(handle_store, LeaseStore):
        raise InvalidConfig(
            "takeover=True needs a handle_store with leases (MemoryHandleStore or "
            "RedisHandleStore; see livesync.store.LeaseStore)", field="takeover")
    return _check_seconds(timeout, "takeover_timeout")


def _check_store(handle_store: object, session_key: object) -> None:
    if handle_store is not None and not all(
        callable(getattr(handle_store, method, None)) for method in ("load", "save")
    ):
        raise InvalidConfig(
            "handle_store must have load() and save() methods (see livesync.HandleStore), "
            "not %s" % _type_name(handle_store),
            field="handle_store",
        )
    if session_key is not None and (not isinstance(session_key, str) or not session_key):
        raise InvalidConfig("session_key must be a non-empty string", field="session_key")
    if handle_store is not None and session_key is None:
        raise InvalidConfig("session_key is required with handle_store", field="session_key")


def _check_handle(handle: object, name: str = "resumption_handle") -> None:
    """A resumption handle is a non-empty string; it is never echoed."""
    if not isinstance(handle, str):
        raise InvalidConfig(
            "%s must be a string, not %s" % (name, _type_name(handle)), field=name
        )
    if not handle:
        raise InvalidConfig("%s must not be empty; pass None to start afresh" % name, field=name)


def _check_vertex(
    project: Optional[str],
    location: Optional[str],
    api_key: Optional[str],
    token_provider: Optional[Callable[[], str]],
) -> None:
    if project is not None and not location:
        raise InvalidConfig("vertexai with a project needs a location", field="location")
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
