"""Session configuration: coercion of user input and the backend rules.

* :func:`coerce_config` turns a :class:`~livesync.types.LiveConfig` or a
  mapping (snake_case or camelCase keys at any depth, mappings where models
  are expected, base64 text where bytes are expected) into a validated
  ``LiveConfig`` copy, merging the deprecated ``generation_config`` nest into
  the flat fields. Unknown keys raise ``InvalidConfig: unknown key ...``;
  ``LiveConfig.extra`` is the explicit escape hatch for newer wire fields,
  merged into the setup by :func:`merge_extra`.
* :func:`check_backend` applies the per-backend field rules of google-genai
  3.6.1's converters (``_live_converters.py``: each ``raise ValueError``
  site) to any model: a field one backend does not take raises
  ``InvalidConfig`` naming it. The rules are data, in :data:`_ONLY_ON_VERTEX`
  and :data:`_ONLY_ON_GEMINI_API`.
* :func:`coerce_value` is the coercion of one field, shared with the
  client-message builders in :mod:`livesync._messages`.

Pure functions; safe from any thread, never blocking.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
from collections.abc import Mapping as AbcMapping
from typing import Any, Callable, Dict, Mapping, Tuple, Union

from ._schema import Spec, class_info, key_table, to_wire
from .exceptions import InvalidConfig
from .types import (
    Content,
    FunctionCall,
    FunctionResponse,
    FunctionResponsePart,
    LiveConfig,
    Part,
    ReplicatedVoiceConfig,
    SafetySetting,
    SessionResumptionConfig,
    Tool,
    _GenerationFields,
    _SetupFields,
    decode_base64,
    decode_duration,
    decode_int64,
)

__all__ = [
    "check_backend",
    "coerce_config",
    "coerce_model",
    "coerce_value",
    "invalid",
    "join",
    "kind",
    "merge_extra",
]

def invalid(path: str, message: str) -> InvalidConfig:
    """An InvalidConfig whose message starts with ``path`` and whose ``field`` is it."""
    return InvalidConfig("%s %s" % (path, message) if path else message, field=path or None)


def kind(value: Any) -> str:
    """A short name for the type of ``value``, for error messages (never the value)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (str, int, float, bytes, bytearray, list, tuple, dict)):
        return type(value).__name__
    if isinstance(value, AbcMapping):
        return "mapping"
    return type(value).__name__


def join(path: str, name: str) -> str:
    """``path.name``, or ``name`` at the top."""
    return "%s.%s" % (path, name) if path else name


def _json_value(value: Any, path: str, depth: int = 0) -> Any:
    """Check that a free-form value can be sent as JSON; copy tuples to lists."""
    if depth > 64:
        raise invalid(path, "is nested too deeply")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid(path, "must not contain nan or infinity")
        return value
    if isinstance(value, AbcMapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise invalid(path, "must have string keys")
            out[key] = _json_value(item, join(path, key), depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(item, "%s[%d]" % (path, i), depth + 1) for i, item in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_wire(value)
    raise invalid(path, "must contain only json values, not %s" % kind(value))


def _coerce_str(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, str):
        return value
    raise invalid(path, "must be a string, not %s" % kind(value))


def _coerce_bool(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, bool):
        return value
    raise invalid(path, "must be a bool, not %s" % kind(value))


def _coerce_int(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if spec[0] == "int64" and isinstance(value, str):
        try:
            return decode_int64(value)
        except ValueError:
            pass
    raise invalid(path, "must be an int, not %s" % kind(value))


def _coerce_float(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise invalid(path, "must be a finite number")
        return value
    raise invalid(path, "must be a number, not %s" % kind(value))


def _coerce_bytes(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return decode_base64(value)
        except ValueError:
            raise invalid(path, "must be bytes or a base64 string") from None
    raise invalid(path, "must be bytes, not %s" % kind(value))


def _coerce_duration(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, str):
        try:
            return decode_duration(value)
        except ValueError:
            pass
    raise invalid(path, "must be a timedelta or a duration string such as '5s'")


def _coerce_dict(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, AbcMapping):
        return _json_value(value, path)
    raise invalid(path, "must be a mapping, not %s" % kind(value))


def _coerce_str_dict(value: Any, spec: Spec, path: str) -> Any:
    if not isinstance(value, AbcMapping):
        raise invalid(path, "must be a mapping, not %s" % kind(value))
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise invalid(path, "must map strings to strings")
    return dict(value)


def _coerce_any(value: Any, spec: Spec, path: str) -> Any:
    return _json_value(value, path)


def _coerce_list(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, (list, tuple)):
        return [coerce_value(item, spec[1], "%s[%d]" % (path, i)) for i, item in enumerate(value)]
    raise invalid(path, "must be a list, not %s" % kind(value))


def _coerce_dc(value: Any, spec: Spec, path: str) -> Any:
    return coerce_model(value, spec[1], path)


def _coerce_instruction(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Part):
        return Content(role="user", parts=[coerce_model(value, Part, join(path, "parts[0]"))])
    if isinstance(value, (Content, AbcMapping)):
        return coerce_model(value, Content, path)
    raise invalid(path, "must be a string or a Content, not %s" % kind(value))


_COERCERS: Dict[str, Callable[[Any, Spec, str], Any]] = {
    "str": _coerce_str,
    "bool": _coerce_bool,
    "int": _coerce_int,
    "int64": _coerce_int,
    "float": _coerce_float,
    "bytes": _coerce_bytes,
    "duration": _coerce_duration,
    "dict": _coerce_dict,
    "str_dict": _coerce_str_dict,
    "any": _coerce_any,
    "list": _coerce_list,
    "dc": _coerce_dc,
    "str_or_content": _coerce_instruction,
}


def coerce_value(value: Any, spec: Spec, path: str) -> Any:
    """Validate one field value (None stays None) and return it in model form."""
    if value is None:
        return None
    return _COERCERS[spec[0]](value, spec, path)


# Keys google-genai accepts that livesync refuses with a reason rather than "unknown key".
_REFUSED_KEYS: Dict[type, Dict[str, str]] = {
    LiveConfig: {
        "http_options": "is not supported per session; set base_url, api_version and "
        "headers on Client(...)",
        "httpOptions": "is not supported per session; set base_url, api_version and "
        "headers on Client(...)",
    },
}


def _unknown_key(cls: type, key: Any, path: str) -> InvalidConfig:
    shown = key[:64] if isinstance(key, str) else type(key).__name__
    reason = _REFUSED_KEYS.get(cls, {}).get(shown)
    if reason is not None:
        return invalid(join(path, shown), reason)
    return InvalidConfig(
        "unknown key %r in %s" % (shown, path or "config"), field=join(path, shown)
    )


def coerce_model(value: Any, cls: type, path: str) -> Any:
    """Validate a model instance or build one from a snake/camelCase mapping."""
    kwargs: Dict[str, Any] = {}
    if isinstance(value, cls):
        for info in class_info(cls):
            kwargs[info.name] = coerce_value(
                getattr(value, info.name), info.spec, join(path, info.name)
            )
        return cls(**kwargs)
    if isinstance(value, AbcMapping):
        table = key_table(cls)
        for key, item in value.items():
            found = table.get(key) if isinstance(key, str) else None
            if found is None:
                raise _unknown_key(cls, key, path)
            kwargs[found.name] = coerce_value(item, found.spec, join(path, found.name))
        return cls(**kwargs)
    what = "a mapping or %s" % cls.__name__
    raise invalid(path or "config", "must be %s, not %s" % (what, kind(value)))


_GENERATION_NAMES = tuple(f.name for f in dataclasses.fields(_GenerationFields))


def _merge_generation_config(config: LiveConfig) -> LiveConfig:
    """Fold the deprecated ``generation_config`` nest into the flat fields."""
    nested = config.generation_config
    if nested is None:
        return config
    merged: Dict[str, Any] = {}
    for name in _GENERATION_NAMES:
        inner, flat = getattr(nested, name), getattr(config, name)
        if inner is not None and flat is not None and inner != flat:
            raise invalid(
                "generation_config.%s" % name,
                "conflicts with %s; set it once (generation_config is deprecated: use "
                "the flat field)" % name,
            )
        if inner is not None:
            merged[name] = inner
    return dataclasses.replace(config, generation_config=None, **merged)


def coerce_config(config: Union[LiveConfig, Mapping[str, Any], None]) -> LiveConfig:
    """Return a validated copy of ``config`` as a :class:`LiveConfig`.

    Mappings may use snake_case or camelCase keys, at any depth, and may hold
    mappings where models are expected. Bytes fields also accept base64 text.
    The deprecated ``generation_config`` nest is merged into the flat fields
    (the copy has ``generation_config=None``). ``extra`` must be a mapping of
    JSON values. Safe to call from any thread; does not block.

    Raises:
        InvalidConfig: an unknown key, a value of the wrong type, or a field
            set both flat and in ``generation_config`` with different values;
            ``field`` names it (dotted snake_case path).
    """
    if config is None:
        return LiveConfig()
    result: LiveConfig = coerce_model(config, LiveConfig, "")
    return _merge_generation_config(result)


# --- extra wire fields ------------------------------------------------------------------


def merge_extra(setup: Dict[str, Any], extra: Mapping[str, Any], path: str = "extra") -> None:
    """Deep-merge ``extra`` (camelCase wire keys) into the ``setup`` body, in place.

    Mappings merge key by key; any other value may only fill a key livesync
    does not set.

    Raises:
        InvalidConfig: ``extra`` would replace a value livesync sets.
    """
    for key, value in extra.items():
        where = join(path, key)
        if key not in setup:
            setup[key] = copy.deepcopy(value)  # the setup may be changed later (contextUpdate)
        elif isinstance(setup[key], dict) and isinstance(value, AbcMapping):
            merge_extra(setup[key], value, where)
        else:
            raise invalid(
                where,
                "would replace a value livesync sets; use the typed field instead",
            )


# --- backend rules ------------------------------------------------------------------------
#
# From google-genai 3.6.1 _live_converters.py: fields the *_to_mldev converters
# refuse are Vertex only, fields the *_to_vertex converters refuse are Gemini API
# only. Keyed by class (looked up along the MRO, so the mixins cover LiveConfig,
# GenerationConfig and the setup); dict-typed tool fields list refused sub-keys.

_ONLY_ON_VERTEX: Dict[type, Tuple[str, ...]] = {
    _SetupFields: ("explicit_vad_signal",),
    SessionResumptionConfig: ("transparent",),
    SafetySetting: ("method",),
    Tool: ("retrieval", "enterprise_web_search", "parallel_ai_search", "exa_ai_search"),
    FunctionCall: ("partial_args", "will_continue"),
}
_ONLY_ON_GEMINI_API: Dict[type, Tuple[str, ...]] = {
    _GenerationFields: ("enable_enhanced_civic_answers",),
    ReplicatedVoiceConfig: ("consent_audio", "voice_consent_signature"),
    Tool: ("file_search",),
    Part: ("tool_call", "tool_response", "part_metadata"),
    FunctionResponse: ("will_continue",),
    FunctionResponsePart: ("media_processing",),
}
# (tool field, sub-keys in snake_case and camelCase) refused on that backend.
_TOOL_KEYS_ONLY_ON_VERTEX = (
    ("google_search", ("blocking_confidence", "blockingConfidence")),
    ("google_search", ("exclude_domains", "excludeDomains")),
    ("google_maps", ("grounding_types", "groundingTypes")),
)
_TOOL_KEYS_ONLY_ON_GEMINI_API = (
    ("mcp_servers", ("name",)),
    ("mcp_servers", ("streamable_http_transport", "streamableHttpTransport")),
)


def _refused(cls: type, vertexai: bool) -> Tuple[str, ...]:
    rules = _ONLY_ON_GEMINI_API if vertexai else _ONLY_ON_VERTEX
    names: Tuple[str, ...] = ()
    for klass in cls.__mro__:
        names += rules.get(klass, ())
    return names


def _backend_error(path: str, vertexai: bool) -> InvalidConfig:
    other = "the gemini api" if vertexai else "vertex ai"
    return invalid(path, "is only supported on %s" % other)


def _check_tool_keys(tool: Tool, vertexai: bool, path: str) -> None:
    rules = _TOOL_KEYS_ONLY_ON_GEMINI_API if vertexai else _TOOL_KEYS_ONLY_ON_VERTEX
    for attr, keys in rules:
        value = getattr(tool, attr)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            for key in keys:
                if key in item:
                    where = join(path, attr) + ("[%d]" % index if isinstance(value, list) else "")
                    raise _backend_error(join(where, key), vertexai)


def check_backend(value: Any, vertexai: bool, path: str = "") -> None:
    """Raise for the first field in ``value`` (a model, or a list of them) the backend refuses.

    Raises:
        InvalidConfig: ``field`` is the dotted path of the refused field.
    """
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_backend(item, vertexai, "%s[%d]" % (path, index))
        return
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    cls = type(value)
    for name in _refused(cls, vertexai):
        if getattr(value, name) is not None:
            raise _backend_error(join(path, name), vertexai)
    if isinstance(value, Tool):
        _check_tool_keys(value, vertexai, path)
    for info in class_info(cls):
        if info.spec[0] in ("dc", "list", "str_or_content"):
            check_backend(getattr(value, info.name), vertexai, join(path, info.name))

