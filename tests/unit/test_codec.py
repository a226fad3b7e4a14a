"""parse_server_message, config coercion and the client-message builders."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import random

import pytest

from livesync import types as t
from livesync._config import coerce_config
from livesync._decode import parse_server_message
from livesync._messages import (
    audio_message,
    build_setup,
    client_content,
    encode,
    realtime_input,
    tool_response,
)
from livesync.exceptions import InvalidConfig, ProtocolError
from tests.unit.recordings import generated_payloads, recordings_available, server_payloads

SECRET = "SECRET-PAYLOAD-0123456789"


# --- parse_server_message: valid input ------------------------------------------------


def test_parse_bytes_str_and_pretty_json():
    wire = {"serverContent": {"modelTurn": {"parts": [{"text": "hi"}]}, "turnComplete": True}}
    for raw in (
        json.dumps(wire),
        json.dumps(wire, indent=2),
        json.dumps(wire).encode(),
        bytearray(json.dumps(wire).encode()),
        memoryview(json.dumps(wire).encode()),
    ):
        message = parse_server_message(raw)
        assert message.text == "hi"
        assert message.server_content.turn_complete is True


def test_empty_resumption_update_is_not_resumable():
    update = parse_server_message(b'{"sessionResumptionUpdate": {}}').session_resumption_update
    assert update == t.SessionResumptionUpdate(new_handle=None, resumable=False)
    full = parse_server_message(
        '{"sessionResumptionUpdate":{"newHandle":"h","resumable":true,"lastConsumedClientMessageIndex":"42"}}'
    ).session_resumption_update
    assert (full.new_handle, full.resumable, full.last_consumed_client_message_index) == (
        "h",
        True,
        42,
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("50s", datetime.timedelta(seconds=50)),
        ("9.5s", datetime.timedelta(seconds=9, microseconds=500000)),
    ],
)
def test_go_away_duration(text, expected):
    message = parse_server_message('{"goAway": {"timeLeft": "%s"}}' % text)
    assert message.go_away.time_left == expected
    assert message.kind == "go_away"


def test_int64_as_string_or_number():
    for value in ('"515"', "515"):
        usage = parse_server_message(
            '{"usageMetadata": {"promptTokenCount": %s}}' % value
        ).usage_metadata
        assert usage.prompt_token_count == 515


def test_base64_both_alphabets_with_or_without_padding():
    data = bytes(range(256)) + b"\xfb\xff"
    standard = base64.b64encode(data).decode()
    for variant in (
        standard,
        standard.rstrip("="),
        base64.urlsafe_b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
    ):
        raw = json.dumps(
            {
                "serverContent": {
                    "modelTurn": {
                        "parts": [{"inlineData": {"mimeType": "audio/pcm", "data": variant}}]
                    }
                }
            }
        )
        assert parse_server_message(raw).data == data


def test_unknown_fields_enum_values_and_message_types():
    raw = json.dumps(
        {
            "serverContent": {
                "turnComplete": True,
                "turnCompleteReason": "NEW_REASON",
                "brandNew": [1, {"x": 2}],
            },
            "usageMetadata": {"totalTokenCount": 3, "newCount": 1},
            "somethingNew": {"a": 1},
        }
    )
    message = parse_server_message(raw)
    assert message.server_content.turn_complete_reason == "NEW_REASON"
    assert message.usage_metadata.total_token_count == 3
    assert message.unknown == {"somethingNew": {"a": 1}}
    assert message.kind == "server_content"
    only_new = parse_server_message('{"futureMessage": {"x": 1}}')
    assert only_new.kind == "unknown"
    assert only_new.unknown == {"futureMessage": {"x": 1}}
    assert parse_server_message("{}").kind == "unknown"


def test_a_wire_key_named_extra_is_kept_in_extra():
    """The ``extra`` attribute holds unknown wire keys; a key named "extra" is one of them
    (found by the fuzz test: dataclasses-json's from_dict reads it as the field)."""
    message = parse_server_message('{"serverContent": {"extra": [], "turnComplete": true}}')
    assert message.server_content.extra == {"extra": []}
    assert message.server_content.turn_complete is True


def test_null_means_default():
    message = parse_server_message(
        '{"sessionResumptionUpdate": {"resumable": null, "newHandle": null}}'
    )
    assert message.session_resumption_update.resumable is False
    assert message.session_resumption_update.new_handle is None
    assert parse_server_message('{"serverContent": null}').server_content is None


def test_decoded_objects_are_ordinary_dataclasses():
    message = parse_server_message(
        '{"toolCall": {"functionCalls": [{"id": "1", "name": "f", "args": {"a": [1]}}]}}'
    )
    call = message.tool_call.function_calls[0]
    assert isinstance(call, t.FunctionCall)
    assert repr(call) == (
        "FunctionCall(id='1', name='f', args={'a': [1]}, partial_args=None, will_continue=None)"
    )
    call.name = "g"  # mutable like any dataclass
    assert message.to_dict() == {
        "toolCall": {"functionCalls": [{"id": "1", "name": "g", "args": {"a": [1]}}]}
    }


# --- parse_server_message: invalid input ------------------------------------------------


def assert_protocol_error(raw):
    with pytest.raises(ProtocolError) as info:
        parse_server_message(raw)
    assert SECRET not in str(info.value)
    assert len(str(info.value)) < 200
    return info.value


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b"not json " + SECRET.encode(),
        b'{"serverContent": {"text": "' + SECRET.encode() + b'"',
        b"\xff\xfe\x00garbage",
        b"[1, 2]",
        b'"' + SECRET.encode() + b'"',
        b"null",
        b"42",
        b"[" * 100000 + b"]" * 100000,
        b'{"a":' * 100000 + b"1" + b"}" * 100000,
        b'{"promptTokenCount": ' + b"9" * 5000 + b"}",
    ],
)
def test_malformed_frames(raw):
    assert_protocol_error(raw)


@pytest.mark.parametrize(
    "wire, where",
    [
        ({"serverContent": "x"}, "serverContent"),
        ({"serverContent": []}, "serverContent"),
        ({"serverContent": {"modelTurn": {"parts": {}}}}, "serverContent.modelTurn.parts"),
        ({"serverContent": {"modelTurn": {"parts": ["x"]}}}, "serverContent.modelTurn.parts[0]"),
        (
            {"serverContent": {"modelTurn": {"parts": [{}, {"text": 5}]}}},
            "serverContent.modelTurn.parts[1].text",
        ),
        ({"serverContent": {"turnComplete": "yes"}}, "serverContent.turnComplete"),
        ({"serverContent": {"groundingMetadata": []}}, "serverContent.groundingMetadata"),
        ({"toolCall": {"functionCalls": [{"args": "x"}]}}, "toolCall.functionCalls[0].args"),
        ({"toolCallCancellation": {"ids": ["a", 1]}}, "toolCallCancellation.ids[1]"),
        ({"toolCallCancellation": {"ids": "a"}}, "toolCallCancellation.ids"),
        ({"goAway": {"timeLeft": "5 minutes"}}, "goAway.timeLeft"),
        ({"goAway": {"timeLeft": 50}}, "goAway.timeLeft"),
        ({"goAway": {"timeLeft": "99999999999999999999s"}}, "goAway.timeLeft"),
        (
            {"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "4x2"}},
            "sessionResumptionUpdate.lastConsumedClientMessageIndex",
        ),
        (
            {"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": True}},
            "sessionResumptionUpdate.lastConsumedClientMessageIndex",
        ),
        ({"sessionResumptionUpdate": {"resumable": "true"}}, "sessionResumptionUpdate.resumable"),
        ({"usageMetadata": {"promptTokenCount": 1.5}}, "usageMetadata.promptTokenCount"),
        (
            {"usageMetadata": {"candidatesTokensDetails": [{"tokenCount": {}}]}},
            "usageMetadata.candidatesTokensDetails[0].tokenCount",
        ),
        (
            {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "!!" + SECRET}}]}}},
            "serverContent.modelTurn.parts[0].inlineData.data",
        ),
        (
            {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AAAAA"}}]}}},
            "serverContent.modelTurn.parts[0].inlineData.data",
        ),
        (
            {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AAé="}}]}}},
            "serverContent.modelTurn.parts[0].inlineData.data",
        ),
        (
            {"serverContent": {"modelTurn": {"parts": [{"thoughtSignature": 12}]}}},
            "serverContent.modelTurn.parts[0].thoughtSignature",
        ),
        ({"voiceActivity": {"audioOffset": "-1s"}}, "voiceActivity.audioOffset"),
    ],
)
def test_wrong_types_name_the_field(wire, where):
    error = assert_protocol_error(json.dumps(wire).encode())
    assert where in str(error)


def test_non_bytes_input():
    for value in (None, 42, ["{}"]):
        assert_protocol_error(value)


def _mutate(rng, value, depth=0):
    """Return a copy of a JSON value with one random defect."""
    replacements = [
        None,
        True,
        0,
        -1,
        1.5,
        "",
        "x",
        "!!",
        "50",
        [],
        {},
        [1, "a"],
        {"x": None},
        "5m",
        2**70,
    ]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.55 or depth > 8:
            out[key] = rng.choice(replacements)
        else:
            out[key] = _mutate(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        out = list(value)
        out[index] = (
            _mutate(rng, value[index], depth + 1)
            if rng.random() < 0.5
            else rng.choice(replacements)
        )
        return out
    return rng.choice(replacements)


def _corpus():
    corpus = [raw for _, raw, _ in generated_payloads(60, seed=99)]
    if recordings_available():
        corpus += [raw for _, raw in server_payloads() if len(raw) < 2000]
    return corpus


def test_fuzzed_messages_raise_only_protocol_error():
    rng = random.Random(5150)
    corpus = _corpus()
    outcomes = {"ok": 0, "error": 0}
    for _ in range(600):
        raw = rng.choice(corpus)
        roll = rng.random()
        if roll < 0.6:
            mutated = json.dumps(_mutate(rng, json.loads(raw))).encode()
        elif roll < 0.8:
            mutated = raw[: rng.randrange(len(raw))]
        else:
            data = bytearray(raw)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            mutated = bytes(data)
        try:
            message = parse_server_message(mutated)
        except ProtocolError:
            outcomes["error"] += 1
        else:
            assert isinstance(message, t.LiveServerMessage)
            outcomes["ok"] += 1
    assert outcomes["ok"] > 50 and outcomes["error"] > 50


# --- encode ---


def test_encode_is_compact_utf8():
    assert (
        encode({"clientContent": {"turns": [], "x": "é中"}})
        == '{"clientContent":{"turns":[],"x":"é中"}}'
    )


# --- coerce_config ---


def test_coerce_none_and_instances():
    assert coerce_config(None) == t.LiveConfig()
    config = t.LiveConfig(
        temperature=0.2,
        speech_config={"voice_config": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
    )  # type: ignore[arg-type]
    coerced = coerce_config(config)
    assert coerced.speech_config == t.SpeechConfig(
        voice_config=t.VoiceConfig(prebuilt_voice_config=t.PrebuiltVoiceConfig(voice_name="Kore"))
    )
    assert coerced is not config


def test_coerce_snake_and_camel_case_nested():
    snake = {
        "response_modalities": ["AUDIO"],
        "speech_config": {
            "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}},
            "language_code": "en-US",
        },
        "realtime_input_config": {
            "automatic_activity_detection": {"disabled": True, "silence_duration_ms": 500}
        },
        "context_window_compression": {
            "trigger_tokens": 25600,
            "sliding_window": {"target_tokens": "12800"},
        },
        "tools": [
            {"function_declarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]},
            {"google_search": {}},
        ],
        "session_resumption": {},
        "input_audio_transcription": {},
    }
    camel = {
        "responseModalities": ["AUDIO"],
        "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
            "languageCode": "en-US",
        },
        "realtimeInputConfig": {
            "automaticActivityDetection": {"disabled": True, "silenceDurationMs": 500}
        },
        "contextWindowCompression": {
            "triggerTokens": "25600",
            "slidingWindow": {"targetTokens": 12800},
        },
        "tools": [
            {"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]},
            {"googleSearch": {}},
        ],
        "sessionResumption": {},
        "inputAudioTranscription": {},
    }
    assert coerce_config(snake) == coerce_config(camel)
    config = coerce_config(camel)
    assert config.context_window_compression.sliding_window.target_tokens == 12800
    assert config.tools[1].google_search == {}
    assert config.session_resumption == t.SessionResumptionConfig()


@pytest.mark.parametrize(
    "config, field",
    [
        ({"response_modality": ["TEXT"]}, "response_modality"),
        ({"speech_config": {"voice": "Kore"}}, "speech_config.voice"),
        ({"tools": [{"google_search": {}}, {"googleSearchh": {}}]}, "tools[1].googleSearchh"),
        ({"http_options": {}}, "http_options"),
    ],
)
def test_coerce_unknown_keys(config, field):
    with pytest.raises(InvalidConfig) as info:
        coerce_config(config)
    assert info.value.field == field
    assert field.split(".")[-1].split("]")[-1] in str(info.value)


@pytest.mark.parametrize(
    "config, field",
    [
        ({"response_modalities": "TEXT"}, "response_modalities"),
        ({"response_modalities": ["TEXT", 1]}, "response_modalities[1]"),
        ({"temperature": SECRET}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": "40"}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"enable_affective_dialog": "yes"}, "enable_affective_dialog"),
        ({"speech_config": "Kore"}, "speech_config"),
        (
            {"speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": 5}}}},
            "speech_config.voice_config.prebuilt_voice_config.voice_name",
        ),
        ({"tools": {"google_search": {}}}, "tools"),
        (
            {"tools": [{"function_declarations": [{"parameters": [SECRET]}]}]},
            "tools[0].function_declarations[0].parameters",
        ),
        (
            {"context_window_compression": {"trigger_tokens": "lots"}},
            "context_window_compression.trigger_tokens",
        ),
        ({"system_instruction": 5}, "system_instruction"),
        (
            {"avatar_config": {"customized_avatar": {"image_data": "!!not base64"}}},
            "avatar_config.customized_avatar.image_data",
        ),
        ({"tools": [{"google_search": {"x": object()}}]}, "tools[0].google_search.x"),
    ],
)
def test_coerce_wrong_types_name_the_field(config, field):
    with pytest.raises(InvalidConfig) as info:
        coerce_config(config)
    assert info.value.field == field
    message = str(info.value)
    assert message[0].islower()
    assert SECRET not in message
    assert isinstance(info.value, ValueError)


def test_coerce_rejects_non_mapping():
    with pytest.raises(InvalidConfig):
        coerce_config(["TEXT"])  # type: ignore[arg-type]


# --- build_setup ---


def test_build_setup_nests_generation_fields_and_omits_none():
    config = coerce_config(
        {
            "response_modalities": ["AUDIO"],
            "temperature": 0.7,
            "media_resolution": "MEDIA_RESOLUTION_LOW",
            "thinking_config": {"thinking_budget": 0},
            "enable_affective_dialog": True,
            "system_instruction": "You are a helpful assistant.",
            "proactivity": {"proactive_audio": True},
            "output_audio_transcription": {},
            "context_window_compression": {
                "trigger_tokens": 25600,
                "sliding_window": {"target_tokens": 12800},
            },
        }
    )
    setup = build_setup(
        "models/gemini-2.5-flash-native-audio-preview-12-2025", config, vertexai=False
    )
    assert setup == {
        "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "temperature": 0.7,
            "mediaResolution": "MEDIA_RESOLUTION_LOW",
            "thinkingConfig": {"thinkingBudget": 0},
            "enableAffectiveDialog": True,
        },
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a helpful assistant."}]},
        "contextWindowCompression": {
            "triggerTokens": 25600,
            "slidingWindow": {"targetTokens": 12800},
        },
        "outputAudioTranscription": {},
        "proactivity": {"proactiveAudio": True},
    }
    # The result is what the setup model encodes to, and decodes back to it.
    decoded = t.BidiGenerateContentSetup.from_dict(json.loads(encode(setup)))
    assert decoded.to_dict() == setup
    assert "sessionResumption" not in setup


def test_build_setup_minimal_and_resumption():
    assert build_setup("models/m", t.LiveConfig(), vertexai=False) == {"model": "models/m"}
    setup = build_setup(
        "models/m", t.LiveConfig(session_resumption=t.SessionResumptionConfig()), vertexai=False
    )
    assert setup == {"model": "models/m", "sessionResumption": {}}
    vertex = build_setup(
        "projects/p/locations/l/publishers/google/models/m",
        coerce_config(
            {
                "session_resumption": {"handle": "h", "transparent": True},
                "explicit_vad_signal": True,
            }
        ),
        vertexai=True,
    )
    assert vertex["sessionResumption"] == {"handle": "h", "transparent": True}
    assert vertex["explicitVadSignal"] is True
    # Vertex defaults to AUDIO like the official SDKs.
    assert vertex["generationConfig"] == {"responseModalities": ["AUDIO"]}


def test_build_setup_bytes_are_standard_base64():
    data = bytes(range(250, 256)) * 3
    config = coerce_config(
        {
            "speech_config": {
                "voice_config": {
                    "replicated_voice_config": {
                        "mime_type": "audio/wav",
                        "voice_sample_audio": data,
                    }
                }
            },
            "avatar_config": {
                "customized_avatar": {"image_mime_type": "image/png", "image_data": data}
            },
        }
    )
    setup = build_setup("models/m", config, vertexai=False)
    sample = setup["generationConfig"]["speechConfig"]["voiceConfig"]["replicatedVoiceConfig"][
        "voiceSampleAudio"
    ]
    assert sample == base64.b64encode(data).decode()
    assert "/" in sample or "+" in sample
    assert setup["avatarConfig"]["customizedAvatar"]["imageData"] == sample


def test_build_setup_system_instruction_forms():
    content = t.Content(role="user", parts=[t.Part(text="a"), t.Part(text="b")])
    for value in (content, content.to_dict(), t.Part(text="a")):
        setup = build_setup(
            "models/m", coerce_config({"system_instruction": value}), vertexai=False
        )
        assert setup["systemInstruction"]["role"] == "user"
        assert setup["systemInstruction"]["parts"][0] == {"text": "a"}


@pytest.mark.parametrize(
    "config, vertexai, field",
    [
        ({"response_modalities": ["TEXT", "AUDIO"]}, False, "response_modalities"),
        ({"response_modalities": ["TEXT", "AUDIO"]}, True, "response_modalities"),
        ({"session_resumption": {"transparent": True}}, False, "session_resumption.transparent"),
        ({"explicit_vad_signal": True}, False, "explicit_vad_signal"),
        ({"enable_enhanced_civic_answers": True}, True, "enable_enhanced_civic_answers"),
        (
            {"generation_config": {"enable_enhanced_civic_answers": True}},
            True,
            "enable_enhanced_civic_answers",
        ),
        (
            {"speech_config": {"voice_config": {"replicated_voice_config": {
                "voice_consent_signature": {"signature": "s"}}}}},
            True,
            "speech_config.voice_config.replicated_voice_config.voice_consent_signature",
        ),
        ({"tools": [{"google_search": {"exclude_domains": ["a"]}}]}, False,
         "tools[0].google_search.exclude_domains"),
        ({"tools": [{"googleSearch": {"blockingConfidence": "X"}}]}, False,
         "tools[0].google_search.blockingConfidence"),
        ({"tools": [{"google_maps": {"groundingTypes": {}}}]}, False,
         "tools[0].google_maps.groundingTypes"),
        ({"tools": [{"mcp_servers": [{"name": "m"}]}]}, True, "tools[0].mcp_servers[0].name"),
        (
            {"system_instruction": {"parts": [{"part_metadata": {"a": 1}}]}},
            True,
            "system_instruction.parts[0].part_metadata",
        ),
        (
            {"system_instruction": {"parts": [{"function_call": {"will_continue": True}}]}},
            False,
            "system_instruction.parts[0].function_call.will_continue",
        ),
        (
            {"safety_settings": [{"category": "c", "threshold": "t", "method": "SEVERITY"}]},
            False,
            "safety_settings[0].method",
        ),
        ({"tools": [{"retrieval": {}}]}, False, "tools[0].retrieval"),
        ({"tools": [{"file_search": {}}]}, True, "tools[0].file_search"),
        (
            {
                "speech_config": {
                    "voice_config": {"replicated_voice_config": {"consent_audio": b"x"}}
                }
            },
            True,
            "speech_config.voice_config.replicated_voice_config.consent_audio",
        ),
    ],
)
def test_build_setup_validation(config, vertexai, field):
    with pytest.raises(InvalidConfig) as info:
        build_setup("models/m", coerce_config(config), vertexai=vertexai)
    assert info.value.field == field
    assert str(info.value)[0].islower()


def test_build_setup_allowed_on_the_right_backend():
    build_setup(
        "models/m",
        coerce_config({"translation_config": {"target_language_code": "es"}}),
        vertexai=False,
    )
    build_setup("m", coerce_config({"session_resumption": {"transparent": True}}), vertexai=True)
    # Allowed since google-genai 3.x: translation and labels on Vertex, display names on
    # the Gemini API, multi-speaker voices on both.
    build_setup(
        "m",
        coerce_config({"translation_config": {"target_language_code": "es"}, "labels": {"a": "b"}}),
        vertexai=True,
    )
    build_setup(
        "m",
        coerce_config({"system_instruction": {"parts": [
            {"inline_data": {"mime_type": "image/png", "data": b"x", "display_name": "d"}},
            {"file_data": {"file_uri": "gs://x", "display_name": "d"}},
        ]}}),
        vertexai=False,
    )
    multi = {"speech_config": {"multi_speaker_voice_config": {"speaker_voice_configs": [
        {"speaker": "A", "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
    ]}}}
    for vertexai in (False, True):
        setup = build_setup("m", coerce_config(multi), vertexai=vertexai)
        assert setup["generationConfig"]["speechConfig"]["multiSpeakerVoiceConfig"] == {
            "speakerVoiceConfigs": [
                {"speaker": "A", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}
            ]
        }


@pytest.mark.parametrize("model", ["", "  ", None, 5])
def test_build_setup_model(model):
    with pytest.raises(InvalidConfig) as info:
        build_setup(model, t.LiveConfig(), vertexai=False)  # type: ignore[arg-type]
    assert info.value.field == "model"


# --- client_content ---


def test_client_content_forms():
    user = {"role": "user", "parts": [{"text": "hi"}]}
    assert client_content("hi") == {"clientContent": {"turns": [user], "turnComplete": True}}
    assert client_content(t.Content(role="user", parts=[t.Part(text="hi")])) == client_content("hi")
    assert client_content({"role": "user", "parts": [{"text": "hi"}]}) == client_content("hi")
    turns = [
        {"role": "user", "parts": [{"text": "What is the capital of France?"}]},
        {"role": "model", "parts": [{"text": "Paris"}]},
    ]
    assert client_content(turns, turn_complete=False) == {
        "clientContent": {"turns": turns, "turnComplete": False}
    }
    assert client_content() == {"clientContent": {"turnComplete": True}}
    inline = client_content(
        [{"parts": [{"inline_data": {"mime_type": "image/png", "data": b"\xfb\xff"}}]}]
    )
    assert inline["clientContent"]["turns"][0]["parts"][0] == {
        "inlineData": {"mimeType": "image/png", "data": "+/8="}
    }


@pytest.mark.parametrize(
    "turns, turn_complete, field",
    [
        (5, True, "turns[0]"),
        (["ok", 5], True, "turns[1]"),
        ([{"role": "user", "parts": "hi"}], True, "turns[0].parts"),
        ([{"rol": "user"}], True, "turns[0].rol"),
        ("hi", "yes", "turn_complete"),
    ],
)
def test_client_content_invalid(turns, turn_complete, field):
    with pytest.raises(InvalidConfig) as info:
        client_content(turns, turn_complete=turn_complete)
    assert info.value.field == field


# --- realtime_input ---


def test_realtime_input_fields():
    pcm = b"\x00\x00\xff\xff\x01\x00\xfe\xff"
    audio = {
        "realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AAD//wEA/v8="}}
    }
    assert realtime_input(audio=t.Blob(mime_type="audio/pcm;rate=16000", data=pcm)) == audio
    assert realtime_input(audio={"mime_type": "audio/pcm;rate=16000", "data": pcm}) == audio
    assert (
        realtime_input(audio={"mimeType": "audio/pcm;rate=16000", "data": "AAD__wEA_v8"}) == audio
    )
    assert realtime_input(audio=pcm) == audio
    jpeg = b"\xff\xd8\xff\xe0rest"
    video = realtime_input(video=t.Blob(mime_type="image/jpeg", data=jpeg))
    assert video == {
        "realtimeInput": {
            "video": {"mimeType": "image/jpeg", "data": base64.b64encode(jpeg).decode()}
        }
    }
    assert realtime_input(video=jpeg) == video
    assert realtime_input(text="Are you there?") == {"realtimeInput": {"text": "Are you there?"}}
    for start in (True, {}, t.ActivityStart()):
        assert realtime_input(activity_start=start) == {"realtimeInput": {"activityStart": {}}}
    for end in (True, {}, t.ActivityEnd()):
        assert realtime_input(activity_end=end) == {"realtimeInput": {"activityEnd": {}}}
    assert realtime_input(audio_stream_end=True) == {"realtimeInput": {"audioStreamEnd": True}}


def test_realtime_input_exactly_one_field():
    with pytest.raises(InvalidConfig) as info:
        realtime_input()
    assert info.value.field == "realtime_input"
    with pytest.raises(InvalidConfig) as info:
        realtime_input(text="a", audio_stream_end=True)
    assert "text" in str(info.value) and "audio_stream_end" in str(info.value)
    assert info.value.field == "text, audio_stream_end"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"audio": t.Blob(mime_type="image/png", data=b"x")}, "audio"),
        ({"audio": {"data": b"xx"}}, "audio"),
        ({"audio": {"mime_type": "audio/pcm"}}, "audio.data"),
        ({"audio": "AAAA"}, "audio"),
        ({"audio": {"mime_type": "audio/pcm", "data": b"xx", "bogus": 1}}, "audio.bogus"),
        ({"video": t.Blob(mime_type="audio/pcm", data=b"x")}, "video"),
        ({"video": b"not an image"}, "video"),
        ({"text": 5}, "text"),
        ({"activity_start": False}, "activity_start"),
        ({"activity_end": {"x": 1}}, "activity_end"),
        ({"audio_stream_end": "yes"}, "audio_stream_end"),
    ],
)
def test_realtime_input_invalid(kwargs, field):
    with pytest.raises(InvalidConfig) as info:
        realtime_input(**kwargs)
    assert info.value.field == field


def test_no_media_chunks_ever():
    for message in (
        realtime_input(audio=b"\x00\x00"),
        realtime_input(video=b"\x89PNG\r\n\x1a\nxx"),
    ):
        assert "mediaChunks" not in encode(message)


# --- audio_message ---


def test_audio_message_exact_text():
    pcm = b"\x00\x00\xff\xff\x01\x00\xfe\xff"
    text = audio_message(pcm)
    assert (
        text
        == '{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"AAD//wEA/v8="}}}'
    )
    assert json.loads(text) == realtime_input(audio=pcm)
    assert text == encode(realtime_input(audio=t.Blob(mime_type="audio/pcm;rate=16000", data=pcm)))
    assert audio_message(bytearray(pcm), 24000) == text.replace("16000", "24000")
    assert audio_message(memoryview(pcm)) == text
    assert audio_message(memoryview(pcm).cast("h")) == text


@pytest.mark.parametrize(
    "pcm, rate, field",
    [
        (b"\x00", 16000, "pcm"),
        ("AAAA", 16000, "pcm"),
        ([0, 0], 16000, "pcm"),
        (b"\x00\x00", 7999, "sample_rate"),
        (b"\x00\x00", 48001, "sample_rate"),
        (b"\x00\x00", 16000.0, "sample_rate"),
        (b"\x00\x00", True, "sample_rate"),
    ],
)
def test_audio_message_invalid(pcm, rate, field):
    with pytest.raises(InvalidConfig) as info:
        audio_message(pcm, rate)
    assert info.value.field == field


# --- tool_response ---


def test_tool_response_forms():
    expected = {
        "toolResponse": {
            "functionResponses": [
                {"id": "function-call-1", "name": "getStatus", "response": {"mood": "happy"}}
            ]
        }
    }
    response = t.FunctionResponse(
        id="function-call-1", name="getStatus", response={"mood": "happy"}
    )
    assert tool_response(response, vertexai=False) == expected
    assert tool_response([response], vertexai=False) == expected
    assert tool_response(response.to_dict(), vertexai=False) == expected
    assert (
        tool_response(
            {"id": "function-call-1", "name": "getStatus", "response": {"mood": "happy"}},
            vertexai=False,
        )
        == expected
    )
    non_blocking = tool_response(
        {"id": "1", "name": "f", "response": {}, "will_continue": True, "scheduling": "SILENT"},
        vertexai=False,
    )
    assert non_blocking["toolResponse"]["functionResponses"][0] == {
        "id": "1",
        "name": "f",
        "response": {},
        "willContinue": True,
        "scheduling": "SILENT",
    }


def test_tool_response_id_required_on_gemini_api():
    response = {"name": "f", "response": {"result": 1}}
    with pytest.raises(InvalidConfig) as info:
        tool_response([response], vertexai=False)
    assert info.value.field == "id"
    assert tool_response([response], vertexai=True) == {
        "toolResponse": {"functionResponses": [response]}
    }


@pytest.mark.parametrize(
    "value, field",
    [
        ([], "function_responses"),
        ("x", "function_responses[0]"),
        ({"id": "1", "response": "ok"}, "function_responses[0].response"),
        (
            {"id": "1", "response": {"when": datetime.datetime(2024, 1, 1)}},
            "function_responses[0].response.when",
        ),
        ({"id": "1", "respons": {}}, "function_responses[0].respons"),
    ],
)
def test_tool_response_invalid(value, field):
    with pytest.raises(InvalidConfig) as info:
        tool_response(value, vertexai=True)
    assert info.value.field == field


def test_builders_round_trip_through_client_models():
    messages = [
        client_content(["a", {"role": "model", "parts": [{"text": "b"}]}]),
        realtime_input(audio=b"\x01\x02"),
        realtime_input(activity_start=True),
        tool_response({"id": "1", "name": "f", "response": {"x": [1, 2]}}, vertexai=False),
        {
            "setup": build_setup(
                "models/m",
                coerce_config({"tools": [{"google_search": {}}], "temperature": 0.5}),
                vertexai=False,
            )
        },
    ]
    for message in messages:
        decoded = t.LiveClientMessage.from_dict(json.loads(encode(message)))
        assert decoded.to_dict() == message
    original = copy.deepcopy(messages)
    assert messages == original
