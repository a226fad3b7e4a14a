"""A lean Live API server for load tests: one asyncio thread, canned audio replies.

:class:`LoadServer` speaks the part of the Live protocol a client exercises under
load (docs/protocol.md) and nothing else: the Gemini API and Vertex paths, the
API key, ``setup`` → ``setupComplete``, ``sessionResumptionUpdate`` handles,
resumption, ``goAway`` and the connection lifetime. It has no VAD, no scripted
model, no records and no fault injection (use :class:`~livesync.emulator.Emulator`
for those). Input is consumed and counted; replies are canned 24 kHz PCM:

* every ``reply_every`` seconds of received input audio (audio time) while no
  reply is running, and for every user turn (``clientContent`` with
  ``turnComplete``, realtime ``text``, ``activityEnd``), a reply of
  ``reply_seconds`` of audio in ``audio_chunk_seconds`` ``inlineData`` chunks,
  paced at real time, then ``generationComplete``, ``turnComplete`` (when the
  audio has "played") and a fresh resumable handle;
* a user turn during a reply interrupts it (``interrupted``, ``turnComplete``),
  as on the real service.

Threads: ``emulator-load`` runs the event loop (``websockets.asyncio.server``):
one handler coroutine per connection reads and counts client messages; one
ticker coroutine, every ``audio_chunk_seconds``, sends the reply chunks that are
due on every connection, so a reply costs no timer of its own. Reply frames are
serialized once, at start. The ticker never waits for a slow client: a
connection whose write buffer is full skips the tick (counted in
``LoadStats.backpressure``) and its reply falls behind.

Handles are stateless: the session id, the expiry time and the model's CRC,
signed with a key derived from the API key (HMAC-SHA256). Any load server with
the same API key accepts them, so several processes can serve one port
(``reuse_port``) or one client fleet, and memory does not grow with handles.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import struct
import threading
import time
import uuid
import zlib
from types import TracebackType
from typing import Any, Callable, Coroutine, Dict, List, Optional, Set, Tuple, Type, Union
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from ._conn import DEADLINE, FIRST_NOT_SETUP, NOT_FOUND
from ._options import CONSTRAINED_VERSIONS
from ._registry import API_KEY_INVALID, INTERNAL, MODEL_CHANGED
from ._server import _VERTEX_PATH, VERTEX_UNAUTHENTICATED, _gemini_method
from ._wire import as_bool, dumps, error_body, format_duration, get, mime_rate, tone

__all__ = ["LoadOptions", "LoadServer", "LoadStats"]

logger = logging.getLogger("livesync.emulator")

THREAD_NAME = "emulator-load"
STATS_PATH = "/stats"
"""Plain ``GET`` on the WebSocket port: :class:`LoadStats` as JSON (no key needed)."""

_VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
_HANDLE_PREFIX = "Ci"
_HANDLE_PAYLOAD = struct.Struct(">16sQI")  # session id, expiry (ms since the epoch), model CRC
_MAC_BYTES = 12
_JSON = "application/json; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """Options of :class:`LoadServer`, validated once (``ValueError`` if invalid).

    Lifetimes follow :class:`~livesync.emulator.EmulatorOptions`: nominal seconds
    multiplied by ``time_scale``, with ``goAway`` sent ``go_away_notice`` before
    the end and a close 1011 "Deadline expired before operation could complete."
    at the end. Reply timing is never scaled: ``reply_every`` counts seconds of
    received input audio, and replies are sent at real-time pace.

    Attributes:
        host, port: Bind address (port 0: a free port).
        api_key: Key accepted (random if None); also signs the handles.
        time_scale: Factor applied to the nominal durations below.
        connection_lifetime: Nominal lifetime of one connection.
        go_away_notice: ``goAway`` this long before the lifetime ends (none if
            not shorter than the lifetime).
        handle_ttl: Nominal validity of a resumption handle after it is issued.
        reply_every: Seconds of input audio per reply (0: replies to turns only).
        reply_seconds: Length of each reply, in seconds of 24 kHz audio.
        audio_chunk_seconds: Audio per ``inlineData`` chunk (and the ticker period).
        text_frames: Send JSON in text frames (default binary, like Gemini).
        resume_refusal: ``(code, reason)`` for an unknown or expired handle.
        ping_interval, ping_timeout: websockets keepalive (off by default).
        close_timeout: Real seconds to wait for a client's closing handshake.
        open_timeout: Real seconds allowed for the opening handshake.
        max_size: Largest client message in bytes (None: no limit).
        write_limit: Bytes buffered per connection before the ticker skips it.
        backlog: Listen backlog (connection bursts).
        reuse_port: Bind with ``SO_REUSEPORT`` so several processes share a port.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: Optional[str] = dataclasses.field(default=None, repr=False)
    time_scale: float = 1.0
    connection_lifetime: float = 600.0
    go_away_notice: float = 60.0
    handle_ttl: float = 7200.0
    reply_every: float = 2.0
    reply_seconds: float = 1.0
    audio_chunk_seconds: float = 0.04
    text_frames: bool = False
    resume_refusal: Tuple[int, str] = (1008, NOT_FOUND)
    ping_interval: Optional[float] = None
    ping_timeout: Optional[float] = 20.0
    close_timeout: float = 2.0
    open_timeout: float = 5.0
    max_size: Optional[int] = 16 * 1024 * 1024
    write_limit: int = 256 * 1024
    backlog: int = 2048
    reuse_port: bool = False

    def __post_init__(self) -> None:
        positive = ("time_scale", "connection_lifetime", "handle_ttl", "reply_seconds",
                    "audio_chunk_seconds", "close_timeout", "open_timeout")
        for name in positive:
            if not float(getattr(self, name)) > 0:
                raise ValueError("%s must be positive" % name)
        for name in ("go_away_notice", "reply_every"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError("%s must not be negative" % name)
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0-65535")
        for name in ("audio_chunk_seconds", "reply_seconds"):
            if round(float(getattr(self, name)) * 24000) < 1:
                raise ValueError("%s must hold at least one 24 kHz sample" % name)
        if self.write_limit < 1024 or self.backlog < 1:
            raise ValueError("write_limit must be at least 1024 and backlog positive")
        code, reason = self.resume_refusal
        if code not in _VALID_CLOSE:
            raise ValueError("resume_refusal: invalid close code %r" % (code,))
        object.__setattr__(self, "resume_refusal", (int(code), str(reason)))


@dataclasses.dataclass(frozen=True)
class LoadStats:
    """Counters of a :class:`LoadServer` since it started (:meth:`LoadServer.stats`).

    Attributes:
        connections: WebSocket connections accepted.
        open_connections: Connections open now.
        sessions: New sessions (a setup without a handle).
        resumes: Resumes accepted.
        resumes_refused: Resumes refused (unknown, expired or forged handle).
        messages_in: Client messages after the setups.
        audio_chunks_in: ``realtimeInput`` audio blobs among them.
        audio_seconds_in: Seconds of input audio they held.
        replies: Replies started (audio and turns).
        interrupted: Replies interrupted by a user turn.
        chunks_out: Reply audio messages sent.
        messages_out: Every server message sent (chunks included).
        handles: Resumable handles issued.
        go_aways: ``goAway`` messages sent.
        deadline_closes: Connections closed at the end of their lifetime.
        backpressure: Times a due chunk waited because the client did not read.
        late_chunks: Chunks sent more than one chunk period after they were due.
        max_lateness: The latest a chunk was sent after it was due, in seconds.
        cpu_seconds: CPU time of the ``emulator-load`` thread (None if unknown).
    """

    connections: int = 0
    open_connections: int = 0
    sessions: int = 0
    resumes: int = 0
    resumes_refused: int = 0
    messages_in: int = 0
    audio_chunks_in: int = 0
    audio_seconds_in: float = 0.0
    replies: int = 0
    interrupted: int = 0
    chunks_out: int = 0
    messages_out: int = 0
    handles: int = 0
    go_aways: int = 0
    deadline_closes: int = 0
    backpressure: int = 0
    late_chunks: int = 0
    max_lateness: float = 0.0
    cpu_seconds: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """The counters as a JSON-ready dict (the ``GET /stats`` body)."""
        return dataclasses.asdict(self)


class _Counters:
    """The mutable side of :class:`LoadStats`: written on the loop thread only, read anywhere."""

    def __init__(self) -> None:
        self.connections = 0
        self.open_connections = 0
        self.sessions = 0
        self.resumes = 0
        self.resumes_refused = 0
        self.messages_in = 0
        self.audio_chunks_in = 0
        self.audio_seconds_in = 0.0
        self.replies = 0
        self.interrupted = 0
        self.chunks_out = 0
        self.messages_out = 0
        self.handles = 0
        self.go_aways = 0
        self.deadline_closes = 0
        self.backpressure = 0
        self.late_chunks = 0
        self.max_lateness = 0.0

    def snapshot(self, cpu: Optional[float]) -> LoadStats:
        """A frozen copy (every :class:`LoadStats` field but ``cpu_seconds`` is a counter)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(LoadStats)
                  if f.name != "cpu_seconds"}
        return LoadStats(cpu_seconds=cpu, **values)


IDLE, STREAMING, ENDING = 0, 1, 2
"""Reply states of a connection."""


class _Conn:
    """Per-connection state (loop thread only)."""

    __slots__ = ("ws", "vertex", "session_id", "model_crc", "resumption", "transparent",
                 "history_open", "index", "audio_s", "state", "sent", "total", "start",
                 "due", "timers")

    def __init__(self, ws: ServerConnection, vertex: bool) -> None:
        self.ws = ws
        self.vertex = vertex
        self.session_id = b""
        self.model_crc = 0
        self.resumption = False
        self.transparent = False
        self.history_open = False
        self.index = 0
        """Client messages consumed on this connection (setup = 0)."""
        self.audio_s = 0.0
        """Input audio since the last reply started."""
        self.state = IDLE
        self.sent = 0
        """Reply chunks sent so far."""
        self.total = 0
        self.start = 0.0
        self.due = 0.0
        """Loop time the next reply message is due."""
        self.timers: List[asyncio.TimerHandle] = []


class _Frames:
    """Every constant server message, serialized once (one backend's variants)."""

    def __init__(self, options: LoadOptions, vertex: bool) -> None:
        def encode(message: Dict[str, Any]) -> bytes:
            return dumps(message).encode("utf-8")

        seconds = options.audio_chunk_seconds
        full, tail = divmod(int(round(options.reply_seconds * 24000)),
                            int(round(seconds * 24000)))
        self.chunk = encode(_audio(tone(seconds), vertex))
        self.tail = encode(_audio(tone(tail / 24000), vertex)) if tail else b""
        self.chunks = full + (1 if tail else 0)
        self.started = encode({"sessionResumptionUpdate": {}})
        self.generation_complete = encode({"serverContent": {"generationComplete": True}})
        self.turn_complete = encode({"serverContent": {"turnComplete": True}})
        self.interrupted = encode({"serverContent": {"interrupted": True}})
        self.setup_complete = encode({"setupComplete": {}})


def _audio(pcm: bytes, vertex: bool) -> Dict[str, Any]:
    """A ``modelTurn`` message carrying ``pcm`` as the emulator sends it."""
    blob = {"mimeType": "audio/pcm" if vertex else "audio/pcm;rate=24000",
            "data": base64.b64encode(pcm).decode("ascii")}
    turn: Dict[str, Any] = {"parts": [{"inlineData": blob}]}
    if vertex:
        turn["role"] = "model"
    return {"serverContent": {"modelTurn": turn}}


class LoadServer:
    """A lean Live API server for load tests (see the module docstring).

    Same shape as :class:`~livesync.emulator.Emulator`: options as one frozen
    :class:`LoadOptions` and/or keyword arguments naming its fields;
    :meth:`start`, :meth:`stop` and the context manager; :attr:`base_url`,
    :attr:`api_key`, :meth:`url`::

        with LoadServer(reply_every=2.0, reply_seconds=1.0) as server:
            client = livesync.Client(api_key=server.api_key, base_url=server.base_url)
            ...
            print(server.stats())

    All public methods are thread-safe.
    """

    def __init__(self, options: Optional[LoadOptions] = None, /, **overrides: Any) -> None:
        opts = options if options is not None else LoadOptions()
        if overrides:
            opts = dataclasses.replace(opts, **overrides)  # TypeError for unknown names
        self.options: LoadOptions = opts
        """The options in force (frozen)."""
        self.host = opts.host
        self.api_key: str = (opts.api_key if opts.api_key is not None
                             else "load-" + secrets.token_urlsafe(24))
        """The API key (and Vertex bearer token) accepted."""
        self._mac_key = hashlib.sha256(b"livesync-load-handle\0" + self.api_key.encode()).digest()
        self._frames = (_Frames(opts, vertex=False), _Frames(opts, vertex=True))
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._port = 0
        self._cpu_final: Optional[float] = None
        self._conns: Set[_Conn] = set()
        self._replying: Dict[_Conn, None] = {}
        self._tasks: Set[asyncio.Task[Any]] = set()
        self._rates: Dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LoadServer:
        """Bind and start serving (idempotent); return ``self``.

        Starts the ``emulator-load`` thread and returns once it listens. Raises
        the bind error (e.g. ``OSError``) if it cannot listen. Any thread.
        """
        with self._lock:
            if self._started:
                return self
            self._started = True
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        if not self._ready.wait(self.options.open_timeout + 10.0):
            raise RuntimeError("the load server did not start")
        if self._error is not None:
            self._thread.join(5.0)
            raise self._error
        logger.info("load server listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Close every connection (1001) and join the server thread (idempotent).

        Connections that do not finish the closing handshake within
        ``close_timeout`` are aborted; blocks at most about ``close_timeout + 3``
        seconds. Any thread except the server's.
        """
        with self._lock:
            if not self._started or self._stopping:
                return
            self._stopping = True
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop already ended (it failed to start)
                pass
        if thread is not None:
            thread.join(self.options.close_timeout + 3.0)
            if thread.is_alive():
                logger.warning("load server thread did not stop in time")
        logger.info("load server stopped")

    def __enter__(self) -> LoadServer:
        return self.start()

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    def __repr__(self) -> str:
        running = self._started and not self._stopping
        return "<LoadServer %s %s>" % ("running" if running else "stopped",
                                       self.base_url if running else "")

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The TCP port (after :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``ws://HOST:PORT``; clients append ``/ws/...``."""
        return "ws://%s:%d" % (self.host, self._port)

    def url(self, backend: str = "gemini", *, version: Optional[str] = None,
            constrained: bool = False) -> str:
        """Return the full WebSocket URL of an endpoint (as ``Emulator.url``)."""
        if backend == "vertex":
            return ("%s/ws/google.cloud.aiplatform.%s.LlmBidiService/BidiGenerateContent"
                    % (self.base_url, version or "v1beta1"))
        method = "BidiGenerateContentConstrained" if constrained else "BidiGenerateContent"
        ver = version or ("v1alpha" if constrained else "v1beta")
        return "%s/ws/google.ai.generativelanguage.%s.GenerativeService.%s" % (
            self.base_url, ver, method)

    def stats(self) -> LoadStats:
        """A snapshot of the counters (any thread; not atomic across fields)."""
        return self._counters.snapshot(self._cpu())

    def _cpu(self) -> Optional[float]:
        thread = self._thread
        if thread is None or self._cpu_final is not None or not thread.is_alive():
            return self._cpu_final
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
        except (AttributeError, OSError):  # not on this platform, or the thread just ended
            return self._cpu_final

    # ------------------------------------------------------------------ loop thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # pragma: no cover - defensive: report, never hang start()
            logger.error("load server failed", exc_info=True)
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._cpu_final = time.thread_time()
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stopping:  # stop() ran before the loop existed: it could not signal it
            self._stop.set()
        opts = self.options
        try:
            server = await serve(
                self._handle, opts.host, opts.port, compression=None,
                process_request=self._process_request, ping_interval=opts.ping_interval,
                ping_timeout=opts.ping_timeout, close_timeout=opts.close_timeout,
                open_timeout=opts.open_timeout, max_size=opts.max_size,
                write_limit=opts.write_limit, backlog=opts.backlog,
                reuse_port=opts.reuse_port or None)
        except OSError as exc:
            self._error = exc
            return
        self._port = int(list(server.sockets)[0].getsockname()[1])
        ticker = asyncio.ensure_future(self._tick())
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(server)
            ticker.cancel()

    async def _shutdown(self, server: Server) -> None:
        """Close connections with 1001; abort what is left after ``close_timeout + 1``."""
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), self.options.close_timeout + 1.0)
        except asyncio.TimeoutError:
            for conn in list(self._conns):
                conn.ws.transport.abort()
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                logger.warning("load server: connections still open after abort")

    def _process_request(self, connection: ServerConnection, request: Request
                         ) -> Optional[Response]:
        """Route the upgrade: 404 for unknown paths, 401 for Vertex without credentials."""
        upgrade = request.headers.get("Upgrade", "")
        path, query = _split(request.path)
        if "websocket" not in upgrade.lower():
            if path == STATS_PATH:
                body = json.dumps(self.stats().to_dict())
                return _respond(connection, 200, body)
            return _respond(connection, 404, error_body(404, "Not Found: %s" % path,
                                                        "NOT_FOUND"))
        vertex = _VERTEX_PATH.fullmatch(path) is not None
        if not vertex and _gemini_method(path, CONSTRAINED_VERSIONS) is None:
            return _respond(connection, 404, error_body(404, "Method not found: %s" % path,
                                                        "NOT_FOUND"))
        if vertex and not self._authorized(request, query):
            return _respond(connection, 401, error_body(401, VERTEX_UNAUTHENTICATED,
                                                        "UNAUTHENTICATED"))
        return None

    def _authorized(self, request: Request, query: Dict[str, str]) -> bool:
        """The API key in ``x-goog-api-key``, ``?key=``, ``Authorization`` or ``?access_token=``."""
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        candidates = (request.headers.get("x-goog-api-key", ""), query.get("key", ""),
                      token.strip() if scheme.lower() in ("bearer", "token") else "",
                      query.get("access_token", ""))
        expected = self.api_key.encode("utf-8")
        return any(c and hmac.compare_digest(c.encode("utf-8"), expected) for c in candidates)

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        """Serve one connection (a handler task)."""
        assert ws.request is not None
        path, query = _split(ws.request.path)
        conn = _Conn(ws, vertex=_VERTEX_PATH.fullmatch(path) is not None)
        counters = self._counters
        counters.connections += 1
        counters.open_connections += 1
        self._conns.add(conn)
        self._arm_lifetime(conn)
        try:
            if not self._authorized(ws.request, query):
                await ws.close(1007, API_KEY_INVALID)
                return
            if await self._setup(conn):
                async for data in ws:
                    await self._on_message(conn, data)
        except ConnectionClosed:
            pass
        except Exception:  # pragma: no cover - defensive: never kill the server
            logger.error("load server connection failed", exc_info=True)
            await ws.close(1011, INTERNAL)
        finally:
            self._replying.pop(conn, None)
            for timer in conn.timers:
                timer.cancel()
            self._conns.discard(conn)
            counters.open_connections -= 1

    def _arm_lifetime(self, conn: _Conn) -> None:
        """Schedule the goAway and the deadline close, counted from the upgrade."""
        loop = asyncio.get_running_loop()
        opts = self.options
        now = loop.time()
        close_at = now + opts.connection_lifetime * opts.time_scale
        if opts.go_away_notice < opts.connection_lifetime:
            go_away_at = now + (opts.connection_lifetime - opts.go_away_notice) * opts.time_scale
            conn.timers.append(loop.call_at(go_away_at, self._spawn, self._go_away, conn,
                                            close_at))
        conn.timers.append(loop.call_at(close_at, self._spawn, self._expire, conn))

    def _spawn(self, job: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        """Run ``job(*args)`` as a task (from a timer; the coroutine is made only now)."""
        task = asyncio.ensure_future(job(*args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _go_away(self, conn: _Conn, close_at: float) -> None:
        left = close_at - asyncio.get_running_loop().time()
        message = dumps({"goAway": {"timeLeft": format_duration(left)}})
        if await self._send(conn, message.encode("utf-8")):
            self._counters.go_aways += 1

    async def _expire(self, conn: _Conn) -> None:
        if conn.ws.state is State.OPEN:
            self._counters.deadline_closes += 1
        await conn.ws.close(1011, DEADLINE)

    async def _send(self, conn: _Conn, frame: bytes) -> bool:
        """Send one message from a handler or timer task; False if the connection closed."""
        try:
            await conn.ws.send(frame, text=self.options.text_frames)
        except ConnectionClosed:
            return False
        self._counters.messages_out += 1
        return True

    async def _setup(self, conn: _Conn) -> bool:
        """Read and answer the setup; False if the connection was closed instead."""
        data = await conn.ws.recv()
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            detail = str(exc).split(":")[0]
            await conn.ws.close(1007, "Invalid JSON payload received. %s." % detail)
            return False
        setup = message.get("setup") if isinstance(message, dict) else None
        if not isinstance(setup, dict):
            await conn.ws.close(1007, FIRST_NOT_SETUP)
            return False
        model = setup.get("model")
        if not isinstance(model, str) or not model:
            await conn.ws.close(1011, INTERNAL)  # as the real service answers a setup without model
            return False
        resumption = get(setup, "sessionResumption")
        handle = get(resumption, "handle")
        crc = zlib.crc32(model.encode("utf-8"))
        if handle:
            refusal = self._resume(conn, str(handle), crc)
            if refusal is not None:
                self._counters.resumes_refused += 1
                await conn.ws.close(*refusal)
                return False
            self._counters.resumes += 1
        else:
            conn.session_id = os.urandom(16)
            self._counters.sessions += 1
        conn.model_crc = crc
        conn.resumption = isinstance(resumption, dict)
        conn.transparent = as_bool(get(resumption, "transparent"))
        conn.history_open = as_bool(get(get(setup, "historyConfig"),
                                        "initialHistoryInClientContent"))
        frames = self._frames[conn.vertex]
        complete = frames.setup_complete
        if conn.vertex:
            sid = str(uuid.UUID(bytes=conn.session_id))
            complete = dumps({"setupComplete": {"sessionId": sid}}).encode("utf-8")
        return await self._send(conn, complete) and (
            not conn.resumption or await self._send(conn, self._handle_update(conn)))

    def _resume(self, conn: _Conn, handle: str, crc: int) -> Optional[Tuple[int, str]]:
        """Check a handle; set the connection's session, or return the refusal."""
        raw = _b64decode(handle[len(_HANDLE_PREFIX):]) if handle.startswith(
            _HANDLE_PREFIX) else None
        if raw is None or len(raw) != _HANDLE_PAYLOAD.size + _MAC_BYTES:
            return self.options.resume_refusal
        payload, mac = raw[:_HANDLE_PAYLOAD.size], raw[_HANDLE_PAYLOAD.size:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return self.options.resume_refusal
        session_id, expires_ms, model_crc = _HANDLE_PAYLOAD.unpack(payload)
        if expires_ms < time.time() * 1000.0:
            return self.options.resume_refusal
        if model_crc != crc:
            return (1007, MODEL_CHANGED)
        conn.session_id = session_id
        return None

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._mac_key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def _handle_update(self, conn: _Conn) -> bytes:
        """A fresh resumable ``sessionResumptionUpdate`` (serialized)."""
        opts = self.options
        expires_ms = int((time.time() + opts.handle_ttl * opts.time_scale) * 1000.0)
        payload = _HANDLE_PAYLOAD.pack(conn.session_id, expires_ms, conn.model_crc)
        token = base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=")
        update: Dict[str, Any] = {"newHandle": _HANDLE_PREFIX + token.decode("ascii"),
                                  "resumable": True}
        if conn.transparent and conn.index:
            update["lastConsumedClientMessageIndex"] = str(conn.index)
        self._counters.handles += 1
        return dumps({"sessionResumptionUpdate": update}).encode("utf-8")

    # ------------------------------------------------------------------ client messages

    async def _on_message(self, conn: _Conn, data: Union[str, bytes]) -> None:
        """Count one client message; start or interrupt replies (handler task).

        Plain dict lookups of both spellings (camelCase, snake_case): this runs
        for every 20 ms audio chunk of every session.
        """
        conn.index += 1
        self._counters.messages_in += 1
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return  # only the setup is validated
        if not isinstance(message, dict):
            return
        realtime = _field(message, "realtimeInput", "realtime_input")
        if isinstance(realtime, dict):
            conn.history_open = False
            await self._on_realtime(conn, realtime)
            return
        content = _field(message, "clientContent", "client_content")
        if isinstance(content, dict) and not conn.history_open:
            await self._interrupt(conn)
            if as_bool(_field(content, "turnComplete", "turn_complete")):
                await self._reply(conn)
        # toolResponse, contextUpdate and anything else: counted, nothing more.

    async def _on_realtime(self, conn: _Conn, realtime: Dict[str, Any]) -> None:
        audio = realtime.get("audio")
        if isinstance(audio, dict):
            due = self._on_audio(conn, audio)
            if len(realtime) == 1:  # the common case: one field per message
                if due:
                    await self._reply(conn)
                return
        else:
            chunks = _field(realtime, "mediaChunks", "media_chunks")
            due = False
            for blob in chunks if isinstance(chunks, list) else ():
                due = isinstance(blob, dict) and self._on_audio(conn, blob) or due
        if realtime.get("text") or _field(realtime, "activityEnd", "activity_end") is not None:
            await self._interrupt(conn)
            await self._reply(conn)
        elif _field(realtime, "activityStart", "activity_start") is not None:
            await self._interrupt(conn)
        elif due:
            await self._reply(conn)

    def _on_audio(self, conn: _Conn, blob: Dict[str, Any]) -> bool:
        """Count one audio blob; tell whether a reply is due (``reply_every``)."""
        mime = _field(blob, "mimeType", "mime_type")
        data = blob.get("data")
        if not isinstance(mime, str) or not mime.startswith("audio/") or not isinstance(data, str):
            return False
        rate = self._rates.get(mime)
        if rate is None:
            rate = self._rates[mime] = mime_rate(mime) if len(self._rates) < 64 else 16000
        # Bytes from the base64 length: nothing is decoded.
        size = len(data) * 3 // 4 - (2 if data.endswith("==") else 1 if data.endswith("=") else 0)
        seconds = size / 2.0 / rate
        counters = self._counters
        counters.audio_chunks_in += 1
        counters.audio_seconds_in += seconds
        conn.audio_s += seconds
        every = self.options.reply_every
        # 1e-9: ten 0.02 s chunks add up to 0.19999999999999998 s.
        return bool(every) and conn.audio_s >= every - 1e-9 and conn.state == IDLE

    async def _interrupt(self, conn: _Conn) -> None:
        """End the reply in progress because of a user turn (handler task)."""
        if conn.state == IDLE:
            return
        state, conn.state = conn.state, IDLE
        self._replying.pop(conn, None)
        frames = self._frames[conn.vertex]
        if state == STREAMING:
            self._counters.interrupted += 1
            await self._send(conn, frames.interrupted)
        await self._send(conn, frames.turn_complete)

    async def _reply(self, conn: _Conn) -> None:
        """Start a reply: send its first chunk now; the ticker sends the rest when due."""
        conn.audio_s = 0.0
        conn.state = STREAMING
        conn.sent = 0
        conn.total = self._frames[conn.vertex].chunks
        conn.start = conn.due = asyncio.get_running_loop().time()
        self._replying[conn] = None
        self._counters.replies += 1
        await self._advance(conn, conn.start)

    # ------------------------------------------------------------------ replies

    async def _tick(self) -> None:
        """Every chunk period, send what is due on every replying connection."""
        loop = asyncio.get_running_loop()
        period = self.options.audio_chunk_seconds
        next_at = loop.time()
        while True:
            next_at += period
            delay = next_at - loop.time()
            if delay < 0:  # the loop fell behind: skip the missed ticks
                next_at -= delay
                delay = 0.0
            await asyncio.sleep(delay)
            horizon = loop.time() + period / 2
            for conn in list(self._replying):
                if conn.due > horizon or conn.state == IDLE:
                    continue
                try:
                    await self._advance(conn, loop.time())
                except Exception:  # pragma: no cover - defensive: the clock must keep going
                    logger.error("load server: reply failed; connection dropped from the "
                                 "clock", exc_info=True)
                    self._replying.pop(conn, None)

    async def _advance(self, conn: _Conn, now: float) -> None:
        """Send the next message of ``conn``'s reply, if the client keeps up (ticker)."""
        frames = self._frames[conn.vertex]
        ws = conn.ws
        if ws.state is not State.OPEN:
            return
        if ws.paused or ws.transport.get_write_buffer_size() + 2 * len(
                frames.chunk) > self.options.write_limit:
            self._counters.backpressure += 1
            return
        period = self.options.audio_chunk_seconds
        counters = self._counters
        lateness = now - conn.due
        if conn.state == ENDING:
            conn.state = IDLE
            self._replying.pop(conn, None)
            await self._send_all(conn, [frames.turn_complete] + (
                [self._handle_update(conn)] if conn.resumption else []))
            return
        batch = [frames.started] if conn.sent == 0 and conn.resumption else []
        last = conn.sent == conn.total - 1
        batch.append(frames.tail if last and frames.tail else frames.chunk)
        conn.sent += 1
        counters.chunks_out += 1
        if lateness > period:
            counters.late_chunks += 1
        if lateness > counters.max_lateness:
            counters.max_lateness = lateness
        if last:
            batch.append(frames.generation_complete)
            conn.state = ENDING
            conn.due = conn.start + self.options.reply_seconds
        else:
            conn.due = conn.start + conn.sent * period
        await self._send_all(conn, batch)

    async def _send_all(self, conn: _Conn, frames: List[bytes]) -> None:
        for frame in frames:
            if not await self._send(conn, frame):
                self._replying.pop(conn, None)
                conn.state = IDLE
                return


def _field(obj: Dict[str, Any], name: str, alias: str) -> Any:
    """``obj[name]``, else ``obj[alias]`` (its snake_case spelling), else None."""
    value = obj.get(name)
    return obj.get(alias) if value is None else value


def _split(target: str) -> Tuple[str, Dict[str, str]]:
    """The path (leading slashes collapsed) and the query of a request target."""
    # Strip leading slashes first: urlsplit("//ws/...") would take "ws" as a host.
    parts = urlsplit("/" + target.lstrip("/"))
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def _respond(connection: ServerConnection, status: int, body: str) -> Response:
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = _JSON
    return response


def _b64decode(text: str) -> Optional[bytes]:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None
