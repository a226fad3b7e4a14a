"""One emulated Live connection: handshake, client messages, VAD, generation.

Threads per connection (all joined before the connection's handler returns):

* ``emulator-conn-<id>``: the websockets handler thread. It alone decodes
  client messages, updates the session state and executes closes. Messages
  wait in its inbox until their ``input_lag`` has passed, in arrival order.
* ``emulator-read-<id>``: reads frames and queues them for the handler, so
  the handler can also wake up for deadlines (goAway, lifetime, limits), for
  lagged messages and for commands from tests (``Emulator.close``).
* ``emulator-gen-<id>``: the model worker. It streams replies, so barge-in
  and tool responses are read while the model is "speaking".

Resumable handles are only issued while the model is idle: no job running or
queued, no user turn half read (an open activity, speech in progress), and every
message taken from the inbox fully processed. The handler
holds ``Connection.processing`` while it processes one client message (read,
record, update history, enqueue); the worker holds it around "check idle,
snapshot, send the handle". Lock order: ``processing`` before ``mutex``,
``send_lock`` and the emulator's ``_cond``; nobody takes ``processing`` while
holding another lock, and the worker never holds it while it waits for tool
responses.
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import threading
import time
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Deque,
    Dict,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from websockets.exceptions import ConnectionClosed

from . import _model, _schema
from ._records import ClientMessageRecord, ConnectionRecord, SessionRecord, TokenRecord, Turn
from ._sock import EmulatorServerConnection
from ._wire import (
    as_bool,
    as_int,
    camel,
    camel_keys,
    decode_b64,
    dumps,
    format_duration,
    frame_levels,
    get,
    has,
    mime_rate,
    truncate_reason,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._registry import Registry
    from ._server import UpgradeInfo

logger = logging.getLogger("livesync.emulator")

# Close codes and reasons (documented in docs/emulator.md, "Close codes").
INVALID_ARGUMENT = "Request contains an invalid argument."
API_KEY_INVALID = "API key not valid. Please pass a valid API key."
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API."
)
NOT_FOUND = "Requested entity was not found."
INTERNAL = "Internal error encountered."
DEADLINE = "Deadline expired before operation could complete."
TWO_MODALITIES = (
    "At most one response modality can be specified in the setup request. "
    "To enable simultaneous transcription and audio output, use outputAudioTranscription."
)
MEDIA_CHUNKS = "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."
AUDIO_FORMAT = (
    "error when processing input audio, please check if the inputaudio is in valid format: "
    "16khz s16le pcm, mono channel."
)
NON_AUDIO = "Cannot extract voices from a non-audio request."
FIRST_NOT_SETUP = INVALID_ARGUMENT + " The first message must be a setup message."
SECOND_SETUP = INVALID_ARGUMENT + " setup may only be sent once per connection."
ACTIVITY_WITH_VAD = (
    "Explicit activity control is not supported when automatic activity detection is enabled."
)
SESSION_LIMIT = (
    "Session duration limit exceeded. Enable contextWindowCompression for longer sessions."
)
TOKEN_EXPIRED = "The auth token has expired."

KINDS = ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")


class Closed(Exception):
    """The connection is closing; stop sending."""


class Incoming(NamedTuple):
    """A client frame waiting in the handler's inbox."""

    data: Union[str, bytes]
    received_at: float
    due: float
    """``time.monotonic()`` before which it is not processed (``input_lag``)."""


class Job:
    """One model turn, queued for (or running on) the worker."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.cancel = threading.Event()
        self.finishing = False
        self.pending: Dict[str, str] = {}


class Spoken:
    """What a model turn said so far: text parts, output transcriptions, audio bytes."""

    def __init__(self) -> None:
        self.texts: List[str] = []
        self.transcripts: List[str] = []
        self.audio_bytes = 0

    def add(self, content: Any) -> None:
        """Account for one ``serverContent`` value (None is ignored)."""
        for part in get(get(content, "modelTurn"), "parts") or []:
            if isinstance(get(part, "text"), str) and not get(part, "thought"):
                self.texts.append(part["text"])
            blob = get(part, "inlineData")
            if blob is not None:
                self.audio_bytes += len(decode_b64(get(blob, "data", "")) or b"")
        transcript = get(get(content, "outputTranscription"), "text")
        if isinstance(transcript, str):
            self.transcripts.append(transcript)

    @property
    def text(self) -> str:
        """The reply text: the text parts, else the output transcription."""
        return "".join(self.texts) or "".join(self.transcripts)


class Connection:
    """Server side of one accepted WebSocket connection."""

    def __init__(
        self,
        registry: Registry,
        ws: EmulatorServerConnection,
        record: ConnectionRecord,
        upgrade: UpgradeInfo,
    ) -> None:
        self.reg = registry
        self.options = registry.options
        self.ws = ws
        self.sock = ws.stallable
        self.record = record
        self.upgrade = upgrade
        self.commands: queue.Queue[Tuple[Any, ...]] = queue.Queue()
        self.jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self.send_lock = threading.Lock()
        self.mutex = threading.Lock()
        self.changed = threading.Condition(self.mutex)
        self.processing = threading.Lock()
        self.inbox: Deque[Incoming] = deque()
        self.handle_owed = False
        self.closing = False
        self.done = False
        self.setup_done = False
        self.session: Optional[SessionRecord] = None
        self.token: Optional[TokenRecord] = None
        self.config: Dict[str, Any] = {}
        self.model = ""
        self.history_open = False
        """``historyConfig.initialHistoryInClientContent`` and no realtime input yet."""
        self.index = 0
        self.current: Optional[Job] = None
        self.queued: List[Job] = []
        self.pending_texts: List[str] = []
        self.resumption = False
        self.transparent = False
        self.vad_disabled = False
        self.no_interruption = False
        self.silence_ms = 500.0
        # Server VAD state (audio time, not wall time).
        self.speaking = False
        self.turn_pcm = bytearray()
        self.turn_rate = 16000
        self.voiced_s = 0.0
        self.pos_s = 0.0
        self.silence_run_ms = 0.0
        # Manual activity state.
        self.in_activity = False
        self.activity_pcm = bytearray()
        self.activity_rate = 16000
        self.activity_texts: List[str] = []
        # Deadlines (time.monotonic()).
        self.opened = time.monotonic()
        self.close_at: Optional[float] = None
        self.go_away_at: Optional[float] = None
        self._set_lifetime(self.options.connection_lifetime)
        self.poison: Optional[Tuple[float, int, str]] = None
        """``(due, code, reason)`` of a poisoned resume's close (handler thread)."""
        self.reader: Optional[threading.Thread] = None
        self.worker: Optional[threading.Thread] = None

    def _set_lifetime(self, lifetime: float) -> None:
        """Set the lifetime deadline and its goAway, counted from the upgrade (handler)."""
        scale = self.options.time_scale
        self.close_at = self.opened + lifetime * scale
        self.go_away_at = None
        if self.options.go_away_notice < lifetime:
            self.go_away_at = self.opened + (lifetime - self.options.go_away_notice) * scale

    # ------------------------------------------------------------------ threads

    def run(self) -> None:
        """Serve the connection; return when it is over (handler thread)."""
        cid = self.record.id
        self.reader = threading.Thread(target=self._read, name=f"emulator-read-{cid}", daemon=True)
        self.worker = threading.Thread(target=self._work, name=f"emulator-gen-{cid}", daemon=True)
        self.reader.start()
        self.worker.start()
        try:
            self._serve()
        except Closed:
            pass
        except Exception:  # pragma: no cover - defensive: never kill the server
            logger.error("emulator connection %d failed", cid, exc_info=True)
            self.close(1011, INTERNAL)
        finally:
            self._finish()

    def _read(self) -> None:
        """Queue each frame with its arrival time and due time (reader thread).

        The first frame (the setup) is not lagged; later frames are due
        ``input_lag`` seconds (read at arrival) after they arrived.
        """
        first = True
        try:
            while True:
                data = self.ws.recv()
                lag = 0.0 if first else self.reg.input_lag
                first = False
                with self.reg.cond:
                    self.record.backlog += 1
                    self.reg.cond.notify_all()
                self.commands.put(("msg", data, time.time(), time.monotonic() + lag))
        except ConnectionClosed:
            self.reg.record_close(self)
        except Exception:  # pragma: no cover - defensive
            logger.debug("emulator reader %d stopped", self.record.id, exc_info=True)
        finally:
            self.commands.put(("eof",))

    def _finish(self) -> None:
        with self.send_lock:
            self.closing = True
        self._cancel_all()
        self.jobs.put(None)
        limit = self.options.close_timeout + 1.0
        if self.worker is not None:
            self.worker.join(limit)
        if self.reader is not None and self.reader.is_alive():
            self.reader.join(limit)
            if self.reader.is_alive():
                self.sock.abort()
                self.reader.join(limit)
        self._discard()
        self.reg.connection_ended(self)

    # ------------------------------------------------------------------ commands

    def post(self, *command: Any) -> None:
        """Queue a command for the handler thread (any thread)."""
        self.commands.put(command)

    def _timeout(self) -> Optional[float]:
        if self.record.stalled:
            return None
        due = self.inbox[0].due if self.inbox else None
        poison = self.poison[0] if self.poison else None
        deadlines = [t for t in (self.go_away_at, self.close_at, self._limit_at(), due, poison)
                     if t]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _limit_at(self) -> Optional[float]:
        session = self.session
        if session is None or has(self.config, "contextWindowCompression"):
            return None
        limits = []
        if session.has_audio:
            limits.append(self.options.audio_session_limit)
        if session.has_video:
            limits.append(self.options.video_session_limit)
        if not limits:
            return None
        return session.started_at + min(limits) * self.options.time_scale

    def _serve(self) -> None:
        failure = self.reg.check_auth(self)
        if failure is not None:
            self.close(*failure)
            return
        while not self.done:
            try:
                command: Tuple[Any, ...] = self.commands.get(timeout=self._timeout())
            except queue.Empty:
                command = ("wake",)
            kind = command[0]
            if kind == "eof":
                return
            if self.record.stalled:
                self._discard(len(self.inbox) + int(kind == "msg"))
                self.inbox.clear()
                continue
            if kind == "msg":
                self.inbox.append(Incoming(command[1], command[2], command[3]))
            elif kind == "close":
                self.close(command[1], command[2], by=command[3])
                continue
            self._deadlines()
            self._drain()

    def _drain(self) -> None:
        """Process the inbox messages whose ``input_lag`` has passed, in order (handler)."""
        while self.inbox and not self.done and not self.record.stalled:
            head = self.inbox[0]
            if head.due > time.monotonic():
                return
            self.inbox.popleft()
            try:
                with self.processing:
                    self._on_frame(head.data, head.received_at)
            finally:
                self._discard(1)

    def _discard(self, count: Optional[int] = None) -> None:
        """Take ``count`` messages (default: all) off the record's backlog (handler thread)."""
        if count is not None and count <= 0:
            return
        with self.reg.cond:
            left = 0 if count is None else self.record.backlog - count
            self.record.backlog = max(0, left)
            self.reg.cond.notify_all()

    def _deadlines(self) -> None:
        now = time.monotonic()
        if self.go_away_at is not None and now >= self.go_away_at:
            self.go_away_at = None
            left = (self.close_at - now) if self.close_at is not None else 0.0
            self.send({"goAway": {"timeLeft": format_duration(left)}})
        if self.close_at is not None and now >= self.close_at:
            self.close_at = None
            self.close(1011, DEADLINE)
            return
        if self.poison is not None and now >= self.poison[0]:
            self.close(self.poison[1], self.poison[2])
            return
        limit = self._limit_at()
        if limit is not None and now >= limit and self.session is not None:
            with self.reg.cond:
                self.session.ended = "session limit"
            self.close(1011, SESSION_LIMIT)

    def go_away(self, time_left: float, enforce: bool) -> None:
        """Send goAway now; with ``enforce`` also close after ``time_left`` (any thread)."""
        if enforce:
            deadline = time.monotonic() + max(0.0, time_left)
            if self.close_at is None or deadline < self.close_at:
                self.close_at = deadline
            self.go_away_at = None
            self.post("wake")
        self.send({"goAway": {"timeLeft": format_duration(time_left)}})

    # ------------------------------------------------------------------ sending

    def send(self, message: Union[Dict[str, Any], bytes, str], *, frame: str = "") -> None:
        """Send one server message; raise Closed if the connection is closing (any thread).

        Dicts are serialized like the real server (pretty-printed JSON). ``bytes``
        and ``str`` are sent as they are. ``frame`` forces ``"text"`` or
        ``"binary"``; by default the emulator's ``text_frames`` option decides.
        """
        if isinstance(message, dict):
            data: Union[str, bytes] = dumps(message)
        else:
            data = message
        text = self.options.text_frames if not frame else frame == "text"
        if text and isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        elif not text and isinstance(data, str):
            data = data.encode("utf-8")
        with self.send_lock:
            if self.closing:
                raise Closed()
            try:
                self.ws.send(data)
            except (ConnectionClosed, OSError, RuntimeError) as exc:
                raise Closed() from exc
            with self.reg.cond:
                if isinstance(message, dict) and self.options.record_sent:
                    self.record.sent.append(message)
                self.reg.cond.notify_all()

    def close(self, code: int, reason: str = "", *, by: str = "server") -> None:
        """Close with a close frame and wait for the handshake (handler thread)."""
        reason = truncate_reason(reason)
        with self.send_lock:
            if self.closing:
                self.done = True
                return
            self.closing = True
        with self.reg.cond:
            deadline = (code, reason) == (1011, DEADLINE) and self.session is not None
            if deadline and self.options.refuse_resume_after_deadline:
                assert self.session is not None
                self.session.ended = self.session.ended or "deadline"
            if self.record.closed_by is None:
                self.record.closed_by = by
            if not self.record.stalled:
                self.record.close_code = code
                self.record.close_reason = reason
            self.reg.cond.notify_all()
        self._cancel_all()
        try:
            self.ws.close(code, reason)
        except Exception:  # pragma: no cover - defensive
            logger.debug("close failed", exc_info=True)
        self.done = True

    # ------------------------------------------------------------------ messages

    def _on_frame(self, data: Union[str, bytes], received_at: float) -> None:
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            detail = str(exc).split(":")[0]
            self.close(1007, f"Invalid JSON payload received. {detail}.")
            return
        if not isinstance(message, dict) or not message:
            self.close(1007, "Invalid JSON payload received. Expected a JSON object.")
            return
        unknown = [k for k in message if camel(k) not in KINDS]
        if unknown:
            self.close(
                1007, f'Invalid JSON payload received. Unknown name "{unknown[0]}": '
                "Cannot find field."
            )
            return
        if len(message) > 1:
            self.close(
                1007, "Invalid JSON payload received. Only one of setup, clientContent, "
                "realtimeInput, toolResponse or contextUpdate may be set."
            )
            return
        key, body = next(iter(message.items()))
        kind = camel(key)
        if not self.setup_done:
            if kind != "setup":
                self.close(1007, FIRST_NOT_SETUP)
                return
            self._record(kind, body, message, received_at)
            if self.reg.take_stall_setup():
                self.sock.stall()
                with self.reg.cond:
                    self.record.setup = body if isinstance(body, dict) else None
                    self.record.stalled = True
                    self.reg.cond.notify_all()
                return
            self._on_setup(body)
            return
        if kind == "setup":
            self.close(1007, SECOND_SETUP)
            return
        if self.token is not None and time.monotonic() > self.token.expire_at:
            self.close(1007, TOKEN_EXPIRED)
            return
        self._record(kind, body, message, received_at)
        if not isinstance(body, dict):
            self.close(1007, f"Invalid JSON payload received. {key} must be an object.")
        elif kind == "clientContent":
            self._on_client_content(body)
        elif kind == "realtimeInput":
            self._on_realtime_input(body)
        elif kind == "contextUpdate":
            self._on_context_update(body)
        else:
            self._on_tool_response(body)

    def _record(self, kind: str, body: Any, message: Dict[str, Any], received_at: float) -> None:
        with self.reg.cond:
            index = 0 if kind == "setup" else self.index + 1
            rec = ClientMessageRecord(
                index=index,
                kind=kind,
                payload=body,
                message=message,
                received_at=received_at,
                connection=self.record.id,
                generation=self.record.generation,
                processed_at=time.time(),
            )
            self.record.messages.append(rec)
            if kind != "setup" and self.session is not None:
                self.index = index
                self.session.messages.append(rec)
            self.reg.cond.notify_all()

    def _on_setup(self, body: Any) -> None:
        if not isinstance(body, dict):
            self.close(1007, INVALID_ARGUMENT)
            return
        with self.reg.cond:
            self.record.setup = body
        if not self._parse(body, "BidiGenerateContentSetup", "setup"):
            return
        config = camel_keys(body)
        if isinstance(config.get("generationConfig"), dict):
            config["generationConfig"] = camel_keys(config["generationConfig"])
        resumption = config.get("sessionResumption")
        handle = get(resumption, "handle") if isinstance(resumption, dict) else None
        if self.token is not None:
            failure = self.reg.use_token(self.token, resume=bool(handle))
            if failure is not None:
                self.close(*failure)
                return
            config = apply_locked(config, self.token.setup, self.token.field_mask)
            resumption = config.get("sessionResumption")
        with self.reg.cond:
            self.record.effective_setup = config
        self.config = config
        modalities = get(config.get("generationConfig"), "responseModalities") or []
        if isinstance(modalities, list) and len(modalities) > 1:
            self.close(1007, TWO_MODALITIES)
            return
        model_or_error = self.reg.resolve_model(self.record, config.get("model"))
        if isinstance(model_or_error, tuple):
            self.close(*model_or_error)
            return
        model = model_or_error
        self.model = model
        if model in (self.options.model_lifetimes or {}):
            self._set_lifetime(self.options.lifetime(model))
        if "native-audio" in model and [str(m).upper() for m in modalities] == ["TEXT"]:
            self.close(1007, NON_AUDIO)
            return
        self.resumption = resumption is not None
        self.transparent = as_bool(get(resumption, "transparent"))
        if self.transparent and self.record.backend != "vertex":
            self.close(1007, INVALID_ARGUMENT)
            return
        rtc = config.get("realtimeInputConfig")
        aad = get(rtc, "automaticActivityDetection")
        self.vad_disabled = as_bool(get(aad, "disabled"))
        self.silence_ms = float(as_int(get(aad, "silenceDurationMs"), 0) or 500)
        self.no_interruption = str(get(rtc, "activityHandling", "")) == "NO_INTERRUPTION"
        history = get(config.get("historyConfig"), "initialHistoryInClientContent")
        self.history_open = as_bool(history)
        if handle:
            result = self.reg.resume_session(self, str(handle), model)
        else:
            result = self.reg.new_session(self, model)
        if isinstance(result, tuple):
            self.close(*result)
            return
        self.session = result
        complete: Dict[str, Any] = {}
        if self.record.backend == "vertex":
            complete["sessionId"] = result.id
        self.setup_done = True
        with self.reg.cond:
            poison = result.poison if handle else None
        if poison is not None:
            due = time.monotonic() + poison[2] * self.options.time_scale
            self.poison = (due, poison[0], poison[1])
        self.send({"setupComplete": complete})
        if self.resumption:
            self._send_handle()
        if self.reg.take_drop_after_setup():
            self.reg.drop(self)

    def _parse(self, body: Any, message: str, path: str) -> bool:
        """Check ``body`` like the proto-JSON parser; close 1007, return False if bad (handler)."""
        if message == "BidiGenerateContentSetup" and not self.options.validate_setup:
            return True
        package = _schema.package_for(self.record.backend, self.record.api_version)
        error = _schema.validate(body, message, path, package)
        if error is not None:
            self.close(1007, error)
        return error is None

    def _on_context_update(self, body: Dict[str, Any]) -> None:
        """Replace the session's system instruction and/or tools for later turns (handler)."""
        if not self._parse(body, "BidiGenerateContentContextUpdate", "context_update"):
            return
        session = self.session
        assert session is not None
        instruction = get(body, "systemInstruction")
        tools = get(body, "tools")
        with self.reg.cond:
            if instruction is not None:
                session.system_instruction = copy.deepcopy(instruction)
            if tools is not None:
                session.tools = copy.deepcopy(get(tools, "tools") or [])
            self.reg.cond.notify_all()

    def _turn_config(self) -> Dict[str, Any]:
        """The connection's setup with the session's current instruction and tools (handler)."""
        session = self.session
        assert session is not None
        config = dict(self.config)
        with self.reg.cond:
            current = (("systemInstruction", session.system_instruction),
                       ("tools", session.tools))
            for key, value in current:
                config.pop(key, None)
                if value is not None:
                    config[key] = copy.deepcopy(value)
        return config

    def _on_client_content(self, body: Dict[str, Any]) -> None:
        if not self.history_open:
            self.barge_in()
        turns = get(body, "turns") or []
        if not isinstance(turns, list):
            turns = []
        contents = [copy.deepcopy(t) for t in turns if isinstance(t, dict)]
        for content in contents:
            if get(content, "role", "user") == "user":
                texts = [get(p, "text") for p in get(content, "parts") or []]
                self.pending_texts.extend(t for t in texts if isinstance(t, str))
        if contents:
            self._add_history(contents)
        if as_bool(get(body, "turnComplete")):
            text = " ".join(self.pending_texts)
            self.pending_texts = []
            if not self.history_open:  # initial history does not trigger a reply
                self._enqueue(Turn(kind="text", text=text))

    def _on_realtime_input(self, body: Dict[str, Any]) -> None:
        self.history_open = False
        if has(body, "mediaChunks") and not self._media_chunks(get(body, "mediaChunks")):
            return
        audio = get(body, "audio")
        if audio is not None:
            self._on_audio(audio)
            if self.closing:
                return
        video = get(body, "video")
        if video is not None and not self._on_video(video):
            return
        text = get(body, "text")
        if isinstance(text, str):
            self._on_text(text)
        strict = self.options.strict_activity_control and not self.vad_disabled
        if strict and (has(body, "activityStart") or has(body, "activityEnd")):
            self.close(1007, ACTIVITY_WITH_VAD)
            return
        if has(body, "activityStart"):
            self.barge_in()
            self.speaking = False  # explicit activity takes over from the server VAD
            self.in_activity = True
            self.activity_pcm = bytearray()
            self.activity_texts = []
        if has(body, "activityEnd"):
            if self.in_activity:
                self.in_activity = False
                self._end_activity()
        if as_bool(get(body, "audioStreamEnd")) and self.speaking:
            self._end_speech()

    def _media_chunks(self, chunks: Any) -> bool:
        """Take ``mediaChunks`` as audio/video (2.x models); False if closed (handler)."""
        if not self.options.accepts_media_chunks(self.model):
            self.close(1007, MEDIA_CHUNKS)
            return False
        for blob in chunks if isinstance(chunks, list) else []:
            if str(get(blob, "mimeType") or "").startswith("image/"):
                if not self._on_video(blob):
                    return False
            else:
                self._on_audio(blob)
                if self.closing:
                    return False
        return True

    def _on_video(self, video: Any) -> bool:
        """Take one video frame (an ``image/*`` blob); False if it closed (handler thread)."""
        mime = str(get(video, "mimeType") or "")
        if not mime.startswith("image/") or decode_b64(get(video, "data", "")) is None:
            self.close(1007, INVALID_ARGUMENT + " realtimeInput.video must be an image/* blob.")
            return False
        self._mark_media(video=True)
        return True

    def _on_text(self, text: str) -> None:
        if self.in_activity:
            self.activity_texts.append(text)
            return
        self.barge_in()
        self._add_history([{"role": "user", "parts": [{"text": text}]}])
        self._enqueue(Turn(kind="text", text=text))

    def _mark_media(self, *, audio: bool = False, video: bool = False) -> None:
        session = self.session
        if session is None:
            return
        with self.reg.cond:
            session.has_audio = session.has_audio or audio
            session.has_video = session.has_video or video

    def _on_audio(self, blob: Any) -> None:
        mime = str(get(blob, "mimeType") or "")
        if not mime.startswith("audio/"):
            self.close(1007, INVALID_ARGUMENT + " realtimeInput.audio must be an audio/* blob.")
            return
        data = decode_b64(get(blob, "data", ""))
        if data is None:
            self.close(
                1007, "Invalid value at 'realtime_input.audio.data' (TYPE_BYTES), "
                "Base64 decoding failed."
            )
            return
        if len(data) % 2:
            self.close(1007, AUDIO_FORMAT)
            return
        self._mark_media(audio=True)
        rate = mime_rate(mime)
        if self.in_activity:
            self.activity_pcm += data
            self.activity_rate = rate
            return
        if self.vad_disabled:
            return
        offset = 0
        for seconds, rms in frame_levels(data, rate):
            size = int(round(seconds * rate)) * 2
            frame = data[offset:offset + size]
            offset += size
            if rms >= self.options.vad_threshold:
                if not self.speaking:
                    self.speaking = True
                    self.turn_pcm = bytearray()
                    self.turn_rate = rate
                    self.pos_s = 0.0
                    self.barge_in()
                self.pos_s += seconds
                self.voiced_s = self.pos_s
                self.silence_run_ms = 0.0
                self.turn_pcm += frame
            elif self.speaking:
                self.pos_s += seconds
                self.silence_run_ms += seconds * 1000.0
                self.turn_pcm += frame
                if self.silence_run_ms >= self.silence_ms - 1e-6:
                    self._end_speech()

    def _end_speech(self) -> None:
        self.speaking = False
        voiced_bytes = int(round(self.voiced_s * self.turn_rate)) * 2
        self._audio_turn(bytes(self.turn_pcm[:voiced_bytes]), self.turn_rate, self.voiced_s)

    def _end_activity(self) -> None:
        pcm = bytes(self.activity_pcm)
        seconds = len(pcm) / 2 / self.activity_rate
        if self.activity_texts:
            if pcm:
                self._transcribe(seconds)
            text = " ".join(self.activity_texts)
            self._add_history([{"role": "user", "parts": [{"text": text}]}])
            self._enqueue(Turn(kind="activity", text=text, audio=pcm,
                               audio_rate=self.activity_rate, audio_seconds=seconds))
        elif pcm:
            self._audio_turn(pcm, self.activity_rate, seconds)
        else:
            self._enqueue(Turn(kind="activity", text=""))

    def _transcribe(self, seconds: float) -> str:
        text = f"(audio {seconds:.2f} s)"
        if self.config.get("inputAudioTranscription") is not None:
            self.send({"serverContent": {"inputTranscription": {"text": text}}})
        return text

    def _audio_turn(self, pcm: bytes, rate: int, seconds: float) -> None:
        text = self._transcribe(seconds)
        self._add_history([{"role": "user", "parts": [{"text": text}]}])
        self._enqueue(
            Turn(kind="audio", text=text, audio=pcm, audio_rate=rate, audio_seconds=seconds)
        )

    def _on_tool_response(self, body: Dict[str, Any]) -> None:
        responses = get(body, "functionResponses") or []
        if not isinstance(responses, list):
            responses = []
        with self.mutex:
            job = self.current
            for response in responses:
                call_id = get(response, "id")
                name = get(response, "name")
                if not call_id and job is not None and self.record.backend == "vertex":
                    call_id = next((i for i, n in job.pending.items() if n == name), None)
                # Responses for ids never issued are ignored, as the real service does.
                if job is not None and call_id in job.pending:
                    job.turn.tool_responses[str(call_id)] = get(response, "response") or {}
                    del job.pending[str(call_id)]
            self.changed.notify_all()
        fault = self.reg.take_tool_response_close()
        if fault is not None:
            self.close(*fault)

    # ------------------------------------------------------------------ model

    def _add_history(self, contents: List[Dict[str, Any]]) -> None:
        session = self.session
        if session is None:
            return
        with self.reg.cond:
            session.history.extend(contents)
            self.reg.cond.notify_all()

    def _enqueue(self, turn: Turn) -> None:
        session = self.session
        assert session is not None
        turn.config = self._turn_config()
        turn.session_id = session.id
        turn.connection_id = self.record.id
        turn.backend = self.record.backend
        turn.text_chunk_chars = self.options.text_chunk_chars
        turn.audio_chunk_seconds = self.options.audio_chunk_seconds
        turn.audio_seconds_per_char = self.options.audio_seconds_per_char
        job = Job(turn)
        with self.mutex:
            self.queued.append(job)
        self.jobs.put(job)

    def barge_in(self) -> None:
        """Interrupt the current generation (unless NO_INTERRUPTION) (handler thread)."""
        if self.no_interruption:
            return
        with self.mutex:
            if self.current is not None and not self.current.finishing:
                self.current.cancel.set()
            for job in self.queued:
                job.cancel.set()
            self.changed.notify_all()

    def _cancel_all(self) -> None:
        with self.mutex:
            for job in self.queued + ([self.current] if self.current else []):
                job.cancel.set()
            self.changed.notify_all()

    def _work(self) -> None:
        """Run queued jobs one at a time until the None sentinel (worker thread)."""
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                if not self._start(job):
                    if self.resumption and self.handle_owed:
                        self._handle_if_idle(None)
                    continue
                try:
                    self._generate(job)
                finally:
                    with self.mutex:
                        self.current = None
        except Closed:
            pass
        except Exception:
            logger.error("emulator model worker %d failed", self.record.id, exc_info=True)
            self.post("close", 1011, INTERNAL, "server")

    def _start(self, job: Job) -> bool:
        """Make ``job`` current unless it was cancelled while queued (worker thread)."""
        with self.mutex:
            if job in self.queued:
                self.queued.remove(job)
            if job.cancel.is_set():
                return False
            self.current = job
            return True

    def _generate(self, job: Job) -> None:
        """Stream the reply to one turn, then end it (worker thread).

        With ``interaction_status="background"`` the turn ends with
        ``interactionStatus: IN_PROGRESS`` and :meth:`_background` follows.
        """
        turn = job.turn
        session = self.session
        assert session is not None
        with self.reg.cond:
            turn.history = copy.deepcopy(session.history)
        prompt_text = _model.history_text(turn.history)
        if self.resumption:
            self.send({"sessionResumptionUpdate": {}})
        script: Optional[Iterable[Dict[str, Any]]] = None
        if self.options.responder is not None:
            script = self.options.responder(turn)
        if script is None:
            script = _model.default_script(turn)
        spoken = Spoken()
        own_end = self._stream(job, script, spoken, calls=True)
        mode = self.options.interaction_status
        with self.mutex:
            interrupted = job.cancel.is_set() and not own_end
            background = mode == "background" and not interrupted and not own_end
            job.finishing = not interrupted and not background
            cancelled_ids = list(job.pending)
            job.pending.clear()
        if interrupted:
            if cancelled_ids:
                self.send({"toolCallCancellation": {"ids": cancelled_ids}})
            self.send({"serverContent": {"interrupted": True}})
        elif not own_end:
            self.send({"serverContent": {"generationComplete": True}})
        if spoken.text:
            self._add_history([{"role": "model", "parts": [{"text": spoken.text}]}])
        if not own_end:
            content: Dict[str, Any] = {"turnComplete": True}
            if mode is not None:
                content["interactionStatus"] = "IN_PROGRESS" if background else "IDLE"
            end: Dict[str, Any] = {"serverContent": content}
            meta = _model.usage(
                backend=self.record.backend,
                prompt_text=prompt_text,
                prompt_audio_seconds=turn.audio_seconds,
                response_text=spoken.text,
                response_audio_seconds=spoken.audio_bytes / 2 / 24000,
            )
            if meta:
                end["usageMetadata"] = meta
            self.send(end)
        if background:
            self._background(job)
        if self.resumption:
            self._handle_if_idle(job)

    def _stream(self, job: Job, script: Iterable[Dict[str, Any]], spoken: Spoken,
                *, calls: bool) -> bool:
        """Send ``script`` until done or cancelled; True if it ended the turn itself (worker).

        A ``toolCall`` (when ``calls``) waits for the client's responses.
        """
        for message in script:
            if job.cancel.is_set():
                return False
            found = [
                c for c in get(get(message, "toolCall"), "functionCalls") or []
                if isinstance(c, dict) and c.get("id")
            ] if calls else []
            if found:
                with self.mutex:
                    for call in found:
                        job.pending[str(call["id"])] = str(call.get("name", ""))
            content = get(message, "serverContent")
            ends = as_bool(get(content, "turnComplete"))
            if ends and self.options.interaction_status and not has(content, "interactionStatus"):
                message = dict(message, serverContent=dict(content, interactionStatus="IDLE"))
            self.send(message)
            spoken.add(content)
            if found:
                with self.mutex:
                    self.changed.wait_for(lambda: job.cancel.is_set() or not job.pending)
            if ends:
                return True
            if self.options.chunk_delay > 0:
                job.cancel.wait(self.options.chunk_delay)
        return False

    def _background(self, job: Job) -> None:
        """Background output after ``IN_PROGRESS``, then ``turnComplete`` + ``IDLE`` (worker).

        Waits ``background_delay`` (scaled), streams :data:`_model.BACKGROUND_TEXT`
        in the connection's modality; a barge-in interrupts it as usual
        (``interrupted``), and the final ``IDLE`` turnComplete is always sent.
        """
        job.cancel.wait(self.options.background_delay * self.options.time_scale)
        spoken = Spoken()
        self._stream(job, job.turn.reply(_model.BACKGROUND_TEXT), spoken, calls=False)
        with self.mutex:
            interrupted = job.cancel.is_set()
            job.finishing = True
        if interrupted:
            self.send({"serverContent": {"interrupted": True}})
        if spoken.text:
            self._add_history([{"role": "model", "parts": [{"text": spoken.text}]}])
        self.send({"serverContent": {"turnComplete": True, "interactionStatus": "IDLE"}})

    # ------------------------------------------------------------------ resumption

    def _handle_if_idle(self, job: Optional[Job]) -> None:
        """Send a resumable handle if the model is idle, else owe one (worker thread).

        Idle: no job but ``job`` (the one ending) is current, no job that
        still counts is queued, and the user is not mid-turn (an open manual
        activity, or speech the server VAD is following): a snapshot holds no
        half-read turn. A job cancelled while queued never runs, so it
        does not count. ``processing`` keeps the handler from recording and
        enqueuing a client message between the check and the snapshot. When
        another turn is queued, its end sends the handle; if it is cancelled
        before it starts, the worker sends the owed handle when it skips it.
        """
        with self.processing:
            with self.mutex:
                idle = self.current in (None, job) and all(
                    q.cancel.is_set() for q in self.queued
                ) and not (self.in_activity or self.speaking)  # the user is mid-turn
                self.handle_owed = not idle
            if idle:
                self._send_handle()

    def issue_handle(self) -> None:
        """Send a fresh resumable handle now, idle or not (any thread but this handler).

        Waits until the handler has finished the client message it is
        processing, so the snapshot never holds half of one.
        """
        with self.processing:
            self._send_handle()

    def _send_handle(self) -> None:
        """Snapshot the session into a new handle and send it (caller holds ``processing``)."""
        session = self.session
        if session is None or self.closing:
            return
        handle = self.reg.snapshot(self, session)
        update: Dict[str, Any] = {"newHandle": handle.handle, "resumable": True}
        if self.transparent and handle.last_consumed_index:
            update["lastConsumedClientMessageIndex"] = str(handle.last_consumed_index)
        self.send({"sessionResumptionUpdate": update})


def apply_locked(
    config: Dict[str, Any], locked: Optional[Dict[str, Any]], mask: Optional[List[str]]
) -> Dict[str, Any]:
    """Apply an ephemeral token's locked setup to a client setup (camelCase top level).

    Without a field mask every field present in the token's setup overrides the
    client's (top level, and ``generationConfig`` field by field). With a mask,
    the token's setup fills in fields the client left out, and each masked path
    (``model``, ``generationConfig.temperature``, snake_case allowed) is forced to
    the token's value, or removed when the token's setup lacks it.
    """
    if not locked:
        locked = {}
    lock = camel_keys(locked)
    if isinstance(lock.get("generationConfig"), dict):
        lock["generationConfig"] = camel_keys(lock["generationConfig"])
    result = copy.deepcopy(config)
    if mask is None:
        for key, value in lock.items():
            if key == "generationConfig" and isinstance(value, dict):
                merged = dict(result.get("generationConfig") or {})
                merged.update(copy.deepcopy(value))
                result[key] = merged
            else:
                result[key] = copy.deepcopy(value)
        return result
    for key, value in lock.items():
        if key == "generationConfig" and isinstance(value, dict):
            merged = copy.deepcopy(value)
            merged.update(result.get("generationConfig") or {})
            result[key] = merged
        else:
            result.setdefault(key, copy.deepcopy(value))
    for path in mask:
        names = [camel(p) for p in path.strip().split(".") if p]
        if not names:
            continue
        source: Any = lock
        for name in names:
            source = camel_keys(source).get(name) if isinstance(source, dict) else None
        target = result
        for name in names[:-1]:
            child = target.get(name)
            child = camel_keys(child) if isinstance(child, dict) else {}
            target[name] = child
            target = child
        if source is None:
            target.pop(names[-1], None)
        else:
            target[names[-1]] = copy.deepcopy(source)
    return result
