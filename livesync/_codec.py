"""Encoding and decoding of Live API messages.

* :func:`parse_server_message` is the decoder the reader uses. It does not
  call dataclasses-json per message (about 0.5 ms each, DEPENDENCIES.md §2.6).
  Instead, a decoder is compiled once per class from the same dataclass
  definitions in :mod:`livesync.types` (fields, type hints and per-field
  decoders), and tests prove it returns objects equal to
  ``LiveServerMessage.from_dict(json.loads(raw))``. Any defect in the input
  raises :class:`~livesync.exceptions.ProtocolError`, never another type.
* :func:`coerce_config` and the client-message builders validate user input
  and raise :class:`~livesync.exceptions.InvalidConfig` naming the field,
  before anything is sent. They encode with a compiled encoder equivalent to
  ``to_dict()``: camelCase keys, ``None`` left out, bytes as standard base64,
  int64 values as JSON numbers.
* :func:`audio_message` builds the hot-path audio message as a string
  directly.
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime
import json
import math
import typing
from collections.abc import Mapping as AbcMapping
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .exceptions import InvalidConfig, ProtocolError
from .types import (
    ActivityEnd,
    ActivityStart,
    BidiGenerateContentSetup,
    Blob,
    Content,
    FunctionResponse,
    GenerationConfig,
    LiveConfig,
    LiveServerMessage,
    Part,
    decode_base64,
    decode_duration,
    decode_int64,
    encode_base64,
)

__all__ = [
    "audio_message",
    "build_setup",
    "client_content",
    "coerce_config",
    "encode",
    "parse_server_message",
    "realtime_input",
    "tool_response",
]

# --- type analysis -------------------------------------------------------------
#
# A "spec" describes what a field holds:
#   ("str",) ("bool",) ("int",) ("float",) ("any",) ("dict",)
#   ("bytes",) ("duration",) ("int64",)       fields with a wire codec
#   ("list", spec) ("dc", cls) ("str_or_content",)

Spec = Tuple[Any, ...]

_DECODER_SPECS: Dict[Any, Spec] = {
    decode_base64: ("bytes",),
    decode_duration: ("duration",),
    decode_int64: ("int64",),
}


class _FieldInfo:
    __slots__ = ("name", "wire", "spec", "encoder", "default")

    def __init__(self, name: str, wire: str, spec: Spec, encoder: Any, default: Any) -> None:
        self.name = name
        self.wire = wire
        self.spec = spec
        self.encoder = encoder
        self.default = default


_CLASS_INFO: Dict[type, Tuple[_FieldInfo, ...]] = {}


def _spec_of(annotation: Any, decoder: Any, where: str) -> Spec:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return _spec_of(rest[0], decoder, where)
        if set(rest) == {str, Content}:
            return ("str_or_content",)
        raise TypeError("unsupported union in %s" % where)
    if decoder is not None:
        if dataclasses.is_dataclass(annotation):
            # A decoder on a dataclass field only applies the class's
            # _wire_aliases for from_dict; the compiled decoder does that itself.
            return ("dc", annotation)
        try:
            return _DECODER_SPECS[decoder]
        except KeyError:
            raise TypeError("unsupported field decoder in %s" % where) from None
    if origin in (list, List):
        return ("list", _spec_of(args[0], None, where))
    if origin in (dict, Dict):
        return ("dict",)
    if annotation is Any:
        return ("any",)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return ("dc", annotation)
    simple = {str: ("str",), bool: ("bool",), int: ("int",), float: ("float",)}
    if annotation in simple:
        return simple[annotation]
    raise TypeError("unsupported annotation in %s" % where)


def _class_info(cls: type) -> Tuple[_FieldInfo, ...]:
    """Describe the fields of a model class, once."""
    try:
        return _CLASS_INFO[cls]
    except KeyError:
        pass
    hints = typing.get_type_hints(cls)
    class_config = getattr(cls, "dataclass_json_config", None) or {}
    infos = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("dataclasses_json", {})
        if meta.get("exclude") is not None and meta["exclude"] is not class_config.get("exclude"):
            continue  # never on the wire (LiveServerMessage.unknown)
        letter_case = meta.get("letter_case") or class_config.get("letter_case")
        wire = letter_case(f.name) if letter_case is not None else f.name
        spec = _spec_of(hints[f.name], meta.get("decoder"), "%s.%s" % (cls.__name__, f.name))
        infos.append(_FieldInfo(f.name, wire, spec, meta.get("encoder"), f.default))
    result = tuple(infos)
    _CLASS_INFO[cls] = result
    return result


def _all_defaults(cls: type) -> Dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


# --- decoding ---


class _Bad(Exception):
    """A defect in server data; ``path`` is built while unwinding, innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: List[str] = []


_JSON_KIND = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _expected(what: str, value: Any) -> _Bad:
    return _Bad("expected %s, got %s" % (what, _JSON_KIND.get(type(value), "value")))


def _dec_float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise _expected("number", value)


def _dec_int(value: Any) -> int:
    if type(value) is int:
        return value
    raise _expected("integer", value)


def _wrap_field_decoder(fn: Callable[[Any], Any], label: str) -> Callable[[Any], Any]:
    def decode(value: Any) -> Any:
        try:
            return fn(value)
        except (ValueError, TypeError, OverflowError):
            raise _Bad("invalid " + label) from None

    return decode


_dec_bytes = _wrap_field_decoder(decode_base64, "base64")
_dec_duration = _wrap_field_decoder(decode_duration, "duration")
_dec_int64 = _wrap_field_decoder(decode_int64, "integer")

# Entry of a compiled field table: (attribute, required JSON type or None, converter or None).
_Entry = Tuple[str, Optional[type], Optional[Callable[[Any], Any]]]

_DECODERS: Dict[type, Callable[[Any], Any]] = {}


def _decoder_for_spec(spec: Spec) -> Tuple[Optional[type], Optional[Callable[[Any], Any]]]:
    kind = spec[0]
    if kind == "str":
        return str, None
    if kind == "bool":
        return bool, None
    if kind == "dict":
        return dict, None
    if kind == "any":
        return None, None
    if kind == "float":
        return None, _dec_float
    if kind == "int":
        return None, _dec_int
    if kind == "int64":
        return None, _dec_int64
    if kind == "bytes":
        return str, _dec_bytes
    if kind == "duration":
        return str, _dec_duration
    if kind == "dc":
        return dict, _dataclass_decoder(spec[1])
    if kind == "list":
        return list, _list_decoder(spec[1])
    raise TypeError("cannot decode %r" % (spec,))  # pragma: no cover


def _list_decoder(item_spec: Spec) -> Callable[[Any], Any]:
    item_type, item_conv = _decoder_for_spec(item_spec)

    def find_bad(value: List[Any]) -> None:
        for index, item in enumerate(value):
            try:
                if item_type is not None and type(item) is not item_type:
                    raise _expected(_JSON_KIND.get(item_type, "value"), item)
                if item_conv is not None:
                    item_conv(item)
            except _Bad as exc:
                exc.path.append("[%d]" % index)
                raise

    if item_conv is None:
        if item_type is None:
            return list

        def decode_plain(value: List[Any]) -> List[Any]:
            for item in value:
                if type(item) is not item_type:
                    find_bad(value)
            return value

        return decode_plain

    conv = item_conv

    # A dataclass decoder checks its own input type; others need the check here.
    precheck = item_type is not None and item_type is not dict

    def decode(value: List[Any]) -> List[Any]:
        try:
            if precheck:
                for item in value:
                    if type(item) is not item_type:
                        raise _Bad("")
            return [conv(item) for item in value]
        except _Bad:
            find_bad(value)
            raise  # pragma: no cover - find_bad always raises here

    return decode


def _dataclass_decoder(cls: type, *, collect_unknown: bool = False) -> Callable[[Any], Any]:
    cache_key = cls if not collect_unknown else None
    if cache_key is not None and cache_key in _DECODERS:
        return _DECODERS[cache_key]
    table: Dict[str, _Entry] = {}
    defaults = _all_defaults(cls)
    # Register a forwarding stub first so recursive types would terminate.
    compiled: List[Callable[[Any], Any]] = []

    def stub(value: Any) -> Any:
        return compiled[0](value)

    if cache_key is not None:
        _DECODERS[cache_key] = stub
    for info in _class_info(cls):
        json_type, conv = _decoder_for_spec(info.spec)
        entry = (info.name, json_type, conv)
        # dataclasses-json accepts the attribute name as well as the wire name.
        table[info.name] = entry
        table[info.wire] = entry
    for alias, attr in getattr(cls, "_wire_aliases", {}).items():
        table[alias] = table[attr]
    new = object.__new__

    copy_defaults = defaults.copy
    get = table.get

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _expected("object", value)
        attrs = copy_defaults()
        unknown = None
        key = None
        try:
            for key, item in value.items():
                entry = get(key)
                if entry is None:
                    if collect_unknown:
                        if unknown is None:
                            unknown = {}
                        unknown[key] = item
                    continue
                name, json_type, conv = entry
                if type(item) is json_type:
                    attrs[name] = item if conv is None else conv(item)
                elif item is None:
                    attrs[name] = defaults[name]
                elif json_type is None:
                    attrs[name] = item if conv is None else conv(item)
                else:
                    raise _expected(_JSON_KIND.get(json_type, "value"), item)
        except _Bad as exc:
            exc.path.append(str(key))
            raise
        if unknown is not None:
            attrs["unknown"] = unknown
        obj: Any = new(cls)
        obj.__dict__ = attrs
        return obj

    compiled.append(decode)
    if cache_key is not None:
        _DECODERS[cache_key] = decode
    return decode


_decode_server = _dataclass_decoder(LiveServerMessage, collect_unknown=True)
_JSON = json.JSONDecoder()


def _format_path(path: List[str]) -> str:
    text = ""
    for part in reversed(path):
        text += part if part.startswith("[") or not text else "." + part
    return text


def parse_server_message(data: Union[bytes, bytearray, memoryview, str]) -> LiveServerMessage:
    """Decode one server message (a JSON object, possibly pretty-printed).

    Unknown fields are ignored; unknown top-level keys are kept in
    ``LiveServerMessage.unknown``. Safe to call from any thread; does not
    block.

    Raises:
        ProtocolError: the data is not JSON, not an object, or has a value of
            the wrong type (including invalid base64, Durations and int64
            values). The message names the field but never contains the data.
    """
    try:
        if isinstance(data, memoryview):
            data = data.tobytes()
        if not isinstance(data, (bytes, bytearray, str)):
            raise ProtocolError("server message must be bytes or str, not %s" % type(data).__name__)
        reason = ""
        try:
            # The server sends UTF-8; decoding it ourselves skips json.loads' encoding sniffing.
            text = data if isinstance(data, str) else bytes(data).decode("utf-8")
            value = _JSON.decode(text)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        if reason:  # raised outside the except block: no __context__ holding the raw frame
            raise ProtocolError(
                "server message is not valid JSON: %s (%d bytes)" % (reason, len(data)))
        if type(value) is not dict:
            raise ProtocolError(
                "server message is not a JSON object: %s" % _JSON_KIND.get(type(value), "value")
            )
        try:
            message: LiveServerMessage = _decode_server(value)
        except _Bad as exc:
            raise ProtocolError(
                "invalid server message at %s: %s" % (_format_path(exc.path), exc.reason)
            ) from None
        return message
    except ProtocolError:
        raise
    except Exception as exc:  # never let anything else escape the reader
        raise ProtocolError("invalid server message: %s" % type(exc).__name__) from None


# --- encoding ---


def _to_wire(value: Any) -> Any:
    """Encode a model (or a list/dict holding models) like ``to_dict()`` does."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: Dict[str, Any] = {}
        for info in _class_info(type(value)):
            item = getattr(value, info.name)
            if item is None:
                continue
            out[info.wire] = info.encoder(item) if info.encoder is not None else _to_wire(item)
        return out
    if isinstance(value, AbcMapping):
        return {key: _to_wire(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_wire(item) for item in value]
    return value


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


# --- config coercion -----------------------------------------------------------------


def _invalid(path: str, message: str) -> InvalidConfig:
    return InvalidConfig("%s %s" % (path, message) if path else message, field=path or None)


def _kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (str, int, float, bytes, bytearray, list, tuple, dict)):
        return type(value).__name__
    if isinstance(value, AbcMapping):
        return "mapping"
    return type(value).__name__


def _join(path: str, name: str) -> str:
    return "%s.%s" % (path, name) if path else name


def _json_value(value: Any, path: str, depth: int = 0) -> Any:
    """Check that a free-form value can be sent as JSON; copy tuples to lists."""
    if depth > 64:
        raise _invalid(path, "is nested too deeply")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(path, "must not contain nan or infinity")
        return value
    if isinstance(value, AbcMapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _invalid(path, "must have string keys")
            out[key] = _json_value(item, _join(path, key), depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(item, "%s[%d]" % (path, i), depth + 1) for i, item in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _to_wire(value)
    raise _invalid(path, "must contain only json values, not %s" % _kind(value))


def _coerce(value: Any, spec: Spec, path: str) -> Any:
    kind = spec[0]
    if kind == "str":
        if isinstance(value, str):
            return value
        raise _invalid(path, "must be a string, not %s" % _kind(value))
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _invalid(path, "must be a bool, not %s" % _kind(value))
    if kind in ("int", "int64"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "int64" and isinstance(value, str):
            try:
                return decode_int64(value)
            except ValueError:
                pass
        raise _invalid(path, "must be an int, not %s" % _kind(value))
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _invalid(path, "must be a finite number")
            return value
        raise _invalid(path, "must be a number, not %s" % _kind(value))
    if kind == "bytes":
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            try:
                return decode_base64(value)
            except ValueError:
                raise _invalid(path, "must be bytes or a base64 string") from None
        raise _invalid(path, "must be bytes, not %s" % _kind(value))
    if kind == "duration":
        if isinstance(value, datetime.timedelta):
            return value
        if isinstance(value, str):
            try:
                return decode_duration(value)
            except ValueError:
                pass
        raise _invalid(path, "must be a timedelta or a duration string such as '5s'")
    if kind == "dict":
        if isinstance(value, AbcMapping):
            return _json_value(value, path)
        raise _invalid(path, "must be a mapping, not %s" % _kind(value))
    if kind == "any":
        return _json_value(value, path)
    if kind == "list":
        if isinstance(value, (list, tuple)):
            return [
                _coerce_opt(item, spec[1], "%s[%d]" % (path, i)) for i, item in enumerate(value)
            ]
        raise _invalid(path, "must be a list, not %s" % _kind(value))
    if kind == "dc":
        return _coerce_dataclass(value, spec[1], path)
    if kind == "str_or_content":
        if isinstance(value, str):
            return value
        if isinstance(value, Part):
            return Content(
                role="user", parts=[_coerce_dataclass(value, Part, _join(path, "parts[0]"))]
            )
        if isinstance(value, (Content, AbcMapping)):
            return _coerce_dataclass(value, Content, path)
        raise _invalid(path, "must be a string or a Content, not %s" % _kind(value))
    raise TypeError("cannot coerce %r" % (spec,))  # pragma: no cover


def _coerce_opt(value: Any, spec: Spec, path: str) -> Any:
    if value is None:
        return None
    return _coerce(value, spec, path)


_KEY_TABLES: Dict[type, Dict[str, _FieldInfo]] = {}


def _key_table(cls: type) -> Dict[str, _FieldInfo]:
    try:
        return _KEY_TABLES[cls]
    except KeyError:
        pass
    table: Dict[str, _FieldInfo] = {}
    for info in _class_info(cls):
        table[info.name] = info
        table[info.wire] = info
    _KEY_TABLES[cls] = table
    return table


def _coerce_dataclass(value: Any, cls: type, path: str) -> Any:
    """Validate a model instance or build one from a snake/camelCase mapping."""
    kwargs: Dict[str, Any] = {}
    if isinstance(value, cls):
        for info in _class_info(cls):
            kwargs[info.name] = _coerce_opt(
                getattr(value, info.name), info.spec, _join(path, info.name)
            )
        return cls(**kwargs)
    if isinstance(value, AbcMapping):
        table = _key_table(cls)
        for key, item in value.items():
            found = table.get(key) if isinstance(key, str) else None
            if found is None:
                shown = key[:64] if isinstance(key, str) else type(key).__name__
                raise InvalidConfig(
                    "unknown key %r in %s" % (shown, path or "config"),
                    field=_join(path, shown),
                )
            kwargs[found.name] = _coerce_opt(item, found.spec, _join(path, found.name))
        return cls(**kwargs)
    what = "a mapping or %s" % cls.__name__
    raise _invalid(path or "config", "must be %s, not %s" % (what, _kind(value)))


def coerce_config(config: Union[LiveConfig, Mapping[str, Any], None]) -> LiveConfig:
    """Return a validated copy of ``config`` as a :class:`LiveConfig`.

    Mappings may use snake_case or camelCase keys, at any depth, and may hold
    mappings where models are expected. Bytes fields also accept base64 text.
    Safe to call from any thread; does not block.

    Raises:
        InvalidConfig: an unknown key or a value of the wrong type; ``field``
            names it (dotted snake_case path).
    """
    if config is None:
        return LiveConfig()
    result: LiveConfig = _coerce_dataclass(config, LiveConfig, "")
    return result


_GENERATION_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationConfig))
_SETUP_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(BidiGenerateContentSetup)
    if f.name not in ("model", "generation_config", "system_instruction")
)
_GEMINI_ONLY_TOOLS = ("file_search",)
_VERTEX_ONLY_TOOLS = ("retrieval", "enterprise_web_search", "parallel_ai_search", "exa_ai_search")


def _validate(config: LiveConfig, vertexai: bool) -> None:
    backend = "vertex ai" if vertexai else "the gemini api"
    modalities = config.response_modalities
    if modalities is not None and len(modalities) > 1:
        raise InvalidConfig(
            "response_modalities allows at most one modality; use output_audio_transcription "
            "to get text with audio",
            field="response_modalities",
        )
    speech = config.speech_config
    if speech is not None:
        if speech.multi_speaker_voice_config is not None:
            raise InvalidConfig(
                "speech_config.multi_speaker_voice_config is not supported by the live api",
                field="speech_config.multi_speaker_voice_config",
            )
        voice = speech.voice_config
        replicated = voice.replicated_voice_config if voice is not None else None
        if vertexai and replicated is not None and replicated.consent_audio is not None:
            name = "speech_config.voice_config.replicated_voice_config.consent_audio"
            raise InvalidConfig("%s is not supported on %s" % (name, backend), field=name)
    resumption = config.session_resumption
    if not vertexai and resumption is not None and resumption.transparent is not None:
        raise InvalidConfig(
            "session_resumption.transparent is only supported on vertex ai",
            field="session_resumption.transparent",
        )
    if not vertexai and config.explicit_vad_signal is not None:
        raise InvalidConfig(
            "explicit_vad_signal is only supported on vertex ai", field="explicit_vad_signal"
        )
    if vertexai and config.translation_config is not None:
        raise InvalidConfig(
            "translation_config is only supported on the gemini api", field="translation_config"
        )
    for index, setting in enumerate(config.safety_settings or ()):
        if not vertexai and setting.method is not None:
            name = "safety_settings[%d].method" % index
            raise InvalidConfig("%s is only supported on vertex ai" % name, field=name)
    wrong_tools = _GEMINI_ONLY_TOOLS if vertexai else _VERTEX_ONLY_TOOLS
    for index, tool in enumerate(config.tools or ()):
        for attr in wrong_tools:
            if getattr(tool, attr) is not None:
                name = "tools[%d].%s" % (index, attr)
                raise InvalidConfig("%s is not supported on %s" % (name, backend), field=name)


def build_setup(model: str, config: LiveConfig, *, vertexai: bool) -> Dict[str, Any]:
    """Build the body of the ``setup`` message (the object under ``"setup"``).

    ``model`` is sent as given (the caller adds ``models/`` or the Vertex
    resource prefix). Flat generation fields are nested under
    ``generationConfig``; a string ``system_instruction`` becomes a user
    Content with one text part. On Vertex, ``responseModalities`` defaults to
    ``["AUDIO"]`` as both official SDKs do (the Gemini API's own default).
    ``sessionResumption`` is included only as configured. Safe to call from
    any thread; does not block.

    Raises:
        InvalidConfig: an invalid value or a field the backend does not
            support; ``field`` names it.
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidConfig("model must be a non-empty string", field="model")
    config = coerce_config(config)
    _validate(config, vertexai)
    generation = {name: getattr(config, name) for name in _GENERATION_FIELDS}
    if vertexai and generation["response_modalities"] is None:
        generation["response_modalities"] = ["AUDIO"]
    instruction = config.system_instruction
    if isinstance(instruction, str):
        instruction = Content(role="user", parts=[Part(text=instruction)])
    setup = BidiGenerateContentSetup(
        model=model,
        generation_config=(
            GenerationConfig(**generation)
            if any(value is not None for value in generation.values())
            else None
        ),
        system_instruction=instruction,
        **{name: getattr(config, name) for name in _SETUP_FIELDS},
    )
    result: Dict[str, Any] = _to_wire(setup)
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
                contents.append(_coerce_dataclass(turn, Content, path))
            else:
                raise InvalidConfig(
                    "%s must be a string, a Content or a mapping, not %s" % (path, _kind(turn)),
                    field=path,
                )
        body["turns"] = _to_wire(contents)
    body["turnComplete"] = turn_complete
    return {"clientContent": body}


_REALTIME_FIELDS = ("audio", "video", "text", "activity_start", "activity_end", "audio_stream_end")


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
            "%s must be a Blob, a mapping or bytes, not %s" % (name, _kind(value)), field=name
        )
    blob: Blob = _coerce_dataclass(value, Blob, name)
    if blob.mime_type is None or not blob.mime_type.startswith(prefix):
        raise InvalidConfig("%s mime_type must start with %r" % (name, prefix), field=name)
    if blob.data is None:
        raise InvalidConfig("%s.data is required" % name, field=name + ".data")
    result: Dict[str, Any] = _to_wire(blob)
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
            raise InvalidConfig("text must be a string, not %s" % _kind(text), field="text")
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
        raise InvalidConfig("pcm must be bytes, not %s" % _kind(pcm), field="pcm")
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
    call. Safe to call from any thread; does not block.

    Raises:
        InvalidConfig: an invalid response, or a missing ``id`` on the
            Gemini API.
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
                "%s must be a FunctionResponse or a mapping, not %s" % (path, _kind(item)),
                field=path,
            )
        response: FunctionResponse = _coerce_dataclass(item, FunctionResponse, path)
        if not vertexai and not response.id:
            raise InvalidConfig(
                "%s needs the id of its function call on the gemini api" % path, field="id"
            )
        responses.append(response)
    return {"toolResponse": {"functionResponses": _to_wire(responses)}}
