"""Parity with the official SDK, google-genai (3.6.1 when this was written).

Skipped when google-genai is not importable (it needs Python >= 3.11, so it
runs in the default-Python CI job).

* Every field of google-genai's Live models (LiveConnectConfig and everything
  nested in it, LiveClientMessage, LiveServerMessage and everything nested in
  them) is accepted by livesync's config or present on livesync's model,
  except the fields in :data:`LEFT_OUT`, each with its reason (also in
  docs/config-fields.md).
* For a rich config, google-genai's own converters and livesync's
  ``build_setup`` produce the same ``setup`` modulo key casing (google-genai
  sends some nests in snake_case), on the Gemini API and on Vertex AI.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

genai = pytest.importorskip("google.genai")

from google.genai import _common, _live_converters, types as g  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from livesync import types as t  # noqa: E402
from livesync._config import coerce_config  # noqa: E402
from livesync._messages import build_setup  # noqa: E402
from livesync._schema import key_table  # noqa: E402

# (google-genai class, field) -> why livesync does not take it.
LEFT_OUT: Dict[Tuple[str, str], str] = {
    ("LiveConnectConfig", "http_options"): (
        "transport options: set base_url, api_version and headers on Client; refused per "
        "session with an InvalidConfig saying so"
    ),
    ("GenerationConfig", "response_mime_type"): "the Live API does not support structured output",
    ("GenerationConfig", "response_schema"): "the Live API does not support structured output",
    ("GenerationConfig", "response_json_schema"): (
        "the Live API does not support structured output"
    ),
}

# google-genai root -> livesync class.
ROOTS = [
    (g.LiveConnectConfig, t.LiveConfig),
    (g.LiveClientMessage, t.LiveClientMessage),
    (g.LiveServerMessage, t.LiveServerMessage),
]


def _models_in(annotation: Any) -> List[type]:
    """The pydantic model classes an annotation refers to (through Optional, list, Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: List[type] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _dataclass_in(annotation: Any) -> Optional[type]:
    if dataclasses.is_dataclass(annotation):
        return annotation  # type: ignore[return-value]
    for arg in typing.get_args(annotation):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def _pairs() -> List[Tuple[type, type, str, Any]]:
    """Every (genai model, livesync class, genai field, livesync annotation or None) reachable."""
    rows = []
    seen: Set[Tuple[type, type]] = set()
    pending = list(ROOTS)
    while pending:
        gcls, lcls = pending.pop()
        if (gcls, lcls) in seen:
            continue
        seen.add((gcls, lcls))
        hints = typing.get_type_hints(lcls)
        table = key_table(lcls)
        for name, info in gcls.model_fields.items():
            found = table.get(name) or table.get(info.alias or "")
            if found is None and name == "voice_activity_type":
                found = table.get("type")
            rows.append((gcls, lcls, name, hints[found.name] if found else None))
            if found is None:
                continue
            gmodels = _models_in(info.annotation)
            if name == "tools" and not gmodels:
                gmodels = [g.Tool]  # Annotated[list, validator] in google-genai
            lnested = _dataclass_in(hints[found.name])
            if len(gmodels) >= 1 and lnested is not None:
                # Content|str|Part|File|list: follow Content, the form livesync sends.
                gnested = g.Content if g.Content in gmodels else gmodels[0]
                pending.append((gnested, lnested))
    return rows


ROWS = _pairs()


@pytest.mark.parametrize(
    "gcls, lcls, name, annotation",
    ROWS,
    ids=["%s.%s" % (row[0].__name__, row[2]) for row in ROWS],
)
def test_every_google_genai_field_is_in_livesync(gcls, lcls, name, annotation):
    if (gcls.__name__, name) in LEFT_OUT:
        assert annotation is None, "left out on purpose, but present: update LEFT_OUT"
        return
    assert annotation is not None, "%s.%s has no counterpart on livesync's %s" % (
        gcls.__name__, name, lcls.__name__)


def test_the_walk_reaches_the_nested_models():
    reached = {row[0].__name__ for row in ROWS}
    for name in ("GenerationConfig", "SpeechConfig", "VoiceConfig", "MultiSpeakerVoiceConfig",
                 "RealtimeInputConfig", "AudioTranscriptionConfig", "ProactivityConfig", "Tool",
                 "FunctionDeclaration", "LiveServerContent", "Transcription", "WordInfo", "Part",
                 "FunctionCall", "PartialArg", "FunctionResponsePart", "UsageMetadata",
                 "LiveClientContextUpdate", "LiveClientContextUpdateTools", "LiveClientSetup"):
        assert name in reached, name


def test_left_out_fields_are_refused_with_an_error():
    from livesync.exceptions import InvalidConfig

    for (cls, name), _reason in LEFT_OUT.items():
        config = {name: {}} if cls == "LiveConnectConfig" else {"generation_config": {name: {}}}
        with pytest.raises(InvalidConfig):
            coerce_config(config)


# --- the wire setup, google-genai's converters vs build_setup -------------------------

RICH: Dict[str, Any] = {
    "response_modalities": ["AUDIO"],
    "temperature": 0.7,
    "top_p": 0.9,
    "top_k": 40.0,
    "max_output_tokens": 256,
    "seed": 5,
    "media_resolution": "MEDIA_RESOLUTION_LOW",
    "enable_affective_dialog": True,
    "translation_config": {"target_language_code": "es", "echo_target_language": True},
    "speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}},
                      "language_code": "en-US"},
    "thinking_config": {"thinking_budget": 128, "include_thoughts": True},
    "system_instruction": "be brief",
    "tools": [
        {"function_declarations": [{"name": "f", "description": "d", "behavior": "NON_BLOCKING",
                                    "parameters_json_schema": {"type": "object"}}]},
        {"google_search": {}},
        {"code_execution": {}},
    ],
    "realtime_input_config": {
        "automatic_activity_detection": {"disabled": False, "silence_duration_ms": 500},
        "activity_handling": "NO_INTERRUPTION",
        "turn_coverage": "TURN_INCLUDES_ALL_INPUT",
        "interim_transcript_timestamp_enabled": True,
    },
    "session_resumption": {"handle": "h"},
    "context_window_compression": {
        "trigger_tokens": 1000, "sliding_window": {"target_tokens": 500}
    },
    "input_audio_transcription": {"mode": "VERBATIM", "language_codes": ["en-US"]},
    "output_audio_transcription": {},
    "proactivity": {"proactive_audio": True, "proactive_video": True},
    "history_config": {"initial_history_in_client_content": True},
    "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "labels": {"team": "a"},
}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _normalize(value: Any) -> Any:
    """Keys in camelCase, enums as their values, whole floats as ints, tools in a fixed order.

    google-genai moves tools with function declarations to the end of the list.
    """
    if isinstance(value, dict):
        out = {_camel(key): _normalize(item) for key, item in value.items()}
        if isinstance(out.get("tools"), list):
            out["tools"] = sorted(out["tools"], key=repr)
        return out
    if isinstance(value, list):
        return [_normalize(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _genai_setup(config: Dict[str, Any], vertexai: bool) -> Dict[str, Any]:
    """The setup google-genai 3.6.1 sends, built the way ``AsyncLive.connect`` builds it."""
    client = genai.Client(vertexai=True, api_key="k") if vertexai else genai.Client(api_key="k")
    model = "models/m"
    config = dict(config)
    instruction = config.pop("system_instruction", None)
    live_config = g.LiveConnectConfig(**config)
    if instruction is not None:
        live_config.system_instruction = genai._transformers.t_content(instruction)
    params = g.LiveConnectParameters(model=model, config=live_config).model_dump(
        exclude_none=True)
    convert = (_live_converters._LiveConnectParameters_to_vertex if vertexai
               else _live_converters._LiveConnectParameters_to_mldev)
    request = _common.convert_to_dict(convert(api_client=client._api_client, from_object=params))
    request = _common.encode_unserializable_types(request)
    request["setup"]["model"] = model
    setup: Dict[str, Any] = request["setup"]
    return setup


@pytest.mark.parametrize("vertexai", [False, True], ids=["gemini-api", "vertex"])
def test_build_setup_matches_google_genai_converters(vertexai):
    expected = _normalize(_genai_setup(RICH, vertexai))
    actual = _normalize(build_setup("models/m", coerce_config(RICH), vertexai=vertexai))
    assert actual == expected


def test_the_snake_case_keys_google_genai_sends_are_accepted_by_livesync():
    setup = _genai_setup(RICH, vertexai=False)
    generation = setup.pop("generationConfig")
    snake = re.compile(r"_[a-z]")
    assert any(snake.search(key) for key in _all_keys(setup)), "no snake_case nests left?"
    del setup["model"]
    setup["systemInstruction"] = _plain(setup["systemInstruction"])
    config = coerce_config({**setup, **generation, "tools": _plain(setup["tools"])})
    assert _normalize(build_setup("models/m", config, vertexai=False)) == _normalize(
        _genai_setup(RICH, vertexai=False))


def _all_keys(value: Any) -> List[str]:
    if isinstance(value, dict):
        return list(value) + [key for item in value.values() for key in _all_keys(item)]
    if isinstance(value, list):
        return [key for item in value for key in _all_keys(item)]
    return []


def _plain(value: Any) -> Any:
    """Enum members as their values (google-genai's converters leave them as members)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.value if isinstance(value, enum.Enum) else value
