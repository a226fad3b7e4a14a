"""The :class:`Emulator`: an offline Gemini Live API server for tests and demos."""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import http
import logging
import re
import secrets
import threading
import time
from types import TracebackType
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Iterator,
    List,
    Match,
    Optional,
    Set,
    Type,
    Union,
    cast,
)
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from . import _rest
from ._conn import INTERNAL, Closed, Connection
from ._options import DEFAULT_MODELS, EmulatorOptions, Responder
from ._records import (
    ConnectionRecord,
    HandleRecord,
    RestRecord,
    SessionRecord,
    TokenRecord,
    UpgradeRecord,
)
from ._registry import INVALID_ARGUMENT, Refusal, Registry, RetryAfter
from ._sock import EmulatorServerConnection
from ._wire import error_body, redact_headers, redact_path

__all__ = ["DEFAULT_MODELS", "Emulator", "EmulatorOptions", "Responder"]

logger = logging.getLogger("livesync.emulator")

ConnRef = Union[None, int, ConnectionRecord]

_GEMINI_PATH = re.compile(
    r"/ws/google\.ai\.generativelanguage\.(v1beta|v1alpha|v1)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)"
)


def _gemini_method(path: str, constrained_versions: Collection[str]) -> Optional[Match[str]]:
    """The Gemini endpoint ``path`` names, unless it is the Constrained method on a
    version outside ``constrained_versions`` (the real service answers 404 there)."""
    match = _GEMINI_PATH.fullmatch(path)
    if match and match.group(2) == "BidiGenerateContentConstrained" and (
            match.group(1) not in constrained_versions):
        return None
    return match


_VERTEX_PATH = re.compile(
    r"/ws/google\.cloud\.aiplatform\.(v1beta1|v1)\.LlmBidiService/(BidiGenerateContent)"
)
_VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))

VERTEX_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)


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
    protocol of docs/protocol.md as plain JSON, with a deterministic scripted model,
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

    Options come as one frozen :class:`EmulatorOptions` (``Emulator(options)``),
    as keyword arguments naming its fields (``Emulator(time_scale=0.01)``), or
    both (the keywords override; an unknown keyword raises TypeError, an invalid
    value ValueError). They are kept in :attr:`options`. The fields:

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
        interaction_status: None (``interactionStatus`` never sent), ``"idle"``
            (every ``turnComplete`` carries ``IDLE``) or ``"background"`` (a turn
            ends ``IN_PROGRESS``, background output follows, then ``IDLE``).
        background_delay: Nominal pause before the background output.
        model_versions: Model name -> Gemini API versions serving it (``v1``,
            ``v1beta``, ``v1alpha``); models not listed follow the default rule
            (``preview`` names: v1beta and v1alpha; others: all three).
        constrained_versions: Versions serving ``BidiGenerateContentConstrained``.
        refuse_resume_after_deadline: Refuse (1007 "Request contains an invalid
            argument.") a resume of a session whose connection was closed by its
            lifetime deadline.
        resume_uses_token: A resume with an ephemeral token consumes a use; when
            none is left it is closed 1011 "Token has been used too many times".
        media_chunks_models: Models accepting ``realtimeInput.mediaChunks`` (None:
            every 2.x model, i.e. names starting ``gemini-2.`` or ``gemini-live-2.``).
        model_lifetimes: Model name -> nominal connection lifetime, overriding
            ``connection_lifetime`` for that model.
        strict_activity_control: Refuse ``activityStart``/``activityEnd`` while
            automatic activity detection is on (1007).
        validate_setup: Validate ``setup`` like a proto-JSON parser (unknown
            fields, wrong types and enum values close 1007).
        ssl_context: Serve WebSockets over TLS with this server context
            (``base_url`` is then ``wss://``; REST stays plain HTTP). google-genai
            always connects with ``wss://``.
    """

    def __init__(self, options: Optional[EmulatorOptions] = None, /, **overrides: Any) -> None:
        opts = options if options is not None else EmulatorOptions()
        if overrides:
            opts = dataclasses.replace(opts, **overrides)  # TypeError for unknown names
        self.options: EmulatorOptions = opts
        """The options in force (frozen)."""
        self.host = opts.host
        self.api_key: str = (opts.api_key if opts.api_key is not None
                             else "emu-" + secrets.token_urlsafe(24))
        """The API key (and Vertex bearer token) this emulator accepts."""
        self.bearer_tokens: Set[str] = set(opts.bearer_tokens)
        """Mutable set of accepted Vertex bearer tokens (add/remove to simulate refresh)."""
        self._registry = Registry(opts, self.api_key)
        self._next_id = 0
        self._started = False
        self._server: Optional[Server] = None
        self._server_thread: Optional[threading.Thread] = None
        self._rest: Optional[_rest.RestServer] = None
        self._rest_thread: Optional[threading.Thread] = None
        self._handler_threads: List[threading.Thread] = []
        self._port = 0
        self._rest_port = 0

    @property
    def input_lag(self) -> float:
        """Current input lag in real seconds (change it with :meth:`set_input_lag`)."""
        return self._registry.input_lag

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Emulator:
        """Start serving (idempotent). Returns ``self``.

        Binds the WebSocket port and the REST port and starts the
        ``emulator-server`` and ``emulator-rest`` threads. Returns once both
        listen; any thread.
        """
        with self._registry.cond:
            if self._started:
                return self
            self._started = True
        server = serve(
            self._ws_handler,
            self.host,
            self.options.port,
            compression=None,
            process_request=self._process_request,
            create_connection=EmulatorServerConnection,
            ping_interval=self.options.ping_interval,
            ping_timeout=self.options.ping_timeout,
            close_timeout=self.options.close_timeout,
            open_timeout=self.options.open_timeout,
            max_size=self.options.max_size,
            ssl=self.options.ssl_context,
        )
        inner = server.handler

        def tracked(sock: Any, addr: Any) -> None:
            thread = threading.current_thread()
            thread.name = "emulator-conn"
            with self._registry.cond:
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
        rest = _rest.RestServer((self.host, 0), self._registry)
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
        with self._registry.cond:
            if not self._started or self._registry.stopping:
                return
            self._registry.stopping = True
            self._registry.cond.notify_all()  # wakes REST requests held by delay_rest()
            live = list(self._registry.live.values())
        for conn in live:
            if conn.record.stalled:
                conn.sock.abort()
            else:
                conn.post("close", 1001, "", "stop")
        deadline = time.monotonic() + self.options.close_timeout + 2.0
        self._join_handlers(deadline)
        with self._registry.cond:
            leftovers = list(self._registry.live.values())
        for conn in leftovers:
            conn.sock.abort()
        self._join_handlers(time.monotonic() + 1.0)
        if self._server is not None:
            self._server.shutdown()
        if self._server_thread is not None:
            self._server_thread.join(5.0)
        self._join_handlers(time.monotonic() + self.options.open_timeout + 1.0)
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
        if self._rest_thread is not None:
            self._rest_thread.join(5.0)
        with self._registry.cond:
            self._registry.cond.notify_all()
        logger.info("emulator stopped")

    def _join_handlers(self, deadline: float) -> None:
        with self._registry.cond:
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
        state = "running" if self._started and not self._registry.stopping else "stopped"
        return f"<Emulator {state} {self.base_url if self._started else ''}>"

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The WebSocket port (after :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``ws://HOST:PORT`` (``wss://`` with ``ssl_context``); clients append ``/ws/...``."""
        scheme = "wss" if self.options.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self._port}"

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

    def serves(self, model: str, version: str) -> bool:
        """Tell whether Gemini API ``version`` serves ``model`` (a bare name); any thread.

        See :meth:`EmulatorOptions.serves`.
        """
        return self.options.serves(model, version)

    def accepts_media_chunks(self, model: str) -> bool:
        """Tell whether ``model`` takes ``realtimeInput.mediaChunks``; any thread."""
        return self.options.accepts_media_chunks(model)

    # ------------------------------------------------------------------ introspection

    @property
    def connections(self) -> List[ConnectionRecord]:
        """All accepted connections so far, oldest first (a new list; live records)."""
        with self._registry.cond:
            return list(self._registry.connections)

    @property
    def sessions(self) -> Dict[str, SessionRecord]:
        """Session id -> :class:`SessionRecord` (a new dict; live records)."""
        with self._registry.cond:
            return dict(self._registry.sessions)

    @property
    def upgrades(self) -> List[UpgradeRecord]:
        """Every WebSocket upgrade request, accepted or refused, oldest first."""
        with self._registry.cond:
            return list(self._registry.upgrades)

    @property
    def tokens(self) -> List[TokenRecord]:
        """Ephemeral tokens minted so far."""
        with self._registry.cond:
            return list(self._registry.tokens.values())

    @property
    def rest_requests(self) -> List[RestRecord]:
        """Every REST request on either port, answered or refused, oldest first."""
        with self._registry.cond:
            return list(self._registry.rest_requests)

    @property
    def handles(self) -> List[HandleRecord]:
        """Resumption handles that have not expired yet, oldest first (live records)."""
        now = time.monotonic()
        with self._registry.cond:
            return [h for h in self._registry.handles.values() if h.expires_at >= now]

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = 5.0) -> Any:
        """Block until ``predicate()`` is truthy; return its value.

        The predicate is re-evaluated whenever the emulator's state changes
        (connection opened/closed, message received or sent, session updated),
        under the emulator's (reentrant) lock, so it may read any record or
        property. Any thread except an emulator thread.

        Raises:
            TimeoutError: The predicate stayed falsy for ``timeout`` seconds.
        """
        with self._registry.cond:
            result = self._registry.cond.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"condition not met within {timeout} s")
        return result

    def wait_for_connections(self, n: int, timeout: Optional[float] = 5.0
                             ) -> List[ConnectionRecord]:
        """Block until at least ``n`` connections were accepted; return them all."""
        self.wait_for(lambda: len(self._registry.connections) >= n, timeout)
        return self.connections

    def wait_closed(self, conn: Union[int, ConnectionRecord],
                    timeout: Optional[float] = 5.0) -> ConnectionRecord:
        """Block until connection ``conn`` has ended; return its record."""
        cid = conn.id if isinstance(conn, ConnectionRecord) else int(conn)
        record = self.wait_for(
            lambda: next((c for c in self._registry.connections
                          if c.id == cid and not c.open), None),
            timeout,
        )
        return cast(ConnectionRecord, record)

    # ------------------------------------------------------------------ faults

    def _pick(self, conn: ConnRef) -> Connection:
        with self._registry.cond:
            if conn is None:
                live = [c for c in self._registry.live.values() if c.record.open]
                if not live:
                    raise LookupError("no open connection")
                return max(live, key=lambda c: c.record.id)
            cid = conn.id if isinstance(conn, ConnectionRecord) else int(conn)
            found = self._registry.live.get(cid)
            if found is None:
                raise LookupError(f"connection {cid} is not open")
            return found

    def drop(self, conn: ConnRef = None) -> None:
        """Cut the TCP connection without a close frame (the client sees 1006).

        ``conn`` is a connection id or record; default the newest open one.
        Non-blocking; any thread.
        """
        self._registry.drop(self._pick(conn))

    def drop_after_setup(self, n: int = 1) -> None:
        """Drop each of the next ``n`` connections right after its setup succeeded.

        The connection sends ``setupComplete`` (and, with ``sessionResumption``,
        the handle after it), then its TCP connection is cut without a close
        frame, as by :meth:`drop`. Connections whose setup fails or stalls do not
        count. Calls add up. Non-blocking; any thread.
        """
        with self._registry.cond:
            self._registry.faults.drop_setups += max(0, int(n))

    def set_input_lag(self, seconds: float) -> None:
        """Set ``input_lag``: real seconds each client message waits before it is processed.

        Applies to messages that arrive afterwards; messages already waiting
        keep their due time. Messages are processed in arrival order, so one
        that arrives under a shorter lag still waits for those before it.
        Non-blocking; any thread.
        """
        if seconds < 0:
            raise ValueError("input_lag must not be negative")
        with self._registry.cond:
            self._registry.input_lag = float(seconds)
            self._registry.cond.notify_all()

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
        opts = self.options
        left = opts.go_away_notice * opts.time_scale if time_left is None else float(time_left)
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
        with self._registry.cond:
            target.record.stalled = True
            self._registry.cond.notify_all()
        target.post("wake")

    def stall_next_setup(self) -> None:
        """Stall the next connection as soon as its ``setup`` arrives (one-shot).

        The upgrade succeeds and ``setup`` is recorded, but no ``setupComplete``
        is sent and the connection then behaves as after :meth:`stall`.
        """
        with self._registry.cond:
            self._registry.faults.stall_setups += 1

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
        with self._registry.cond:
            self._registry.faults.refusals.extend([refusal] * int(n))

    def refuse_upgrades_for(self, seconds: float, status: int = 503,
                            body: str = "Service Unavailable",
                            retry_after: RetryAfter = None) -> None:
        """Answer every WebSocket upgrade in the next ``seconds`` (real time) with ``status``.

        Replaces an earlier window; ``seconds <= 0`` ends it. Upgrades counted
        by :meth:`refuse_upgrades` are refused first, with their own status.
        ``retry_after`` is as for :meth:`refuse_upgrades`. Non-blocking; any thread.
        """
        refusal = _refusal(status, body, retry_after)
        with self._registry.cond:
            if seconds > 0:
                self._registry.faults.refuse_until = (time.monotonic() + float(seconds), refusal)
            else:
                self._registry.faults.refuse_until = None

    def refuse_rest(self, n: int = 1, status: int = 503, message: Optional[str] = None,
                    retry_after: RetryAfter = None) -> None:
        """Answer the next ``n`` REST requests (either port) with HTTP ``status``.

        The body is a Google error JSON (``{"error": {"code", "message", "status"}}``)
        with ``message`` (default: the real service's text for 429, 500, 503, 504,
        else the HTTP reason phrase) and the matching Google status
        (``RESOURCE_EXHAUSTED`` for 429, ``UNAVAILABLE`` for 503, ...).
        ``retry_after`` adds a ``Retry-After`` header as for :meth:`refuse_upgrades`.
        Refused requests are recorded in :attr:`rest_requests`. Non-blocking; any thread.
        """
        refusal = _refusal(status, _rest.refusal_body(status, message), retry_after)
        with self._registry.cond:
            self._registry.faults.rest_refusals.extend([refusal] * int(n))

    def delay_rest(self, seconds: float, n: int = 1) -> None:
        """Hold each of the next ``n`` REST requests ``seconds`` (real time) before answering.

        For client timeouts: the request is read, then answered only after the
        delay (with a refusal from :meth:`refuse_rest` if one is scheduled).
        ``stop()`` ends the wait early. Non-blocking; any thread.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._registry.cond:
            self._registry.faults.rest_delays.extend([float(seconds)] * int(n))

    def refuse_next_resume(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Refuse the next resumption attempt with ``(code, reason)`` (one-shot).

        Defaults come from ``resume_refusal``.
        """
        with self._registry.cond:
            self._registry.faults.refuse_resume = (
                self.options.resume_refusal[0] if code is None else int(code),
                self.options.resume_refusal[1] if reason is None else str(reason),
            )

    def poison_session(self, session_id: Optional[str] = None, code: int = 1007,
                       reason: str = INVALID_ARGUMENT, after: float = 2.0) -> None:
        """Make every later resume of a session die ``after`` nominal seconds after setupComplete.

        Models the real service's poisoned resumption (a resumed context that
        re-triggers the same failure). Each connection that resumes the session
        (any handle) gets its ``setupComplete`` (and handle), then is closed with
        ``code`` and ``reason`` ``after × time_scale`` seconds later. Connections
        already open and fresh sessions are not affected. ``session_id`` defaults
        to the session of the newest open connection (``LookupError`` if none).
        Non-blocking; any thread.
        """
        if code not in _VALID_CLOSE:
            raise ValueError(f"invalid close code {code}")
        with self._registry.cond:
            session = self._registry.session(session_id)
            session.poison = (int(code), str(reason), float(after))
            self._registry.cond.notify_all()

    def cure_session(self, session_id: Optional[str] = None) -> None:
        """Undo :meth:`poison_session` (same ``session_id`` default). Any thread."""
        with self._registry.cond:
            self._registry.session(session_id).poison = None
            self._registry.cond.notify_all()

    def close_after_next_tool_response(self, code: int = 1008,
                                       reason: str = "Requested entity was not found.") -> None:
        """Close the connection that processes the next ``toolResponse`` (one-shot).

        The response is recorded and applied, then the connection is closed with
        ``code`` and ``reason`` (the real service's 1008 "Requested entity was
        not found." or 1011 "Internal error occurred." after a tool response on
        native-audio models). Calls add up. Non-blocking; any thread.
        """
        if code not in _VALID_CLOSE:
            raise ValueError(f"invalid close code {code}")
        with self._registry.cond:
            self._registry.faults.tool_response_closes.append((int(code), str(reason)))

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
            reply = _rest.handle(self._registry, method, path, headers, b"", port="ws")
            return self._respond(connection, reply.status, reply.body, _rest.JSON,
                                 reply.retry_after)
        record = UpgradeRecord(
            path=redact_path(path),
            headers=redact_headers(request.headers.raw_items()),
            status=101,
        )
        with self._registry.cond:
            self._registry.upgrades.append(record)
            refusal = self._registry.take_refusal()
            self._registry.cond.notify_all()
        if refusal is not None:
            return self._refuse(connection, record, refusal.status, refusal.body, "text/plain",
                                refusal.retry_after)
        # Strip leading slashes first: urlsplit("//ws/...") would take "ws" as a host.
        parts = urlsplit("/" + path.lstrip("/"))
        route = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        gemini = _gemini_method(route, self.options.constrained_versions)
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
        with self._registry.cond:
            record.status = status
            self._registry.cond.notify_all()
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
        with self._registry.cond:
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
            conn = Connection(self._registry, conn_ws, record, info)
            self._registry.connections.append(record)
            self._registry.live[cid] = conn
            self._registry.cond.notify_all()
        threading.current_thread().name = f"emulator-conn-{cid}"
        conn.run()

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


def _bare(model: str) -> str:
    """A model name without ``models/``."""
    return model[len("models/"):] if model.startswith("models/") else model


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
