"""Introspection records exposed by :class:`~livesync.emulator.Emulator`.

All records are plain dataclasses owned by the emulator. They are updated by
the emulator's threads under its lock; read them from tests after waiting
with :meth:`Emulator.wait_for` (or ``wait_for_connections``). Secrets (API
keys, bearer and ephemeral tokens, resumption handles) never appear in a
record's ``repr``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

from ._wire import encode_b64, get, tone


@dataclasses.dataclass
class ClientMessageRecord:
    """One client message the emulator decoded.

    Attributes:
        index: Per-connection index: 0 is ``setup``, the messages after it are
            1, 2, 3, ... restarting at 1 on each new connection (the index used
            by ``lastConsumedClientMessageIndex``).
        kind: Top-level key, normalised to camelCase: ``"setup"``,
            ``"clientContent"``, ``"realtimeInput"``, ``"toolResponse"`` or
            ``"contextUpdate"``.
        payload: The value under that key, as decoded (not normalised).
        message: The whole decoded message object.
        received_at: ``time.time()`` when the message was read from the socket.
        connection: Id of the :class:`ConnectionRecord` it arrived on.
        generation: Which connection of its session that was (1 for the first).
        processed_at: ``time.time()`` when the emulator decoded and acted on it
            (later than ``received_at`` by at least ``input_lag``).
    """

    index: int
    kind: str
    payload: Any
    message: Dict[str, Any] = dataclasses.field(repr=False)
    received_at: float
    connection: int
    generation: int
    processed_at: float = 0.0


@dataclasses.dataclass
class UpgradeRecord:
    """One HTTP upgrade request seen on the WebSocket port (accepted or refused).

    Attributes:
        path: Request path; ``key=``/``access_token=`` query values redacted.
        headers: Request headers; ``x-goog-api-key``, ``authorization`` redacted.
        status: HTTP status returned (101 when the upgrade was accepted).
        connection: Id of the :class:`ConnectionRecord` when accepted, else None.
    """

    path: str
    headers: List[Tuple[str, str]]
    status: int
    connection: Optional[int] = None


@dataclasses.dataclass
class ConnectionRecord:
    """One accepted WebSocket connection.

    Attributes:
        id: Global connection number, counting from 1 per emulator.
        path: Upgrade path (credentials redacted).
        api_version: ``"v1"``, ``"v1beta"``, ``"v1alpha"`` (Gemini API) or ``"v1beta1"``,
            ``"v1"`` (Vertex).
        backend: ``"gemini"`` or ``"vertex"``.
        method: ``"BidiGenerateContent"`` or ``"BidiGenerateContentConstrained"``.
        auth: How the client authenticated: ``"api_key_header"``, ``"api_key_query"``,
            ``"token_header"``, ``"token_query"``, ``"bearer"`` or ``"none"``.
        headers: Upgrade request headers (credentials redacted).
        setup: The ``setup`` body as decoded, or None before it arrived.
        effective_setup: The setup actually used (ephemeral-token fields applied).
        messages: Every decoded client message, setup first (index 0).
        sent: Every server message sent as JSON (decoded form), in order.
        session_id: Session this connection belongs to (after setup).
        generation: Which connection of its session this is (1 for the first).
        resumed_from: True when setup carried a resumption handle that was accepted.
        open: True until the connection ended.
        close_code: Code of the close frame the emulator sent (or echoed), None if none.
        close_reason: Reason of that close frame.
        client_close_code: Code of the close frame received from the client, if any.
        closed_by: ``"server"``, ``"client"``, ``"drop"``, ``"stop"`` or None while open.
        stalled: True after :meth:`Emulator.stall`.
        backlog: Client messages read from the socket but not processed yet
            (waiting out ``input_lag``, or queued for the handler thread).
        opened_at: ``time.time()`` of the accepted upgrade.
        closed_at: ``time.time()`` when the connection ended, or None.
    """

    id: int
    path: str
    api_version: str
    backend: str
    method: str
    auth: str
    headers: List[Tuple[str, str]]
    setup: Optional[Dict[str, Any]] = None
    effective_setup: Optional[Dict[str, Any]] = dataclasses.field(default=None, repr=False)
    messages: List[ClientMessageRecord] = dataclasses.field(default_factory=list, repr=False)
    sent: List[Dict[str, Any]] = dataclasses.field(default_factory=list, repr=False)
    session_id: Optional[str] = None
    generation: int = 0
    resumed_from: Optional[str] = dataclasses.field(default=None, repr=False)
    open: bool = True
    close_code: Optional[int] = None
    close_reason: Optional[str] = None
    client_close_code: Optional[int] = None
    closed_by: Optional[str] = None
    stalled: bool = False
    backlog: int = 0
    opened_at: float = 0.0
    closed_at: Optional[float] = None

    @property
    def resumed(self) -> bool:
        """True when this connection resumed an earlier session."""
        return self.resumed_from is not None

    def sent_kinds(self) -> List[str]:
        """Return the top-level keys of the sent messages (``usageMetadata`` excluded)."""
        kinds: List[str] = []
        for message in self.sent:
            kinds.extend(key for key in message if key != "usageMetadata")
        return kinds


@dataclasses.dataclass
class SessionRecord:
    """Server-side state of one Live session (it may span several connections).

    Attributes:
        id: Session id (a UUID string; Vertex clients see it as ``sessionId``).
        backend: ``"gemini"`` or ``"vertex"``.
        model: Bare model name (``"gemini-live-2.5-flash"``).
        messages: Client messages (setup excluded) folded into the current state,
            in order. Resuming rewinds this list to the handle's snapshot, so after
            a correct resume and replay each client message appears exactly once.
        history: Conversation history (``Content`` dicts, ``role`` + ``parts``).
        connections: Ids of the connections that served this session.
        handles: Number of resumption handles issued.
        has_audio: True once the session received ``realtimeInput.audio``.
        has_video: True once the session received ``realtimeInput.video``.
        ended: Why the session can no longer be resumed, or None.
        started_at: ``time.monotonic()`` of the first setup (session limits count from here).
        system_instruction: The current system instruction (a ``Content`` dict):
            the setup's, replaced by each ``contextUpdate``; None if none.
        tools: The current tools (list of ``Tool`` dicts): the setup's, replaced by
            each ``contextUpdate`` (``[]`` after a clear); None if none.
        poison: ``(code, reason, after)`` set by :meth:`Emulator.poison_session`:
            every resume of this session is closed ``after`` nominal seconds after
            its ``setupComplete``; None if not poisoned.
    """

    id: str
    backend: str
    model: str
    messages: List[ClientMessageRecord] = dataclasses.field(default_factory=list, repr=False)
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list, repr=False)
    connections: List[int] = dataclasses.field(default_factory=list)
    handles: int = 0
    has_audio: bool = False
    has_video: bool = False
    ended: Optional[str] = None
    started_at: float = 0.0
    system_instruction: Optional[Dict[str, Any]] = dataclasses.field(default=None, repr=False)
    tools: Optional[List[Dict[str, Any]]] = dataclasses.field(default=None, repr=False)
    poison: Optional[Tuple[int, str, float]] = None


@dataclasses.dataclass
class HandleRecord:
    """A resumption handle and the session state it snapshots.

    Attributes:
        handle: The handle string sent as ``newHandle`` (never in ``repr``).
        session_id: Session the handle resumes.
        connection: Id of the connection it was issued on.
        last_consumed_index: Per-connection index of the last client message in
            the snapshot (0: only the setup).
        issued_at: ``time.monotonic()`` when it was issued.
        expires_at: ``time.monotonic()`` after which it is refused.
        history: Conversation history in the snapshot.
        messages: Client messages in the snapshot (``SessionRecord.messages``).
        system_instruction: The session's system instruction in the snapshot.
        tools: The session's tools in the snapshot.
    """

    handle: str = dataclasses.field(repr=False)
    session_id: str
    connection: int
    last_consumed_index: int
    issued_at: float
    expires_at: float
    history: List[Dict[str, Any]] = dataclasses.field(repr=False)
    messages: List[ClientMessageRecord] = dataclasses.field(repr=False)
    system_instruction: Optional[Dict[str, Any]] = dataclasses.field(default=None, repr=False)
    tools: Optional[List[Dict[str, Any]]] = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class TokenRecord:
    """An ephemeral auth token minted by ``POST /v1alpha/auth_tokens``.

    ``expire_at`` and ``new_session_expire_at`` are ``time.monotonic()`` values
    (already scaled by ``time_scale``); ``uses == 0`` means unlimited.
    """

    name: str = dataclasses.field(repr=False)
    uses: int
    used: int
    expire_at: float
    new_session_expire_at: float
    setup: Optional[Dict[str, Any]] = dataclasses.field(default=None, repr=False)
    field_mask: Optional[List[str]] = None


@dataclasses.dataclass
class Turn:
    """One user turn handed to the model (the default script or a ``responder``).

    Attributes:
        kind: ``"text"`` (clientContent or realtime text), ``"audio"`` (server VAD)
            or ``"activity"`` (manual ``activityStart``/``activityEnd``).
        text: The user's text (for audio turns: the input transcription).
        audio: PCM of the turn (s16le mono), empty for text turns.
        audio_rate: Sample rate of ``audio``.
        audio_seconds: Duration of the detected speech.
        history: Conversation history *including* this user turn (a copy).
        config: Effective setup of the connection (camelCase top level).
        session_id: Session id.
        connection_id: Connection id.
        backend: ``"gemini"`` or ``"vertex"``.
        tool_responses: Filled by the emulator after a ``toolCall`` was sent:
            call id -> the ``response`` object the client returned.
    """

    kind: str
    text: str
    audio: bytes = dataclasses.field(default=b"", repr=False)
    audio_rate: int = 16000
    audio_seconds: float = 0.0
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list, repr=False)
    config: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    session_id: str = ""
    connection_id: int = 0
    backend: str = "gemini"
    tool_responses: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    text_chunk_chars: int = dataclasses.field(default=16, repr=False)
    audio_chunk_seconds: float = dataclasses.field(default=0.1, repr=False)
    audio_seconds_per_char: float = dataclasses.field(default=0.02, repr=False)

    @property
    def modality(self) -> str:
        """Response modality of the connection: ``"AUDIO"`` (server default) or ``"TEXT"``."""
        gen = get(self.config, "generationConfig") or {}
        modalities = get(gen, "responseModalities") or ["AUDIO"]
        return str(modalities[0]).upper() if modalities else "AUDIO"

    def reply(self, text: str) -> List[Dict[str, Any]]:
        """Return the streamed server messages that say ``text`` in this connection's style.

        TEXT modality: ``modelTurn`` text parts of ``text_chunk_chars`` characters
        (at least two chunks for any reply of two or more characters). AUDIO
        modality: ``inlineData`` parts of 24 kHz PCM (``audio_seconds_per_char``
        seconds per character, chunks of ``audio_chunk_seconds``), each followed by
        an ``outputTranscription`` of the matching slice of ``text`` when the setup
        has ``outputAudioTranscription``. The end of the turn is not included.
        """
        if self.modality == "TEXT":
            return [
                {"serverContent": {"modelTurn": self._content([{"text": piece}])}}
                for piece in split_text(text, self.text_chunk_chars)
            ]
        messages: List[Dict[str, Any]] = []
        transcribe = get(self.config, "outputAudioTranscription") is not None
        total = max(self.audio_seconds_per_char * len(text), self.audio_chunk_seconds)
        count = max(1, int(-(-total // self.audio_chunk_seconds)))
        pcm = tone(total)
        step = -(-len(pcm) // count)
        step += step % 2
        mime = "audio/pcm" if self.backend == "vertex" else "audio/pcm;rate=24000"
        for i in range(count):
            piece = pcm[i * step:(i + 1) * step]
            if not piece:
                break
            part = {"inlineData": {"mimeType": mime, "data": encode_b64(piece)}}
            messages.append({"serverContent": {"modelTurn": self._content([part])}})
            if transcribe:
                lo = len(text) * i // count
                hi = len(text) * (i + 1) // count
                if text[lo:hi]:
                    messages.append(
                        {"serverContent": {"outputTranscription": {"text": text[lo:hi]}}}
                    )
        return messages

    def _content(self, parts: List[Dict[str, Any]]) -> Dict[str, Any]:
        if self.backend == "vertex":
            return {"role": "model", "parts": parts}
        return {"parts": parts}


def split_text(text: str, size: int) -> List[str]:
    """Split ``text`` into chunks of ``size`` characters; two or more chunks if possible."""
    size = max(1, size)
    if len(text) <= size:
        if len(text) < 2:
            return [text] if text else []
        half = len(text) // 2
        return [text[:half], text[half:]]
    return [text[i:i + size] for i in range(0, len(text), size)]


@dataclasses.dataclass
class RestRecord:
    """One REST request (either port), as the emulator received and answered it.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        path: Request path and query (``key=``/``access_token=`` values redacted).
        headers: Request headers, lower-case names (``x-goog-api-key``,
            ``authorization`` redacted).
        body: The JSON body as decoded (None without a body or when it is not JSON).
        status: HTTP status of the answer.
        port: ``"rest"`` (``Emulator.rest_url``) or ``"ws"`` (a plain GET on the
            WebSocket port).
    """

    method: str
    path: str
    headers: List[Tuple[str, str]] = dataclasses.field(repr=False)
    body: Any = dataclasses.field(repr=False)
    status: int
    port: str
