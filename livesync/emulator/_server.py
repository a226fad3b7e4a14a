"""The :class:`Emulator`: an offline Gemini Live API server for tests and demos."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hmac
import http
import logging
import re
import secrets
import threading
import time
import uuid
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
    Union,
    cast,
)
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from . import _rest
from ._conn import (
    API_KEY_INVALID,
    INTERNAL,
    INVALID_ARGUMENT,
    UNREGISTERED,
    Closed,
    Connection,
)
from ._records import (
    ConnectionRecord,
    HandleRecord,
    SessionRecord,
    TokenRecord,
    Turn,
    UpgradeRecord,
)
from ._sock import EmulatorServerConnection
from ._wire import error_body, new_handle, redact_headers, redact_path

logger = logging.getLogger("livesync.emulator")

DEFAULT_MODELS: Tuple[str, ...] = (
    "gemini-live-2.5-flash-preview",
    "gemini-live-2.5-flash",
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-2.5-flash-native-audio-preview-09-2025",
    "gemini-2.0-flash-live-001",
    "gemini-2.0-flash-live-preview-04-09",
    "gemini-3.1-flash-live-preview",
)
"""Model names the emulator serves (bare names; ``models/`` is optional in setup)."""

Responder = Callable[[Turn], Optional[Iterable[Dict[str, Any]]]]
"""``responder(turn)`` returns server messages for the turn, or None for the default model."""

ConnRef = Union[None, int, ConnectionRecord]

RetryAfter = Union[None, float, str]
"""``Retry-After`` of a refused upgrade: seconds, a literal header value, or None (no header)."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """How to answer a refused WebSocket upgrade."""

    status: int
    body: str
    retry_after: RetryAfter = None

_GEMINI_PATH = re.compile(
    r"/ws/google\.ai\.generativelanguage\.(v1beta|v1alpha)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)"
)
_VERTEX_PATH = re.compile(
    r"/ws/google\.cloud\.aiplatform\.(v1beta1|v1)\.LlmBidiService/(BidiGenerateContent)"
)
_VERTEX_MODEL = re.compile(
    r"(?:projects/[^/]+/locations/[^/]+/)?publishers/([^/]+)/models/([^/]+)"
)
_VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))

VERTEX_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)
TOKEN_INVALID = "The auth token is not valid."
TOKEN_USED_UP = "The auth token has no uses left."
TOKEN_NO_NEW_SESSIONS = (
    "The auth token can no longer start new sessions (newSessionExpireTime has passed)."
)
MODEL_CHANGED = INVALID_ARGUMENT + " The model cannot change when resuming a session."


@dataclasses.dataclass
class UpgradeInfo:
    """What process_request learned about an accepted upgrade (holds raw secrets)."""

    record: UpgradeRecord
    backend: str
    api_version: str
    method: str
    headers: Dict[str, str] = dataclasses.field(repr=False)
    query: Dict[str, str] = dataclasses.field(repr=False)
    auth: str = "none"


class Emulator:
    """An offline Gemini Live API server (Gemini API and Vertex paths) for tests.

    It is a real WebSocket server (``websockets.sync.server``) speaking the Live
    protocol of PROTOCOL.md as plain JSON, with a deterministic scripted model,
    session resumption, connection lifetimes, fault injection and introspection.
    Use it as a context manager::

        with Emulator(time_scale=0.01) as emu:
            url = emu.base_url + "/ws/google.ai.generativelanguage.v1beta." \\
                "GenerativeService.BidiGenerateContent"
            ...

    Every duration option is in nominal seconds and is multiplied by
    ``time_scale``; everything sent on the wire (``goAway.timeLeft``, token
    times) is in real time. All public methods are thread-safe and may be called
    from any thread; none blocks for long unless documented.

    Args:
        host: Interface to bind.
        port: TCP port for WebSockets (0 picks a free port).
        api_key: Key accepted by this emulator; random if None. Never printed.
        time_scale: Factor applied to every nominal duration below.
        connection_lifetime: Nominal connection lifetime (real service: ~10 min).
        go_away_notice: Nominal goAway notice before the lifetime ends.
        handle_ttl: Nominal validity of a resumption handle after it is issued.
        audio_session_limit: Nominal session limit once audio was received and
            the setup has no ``contextWindowCompression``.
        video_session_limit: Same, once video was received.
        text_frames: Send JSON in text frames instead of binary frames.
        chunk_delay: Real seconds to wait between streamed model messages.
        input_lag: Real seconds each client message after the setup waits
            after it arrived before it is processed (order is kept); see
            :meth:`set_input_lag`.
        responder: Optional custom model (see :data:`Responder`).
        models: Model names served (bare names).
        resume_refusal: ``(code, reason)`` used to refuse unknown or expired handles.
        reject_concurrent_resume: Close a resume with 1011 "Internal error
            encountered." while another connection of the session is still open.
        concurrent_resume_grace: Real seconds a resume waits for the session's
            other connections to close before ``reject_concurrent_resume`` applies.
        ping_interval: websockets keepalive interval (None: no server pings).
        ping_timeout: websockets keepalive timeout.
        close_timeout: Real seconds to wait for the client's close frame.
        open_timeout: Real seconds allowed for the opening handshake.
        max_size: Largest client message in bytes (None: no limit).
        text_chunk_chars: Characters per streamed text chunk.
        audio_chunk_seconds: Seconds of 24 kHz PCM per streamed audio chunk.
        audio_seconds_per_char: Seconds of reply audio per reply character.
        vad_threshold: RMS level (s16 units) at which a 10 ms frame is speech.
        bearer_tokens: Initial Vertex bearer tokens (``api_key`` always works too).
        record_sent: Keep every sent message in ``ConnectionRecord.sent`` (turn
            off for long-running demos to bound memory).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: Optional[str] = None,
        time_scale: float = 1.0,
        connection_lifetime: float = 600.0,
        go_away_notice: float = 60.0,
        handle_ttl: float = 7200.0,
        audio_session_limit: float = 900.0,
        video_session_limit: float = 120.0,
        text_frames: bool = False,
        chunk_delay: float = 0.0,
        input_lag: float = 0.0,
        responder: Optional[Responder] = None,
        models: Sequence[str] = DEFAULT_MODELS,
        resume_refusal: Tuple[int, str] = (1008, "Requested entity was not found."),
        reject_concurrent_resume: bool = True,
        concurrent_resume_grace: float = 0.5,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: float = 2.0,
        open_timeout: float = 5.0,
        max_size: Optional[int] = 16 * 1024 * 1024,
        text_chunk_chars: int = 16,
        audio_chunk_seconds: float = 0.1,
        audio_seconds_per_char: float = 0.02,
        vad_threshold: float = 500.0,
        bearer_tokens: Iterable[str] = (),
        record_sent: bool = True,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if input_lag < 0:
            raise ValueError("input_lag must not be negative")
        self.host = host
        self.api_key: str = api_key if api_key is not None else "emu-" + secrets.token_urlsafe(24)
        """The API key (and Vertex bearer token) this emulator accepts."""
        self.time_scale = float(time_scale)
        self.connection_lifetime = float(connection_lifetime)
        self.go_away_notice = float(go_away_notice)
        self.handle_ttl = float(handle_ttl)
        self.audio_session_limit = float(audio_session_limit)
        self.video_session_limit = float(video_session_limit)
        self.text_frames = bool(text_frames)
        self.chunk_delay = float(chunk_delay)
        self.input_lag = float(input_lag)
        """Current input lag in real seconds (change it with :meth:`set_input_lag`)."""
        self.responder = responder
        self.models: List[str] = [m[len("models/"):] if m.startswith("models/") else m
                                  for m in models]
        self.resume_refusal = (int(resume_refusal[0]), str(resume_refusal[1]))
        self.reject_concurrent_resume = bool(reject_concurrent_resume)
        self.concurrent_resume_grace = float(concurrent_resume_grace)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = float(close_timeout)
        self.open_timeout = float(open_timeout)
        self.max_size = max_size
        self.text_chunk_chars = int(text_chunk_chars)
        self.audio_chunk_seconds = float(audio_chunk_seconds)
        self.audio_seconds_per_char = float(audio_seconds_per_char)
        self.vad_threshold = float(vad_threshold)
        self.record_sent = bool(record_sent)
        self.bearer_tokens: Set[str] = set(bearer_tokens)
        """Mutable set of accepted Vertex bearer tokens (add/remove to simulate refresh)."""
        self._requested_port = port
        self._cond = threading.Condition(threading.RLock())
        self._connections: List[ConnectionRecord] = []
        self._live: Dict[int, Connection] = {}
        self._sessions: Dict[str, SessionRecord] = {}
        self._handles: Dict[str, HandleRecord] = {}
        self._tokens: Dict[str, TokenRecord] = {}
        self._upgrades: List[UpgradeRecord] = []
        self._refusals: List[Refusal] = []
        self._refuse_until: Optional[Tuple[float, Refusal]] = None
        self._refuse_resume: Optional[Tuple[int, str]] = None
        self._stall_setups = 0
        self._drop_setups = 0
        self._next_id = 0
        self._started = False
        self._stopping = False
        self._server: Optional[Server] = None
        self._server_thread: Optional[threading.Thread] = None
        self._rest: Optional[_rest.RestServer] = None
        self._rest_thread: Optional[threading.Thread] = None
        self._handler_threads: List[threading.Thread] = []
        self._port = 0
        self._rest_port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Emulator:
        """Start serving (idempotent). Returns ``self``.

        Binds the WebSocket port and the REST port and starts the
        ``emulator-server`` and ``emulator-rest`` threads. Returns once both
        listen; any thread.
        """
        with self._cond:
            if self._started:
                return self
            self._started = True
        server = serve(
            self._ws_handler,
            self.host,
            self._requested_port,
            compression=None,
            process_request=self._process_request,
            create_connection=EmulatorServerConnection,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            open_timeout=self.open_timeout,
            max_size=self.max_size,
        )
        inner = server.handler

        def tracked(sock: Any, addr: Any) -> None:
            thread = threading.current_thread()
            thread.name = "emulator-conn"
            with self._cond:
                self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
                self._handler_threads.append(thread)
            inner(sock, addr)

        server.handler = tracked
        self._server = server
        self._port = int(server.socket.getsockname()[1])
        self._server_thread = threading.Thread(
            target=server.serve_forever, name="emulator-server", daemon=True
        )
        self._server_thread.start()
        rest = _rest.RestServer((self.host, 0), self)
        self._rest = rest
        self._rest_port = int(rest.server_address[1])
        self._rest_thread = threading.Thread(
            target=rest.serve_forever, kwargs={"poll_interval": 0.02},
            name="emulator-rest", daemon=True,
        )
        self._rest_thread.start()
        logger.info("emulator listening on %s (REST %s)", self.base_url, self.rest_url)
        return self

    def stop(self) -> None:
        """Close every connection (code 1001) and join every thread started (idempotent).

        Stalled connections are aborted without a close frame. Blocks at most
        about ``close_timeout + 3`` seconds (clients that never answer the
        closing handshake are cut off). Any thread except an emulator thread.
        """
        with self._cond:
            if not self._started or self._stopping:
                return
            self._stopping = True
            live = list(self._live.values())
        for conn in live:
            if conn.record.stalled:
                conn.sock.abort()
            else:
                conn.post("close", 1001, "", "stop")
        deadline = time.monotonic() + self.close_timeout + 2.0
        self._join_handlers(deadline)
        with self._cond:
            leftovers = list(self._live.values())
        for conn in leftovers:
            conn.sock.abort()
        self._join_handlers(time.monotonic() + 1.0)
        if self._server is not None:
            self._server.shutdown()
        if self._server_thread is not None:
            self._server_thread.join(5.0)
        self._join_handlers(time.monotonic() + self.open_timeout + 1.0)
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
        if self._rest_thread is not None:
            self._rest_thread.join(5.0)
        with self._cond:
            self._cond.notify_all()
        logger.info("emulator stopped")

    def _join_handlers(self, deadline: float) -> None:
        with self._cond:
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("emulator thread %s did not stop in time", thread.name)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._started and not self._stopping else "stopped"
        return f"<Emulator {state} {self.base_url if self._started else ''}>"

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The WebSocket port (after :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``ws://HOST:PORT``; clients append the ``/ws/...`` path."""
        return f"ws://{self.host}:{self._port}"

    @property
    def rest_url(self) -> str:
        """``http://HOST:PORT`` of the REST endpoints (a separate port, see docs)."""
        return f"http://{self.host}:{self._rest_port}"

    def url(self, backend: str = "gemini", *, version: Optional[str] = None,
            constrained: bool = False) -> str:
        """Return the full WebSocket URL of an endpoint.

        Args:
            backend: ``"gemini"`` or ``"vertex"``.
            version: API version (default ``v1beta``, ``v1alpha`` when
                ``constrained``, ``v1beta1`` for Vertex).
            constrained: The ephemeral-token method ``BidiGenerateContentConstrained``.
        """
        if backend == "vertex":
            return (f"{self.base_url}/ws/google.cloud.aiplatform.{version or 'v1beta1'}"
                    ".LlmBidiService/BidiGenerateContent")
        method = "BidiGenerateContentConstrained" if constrained else "BidiGenerateContent"
        ver = version or ("v1alpha" if constrained else "v1beta")
        return f"{self.base_url}/ws/google.ai.generativelanguage.{ver}.GenerativeService.{method}"

    # ------------------------------------------------------------------ introspection

    @property
    def connections(self) -> List[ConnectionRecord]:
        """All accepted connections so far, oldest first (a new list; live records)."""
        with self._cond:
            return list(self._connections)

    @property
    def sessions(self) -> Dict[str, SessionRecord]:
        """Session id -> :class:`SessionRecord` (a new dict; live records)."""
        with self._cond:
            return dict(self._sessions)

    @property
    def upgrades(self) -> List[UpgradeRecord]:
        """Every WebSocket upgrade request, accepted or refused, oldest first."""
        with self._cond:
            return list(self._upgrades)

    @property
    def tokens(self) -> List[TokenRecord]:
        """Ephemeral tokens minted so far."""
        with self._cond:
            return list(self._tokens.values())

    @property
    def handles(self) -> List[HandleRecord]:
        """Resumption handles that have not expired yet, oldest first (live records)."""
        now = time.monotonic()
        with self._cond:
            return [h for h in self._handles.values() if h.expires_at >= now]

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = 5.0) -> Any:
        """Block until ``predicate()`` is truthy; return its value.

        The predicate is re-evaluated whenever the emulator's state changes
        (connection opened/closed, message received or sent, session updated),
        under the emulator's (reentrant) lock, so it may read any record or
        property. Any thread except an emulator thread.

        Raises:
            TimeoutError: The predicate stayed falsy for ``timeout`` seconds.
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"condition not met within {timeout} s")
        return result

    def wait_for_connections(self, n: int, timeout: Optional[float] = 5.0
                             ) -> List[ConnectionRecord]:
        """Block until at least ``n`` connections were accepted; return them all."""
        self.wait_for(lambda: len(self._connections) >= n, timeout)
        return self.connections

    def wait_closed(self, conn: Union[int, ConnectionRecord],
                    timeout: Optional[float] = 5.0) -> ConnectionRecord:
        """Block until connection ``conn`` has ended; return its record."""
        cid = conn.id if isinstance(conn, ConnectionRecord) else int(conn)
        record = self.wait_for(
            lambda: next((c for c in self._connections if c.id == cid and not c.open), None),
            timeout,
        )
        return cast(ConnectionRecord, record)

    # ------------------------------------------------------------------ faults

    def _pick(self, conn: ConnRef) -> Connection:
        with self._cond:
            if conn is None:
                live = [c for c in self._live.values() if c.record.open]
                if not live:
                    raise LookupError("no open connection")
                return max(live, key=lambda c: c.record.id)
            cid = conn.id if isinstance(conn, ConnectionRecord) else int(conn)
            found = self._live.get(cid)
            if found is None:
                raise LookupError(f"connection {cid} is not open")
            return found

    def drop(self, conn: ConnRef = None) -> None:
        """Cut the TCP connection without a close frame (the client sees 1006).

        ``conn`` is a connection id or record; default the newest open one.
        Non-blocking; any thread.
        """
        self._drop(self._pick(conn))

    def _drop(self, target: Connection) -> None:
        """Record a drop and abort the TCP connection (any thread, no lock held)."""
        with self._cond:
            if target.record.closed_by is None:
                target.record.closed_by = "drop"
            target.record.open = False
            self._cond.notify_all()
        target.closing = True
        target.sock.abort()

    def drop_after_setup(self, n: int = 1) -> None:
        """Drop each of the next ``n`` connections right after its setup succeeded.

        The connection sends ``setupComplete`` (and, with ``sessionResumption``,
        the handle after it), then its TCP connection is cut without a close
        frame, as by :meth:`drop`. Connections whose setup fails or stalls do not
        count. Calls add up. Non-blocking; any thread.
        """
        with self._cond:
            self._drop_setups += max(0, int(n))

    def _take_drop_after_setup(self) -> bool:
        with self._cond:
            if self._drop_setups:
                self._drop_setups -= 1
                return True
            return False

    def set_input_lag(self, seconds: float) -> None:
        """Set ``input_lag``: real seconds each client message waits before it is processed.

        Applies to messages that arrive afterwards; messages already waiting
        keep their due time. Messages are processed in arrival order, so one
        that arrives under a shorter lag still waits for those before it.
        Non-blocking; any thread.
        """
        if seconds < 0:
            raise ValueError("input_lag must not be negative")
        with self._cond:
            self.input_lag = float(seconds)
            self._cond.notify_all()

    def close(self, code: int, reason: str = "", conn: ConnRef = None) -> None:
        """Close a connection with ``code`` and ``reason`` (cut to 123 bytes).

        Non-blocking: the connection's handler sends the close frame. Raises
        ValueError for codes websockets cannot send (e.g. 1005, 1006).
        """
        if code not in _VALID_CLOSE:
            raise ValueError(f"invalid close code {code}")
        self._pick(conn).post("close", code, reason, "server")

    def send_go_away(self, time_left: Optional[float] = None, conn: ConnRef = None,
                     *, enforce: bool = True) -> None:
        """Send ``goAway`` now.

        Args:
            time_left: Real seconds announced (default ``go_away_notice * time_scale``).
            conn: Connection id or record; default the newest open one.
            enforce: Also close the connection (1011 "Deadline expired before
                operation could complete.") when ``time_left`` runs out.
        """
        left = self.go_away_notice * self.time_scale if time_left is None else float(time_left)
        with _closing_is_lookup():
            self._pick(conn).go_away(left, enforce)

    def stall(self, conn: ConnRef = None) -> None:
        """Stop reading and sending on a connection; keep TCP open.

        The stalled connection answers nothing, not even pings or the closing
        handshake. It does not count as open for ``reject_concurrent_resume``
        and is aborted when its session is resumed or the emulator stops.
        """
        target = self._pick(conn)
        target.sock.stall()
        with self._cond:
            target.record.stalled = True
            self._cond.notify_all()
        target.post("wake")

    def stall_next_setup(self) -> None:
        """Stall the next connection as soon as its ``setup`` arrives (one-shot).

        The upgrade succeeds and ``setup`` is recorded, but no ``setupComplete``
        is sent and the connection then behaves as after :meth:`stall`.
        """
        with self._cond:
            self._stall_setups += 1

    def _take_stall_setup(self) -> bool:
        with self._cond:
            if self._stall_setups:
                self._stall_setups -= 1
                return True
            return False

    def refuse_next_upgrade(self, status: int = 503, body: str = "Service Unavailable",
                            retry_after: RetryAfter = None) -> None:
        """Answer the next WebSocket upgrade with HTTP ``status`` (one-shot).

        ``retry_after`` adds a ``Retry-After`` header (see :meth:`refuse_upgrades`).
        """
        self.refuse_upgrades(1, status, body, retry_after)

    def refuse_upgrades(self, n: int, status: int = 503, body: str = "Service Unavailable",
                        retry_after: RetryAfter = None) -> None:
        """Answer the next ``n`` WebSocket upgrades with HTTP ``status``.

        ``retry_after`` adds a ``Retry-After`` header: a number of seconds (sent
        as an integer when whole, e.g. ``2``, else as a decimal such as ``0.5``)
        or a string sent as it is (an HTTP date, or anything malformed).
        """
        refusal = _refusal(status, body, retry_after)
        with self._cond:
            self._refusals.extend([refusal] * int(n))

    def refuse_upgrades_for(self, seconds: float, status: int = 503,
                            body: str = "Service Unavailable",
                            retry_after: RetryAfter = None) -> None:
        """Answer every WebSocket upgrade in the next ``seconds`` (real time) with ``status``.

        Replaces an earlier window; ``seconds <= 0`` ends it. Upgrades counted
        by :meth:`refuse_upgrades` are refused first, with their own status.
        ``retry_after`` is as for :meth:`refuse_upgrades`. Non-blocking; any thread.
        """
        refusal = _refusal(status, body, retry_after)
        with self._cond:
            if seconds > 0:
                self._refuse_until = (time.monotonic() + float(seconds), refusal)
            else:
                self._refuse_until = None

    def _take_refusal(self) -> Optional[Refusal]:
        """Return how to refuse the upgrade being processed, or None (caller holds _cond)."""
        if self._stopping:
            return Refusal(503, "Server is shutting down.\n")
        if self._refusals:
            return self._refusals.pop(0)
        window = self._refuse_until
        if window is not None and time.monotonic() < window[0]:
            return window[1]
        self._refuse_until = None
        return None

    def refuse_next_resume(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Refuse the next resumption attempt with ``(code, reason)`` (one-shot).

        Defaults come from ``resume_refusal``.
        """
        with self._cond:
            self._refuse_resume = (
                self.resume_refusal[0] if code is None else int(code),
                self.resume_refusal[1] if reason is None else str(reason),
            )

    def send_malformed(self, data: Union[bytes, str] = b"{not json", conn: ConnRef = None
                       ) -> None:
        """Send bytes that are not valid JSON, in the usual frame type."""
        with _closing_is_lookup():
            self._pick(conn).send(data)

    def send_raw(self, message: Union[Dict[str, Any], bytes, str], conn: ConnRef = None,
                 *, frame: str = "") -> None:
        """Send any server message: a dict (serialized like real messages) or raw data.

        ``frame`` forces ``"text"`` or ``"binary"``.
        """
        with _closing_is_lookup():
            self._pick(conn).send(message, frame=frame)

    def issue_handle(self, conn: ConnRef = None) -> None:
        """Send a fresh resumable ``sessionResumptionUpdate`` now (after setup).

        Unlike the automatic handles, it does not wait until the model is idle;
        it only waits until the connection has finished processing the client
        message it is on. Any thread except an emulator thread.
        """
        target = self._pick(conn)
        if target.session is None:
            raise LookupError("connection has no session yet")
        with _closing_is_lookup():
            target.issue_handle()

    # ------------------------------------------------------------------ internals

    def _respond(self, connection: ServerConnection, status: int, body: str,
                 content_type: str, retry_after: RetryAfter = None) -> Response:
        response = connection.respond(status, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
        if retry_after is not None:
            response.headers["Retry-After"] = _retry_after_value(retry_after)
        return response

    def _process_request(self, connection: ServerConnection, request: Request
                         ) -> Optional[Response]:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        path = request.path
        if "websocket" not in headers.get("upgrade", "").lower():
            method = str(getattr(request, "method", "GET"))
            status, body = _rest.handle(self, method, path, headers, b"")
            return self._respond(connection, status, body, _rest.JSON)
        record = UpgradeRecord(
            path=redact_path(path),
            headers=redact_headers(request.headers.raw_items()),
            status=101,
        )
        with self._cond:
            self._upgrades.append(record)
            refusal = self._take_refusal()
            self._cond.notify_all()
        if refusal is not None:
            return self._refuse(connection, record, refusal.status, refusal.body, "text/plain",
                                refusal.retry_after)
        # Strip leading slashes first: urlsplit("//ws/...") would take "ws" as a host.
        parts = urlsplit("/" + path.lstrip("/"))
        route = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        gemini = _GEMINI_PATH.fullmatch(route)
        vertex = _VERTEX_PATH.fullmatch(route)
        match = gemini or vertex
        if match is None:
            body = error_body(404, f"Method not found: {parts.path}", "NOT_FOUND")
            return self._refuse(connection, record, 404, body, _rest.JSON)
        info = UpgradeInfo(
            record=record,
            backend="gemini" if gemini else "vertex",
            api_version=match.group(1),
            method=match.group(2),
            headers=headers,
            query=query,
        )
        if vertex:
            auth = self._vertex_auth(headers)
            if auth is None:
                body = error_body(401, VERTEX_UNAUTHENTICATED, "UNAUTHENTICATED")
                return self._refuse(connection, record, 401, body, _rest.JSON)
            info.auth = auth
        cast(EmulatorServerConnection, connection).emu_upgrade = info
        return None

    def _refuse(self, connection: ServerConnection, record: UpgradeRecord, status: int,
                body: str, content_type: str, retry_after: RetryAfter = None) -> Response:
        with self._cond:
            record.status = status
            self._cond.notify_all()
        return self._respond(connection, status, body, content_type, retry_after)

    def _vertex_auth(self, headers: Dict[str, str]) -> Optional[str]:
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            if _same(token, self.api_key) or token in set(self.bearer_tokens):
                return "bearer"
            return None
        if _same(headers.get("x-goog-api-key", ""), self.api_key):
            return "api_key_header"
        return None

    def _ws_handler(self, ws: ServerConnection) -> None:
        conn_ws = cast(EmulatorServerConnection, ws)
        info = cast(Optional[UpgradeInfo], conn_ws.emu_upgrade)
        if info is None:  # pragma: no cover - process_request always sets it
            ws.close(1011, INTERNAL)
            return
        with self._cond:
            self._next_id += 1
            cid = self._next_id
            record = ConnectionRecord(
                id=cid,
                path=info.record.path,
                api_version=info.api_version,
                backend=info.backend,
                method=info.method,
                auth=info.auth,
                headers=info.record.headers,
                opened_at=time.time(),
            )
            info.record.connection = cid
            conn = Connection(self, conn_ws, record, info)
            self._connections.append(record)
            self._live[cid] = conn
            self._cond.notify_all()
        threading.current_thread().name = f"emulator-conn-{cid}"
        conn.run()

    def _check_auth(self, conn: Connection) -> Optional[Tuple[int, str]]:
        """Authenticate a Gemini API connection after the upgrade (handler thread)."""
        if self._stopping:
            return (1001, "")
        info = conn.upgrade
        if info.backend == "vertex":
            return None
        headers, query = info.headers, info.query
        authorization = headers.get("authorization", "")
        token_header = authorization[6:].strip() if authorization[:6].lower() == "token " else ""
        token_query = query.get("access_token", "")
        key_header = headers.get("x-goog-api-key", "")
        key_query = query.get("key", "")
        auth = ""
        if key_header and _same(key_header, self.api_key):
            auth = "api_key_header"
        elif key_query and _same(key_query, self.api_key):
            auth = "api_key_query"
        failure: Optional[Tuple[int, str]] = None
        if info.method == "BidiGenerateContentConstrained":
            candidates = (
                (token_header, "token_header"),
                (token_query, "token_query"),
                (key_header, "token_header"),
                (key_query, "token_query"),
            )
            with self._cond:
                for value, kind in candidates:
                    if value and value in self._tokens:
                        conn.token = self._tokens[value]
                        auth = kind
                        break
            if not auth:
                credentials = token_header or token_query or key_header or key_query
                failure = (1007, TOKEN_INVALID) if credentials else (1008, UNREGISTERED)
        elif not auth:
            failure = (1008, UNREGISTERED) if token_header or token_query else (
                1007, API_KEY_INVALID)
        with self._cond:
            conn.record.auth = auth or "none"
            self._cond.notify_all()
        return failure

    def _add_token(self, token: TokenRecord) -> None:
        with self._cond:
            self._tokens[token.name] = token
            self._cond.notify_all()

    def _use_token(self, token: TokenRecord, *, resume: bool) -> Optional[str]:
        """Check (and for a new session consume) an ephemeral token; return an error."""
        now = time.monotonic()
        with self._cond:
            if now > token.expire_at:
                return "The auth token has expired."
            if resume:
                return None
            if now > token.new_session_expire_at:
                return TOKEN_NO_NEW_SESSIONS
            if token.uses and token.used >= token.uses:
                return TOKEN_USED_UP
            token.used += 1
            self._cond.notify_all()
        return None

    def _resolve_model(self, record: ConnectionRecord, model: Any
                       ) -> Union[str, Tuple[int, str]]:
        if not isinstance(model, str) or not model:
            return (1007, INVALID_ARGUMENT + " setup.model is required.")
        if record.backend == "vertex":
            match = _VERTEX_MODEL.fullmatch(model)
            if match is None:
                return (1007, INVALID_ARGUMENT
                        + " model must be projects/*/locations/*/publishers/*/models/*.")
            if match.group(2) in self.models:
                return match.group(2)
            return (1008, f"Publisher Model `{model}` not found.")
        name = model[len("models/"):] if model.startswith("models/") else model
        if name in self.models:
            return name
        return (1008, f"models/{name} is not found for API version {record.api_version}, "
                "or is not supported for bidiGenerateContent")

    def _attach(self, conn: Connection, session: SessionRecord) -> None:
        # Caller holds self._cond.
        session.connections.append(conn.record.id)
        conn.record.session_id = session.id
        conn.record.generation = len(session.connections)
        for message in conn.record.messages:
            message.generation = conn.record.generation

    def _new_session(self, conn: Connection, model: str) -> SessionRecord:
        with self._cond:
            session = SessionRecord(
                id=str(uuid.uuid4()),
                backend=conn.record.backend,
                model=model,
                started_at=time.monotonic(),
            )
            self._sessions[session.id] = session
            self._attach(conn, session)
            self._cond.notify_all()
        return session

    def _resume_session(self, conn: Connection, handle: str, model: str
                        ) -> Union[SessionRecord, Tuple[int, str]]:
        with self._cond:
            if self._refuse_resume is not None:
                refusal, self._refuse_resume = self._refuse_resume, None
                return refusal
            snapshot = self._handles.get(handle)
            if snapshot is None or time.monotonic() > snapshot.expires_at:
                return self.resume_refusal
            session = self._sessions[snapshot.session_id]
            if session.ended is not None:
                return self.resume_refusal
            if session.model != model:
                return (1007, MODEL_CHANGED)

            def others() -> List[Connection]:
                return [
                    c for c in self._live.values()
                    if c.record.session_id == session.id and c.record.open
                    and c is not conn
                ]

            for other in others():
                if other.record.stalled:
                    other.sock.abort()
            if self.reject_concurrent_resume:
                def idle() -> bool:
                    return all(c.record.stalled for c in others())

                self._cond.wait_for(idle, self.concurrent_resume_grace)
                if not idle():
                    return (1011, INTERNAL)
            session.history = copy.deepcopy(snapshot.history)
            session.messages = list(snapshot.messages)
            conn.record.resumed_from = handle
            self._attach(conn, session)
            self._cond.notify_all()
        return session

    def _snapshot(self, conn: Connection, session: SessionRecord) -> HandleRecord:
        now = time.monotonic()
        with self._cond:
            snapshot = HandleRecord(
                handle=new_handle(),
                session_id=session.id,
                connection=conn.record.id,
                last_consumed_index=conn.index,
                issued_at=now,
                expires_at=now + self.handle_ttl * self.time_scale,
                history=copy.deepcopy(session.history),
                messages=list(session.messages),
            )
            expired = [h for h, r in self._handles.items() if r.expires_at < now]
            for handle in expired:
                del self._handles[handle]
            self._handles[snapshot.handle] = snapshot
            session.handles += 1
            self._cond.notify_all()
        return snapshot

    def _record_close(self, conn: Connection, *, ended: bool = False) -> None:
        """Copy the close frames seen by websockets into the record (any thread)."""
        protocol = conn.ws.protocol
        sent = getattr(protocol, "close_sent", None)
        received = getattr(protocol, "close_rcvd", None)
        with self._cond:
            record = conn.record
            if (sent is not None and record.close_code is None
                    and record.closed_by != "drop" and not record.stalled):
                record.close_code = int(sent.code)
                record.close_reason = str(sent.reason)
            if received is not None:
                record.client_close_code = int(received.code)
            if record.closed_by is None and (received is not None or ended):
                record.closed_by = "client"
            if ended:
                record.open = False
                record.closed_at = time.time()
                self._live.pop(record.id, None)
            self._cond.notify_all()

    def _connection_ended(self, conn: Connection) -> None:
        self._record_close(conn, ended=True)


def _refusal(status: int, body: str, retry_after: RetryAfter) -> Refusal:
    """Validate a refusal's status and ``Retry-After`` (ValueError if invalid)."""
    http.HTTPStatus(status)  # raises ValueError for unknown statuses
    if isinstance(retry_after, (int, float)) and retry_after < 0:
        raise ValueError("retry_after must not be negative")
    return Refusal(int(status), str(body), retry_after)


def _retry_after_value(retry_after: Union[float, str]) -> str:
    """Format a ``Retry-After`` value: whole seconds as an integer, strings as given."""
    if isinstance(retry_after, str):
        return retry_after
    if float(retry_after).is_integer():
        return str(int(retry_after))
    return repr(float(retry_after))


@contextlib.contextmanager
def _closing_is_lookup() -> Iterator[None]:
    """A connection that started closing is not open: say so as _pick does."""
    try:
        yield
    except Closed:
        raise LookupError("connection is closing") from None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
