"""Config fields: one source of truth (drift tests), the 3.x fields, escape hatches, backend rules.

Also the ``contextUpdate`` builder and forward compatibility of decoded server
messages (unknown nested keys kept in ``extra``).
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import typing

import pytest

from livesync import types as t
from livesync._config import coerce_config
from livesync._decode import parse_server_message
from livesync._messages import (
    _REALTIME_FIELDS,
    build_setup,
    context_update,
    encode,
    realtime_input,
    tool_response,
)
from livesync._schema import key_table, to_wire
from livesync.exceptions import InvalidConfig

# LiveConfig fields that are not restated wire fields, and why.
LIVE_CONFIG_ONLY = {
    "system_instruction": "str or Content, sent as setup.systemInstruction",
    "generation_config": "the deprecated nest, merged into the flat fields",
    "extra": "wire fields newer than livesync, merged into setup",
}
# Setup fields LiveConfig spells differently.
SETUP_ONLY = {"model", "generation_config", "system_instruction"}


def _hints(cls: type) -> typing.Dict[str, typing.Any]:
    """Field name -> resolved annotation, fields only (no ClassVars)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# --- one source of truth ------------------------------------------------------------------


def test_live_config_has_every_generation_and_setup_field_with_the_same_type():
    live = _hints(t.LiveConfig)
    generation = _hints(t.GenerationConfig)
    setup = {k: v for k, v in _hints(t.BidiGenerateContentSetup).items() if k not in SETUP_ONLY}
    for name, annotation in {**generation, **setup}.items():
        assert name in live, name
        assert live[name] == annotation, name
    assert not set(generation) & set(setup)


def test_every_live_config_field_is_a_generation_or_setup_field_or_documented():
    names = set(_hints(t.LiveConfig))
    restated = set(_hints(t.GenerationConfig)) | set(_hints(t.BidiGenerateContentSetup))
    assert names - (restated - SETUP_ONLY) == set(LIVE_CONFIG_ONLY)


def test_build_setup_places_every_field_where_it_belongs():
    # Every generation field lands under generationConfig, every setup field at the top.
    generation = {f.name for f in dataclasses.fields(t.GenerationConfig)}
    setup_fields = {f.name for f in dataclasses.fields(t.BidiGenerateContentSetup)} - SETUP_ONLY
    for name in generation | setup_fields:
        wire = key_table(t.LiveConfig)[name].wire
        assert key_table(t.GenerationConfig if name in generation else
                         t.BidiGenerateContentSetup)[name].wire == wire


def test_realtime_fields_match_the_model_and_the_builder_signature():
    model = [f.name for f in dataclasses.fields(t.RealtimeInput) if f.name != "media_chunks"]
    assert list(_REALTIME_FIELDS) == model
    assert list(inspect.signature(realtime_input).parameters) == model


# --- the 3.x setup fields -------------------------------------------------------------------

RICH = {
    "labels": {"team": "a"},
    "top_k": 40.5,
    "audio_timestamp": True,
    "logprobs": 3,
    "response_logprobs": True,
    "stop_sequences": ["STOP"],
    "routing_config": {"autoMode": {"modelRoutingPreference": "BALANCED"}},
    "model_selection_config": {"featureSelectionPreference": "PRIORITIZE_QUALITY"},
    "enable_enhanced_civic_answers": True,
    "response_format": [{"text": {"mimeType": "text/plain"}}],
    "audio_transcription_config": {"mode": "VERBATIM"},
    "proactivity": {"proactive_audio": True, "proactive_video": True},
    "realtime_input_config": {"interim_transcript_timestamp_enabled": True},
    "speech_config": {
        "voice_config": {"voice": "Kore"},
        "multi_speaker_voice_config": {
            "speaker_voice_configs": [
                {"speaker": "A", "voice_config": {"prebuilt_voice_config": {"voice_name": "Puck"}}}
            ]
        },
    },
    "input_audio_transcription": {
        "mode": "SMART",
        "source_text": "hello",
        "adaptation_phrases": ["livesync"],
        "language_auto": {},
        "language_hints": {"language_codes": ["en-US"]},
    },
    "thinking_config": {"thinking_level": "XHIGH"},
}


def test_new_setup_fields_reach_the_wire():
    setup = build_setup("models/m", coerce_config(RICH), vertexai=False)
    generation = setup["generationConfig"]
    assert setup["labels"] == {"team": "a"}
    assert generation["topK"] == 40.5
    assert generation["audioTimestamp"] is True
    assert generation["logprobs"] == 3 and generation["responseLogprobs"] is True
    assert generation["stopSequences"] == ["STOP"]
    assert generation["routingConfig"] == RICH["routing_config"]
    assert generation["modelSelectionConfig"] == RICH["model_selection_config"]
    assert generation["enableEnhancedCivicAnswers"] is True
    assert generation["responseFormat"] == RICH["response_format"]
    assert generation["audioTranscriptionConfig"] == {"mode": "VERBATIM"}
    assert generation["thinkingConfig"] == {"thinkingLevel": "XHIGH"}
    assert setup["proactivity"] == {"proactiveAudio": True, "proactiveVideo": True}
    assert setup["realtimeInputConfig"] == {"interimTranscriptTimestampEnabled": True}
    speech = generation["speechConfig"]
    assert speech["voiceConfig"] == {"voice": "Kore"}
    assert speech["multiSpeakerVoiceConfig"]["speakerVoiceConfigs"][0]["speaker"] == "A"
    assert setup["inputAudioTranscription"] == {
        "mode": "SMART",
        "sourceText": "hello",
        "adaptationPhrases": ["livesync"],
        "languageAuto": {},
        "languageHints": {"languageCodes": ["en-US"]},
    }


def test_new_setup_fields_round_trip_through_the_models():
    config = coerce_config(RICH)
    assert t.LiveConfig.from_dict(json.loads(config.to_json())) == config
    setup = build_setup("models/m", config, vertexai=False)
    message = t.LiveClientMessage.from_dict({"setup": setup})
    assert message.to_dict()["setup"] == setup
    assert to_wire(message)["setup"] == setup


@pytest.mark.parametrize(
    "config, field",
    [
        ({"labels": {"a": 1}}, "labels"),
        ({"labels": ["a"]}, "labels"),
        ({"top_k": "40"}, "top_k"),
        ({"stop_sequences": "STOP"}, "stop_sequences"),
        ({"proactivity": {"proactive_video": "yes"}}, "proactivity.proactive_video"),
    ],
)
def test_new_fields_are_validated(config, field):
    with pytest.raises(InvalidConfig) as info:
        coerce_config(config)
    assert info.value.field == field


@pytest.mark.parametrize("key", ["response_mime_type", "responseSchema", "response_json_schema"])
def test_structured_output_fields_are_refused(key):
    # Left out on purpose (docs/config-fields.md): the Live API does not support them.
    with pytest.raises(InvalidConfig, match="unknown key"):
        coerce_config({key: "application/json"})
    with pytest.raises(InvalidConfig, match="unknown key"):
        coerce_config({"generation_config": {key: "application/json"}})


@pytest.mark.parametrize("key", ["http_options", "httpOptions"])
def test_http_options_are_refused_with_a_pointer_to_client(key):
    with pytest.raises(InvalidConfig) as info:
        coerce_config({key: {"api_version": "v1"}})
    assert info.value.field == key
    assert "Client(" in str(info.value)


# --- the deprecated generation_config nest ---------------------------------------------------


def test_generation_config_nest_merges_into_the_flat_fields():
    nested = coerce_config({"generation_config": {"temperature": 0.5, "topK": 3},
                            "max_output_tokens": 10})
    assert nested.generation_config is None
    assert (nested.temperature, nested.top_k, nested.max_output_tokens) == (0.5, 3, 10)
    flat = coerce_config({"temperature": 0.5, "top_k": 3, "max_output_tokens": 10})
    assert nested == flat
    assert build_setup("m", nested, vertexai=False) == build_setup("m", flat, vertexai=False)
    instance = coerce_config(t.LiveConfig(generation_config=t.GenerationConfig(seed=7)))
    assert instance.seed == 7 and instance.generation_config is None
    # the same value set both ways is not a conflict
    assert coerce_config({"seed": 7, "generationConfig": {"seed": 7}}).seed == 7


def test_generation_config_conflict_raises():
    with pytest.raises(InvalidConfig) as info:
        coerce_config({"temperature": 0.5, "generation_config": {"temperature": 0.9}})
    assert info.value.field == "generation_config.temperature"


# --- LiveConfig.extra -------------------------------------------------------------------------


def test_extra_is_deep_merged_into_the_setup():
    config = coerce_config({
        "temperature": 0.5,
        "extra": {"generationConfig": {"newField": 1}, "newTopLevel": {"a": [1, 2]}},
    })
    setup = build_setup("models/m", config, vertexai=False)
    assert setup["generationConfig"] == {"temperature": 0.5, "newField": 1}
    assert setup["newTopLevel"] == {"a": [1, 2]}
    # a nest livesync does not set is created
    setup = build_setup("m", coerce_config({"extra": {"generationConfig": {"x": True}}}),
                        vertexai=False)
    assert setup["generationConfig"] == {"x": True}
    # a field livesync leaves unset may be filled
    assert build_setup("m", coerce_config({"extra": {"labels": {"k": "v"}}}),
                       vertexai=False)["labels"] == {"k": "v"}


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"model": "models/other"}, "extra.model"),
        ({"generationConfig": {"temperature": 1.0}}, "extra.generationConfig.temperature"),
        ({"generationConfig": 5}, "extra.generationConfig"),
    ],
)
def test_extra_never_replaces_a_value_livesync_sets(extra, field):
    config = coerce_config({"temperature": 0.5, "extra": extra})
    with pytest.raises(InvalidConfig) as info:
        build_setup("models/m", config, vertexai=False)
    assert info.value.field == field
    assert "typed field" in str(info.value)


@pytest.mark.parametrize("extra", [[1], {"a": float("nan")}, {"a": object()}, "x"])
def test_extra_must_be_a_mapping_of_json_values(extra):
    with pytest.raises(InvalidConfig):
        coerce_config({"extra": extra})


def test_unknown_keys_still_raise_without_extra():
    with pytest.raises(InvalidConfig, match="unknown key 'newTopLevel'"):
        coerce_config({"newTopLevel": {}})


# --- backend rules of google-genai 3.6.1 -----------------------------------------------------


@pytest.mark.parametrize(
    "response, field",
    [
        ({"id": "1", "name": "f", "will_continue": True}, "function_responses[0].will_continue"),
        (
            {"id": "1", "parts": [{"inline_data": {"mime_type": "image/png", "data": b"x"},
                                   "media_processing": "AGENTIC"}]},
            "function_responses[0].parts[0].media_processing",
        ),
    ],
)
def test_tool_response_fields_refused_on_vertex(response, field):
    with pytest.raises(InvalidConfig) as info:
        tool_response([response], vertexai=True)
    assert info.value.field == field
    assert "gemini api" in str(info.value)
    wire = tool_response([response], vertexai=False)["toolResponse"]["functionResponses"][0]
    assert wire["id"] == "1"


def test_tool_response_new_part_fields_encode():
    part = {
        "inline_data": {"mime_type": "application/pdf", "data": b"%PDF"},
        "media_resolution": {"level": "MEDIA_RESOLUTION_LOW"},
        "document_metadata": {"start_page": 1, "end_page": 2},
        "video_metadata": {"fps": 1.0},
    }
    wire = tool_response([{"id": "1", "parts": [part]}], vertexai=False)
    encoded = wire["toolResponse"]["functionResponses"][0]["parts"][0]
    assert encoded["mediaResolution"] == {"level": "MEDIA_RESOLUTION_LOW"}
    assert encoded["documentMetadata"] == {"startPage": 1, "endPage": 2}


def test_labels_pass_on_both_backends():
    for vertexai in (False, True):
        setup = build_setup("m", coerce_config({"labels": {"a": "b"}}), vertexai=vertexai)
        assert setup["labels"] == {"a": "b"}


# --- context_update ---------------------------------------------------------------------------


def test_context_update_forms():
    assert context_update(system_instruction="be brief", vertexai=False) == {
        "contextUpdate": {"systemInstruction": {"role": "user", "parts": [{"text": "be brief"}]}}
    }
    assert context_update(tools=[], vertexai=False) == {"contextUpdate": {"tools": {"tools": []}}}
    both = context_update(
        system_instruction=t.Part(text="x"),
        tools=[t.Tool(google_search={}), {"functionDeclarations": [{"name": "f"}]}],
        vertexai=True,
    )
    assert both == {
        "contextUpdate": {
            "systemInstruction": {"role": "user", "parts": [{"text": "x"}]},
            "tools": {"tools": [{"googleSearch": {}}, {"functionDeclarations": [{"name": "f"}]}]},
        }
    }
    content = {"role": "user", "parts": [{"text": "a"}]}
    assert context_update(system_instruction=content, vertexai=False)["contextUpdate"] == {
        "systemInstruction": content
    }
    text = encode(context_update(tools=(), vertexai=False))
    assert text == '{"contextUpdate":{"tools":{"tools":[]}}}'
    decoded = t.LiveClientMessage.from_dict(json.loads(text))
    assert decoded.context_update == t.ContextUpdate(tools=t.ContextUpdateTools(tools=[]))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "context_update"),
        ({"system_instruction": 5}, "system_instruction"),
        ({"tools": {"google_search": {}}}, "tools"),
        ({"tools": [{"googleSearchh": {}}]}, "tools[0].googleSearchh"),
        ({"tools": [{"file_search": {}}], "vertexai": True}, "tools[0].file_search"),
        ({"tools": [{"retrieval": {}}]}, "tools[0].retrieval"),
        (
            {"system_instruction": {"parts": [{"part_metadata": {}}]}, "vertexai": True},
            "system_instruction.parts[0].part_metadata",
        ),
    ],
)
def test_context_update_invalid(kwargs, field):
    kwargs.setdefault("vertexai", False)
    with pytest.raises(InvalidConfig) as info:
        context_update(**kwargs)
    assert info.value.field == field


# --- server side: new fields and unknown nested keys ---------------------------------------


def test_new_server_fields_decode_like_from_dict():
    wire = {
        "serverContent": {
            "inputTranscription": {
                "text": "hi", "startOffset": "1.5s", "endOffset": "2s",
                "words": [{"word": "hi", "startOffset": "1.5s", "endOffset": "2s"}],
            },
            "modelTurn": {"parts": [
                {"executableCode": {"code": "1", "language": "PYTHON", "id": "e1"}},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "id": "e1"}},
                {"toolCall": {"id": "t", "toolType": "GOOGLE_SEARCH_WEB", "args": {"q": 1}}},
                {"toolResponse": {"id": "t", "response": {}}},
                {"text": "x", "partMetadata": {"k": 1}, "mediaResolution": {"numTokens": 5},
                 "audioMetadata": {"startOffset": "0s"}, "speechMetadata": {"speaker": "A"},
                 "documentMetadata": {"contentLayers": ["PAGE_TEXT"]},
                 "spreadsheetMetadata": {"sheetIndex": 1}, "mediaProcessing": "STATIC",
                 "audioTranscription": {"text": "t"}},
            ]},
        }
    }
    message = parse_server_message(json.dumps(wire))
    assert message == t.LiveServerMessage.from_dict(wire)
    transcription = message.server_content.input_transcription
    assert transcription.start_offset == datetime.timedelta(seconds=1.5)
    assert transcription.words == [t.WordInfo(
        word="hi", start_offset=datetime.timedelta(seconds=1.5),
        end_offset=datetime.timedelta(seconds=2))]
    parts = message.server_content.model_turn.parts
    assert parts[0].executable_code.id == parts[1].code_execution_result.id == "e1"
    assert parts[2].tool_call == t.BuiltinToolCall(
        id="t", tool_type="GOOGLE_SEARCH_WEB", args={"q": 1})
    assert parts[4].speech_metadata.speaker == "A"
    assert message.to_dict()["serverContent"]["inputTranscription"]["startOffset"] == "1.5s"


def test_streamed_function_call_fields():
    wire = {"toolCall": {"functionCalls": [{
        "id": "1", "name": "f", "willContinue": True,
        "partialArgs": [{"jsonPath": "$.a", "stringValue": "x", "willContinue": True},
                        {"jsonPath": "$.b", "nullValue": "NULL_VALUE"}],
    }]}}
    message = parse_server_message(json.dumps(wire))
    assert message == t.LiveServerMessage.from_dict(wire)
    call = message.tool_call.function_calls[0]
    assert call.will_continue is True
    assert call.partial_args[1] == t.PartialArg(json_path="$.b", null_value="NULL_VALUE")


def test_unknown_nested_keys_are_kept_in_extra():
    wire = {
        "serverContent": {
            "turnComplete": True,
            "brandNew": {"x": 1},
            "modelTurn": {"parts": [{"text": "a", "newPartField": [1]}], "newContentField": 2},
        },
        "usageMetadata": {"totalTokenCount": 3, "candidatesTokenCount": 1, "newCount": 4},
        "futureMessage": {},
    }
    message = parse_server_message(json.dumps(wire))
    content = message.server_content
    assert content.extra == {"brandNew": {"x": 1}}
    assert content.model_turn.extra == {"newContentField": 2}
    assert content.model_turn.parts[0].extra == {"newPartField": [1]}
    assert message.usage_metadata.extra == {"newCount": 4}  # the Vertex alias is known
    assert message.usage_metadata.response_token_count == 1
    assert message.unknown == {"futureMessage": {}}
    # not compared, not encoded, not in the repr
    assert message == t.LiveServerMessage.from_dict(wire)
    assert "brandNew" not in json.dumps(message.to_dict())
    assert "brandNew" not in json.dumps(to_wire(message))
    assert "extra" not in repr(content) and "brandNew" not in repr(content)
    assert parse_server_message('{"serverContent": {"turnComplete": true}}').server_content.extra \
        is None


def test_media_chunks_decode_but_are_never_built():
    wire = {"realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm", "data": "AAE="}]}}
    message = t.LiveClientMessage.from_dict(wire)
    assert message.realtime_input.media_chunks == [t.Blob(mime_type="audio/pcm", data=b"\0\1")]
    assert message.to_dict() == wire
    assert "media_chunks" not in inspect.signature(realtime_input).parameters
