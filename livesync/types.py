"""Typed models of the Live API wire protocol (``BidiGenerateContent``).

Every class is a dataclass with snake_case attributes that mirror the camelCase
wire names (``inline_data`` is ``inlineData`` on the wire). They subclass
dataclasses-json's :class:`~dataclasses_json.DataClassJsonMixin`, so
``to_dict()``, ``to_json()`` and ``from_dict()`` work on every model:
``to_dict()`` writes camelCase keys and leaves out ``None`` values.

Rules that hold for every model (see DEPENDENCIES.md §2 for why):

* Every field has a default, usually ``None``, so a missing key never fails.
  Proto3 JSON drops default values, so a missing ``bool`` means false.
* Unknown keys are ignored (no ``undefined=`` setting: it would wrap
  ``__init__`` and swallow typos in user code).
* Enum-like wire values are plain ``str``: values added by Google later are
  kept as they are. The ``Literal`` aliases below list the known values.
* ``bytes`` fields are base64 on the wire. Decoding accepts the standard and
  the URL-safe alphabets, with or without padding; encoding writes standard
  base64 with padding.
* int64 fields (``lastConsumedClientMessageIndex``, ``triggerTokens``,
  ``targetTokens``, token counts) decode from JSON strings or numbers to
  ``int``, and encode as JSON numbers (the server accepts both).
* ``google.protobuf.Duration`` fields (``goAway.timeLeft``,
  ``voiceActivity.audioOffset``) decode ``"50s"`` / ``"9.5s"`` to
  :class:`datetime.timedelta` and encode back to that form.

The reader thread does not use ``from_dict``: :func:`livesync.parse_server_message`
decodes with a decoder compiled once from these same definitions (see
``livesync/_decode.py``), and the tests prove both give equal objects.

Forward compatibility: server-side models have an ``extra`` field that
``parse_server_message`` fills with the keys this version does not know
(``LiveServerMessage.unknown`` for top-level keys); it is left out of ``==``,
the repr and ``to_dict()``.

One source of truth for config fields: the ``setup.generationConfig``
fields and the top-level ``setup`` fields are each declared once, in the
field-only dataclass mixins ``_GenerationFields`` and ``_SetupFields``, which
:class:`GenerationConfig`, :class:`BidiGenerateContentSetup` and
:class:`LiveConfig` inherit. Plain dataclass inheritance was chosen over
``dataclasses.make_dataclass`` because it keeps every class a real, documented
dataclass that mypy and IDEs check field by field; a drift test
(tests/unit/test_config_fields.py) guards the rest.

This module deliberately does not use ``from __future__ import annotations``:
dataclasses-json's ``schema()`` cannot resolve string annotations. Annotations
use ``typing.Optional``/``List``/``Dict`` so that they evaluate on Python 3.9.
"""

import base64
import binascii
import dataclasses
import datetime
import re
import sys
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Literal,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
)

from dataclasses_json import DataClassJsonMixin, LetterCase, config

__all__ = [
    "ActivityEnd",
    "ActivityHandling",
    "ActivityStart",
    "AudioMetadata",
    "AudioTranscriptionConfig",
    "AutomaticActivityDetection",
    "AvatarConfig",
    "BidiGenerateContentSetup",
    "Blob",
    "BuiltinToolCall",
    "BuiltinToolResponse",
    "ClientContent",
    "CodeExecutionResult",
    "Content",
    "ContextUpdate",
    "ContextUpdateTools",
    "ContextWindowCompressionConfig",
    "CustomizedAvatar",
    "DocumentMetadata",
    "ExecutableCode",
    "FileData",
    "FunctionCall",
    "FunctionDeclaration",
    "FunctionResponse",
    "FunctionResponsePart",
    "FunctionResponseScheduling",
    "GenerationConfig",
    "GoAway",
    "HistoryConfig",
    "InteractionStatus",
    "LanguageHints",
    "LiveClientMessage",
    "LiveConfig",
    "LiveServerMessage",
    "MediaProcessing",
    "MediaResolution",
    "Modality",
    "ModalityTokenCount",
    "MultiSpeakerVoiceConfig",
    "Part",
    "PartialArg",
    "PartMediaResolution",
    "PrebuiltVoiceConfig",
    "ProactivityConfig",
    "RealtimeInput",
    "RealtimeInputConfig",
    "ReplicatedVoiceConfig",
    "SafetySetting",
    "ServerContent",
    "SessionResumptionConfig",
    "SessionResumptionUpdate",
    "SetupComplete",
    "SlidingWindow",
    "SpeakerVoiceConfig",
    "SpeechConfig",
    "SpeechMetadata",
    "SpreadsheetMetadata",
    "ThinkingConfig",
    "ThinkingLevel",
    "Tool",
    "ToolCall",
    "ToolCallCancellation",
    "ToolResponse",
    "TrafficType",
    "Transcription",
    "TranscriptionMode",
    "TranslationConfig",
    "TurnCoverage",
    "UsageMetadata",
    "VoiceActivity",
    "VoiceActivityDetectionSignal",
    "VoiceConfig",
    "VoiceConsentSignature",
    "WordInfo",
]

# Known values of some wire enums. Fields are typed ``str`` so that values
# added by the server later never fail to decode; these aliases document the
# known ones and can be used in user code.
Modality = Literal["TEXT", "AUDIO", "IMAGE", "VIDEO", "DOCUMENT"]
"""Known ``responseModalities`` / token-count modality values."""
MediaResolution = Literal[
    "MEDIA_RESOLUTION_UNSPECIFIED",
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
]
"""Known ``mediaResolution`` values."""
ActivityHandling = Literal["START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"]
"""Known ``realtimeInputConfig.activityHandling`` values."""
TurnCoverage = Literal[
    "TURN_INCLUDES_ONLY_ACTIVITY",
    "TURN_INCLUDES_ALL_INPUT",
    "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
]
"""Known ``realtimeInputConfig.turnCoverage`` values."""
ThinkingLevel = Literal["MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH"]
"""Known ``thinkingConfig.thinkingLevel`` values."""
TranscriptionMode = Literal["VERBATIM", "SMART"]
"""Known ``AudioTranscriptionConfig.mode`` values."""
InteractionStatus = Literal["IN_PROGRESS", "REQUIRES_ACTION", "IDLE"]
"""Known ``serverContent.interactionStatus`` values."""
MediaProcessing = Literal["STATIC", "AGENTIC"]
"""Known ``mediaProcessing`` values of parts."""
FunctionResponseScheduling = Literal["SILENT", "WHEN_IDLE", "INTERRUPT"]
"""Known ``FunctionResponse.scheduling`` values."""
TrafficType = Literal[
    "ON_DEMAND",
    "ON_DEMAND_PRIORITY",
    "ON_DEMAND_FLEX",
    "ON_DEMAND_OFFPEAK",
    "PROVISIONED_THROUGHPUT",
]
"""Known ``usageMetadata.trafficType`` values."""


# --- field codecs ------------------------------------------------------------
#
# These raise ValueError or TypeError on bad input; parse_server_message turns
# that into ProtocolError. They are also what the compiled fast decoder calls.

_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_B64_RE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_STRICT_B64 = sys.version_info >= (3, 11)


def decode_base64(value: Any) -> bytes:
    """Decode base64 in the standard or URL-safe alphabet, padding optional.

    Raises:
        ValueError: not a string, or not valid base64.
    """
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    # a2b_base64 is about twice as fast on bytes as on str; non-ASCII text
    # raises UnicodeEncodeError, a ValueError.
    data = value.encode("ascii")
    if b"-" in data or b"_" in data:
        data = data.translate(_URLSAFE_TO_STANDARD)
    rest = len(data) % 4
    if rest:
        data += b"=" * (4 - rest)
    if _STRICT_B64:
        return binascii.a2b_base64(data, strict_mode=True)  # type: ignore[call-arg,unused-ignore]
    if _B64_RE.fullmatch(data) is None:
        raise ValueError("invalid base64")
    return binascii.a2b_base64(data)


def encode_base64(value: Union[bytes, bytearray, memoryview]) -> str:
    """Encode bytes as standard base64 with padding."""
    return base64.b64encode(value).decode("ascii")


_DURATION_RE = re.compile(r"([0-9]+)(?:\.([0-9]{1,9}))?s")


def decode_duration(value: Any) -> datetime.timedelta:
    """Decode a protobuf Duration string such as ``"50s"`` or ``"9.5s"``.

    Fractions finer than a microsecond are truncated.

    Raises:
        ValueError: not a string of that form, or out of range.
    """
    match = _DURATION_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("invalid duration")
    seconds, fraction = match.groups()
    if len(seconds) > 12:
        raise ValueError("duration out of range")
    micros = int((fraction or "").ljust(6, "0")[:6])
    try:
        return datetime.timedelta(seconds=int(seconds), microseconds=micros)
    except OverflowError:
        raise ValueError("duration out of range") from None


def encode_duration(value: datetime.timedelta) -> str:
    """Encode a timedelta as a protobuf Duration string (``"9.5s"``)."""
    micros = (value.days * 86400 + value.seconds) * 1000000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1000000)
    if fraction:
        return "%s%d.%ss" % (sign, seconds, ("%06d" % fraction).rstrip("0"))
    return "%s%ds" % (sign, seconds)


_INT_RE = re.compile(r"-?[0-9]{1,20}")


def decode_int64(value: Any) -> int:
    """Decode a proto3 JSON int64: a JSON number or a decimal string.

    Raises:
        ValueError: not an integer.
    """
    if type(value) is int:
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value) is not None:
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    raise ValueError("invalid integer")


def _bytes_field() -> Any:
    return field(default=None, metadata=config(encoder=_encode_bytes, decoder=decode_base64))


def _encode_bytes(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return encode_base64(value)
    return value


def _encode_duration_field(value: Any) -> Any:
    if isinstance(value, datetime.timedelta):
        return encode_duration(value)
    return value


def _duration_field() -> Any:
    return field(
        default=None, metadata=config(encoder=_encode_duration_field, decoder=decode_duration)
    )


def _int64_field() -> Any:
    # No encoder: int64 values go out as JSON numbers, which the server accepts.
    return field(default=None, metadata=config(decoder=decode_int64))


def _never(_: Any) -> bool:
    return True


def _extra_field() -> Any:
    """The ``extra`` field of a server-side model: wire keys this version does not know.

    Only :func:`livesync.parse_server_message` fills it, with the keys and
    values as received. It is left out of ``==``, of the repr (unknown data
    may hold secrets) and of ``to_dict()``/``to_json()``, like
    ``LiveServerMessage.unknown``; the ``livesync_catch_all`` marker tells
    the compiled decoder to collect unknown keys into it.
    """
    metadata: Dict[str, Any] = {**config(exclude=_never), "livesync_catch_all": True}
    return field(default=None, compare=False, repr=False, metadata=metadata)


# --- reprs without secrets ----------------------------------------------------
#
# Resumption handles and voice consent signatures are bearer capabilities, and
# MCP server headers usually carry credentials: reprs (and so str() and
# print()) show a handle as a short prefix and its length, and header values as
# ``[secure]``. Equality, to_dict() and decoding see the real values.

_HINT_PREFIX = 8
_SECURE = "[secure]"
_SENSITIVE_KEYS = frozenset(
    {"authorization", "apikey", "xgoogapikey", "token", "accesstoken", "bearertoken",
     "password", "secret", "clientsecret"}
)


def _secret_hint(value: Any) -> str:
    """Describe a secret string without revealing it: a short prefix and the length.

    The prefix is at most 8 characters and at most half of the value, so a
    short value is never shown in full; a non-string shows only its type.
    """
    if value is None:
        return "None"
    if not isinstance(value, str):
        return "<%s>" % type(value).__name__
    if not value:
        return "''"
    prefix = value[: min(_HINT_PREFIX, len(value) // 2)]
    return repr("%s\u2026(%d chars)" % (prefix, len(value)))


def _mask_credentials(value: Any) -> Any:
    """Copy ``value`` with header values and credential-named entries masked."""
    if isinstance(value, dict):
        masked: Dict[Any, Any] = {}
        for key, item in value.items():
            name = key.lower().replace("_", "").replace("-", "") if isinstance(key, str) else ""
            if name == "headers" and isinstance(item, dict):
                masked[key] = {header: _SECURE for header in item}
            elif name in _SENSITIVE_KEYS or name == "headers":
                masked[key] = _SECURE
            else:
                masked[key] = _mask_credentials(item)
        return masked
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_credentials(item) for item in value)
    return value


def _safe_repr(obj: Any, masked: Mapping[str, Callable[[Any], str]]) -> str:
    """The dataclass repr of ``obj`` with the fields in ``masked`` described by their function."""
    parts = []
    for item in dataclasses.fields(obj):
        if item.repr:
            value = getattr(obj, item.name)
            text = masked[item.name](value) if item.name in masked else repr(value)
            parts.append("%s=%s" % (item.name, text))
    return "%s(%s)" % (type(obj).__qualname__, ", ".join(parts))


def _masked_repr(value: Any) -> str:
    return repr(_mask_credentials(value))


class _Wire(DataClassJsonMixin):
    """Base of every model: camelCase on the wire, ``None`` left out of output."""

    dataclass_json_config = config(
        letter_case=LetterCase.CAMEL,
        exclude=lambda v: v is None,
    )["dataclasses_json"]

    # Extra wire names accepted when decoding: {wire name: attribute name}.
    # Honoured by the compiled decoder in _decode and by from_dict overrides.
    _wire_aliases: ClassVar[Mapping[str, str]] = {}


_W = TypeVar("_W", bound=_Wire)


def _aliased(cls: Type[_W]) -> Callable[[Any], _W]:
    """Decoder for a field whose class has ``_wire_aliases``, for ``from_dict``."""

    def decode(value: Any) -> _W:
        return cls.from_dict(value)

    return decode


# --- content ---


@dataclass
class Blob(_Wire):
    """Inline bytes with a MIME type (``inlineData``, realtime ``audio``/``video``)."""

    mime_type: Optional[str] = None
    data: Optional[bytes] = _bytes_field()
    display_name: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class FileData(_Wire):
    """A reference to a file by URI."""

    mime_type: Optional[str] = None
    file_uri: Optional[str] = None
    display_name: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class PartialArg(_Wire):
    """One streamed piece of a function call's arguments (``FunctionCall.partial_args``).

    ``json_path`` says where the value goes (e.g. ``"$.location"``); exactly
    one of the ``*_value`` fields is set (``null_value`` is ``"NULL_VALUE"``).
    """

    json_path: Optional[str] = None
    string_value: Optional[str] = None
    number_value: Optional[float] = None
    bool_value: Optional[bool] = None
    null_value: Optional[str] = None
    will_continue: Optional[bool] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class FunctionCall(_Wire):
    """A function call predicted by the model.

    ``partial_args`` and ``will_continue`` stream a call's arguments in
    pieces (Vertex AI only).
    """

    id: Optional[str] = None
    name: Optional[str] = None
    args: Optional[Dict[str, Any]] = None
    partial_args: Optional[List[PartialArg]] = None
    will_continue: Optional[bool] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class AudioMetadata(_Wire):
    """Where an audio part sits in its source (offsets as :class:`datetime.timedelta`)."""

    start_offset: Optional[datetime.timedelta] = _duration_field()
    end_offset: Optional[datetime.timedelta] = _duration_field()
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class DocumentMetadata(_Wire):
    """Which pages and layers of a document a part holds."""

    start_page: Optional[int] = None
    end_page: Optional[int] = None
    content_layers: Optional[List[str]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class SpreadsheetMetadata(_Wire):
    """Which sheet, cells and layers of a spreadsheet a part holds."""

    sheet_index: Optional[int] = None
    visible_cells: Optional[str] = None
    content_layers: Optional[List[str]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class SpeechMetadata(_Wire):
    """Speaker and speaking style of a speech part."""

    speaker: Optional[str] = None
    style: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class PartMediaResolution(_Wire):
    """Media resolution of one part: a ``level`` or a token budget."""

    level: Optional[str] = None
    num_tokens: Optional[int] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class FunctionResponsePart(_Wire):
    """A multimodal part of a :class:`FunctionResponse`.

    ``media_processing`` (``"STATIC"``, ``"AGENTIC"``) is Gemini API only.
    """

    inline_data: Optional[Blob] = None
    file_data: Optional[FileData] = None
    media_resolution: Optional[PartMediaResolution] = None
    video_metadata: Optional[Dict[str, Any]] = None
    audio_metadata: Optional[AudioMetadata] = None
    document_metadata: Optional[DocumentMetadata] = None
    spreadsheet_metadata: Optional[SpreadsheetMetadata] = None
    media_processing: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class FunctionResponse(_Wire):
    """The result of a function call, sent back in ``toolResponse``.

    ``id`` must match the ``functionCalls[].id`` of the call (required on the
    Gemini API). ``will_continue`` (Gemini API only) and ``scheduling``
    (``"SILENT"``, ``"WHEN_IDLE"``, ``"INTERRUPT"``) apply to NON_BLOCKING
    functions only.
    """

    id: Optional[str] = None
    name: Optional[str] = None
    response: Optional[Dict[str, Any]] = None
    parts: Optional[List[FunctionResponsePart]] = None
    will_continue: Optional[bool] = None
    scheduling: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class ExecutableCode(_Wire):
    """Code generated by the model (``language`` is e.g. ``"PYTHON"``)."""

    language: Optional[str] = None
    code: Optional[str] = None
    id: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class CodeExecutionResult(_Wire):
    """The result of running :class:`ExecutableCode`."""

    outcome: Optional[str] = None
    output: Optional[str] = None
    id: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class BuiltinToolCall(_Wire):
    """A call of a server-side tool in a part (``Part.toolCall``), e.g. a search."""

    id: Optional[str] = None
    tool_type: Optional[str] = None
    args: Optional[Dict[str, Any]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class BuiltinToolResponse(_Wire):
    """The result of a :class:`BuiltinToolCall` (``Part.toolResponse``)."""

    id: Optional[str] = None
    tool_type: Optional[str] = None
    response: Optional[Dict[str, Any]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class WordInfo(_Wire):
    """One word of a :class:`Transcription` with its offsets in the audio."""

    word: Optional[str] = None
    start_offset: Optional[datetime.timedelta] = _duration_field()
    end_offset: Optional[datetime.timedelta] = _duration_field()
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class Transcription(_Wire):
    """A transcript of input or output audio. Only ``text`` is always there.

    ``start_offset``/``end_offset`` (and each word's offsets) are Durations
    on the wire, :class:`datetime.timedelta` here.
    """

    text: Optional[str] = None
    finished: Optional[bool] = None
    language_code: Optional[str] = None
    speaker_label: Optional[str] = None
    words: Optional[List[WordInfo]] = None
    start_offset: Optional[datetime.timedelta] = _duration_field()
    end_offset: Optional[datetime.timedelta] = _duration_field()
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class Part(_Wire):
    """One part of a :class:`Content`; normally exactly one data field is set.

    ``tool_call``, ``tool_response`` and ``part_metadata`` are Gemini API
    only in content livesync sends; ``media_processing`` is ``"STATIC"`` or
    ``"AGENTIC"``.
    """

    text: Optional[str] = None
    inline_data: Optional[Blob] = None
    file_data: Optional[FileData] = None
    function_call: Optional[FunctionCall] = None
    function_response: Optional[FunctionResponse] = None
    executable_code: Optional[ExecutableCode] = None
    code_execution_result: Optional[CodeExecutionResult] = None
    thought: Optional[bool] = None
    thought_signature: Optional[bytes] = _bytes_field()
    video_metadata: Optional[Dict[str, Any]] = None
    tool_call: Optional[BuiltinToolCall] = None
    tool_response: Optional[BuiltinToolResponse] = None
    part_metadata: Optional[Dict[str, Any]] = None
    media_resolution: Optional[PartMediaResolution] = None
    audio_metadata: Optional[AudioMetadata] = None
    speech_metadata: Optional[SpeechMetadata] = None
    document_metadata: Optional[DocumentMetadata] = None
    spreadsheet_metadata: Optional[SpreadsheetMetadata] = None
    media_processing: Optional[str] = None
    audio_transcription: Optional[Transcription] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class Content(_Wire):
    """A turn: ``role`` is ``"user"`` or ``"model"``."""

    role: Optional[str] = None
    parts: Optional[List[Part]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


# --- server messages ---------------------------------------------------------


@dataclass
class VoiceConsentSignature(_Wire):
    """Proof that a replicated voice's consent audio was verified.

    A bearer capability: the repr shows only a short prefix and the length.
    """

    signature: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()

    def __repr__(self) -> str:
        return _safe_repr(self, {"signature": _secret_hint})


@dataclass
class SetupComplete(_Wire):
    """The server accepted ``setup``. ``session_id`` is sent by Vertex only."""

    session_id: Optional[str] = None
    voice_consent_signature: Optional[VoiceConsentSignature] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class ServerContent(_Wire):
    """Content generated by the model, transcripts and turn state."""

    model_turn: Optional[Content] = None
    generation_complete: Optional[bool] = None
    turn_complete: Optional[bool] = None
    interrupted: Optional[bool] = None
    grounding_metadata: Optional[Dict[str, Any]] = None
    input_transcription: Optional[Transcription] = None
    output_transcription: Optional[Transcription] = None
    url_context_metadata: Optional[Dict[str, Any]] = None
    waiting_for_input: Optional[bool] = None
    turn_complete_reason: Optional[str] = None
    interim_input_transcription: Optional[Transcription] = None
    interaction_status: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class ToolCall(_Wire):
    """The model asks the client to run functions and reply with ``toolResponse``."""

    function_calls: Optional[List[FunctionCall]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class ToolCallCancellation(_Wire):
    """Earlier tool calls (by id) that should not have run."""

    ids: Optional[List[str]] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class GoAway(_Wire):
    """The server will end this connection after ``time_left``."""

    time_left: Optional[datetime.timedelta] = _duration_field()
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class SessionResumptionUpdate(_Wire):
    """A new resumption handle, or notice that the session is not resumable now.

    ``{"sessionResumptionUpdate": {}}`` means not resumable and no handle
    (proto3 drops false and empty values). The handle is a bearer capability:
    the repr shows only a short prefix and its length.
    """

    new_handle: Optional[str] = None
    resumable: bool = False
    last_consumed_client_message_index: Optional[int] = _int64_field()
    extra: Optional[Dict[str, Any]] = _extra_field()

    def __repr__(self) -> str:
        return _safe_repr(self, {"new_handle": _secret_hint})


@dataclass
class ModalityTokenCount(_Wire):
    """Token count for one modality."""

    modality: Optional[str] = None
    token_count: Optional[int] = _int64_field()
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class UsageMetadata(_Wire):
    """Token usage. Vertex's ``candidatesTokenCount``/``candidatesTokensDetails``
    are decoded into ``response_token_count``/``response_tokens_details``."""

    prompt_token_count: Optional[int] = _int64_field()
    cached_content_token_count: Optional[int] = _int64_field()
    response_token_count: Optional[int] = _int64_field()
    tool_use_prompt_token_count: Optional[int] = _int64_field()
    thoughts_token_count: Optional[int] = _int64_field()
    total_token_count: Optional[int] = _int64_field()
    prompt_tokens_details: Optional[List[ModalityTokenCount]] = None
    cache_tokens_details: Optional[List[ModalityTokenCount]] = None
    response_tokens_details: Optional[List[ModalityTokenCount]] = None
    tool_use_prompt_tokens_details: Optional[List[ModalityTokenCount]] = None
    traffic_type: Optional[str] = None
    service_tier: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()

    _wire_aliases = {
        "candidatesTokenCount": "response_token_count",
        "candidatesTokensDetails": "response_tokens_details",
    }

    @classmethod
    def from_dict(cls, kvs: Any, *, infer_missing: bool = False) -> "UsageMetadata":
        """Decode, accepting Vertex's ``candidates*`` names too."""
        if isinstance(kvs, dict):
            aliases = cls._wire_aliases
            kvs = {aliases.get(key, key): value for key, value in kvs.items()}
        return super().from_dict(kvs, infer_missing=infer_missing)


@dataclass
class VoiceActivity(_Wire):
    """Voice activity reported by the server (wire ``{"type", "audioOffset"}``)."""

    voice_activity_type: Optional[str] = field(default=None, metadata=config(field_name="type"))
    audio_offset: Optional[datetime.timedelta] = _duration_field()
    extra: Optional[Dict[str, Any]] = _extra_field()


@dataclass
class VoiceActivityDetectionSignal(_Wire):
    """Server VAD signal (``VAD_SIGNAL_TYPE_SOS`` / ``VAD_SIGNAL_TYPE_EOS``)."""

    vad_signal_type: Optional[str] = None
    extra: Optional[Dict[str, Any]] = _extra_field()


_ONEOF_NAMES = (
    "setup_complete",
    "server_content",
    "tool_call",
    "tool_call_cancellation",
    "go_away",
    "session_resumption_update",
    "voice_activity",
    "voice_activity_detection_signal",
)


@dataclass
class LiveServerMessage(_Wire):
    """One message from the server.

    Normally exactly one of the oneof fields is set; ``usage_metadata`` is not
    part of the oneof and may ride beside ``server_content``.

    ``unknown`` holds top-level keys this version does not know, as received
    (only :func:`livesync.parse_server_message` fills it). It is left out of
    ``to_dict()``/``to_json()`` and of ``==``, so a message from
    ``parse_server_message`` equals ``LiveServerMessage.from_dict`` of the same
    JSON.
    """

    setup_complete: Optional[SetupComplete] = None
    server_content: Optional[ServerContent] = None
    tool_call: Optional[ToolCall] = None
    tool_call_cancellation: Optional[ToolCallCancellation] = None
    go_away: Optional[GoAway] = None
    session_resumption_update: Optional[SessionResumptionUpdate] = None
    usage_metadata: Optional[UsageMetadata] = field(
        default=None, metadata=config(decoder=_aliased(UsageMetadata))
    )
    voice_activity: Optional[VoiceActivity] = None
    voice_activity_detection_signal: Optional[VoiceActivityDetectionSignal] = None
    unknown: Optional[Dict[str, Any]] = field(
        default=None,
        compare=False,
        metadata={**config(exclude=_never), "livesync_catch_all": True},
    )

    @property
    def kind(self) -> str:
        """Name of the message type present: ``"server_content"``, ``"go_away"``, ...

        ``"usage_metadata"`` when only usage is present, ``"unknown"`` when
        nothing known is.
        """
        for name in _ONEOF_NAMES:
            if self.__dict__[name] is not None:
                return name
        if self.usage_metadata is not None:
            return "usage_metadata"
        return "unknown"

    @property
    def text(self) -> Optional[str]:
        """Joined text of the model turn's parts, without thoughts; None if none."""
        content = self.server_content
        if content is None or content.model_turn is None or not content.model_turn.parts:
            return None
        texts = [
            part.text
            for part in content.model_turn.parts
            if part.text is not None and not part.thought
        ]
        return "".join(texts) if texts else None

    @property
    def data(self) -> Optional[bytes]:
        """Joined inline data (e.g. audio) of the model turn's parts; None if none."""
        content = self.server_content
        if content is None or content.model_turn is None or not content.model_turn.parts:
            return None
        chunks = [
            part.inline_data.data
            for part in content.model_turn.parts
            if part.inline_data is not None and part.inline_data.data is not None
        ]
        if not chunks:
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- client messages -----------------------------------------------------------


@dataclass
class ClientContent(_Wire):
    """Turns appended to the conversation; ``turn_complete`` starts generation."""

    turns: Optional[List[Content]] = None
    turn_complete: Optional[bool] = None


@dataclass
class ActivityStart(_Wire):
    """Marks the start of user activity (manual VAD). Encodes as ``{}``."""


@dataclass
class ActivityEnd(_Wire):
    """Marks the end of user activity (manual VAD). Encodes as ``{}``."""


@dataclass
class RealtimeInput(_Wire):
    """Realtime input; exactly one field per message.

    ``media_chunks`` (deprecated) is modelled for decoding and recordings
    only: livesync never sends it, because newer models close the
    connection when they receive it.
    """

    audio: Optional[Blob] = None
    video: Optional[Blob] = None
    text: Optional[str] = None
    activity_start: Optional[ActivityStart] = None
    activity_end: Optional[ActivityEnd] = None
    audio_stream_end: Optional[bool] = None
    media_chunks: Optional[List[Blob]] = None


@dataclass
class ToolResponse(_Wire):
    """Responses to a ``toolCall``."""

    function_responses: Optional[List[FunctionResponse]] = None


# --- setup ---


@dataclass
class PrebuiltVoiceConfig(_Wire):
    """A prebuilt voice by name, e.g. ``"Kore"``."""

    voice_name: Optional[str] = None


@dataclass
class ReplicatedVoiceConfig(_Wire):
    """A voice cloned from a sample (``consent_audio`` is Gemini API only)."""

    mime_type: Optional[str] = None
    voice_sample_audio: Optional[bytes] = _bytes_field()
    consent_audio: Optional[bytes] = _bytes_field()
    voice_consent_signature: Optional[VoiceConsentSignature] = None


@dataclass
class VoiceConfig(_Wire):
    """Which voice speaks: a prebuilt or replicated voice, or ``voice`` by name."""

    prebuilt_voice_config: Optional[PrebuiltVoiceConfig] = None
    replicated_voice_config: Optional[ReplicatedVoiceConfig] = None
    voice: Optional[str] = None


@dataclass
class SpeakerVoiceConfig(_Wire):
    """The voice of one named speaker in a :class:`MultiSpeakerVoiceConfig`."""

    speaker: Optional[str] = None
    voice_config: Optional[VoiceConfig] = None


@dataclass
class MultiSpeakerVoiceConfig(_Wire):
    """Voices for several speakers. google-genai 3.6.1 sends it on both backends;
    whether a Live model honours it is up to the model."""

    speaker_voice_configs: Optional[List[SpeakerVoiceConfig]] = None


@dataclass
class SpeechConfig(_Wire):
    """Voice and language of audio output."""

    voice_config: Optional[VoiceConfig] = None
    language_code: Optional[str] = None
    multi_speaker_voice_config: Optional[MultiSpeakerVoiceConfig] = None


@dataclass
class ThinkingConfig(_Wire):
    """Thinking budget/level (:data:`ThinkingLevel`); ``include_thoughts`` returns thought parts."""

    thinking_budget: Optional[int] = None
    include_thoughts: Optional[bool] = None
    thinking_level: Optional[str] = None


@dataclass
class TranslationConfig(_Wire):
    """Speech translation."""

    target_language_code: Optional[str] = None
    echo_target_language: Optional[bool] = None


@dataclass
class AutomaticActivityDetection(_Wire):
    """Server-side voice activity detection; ``disabled=True`` means manual VAD."""

    disabled: Optional[bool] = None
    start_of_speech_sensitivity: Optional[str] = None
    end_of_speech_sensitivity: Optional[str] = None
    prefix_padding_ms: Optional[int] = None
    silence_duration_ms: Optional[int] = None


@dataclass
class RealtimeInputConfig(_Wire):
    """How realtime input is segmented into turns."""

    automatic_activity_detection: Optional[AutomaticActivityDetection] = None
    activity_handling: Optional[str] = None
    turn_coverage: Optional[str] = None
    interim_transcript_timestamp_enabled: Optional[bool] = None


@dataclass
class SessionResumptionConfig(_Wire):
    """``{}`` turns resumption on; ``handle`` resumes; ``transparent`` is Vertex only.

    The repr shows only a short prefix and the length of ``handle``.
    """

    handle: Optional[str] = None
    transparent: Optional[bool] = None

    def __repr__(self) -> str:
        return _safe_repr(self, {"handle": _secret_hint})


@dataclass
class SlidingWindow(_Wire):
    """Context compression target size in tokens."""

    target_tokens: Optional[int] = _int64_field()


@dataclass
class ContextWindowCompressionConfig(_Wire):
    """Compress the context once it reaches ``trigger_tokens``."""

    trigger_tokens: Optional[int] = _int64_field()
    sliding_window: Optional[SlidingWindow] = None


@dataclass
class LanguageHints(_Wire):
    """Languages the audio is expected to be in."""

    language_codes: Optional[List[str]] = None


@dataclass
class AudioTranscriptionConfig(_Wire):
    """Transcription of input or output audio; ``{}`` turns it on.

    ``mode`` is one of :data:`TranscriptionMode`; ``language_auto={}`` asks
    for automatic language detection.
    """

    language_codes: Optional[List[str]] = None
    custom_vocabulary: Optional[List[str]] = None
    word_timestamp: Optional[bool] = None
    diarization: Optional[bool] = None
    adaptation_phrases: Optional[List[str]] = None
    language_auto: Optional[Dict[str, Any]] = None
    language_hints: Optional[LanguageHints] = None
    mode: Optional[str] = None
    source_text: Optional[str] = None


@dataclass
class ProactivityConfig(_Wire):
    """Let the model decline to answer irrelevant input, or speak up about video."""

    proactive_audio: Optional[bool] = None
    proactive_video: Optional[bool] = None


@dataclass
class HistoryConfig(_Wire):
    """Send initial history as ``clientContent`` before realtime input."""

    initial_history_in_client_content: Optional[bool] = None


@dataclass
class CustomizedAvatar(_Wire):
    """A custom avatar image."""

    image_mime_type: Optional[str] = None
    image_data: Optional[bytes] = _bytes_field()


@dataclass
class AvatarConfig(_Wire):
    """Avatar video output."""

    avatar_name: Optional[str] = None
    customized_avatar: Optional[CustomizedAvatar] = None
    audio_bitrate_bps: Optional[int] = None
    video_bitrate_bps: Optional[int] = None


@dataclass
class SafetySetting(_Wire):
    """One safety setting (``method`` is Vertex only)."""

    category: Optional[str] = None
    threshold: Optional[str] = None
    method: Optional[str] = None


@dataclass
class FunctionDeclaration(_Wire):
    """A function the model may call. ``behavior="NON_BLOCKING"`` lets it keep talking."""

    name: Optional[str] = None
    description: Optional[str] = None
    parameters: Optional[Dict[str, Any]] = None
    parameters_json_schema: Optional[Any] = None
    response: Optional[Dict[str, Any]] = None
    response_json_schema: Optional[Any] = None
    behavior: Optional[str] = None


@dataclass
class Tool(_Wire):
    """A tool: function declarations or a built-in tool such as ``google_search={}``.

    The repr masks header values and credentials inside ``mcp_servers``.
    """

    function_declarations: Optional[List[FunctionDeclaration]] = None
    google_search: Optional[Dict[str, Any]] = None
    code_execution: Optional[Dict[str, Any]] = None
    url_context: Optional[Dict[str, Any]] = None
    google_maps: Optional[Dict[str, Any]] = None
    file_search: Optional[Dict[str, Any]] = None
    computer_use: Optional[Dict[str, Any]] = None
    mcp_servers: Optional[List[Dict[str, Any]]] = None
    google_search_retrieval: Optional[Dict[str, Any]] = None
    retrieval: Optional[Dict[str, Any]] = None
    enterprise_web_search: Optional[Dict[str, Any]] = None
    parallel_ai_search: Optional[Dict[str, Any]] = None
    exa_ai_search: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return _safe_repr(self, {"mcp_servers": _masked_repr})


# --- generation and setup fields, each written once -------------------------------
#
# ``setup.generationConfig`` and the top-level ``setup`` fields are each declared
# once, in a field-only dataclass mixin, and shared by the wire models
# (:class:`GenerationConfig`, :class:`BidiGenerateContentSetup`) and the flat
# user configuration (:class:`LiveConfig`). Dataclass inheritance keeps every
# class a real dataclass that mypy, IDEs and dataclasses-json see field by
# field; ``make_dataclass`` would hide the fields from static typing. The
# drift test in tests/unit/test_config_fields.py checks the shared sets.


@dataclass
class _GenerationFields:
    """The fields of ``setup.generationConfig`` (flat on :class:`LiveConfig`).

    Left out on purpose (docs/config-fields.md): ``response_mime_type``,
    ``response_schema`` and ``response_json_schema`` (the Live API does not
    support structured output).
    """

    response_modalities: Optional[List[str]] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[float] = None
    max_output_tokens: Optional[int] = None
    seed: Optional[int] = None
    candidate_count: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    media_resolution: Optional[str] = None
    speech_config: Optional[SpeechConfig] = None
    thinking_config: Optional[ThinkingConfig] = None
    enable_affective_dialog: Optional[bool] = None
    translation_config: Optional[TranslationConfig] = None
    audio_timestamp: Optional[bool] = None
    audio_transcription_config: Optional[AudioTranscriptionConfig] = None
    stop_sequences: Optional[List[str]] = None
    logprobs: Optional[int] = None
    response_logprobs: Optional[bool] = None
    routing_config: Optional[Dict[str, Any]] = None
    model_selection_config: Optional[Dict[str, Any]] = None
    enable_enhanced_civic_answers: Optional[bool] = None
    response_format: Optional[List[Dict[str, Any]]] = None


@dataclass
class GenerationConfig(_GenerationFields, _Wire):
    """``setup.generationConfig``. Users normally set these flat on :class:`LiveConfig`.

    ``enable_enhanced_civic_answers`` is Gemini API only; ``routing_config``,
    ``model_selection_config`` and ``response_format`` are passed through as
    given (camelCase keys inside them).
    """


@dataclass
class _SetupHead:
    """The ``setup`` fields that :class:`LiveConfig` spells differently."""

    model: Optional[str] = None
    generation_config: Optional[GenerationConfig] = None
    system_instruction: Optional[Content] = None


@dataclass
class _SetupFields:
    """The top-level ``setup`` fields that :class:`LiveConfig` holds as they are."""

    tools: Optional[List[Tool]] = None
    realtime_input_config: Optional[RealtimeInputConfig] = None
    session_resumption: Optional[SessionResumptionConfig] = None
    context_window_compression: Optional[ContextWindowCompressionConfig] = None
    input_audio_transcription: Optional[AudioTranscriptionConfig] = None
    output_audio_transcription: Optional[AudioTranscriptionConfig] = None
    proactivity: Optional[ProactivityConfig] = None
    history_config: Optional[HistoryConfig] = None
    avatar_config: Optional[AvatarConfig] = None
    safety_settings: Optional[List[SafetySetting]] = None
    explicit_vad_signal: Optional[bool] = None
    labels: Optional[Dict[str, str]] = None


@dataclass
class BidiGenerateContentSetup(_SetupFields, _SetupHead, _Wire):
    """The body of the first client message, ``{"setup": {...}}``."""


@dataclass
class ContextUpdateTools(_Wire):
    """The tools of a :class:`ContextUpdate`; an empty list removes every tool."""

    tools: Optional[List[Tool]] = None


@dataclass
class ContextUpdate(_Wire):
    """``contextUpdate``: a new system instruction and/or tools for later turns."""

    system_instruction: Optional[Content] = None
    tools: Optional[ContextUpdateTools] = None


@dataclass
class LiveClientMessage(_Wire):
    """One client message; exactly one field is set."""

    setup: Optional[BidiGenerateContentSetup] = None
    client_content: Optional[ClientContent] = None
    realtime_input: Optional[RealtimeInput] = None
    tool_response: Optional[ToolResponse] = None
    context_update: Optional[ContextUpdate] = None


# --- user configuration ------------------------------------------------------------


@dataclass
class LiveConfig(_SetupFields, _GenerationFields, _Wire):
    """Session configuration, flat like google-genai's ``LiveConnectConfig``.

    The generation fields (``response_modalities`` ... ``response_format``,
    shared with :class:`GenerationConfig`) are nested under
    ``generationConfig`` on the wire; the setup fields (``tools`` ...
    ``labels``, shared with :class:`BidiGenerateContentSetup`) are top-level
    ``setup`` fields. ``system_instruction`` may be a plain string, sent as a
    user :class:`Content` with one text part. ``Client.connect`` also accepts
    a mapping with snake_case or camelCase keys instead of this class.

    ``generation_config`` is the deprecated nested spelling google-genai
    still accepts: its fields are merged into the flat ones, and a field set
    both ways with different values raises
    :class:`~livesync.exceptions.InvalidConfig`.

    ``extra`` is the escape hatch for fields newer than livesync: a mapping
    of camelCase wire names and JSON values, deep-merged into ``setup`` as
    given, e.g. ``{"generationConfig": {"newField": 1}, "newTopLevel": {}}``.
    It may add keys at any depth but never replace a value livesync sets
    (that raises ``InvalidConfig`` naming the path). Unknown keys anywhere
    else still raise ``InvalidConfig: unknown key ...``.

    ``http_options`` is not accepted per session: set ``base_url``,
    ``api_version`` and headers on ``Client``.
    """

    system_instruction: Optional[Union[str, Content]] = None
    generation_config: Optional[GenerationConfig] = None
    extra: Optional[Dict[str, Any]] = None
