"""Building client messages: the setup, content, realtime input, tool responses, context updates.

Every builder validates user input and raises
:class:`~livesync.exceptions.InvalidConfig` naming the field before anything
is sent, and returns the message as a dict encoded like ``to_dict()``:
camelCase keys, ``None`` left out, bytes as standard base64, int64 values as
JSON numbers. :func:`encode` turns it into the text sent on the socket.
:func:`audio_message` builds the hot-path audio message as text directly.

The builders run on the caller's thread (``send_*`` and ``connect``); they are
pure, never block and are safe from any thread.
"""

from __future__ import annotations

import binascii
import dataclasses
import json
from collections.abc import Mapping as AbcMapping
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from ._config import (
    check_backend,
    coerce_config,
    coerce_model,
    coerce_value,
    kind,
    merge_extra,
)
from ._schema import to_wire
from .exceptions import InvalidConfig
from .types import (
    ActivityEnd,
    ActivityStart,
    BidiGenerateContentSetup,
    Blob,
    Content,
    ContextUpdate,
    ContextUpdateTools,
    FunctionResponse,
    GenerationConfig,
    LiveConfig,
    Part,
    RealtimeInput,
    Tool,
    _GenerationFields,
    _SetupFields,
    encode_base64,
)

__all__ = [
    "audio_message",
    "build_setup",
    "client_content",
    "context_update",
    "encode",
    "realtime_input",
    "tool_response",
]


def encode(message: Mapping[str, Any]) -> str:
    """Serialize a client message as compact JSON text (UTF-8, not ASCII-escaped).

    Raises:
        InvalidConfig: the text holds a lone surrogate (it cannot be sent as UTF-8).
            The message says where, never what the text is.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidConfig(
                "text cannot be encoded as UTF-8 (a lone surrogate at character %d of the "
                "message)" % exc.start, field="text") from None
    return text


# --- setup -----------------------------------------------------------------------------

_GENERATION_FIELDS = tuple(f.name for f in dataclasses.fields(_GenerationFields))
_SETUP_FIELDS = tuple(f.name for f in dataclasses.fields(_SetupFields))


def _validate(config: LiveConfig, vertexai: bool) -> None:
    """The rules google-genai does not enforce but the server does, then the backend rules."""
    modalities = config.response_modalities
    if modalities is not None and len(modalities) > 1:
        raise InvalidConfig(
            "response_modalities allows at most one modality; use output_audio_transcription "
            "to get text with audio",
            field="response_modalities",
        )
    check_backend(config, vertexai)


def _instruction(value: Union[str, Content, None]) -> Optional[Content]:
    if isinstance(value, str):
        return _user_turn(value)
    return value


def build_setup(model: str, config: LiveConfig, *, vertexai: bool) -> Dict[str, Any]:
    """Build the body of the ``setup`` message (the object under ``"setup"``).

    ``model`` is sent as given (the caller adds ``models/`` or the Vertex
    resource prefix). Flat generation fields are nested under
    ``generationConfig``; a string ``system_instruction`` becomes a user
    Content with one text part. On Vertex, ``responseModalities`` defaults to
    ``["AUDIO"]`` as both official SDKs do (the Gemini API's own default).
    ``sessionResumption`` is included only as configured. ``config.extra`` is
    deep-merged last (see :class:`~livesync.types.LiveConfig`). Safe to call
    from any thread; does not block.

    Raises:
        InvalidConfig: an invalid value, a field the backend does not
            support, or an ``extra`` key that would replace a set value;
            ``field`` names it.
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidConfig("model must be a non-empty string", field="model")
    config = coerce_config(config)
    _validate(config, vertexai)
    generation = {name: getattr(config, name) for name in _GENERATION_FIELDS}
    if vertexai and generation["response_modalities"] is None:
        generation["response_modalities"] = ["AUDIO"]
    setup = BidiGenerateContentSetup(
        model=model,
        generation_config=(
            GenerationConfig(**generation)
            if any(value is not None for value in generation.values())
            else None
        ),
        system_instruction=_instruction(config.system_instruction),
        **{name: getattr(config, name) for name in _SETUP_FIELDS},
    )
    result: Dict[str, Any] = to_wire(setup)
    if config.extra:
        merge_extra(result, config.extra)
    return result


# --- client messages -------------------------------------------------------------------


def _user_turn(text: str) -> Content:
    return Content(role="user", parts=[Part(text=text)])


def client_content(turns: Any = None, turn_complete: bool = True) -> Dict[str, Any]:
    """Build a ``clientContent`` message.

    ``turns`` is a string (one user turn), a :class:`Content`, a mapping
    (snake or camelCase), or a list of those; ``None`` sends only
    ``turnComplete``. Safe to call from any thread; does not block.

    Raises:
        InvalidConfig: a turn or ``turn_complete`` has the wrong type.
    """
    if not isinstance(turn_complete, bool):
        raise InvalidConfig("turn_complete must be a bool", field="turn_complete")
    body: Dict[str, Any] = {}
    if turns is not None:
        items = turns if isinstance(turns, (list, tuple)) else [turns]
        contents = []
        for index, turn in enumerate(items):
            path = "turns[%d]" % index
            if isinstance(turn, str):
                contents.append(_user_turn(turn))
            elif isinstance(turn, (Content, AbcMapping)):
                contents.append(coerce_model(turn, Content, path))
            else:
                raise InvalidConfig(
                    "%s must be a string, a Content or a mapping, not %s" % (path, kind(turn)),
                    field=path,
                )
        body["turns"] = to_wire(contents)
    body["turnComplete"] = turn_complete
    return {"clientContent": body}


# What realtime_input() can send: every RealtimeInput field but the deprecated mediaChunks.
_REALTIME_FIELDS = tuple(
    f.name for f in dataclasses.fields(RealtimeInput) if f.name != "media_chunks"
)


def _sniff_image(data: bytes) -> Optional[str]:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def _media_blob(value: Any, name: str, prefix: str) -> Dict[str, Any]:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if prefix == "audio/":
            mime: Optional[str] = "audio/pcm;rate=16000"
        else:
            mime = _sniff_image(data)
            if mime is None:
                raise InvalidConfig(
                    "%s bytes must be a jpeg or png image; pass a Blob with mime_type" % name,
                    field=name,
                )
        return {"mimeType": mime, "data": encode_base64(data)}
    if not isinstance(value, (Blob, AbcMapping)):
        raise InvalidConfig(
            "%s must be a Blob, a mapping or bytes, not %s" % (name, kind(value)), field=name
        )
    blob: Blob = coerce_model(value, Blob, name)
    if blob.mime_type is None or not blob.mime_type.startswith(prefix):
        raise InvalidConfig("%s mime_type must start with %r" % (name, prefix), field=name)
    if blob.data is None:
        raise InvalidConfig("%s.data is required" % name, field=name + ".data")
    result: Dict[str, Any] = to_wire(blob)
    return result


def _activity(value: Any, name: str, cls: type) -> Dict[str, Any]:
    if value is True or isinstance(value, cls):
        return {}
    if isinstance(value, AbcMapping) and not value:
        return {}
    raise InvalidConfig("%s must be True, {} or %s()" % (name, cls.__name__), field=name)


def realtime_input(
    *,
    audio: Any = None,
    video: Any = None,
    text: Optional[str] = None,
    activity_start: Any = None,
    activity_end: Any = None,
    audio_stream_end: Optional[bool] = None,
) -> Dict[str, Any]:
    """Build a ``realtimeInput`` message with exactly one field.

    ``audio`` is a :class:`Blob` or mapping with an ``audio/`` MIME type, or
    raw 16 kHz PCM bytes; ``video`` a Blob or mapping with an ``image/`` MIME
    type, or JPEG/PNG bytes; ``activity_start``/``activity_end`` are ``True``,
    ``{}`` or :class:`ActivityStart`/:class:`ActivityEnd`. ``mediaChunks`` is
    never sent. Safe to call from any thread; does not block.

    Raises:
        InvalidConfig: zero or several fields, or an invalid value.
    """
    given = {
        "audio": audio,
        "video": video,
        "text": text,
        "activity_start": activity_start,
        "activity_end": activity_end,
        "audio_stream_end": audio_stream_end,
    }
    present = [name for name in _REALTIME_FIELDS if given[name] is not None]
    if len(present) != 1:
        if not present:
            raise InvalidConfig(
                "realtime_input needs exactly one of %s" % ", ".join(_REALTIME_FIELDS),
                field="realtime_input",
            )
        raise InvalidConfig(
            "realtime_input takes exactly one field per message, got %s" % ", ".join(present),
            field=", ".join(present),
        )
    name = present[0]
    body: Dict[str, Any]
    if name == "audio":
        body = {"audio": _media_blob(audio, "audio", "audio/")}
    elif name == "video":
        body = {"video": _media_blob(video, "video", "image/")}
    elif name == "text":
        if not isinstance(text, str):
            raise InvalidConfig("text must be a string, not %s" % kind(text), field="text")
        body = {"text": text}
    elif name == "activity_start":
        body = {"activityStart": _activity(activity_start, name, ActivityStart)}
    elif name == "activity_end":
        body = {"activityEnd": _activity(activity_end, name, ActivityEnd)}
    else:
        if not isinstance(audio_stream_end, bool):
            raise InvalidConfig("audio_stream_end must be a bool", field="audio_stream_end")
        body = {"audioStreamEnd": audio_stream_end}
    return {"realtimeInput": body}


_b2a = binascii.b2a_base64


def audio_message(pcm: Union[bytes, bytearray, memoryview], sample_rate: int = 16000) -> str:
    """Build the JSON text of a ``realtimeInput`` audio message (the hot path).

    ``pcm`` is 16-bit little-endian mono PCM. Safe to call from any thread;
    does not block.

    Raises:
        InvalidConfig: ``pcm`` is not bytes-like or has an odd length, or
            ``sample_rate`` is not an int from 8000 to 48000.
    """
    if type(sample_rate) is not int or not 8000 <= sample_rate <= 48000:
        raise InvalidConfig("sample_rate must be an int from 8000 to 48000", field="sample_rate")
    if isinstance(pcm, memoryview):
        size = pcm.nbytes
        if not pcm.c_contiguous:
            pcm = pcm.tobytes()
        elif pcm.format != "B":
            pcm = pcm.cast("B")
    elif isinstance(pcm, (bytes, bytearray)):
        size = len(pcm)
    else:
        raise InvalidConfig("pcm must be bytes, not %s" % kind(pcm), field="pcm")
    if size % 2:
        raise InvalidConfig("pcm must hold whole 16-bit samples (even length)", field="pcm")
    return '{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=%d","data":"%s"}}}' % (
        sample_rate,
        _b2a(pcm, newline=False).decode("ascii"),
    )


def tool_response(function_responses: Any, *, vertexai: bool) -> Dict[str, Any]:
    """Build a ``toolResponse`` message.

    ``function_responses`` is a :class:`FunctionResponse`, a mapping, or a
    list of them. On the Gemini API each response needs the ``id`` of its
    call; on Vertex AI ``will_continue`` and a part's ``media_processing``
    are refused (google-genai 3.6.1's converter rules). Safe to call from any
    thread; does not block.

    Raises:
        InvalidConfig: an invalid response, a missing ``id`` on the Gemini
            API, or a field the backend does not support.
    """
    items: Sequence[Any]
    if isinstance(function_responses, (list, tuple)):
        items = function_responses
    else:
        items = [function_responses]
    if not items:
        raise InvalidConfig("function_responses must not be empty", field="function_responses")
    responses = []
    for index, item in enumerate(items):
        path = "function_responses[%d]" % index
        if not isinstance(item, (FunctionResponse, AbcMapping)):
            raise InvalidConfig(
                "%s must be a FunctionResponse or a mapping, not %s" % (path, kind(item)),
                field=path,
            )
        response: FunctionResponse = coerce_model(item, FunctionResponse, path)
        if not vertexai and not response.id:
            raise InvalidConfig(
                "%s needs the id of its function call on the gemini api" % path, field="id"
            )
        check_backend(response, vertexai, path)
        responses.append(response)
    return {"toolResponse": {"functionResponses": to_wire(responses)}}


_INSTRUCTION_SPEC = ("str_or_content",)
_TOOLS_SPEC = ("list", ("dc", Tool))


def _context_tools(tools: Any) -> ContextUpdateTools:
    if not isinstance(tools, (list, tuple)):
        raise InvalidConfig(
            "tools must be a list of Tool or mappings ([] removes every tool), not %s"
            % kind(tools),
            field="tools",
        )
    return ContextUpdateTools(tools=coerce_value(list(tools), _TOOLS_SPEC, "tools"))


def context_update(
    *, system_instruction: Any = None, tools: Any = None, vertexai: bool
) -> Dict[str, Any]:
    """Build a ``contextUpdate`` message: a new system instruction and/or tools.

    ``system_instruction`` is a string, a :class:`Content`, a :class:`Part`
    or a mapping, as in the setup; ``tools`` is a list of :class:`Tool` or
    mappings, and ``[]`` removes every tool (``{"tools": {"tools": []}}``).
    The same backend rules as in the setup apply. Safe to call from any
    thread; does not block.

    Raises:
        InvalidConfig: neither argument given, an invalid value, or a field
            the backend does not support; ``field`` names it.
    """
    if system_instruction is None and tools is None:
        raise InvalidConfig(
            "context_update needs system_instruction, tools or both", field="context_update"
        )
    update = ContextUpdate(
        system_instruction=_instruction(
            coerce_value(system_instruction, _INSTRUCTION_SPEC, "system_instruction")
        ),
        tools=None if tools is None else _context_tools(tools),
    )
    check_backend(update.system_instruction, vertexai, "system_instruction")
    if update.tools is not None:
        check_backend(update.tools.tools, vertexai, "tools")
    return {"contextUpdate": to_wire(update)}
