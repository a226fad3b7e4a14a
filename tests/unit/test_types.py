"""The dataclasses-json models: wire names, codecs, defaults and conveniences."""

from __future__ import annotations

import dataclasses
import datetime
import json
import random
import typing
import warnings

import pytest

from livesync import types as t
from livesync._schema import to_wire as _to_wire
from tests.unit.recordings import random_instance

MODELS = [
    obj
    for obj in vars(t).values()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and issubclass(obj, t._Wire)
]


def test_all_models_are_exported_and_have_defaults():
    assert len(MODELS) >= 50
    for cls in MODELS:
        assert cls.__name__ in t.__all__
        cls()  # every field has a default
        for field in dataclasses.fields(cls):
            assert field.default is not dataclasses.MISSING, (cls, field.name)


def test_annotations_evaluate():
    for cls in MODELS:
        typing.get_type_hints(cls)


def test_camel_case_and_none_omitted():
    part = t.Part(inline_data=t.Blob(mime_type="audio/pcm", data=b"\x00\x01"))
    assert part.to_dict() == {"inlineData": {"mimeType": "audio/pcm", "data": "AAE="}}
    assert t.Content().to_dict() == {}
    assert json.loads(t.Part(text="x").to_json()) == {"text": "x"}
    assert t.ActivityStart().to_dict() == {}


def test_bytes_standard_base64_out_both_alphabets_in():
    data = bytes(range(256))
    wire = t.Blob(data=data).to_dict()["data"]
    assert "+" in wire and "/" in wire and wire.endswith("=")
    urlsafe = wire.replace("+", "-").replace("/", "_").rstrip("=")
    assert t.Blob.from_dict({"data": urlsafe}).data == data
    assert t.Blob.from_dict({"data": wire}).data == data
    assert t.Part.from_dict({"thoughtSignature": "AAE"}).thought_signature == b"\x00\x01"


@pytest.mark.parametrize("bad", ["A", "!!!!", "AA=A", "é", "A===", "=AAA", 5])
def test_bad_base64_raises_value_error(bad):
    with pytest.raises(ValueError):
        t.decode_base64(bad)


@pytest.mark.parametrize(
    "text, value",
    [
        ("50s", datetime.timedelta(seconds=50)),
        ("9.5s", datetime.timedelta(seconds=9, microseconds=500000)),
        ("0.000001s", datetime.timedelta(microseconds=1)),
        ("0s", datetime.timedelta(0)),
        ("600.25s", datetime.timedelta(seconds=600, microseconds=250000)),
    ],
)
def test_duration_round_trip(text, value):
    assert t.decode_duration(text) == value
    assert t.encode_duration(value) == text
    assert t.GoAway.from_dict({"timeLeft": text}).time_left == value
    assert t.GoAway(time_left=value).to_dict() == {"timeLeft": text}


def test_duration_nanoseconds_truncate():
    assert t.decode_duration("1.123456789s") == datetime.timedelta(seconds=1, microseconds=123456)


@pytest.mark.parametrize(
    "bad", ["50", "5m", "-1s", "1.s", ".5s", "1.0000000001s", " 5s", "5s\n", "٥s", 5]
)
def test_bad_duration(bad):
    with pytest.raises(ValueError):
        t.decode_duration(bad)


def test_int64_strings_or_numbers():
    update = t.SessionResumptionUpdate.from_dict({"lastConsumedClientMessageIndex": "123456789012"})
    assert update.last_consumed_client_message_index == 123456789012
    assert (
        t.SessionResumptionUpdate.from_dict(
            {"lastConsumedClientMessageIndex": 42}
        ).last_consumed_client_message_index
        == 42
    )
    assert t.ContextWindowCompressionConfig(trigger_tokens=1000).to_dict() == {
        "triggerTokens": 1000
    }
    assert t.decode_int64("-5") == -5
    assert t.decode_int64(7.0) == 7
    for bad in ["1.5", "abc", "", True, 1.5, None, "1" * 30]:
        with pytest.raises(ValueError):
            t.decode_int64(bad)


def test_resumption_update_defaults():
    update = t.SessionResumptionUpdate.from_dict({})
    assert update.resumable is False
    assert update.new_handle is None
    assert update.last_consumed_client_message_index is None


def test_voice_activity_wire_names():
    activity = t.VoiceActivity.from_dict({"type": "ACTIVITY_START", "audioOffset": "1.5s"})
    assert activity.voice_activity_type == "ACTIVITY_START"
    assert activity.audio_offset == datetime.timedelta(seconds=1, microseconds=500000)
    assert activity.to_dict() == {"type": "ACTIVITY_START", "audioOffset": "1.5s"}


def test_usage_metadata_vertex_names():
    wire = {
        "candidatesTokenCount": "12",
        "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 12}],
    }
    usage = t.UsageMetadata.from_dict(wire)
    assert usage.response_token_count == 12
    assert usage.response_tokens_details == [t.ModalityTokenCount(modality="AUDIO", token_count=12)]
    nested = t.LiveServerMessage.from_dict({"usageMetadata": wire})
    assert nested.usage_metadata == usage
    assert nested.kind == "usage_metadata"


def test_unknown_enum_values_and_fields_are_kept_or_ignored():
    content = t.ServerContent.from_dict(
        {
            "turnCompleteReason": "BRAND_NEW_REASON",
            "futureField": {"x": 1},
            "interactionStatus": "X",
        }
    )
    assert content.turn_complete_reason == "BRAND_NEW_REASON"
    assert content.interaction_status == "X"


def test_message_conveniences():
    message = t.LiveServerMessage(
        server_content=t.ServerContent(
            model_turn=t.Content(
                parts=[
                    t.Part(text="thinking...", thought=True),
                    t.Part(text="Hello"),
                    t.Part(inline_data=t.Blob(mime_type="audio/pcm;rate=24000", data=b"\x01\x02")),
                    t.Part(text=", world"),
                    t.Part(inline_data=t.Blob(mime_type="audio/pcm;rate=24000", data=b"\x03\x04")),
                ]
            )
        )
    )
    assert message.text == "Hello, world"
    assert message.data == b"\x01\x02\x03\x04"
    assert message.kind == "server_content"
    empty = t.LiveServerMessage()
    assert empty.text is None and empty.data is None and empty.kind == "unknown"
    only_thought = t.LiveServerMessage(
        server_content=t.ServerContent(
            model_turn=t.Content(parts=[t.Part(text="hm", thought=True)])
        )
    )
    assert only_thought.text is None


@pytest.mark.parametrize(
    "wire, kind",
    [
        ({"setupComplete": {}}, "setup_complete"),
        ({"serverContent": {}}, "server_content"),
        ({"toolCall": {}}, "tool_call"),
        ({"toolCallCancellation": {"ids": ["a"]}}, "tool_call_cancellation"),
        ({"goAway": {"timeLeft": "50s"}}, "go_away"),
        ({"sessionResumptionUpdate": {}}, "session_resumption_update"),
        ({"voiceActivity": {}}, "voice_activity"),
        ({"voiceActivityDetectionSignal": {}}, "voice_activity_detection_signal"),
        ({"usageMetadata": {}}, "usage_metadata"),
        ({"serverContent": {}, "usageMetadata": {}}, "server_content"),
        ({}, "unknown"),
    ],
)
def test_kind(wire, kind):
    assert t.LiveServerMessage.from_dict(wire).kind == kind


def test_unknown_is_not_encoded_or_compared():
    a = t.LiveServerMessage(go_away=t.GoAway(), unknown={"x": 1})
    b = t.LiveServerMessage(go_away=t.GoAway())
    assert a == b
    assert a.to_dict() == {"goAway": {}}


def test_live_config_rejects_typos():
    with pytest.raises(TypeError):
        t.LiveConfig(response_modality=["TEXT"])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        t.Part(txt="x")  # type: ignore[call-arg]


def test_live_config_round_trip():
    config = t.LiveConfig(
        response_modalities=["AUDIO"],
        temperature=0.5,
        system_instruction="be brief",
        speech_config=t.SpeechConfig(
            voice_config=t.VoiceConfig(
                prebuilt_voice_config=t.PrebuiltVoiceConfig(voice_name="Kore")
            )
        ),
        context_window_compression=t.ContextWindowCompressionConfig(
            trigger_tokens=25600, sliding_window=t.SlidingWindow(target_tokens=12800)
        ),
    )
    wire = config.to_dict()
    assert wire["speechConfig"] == {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}
    assert wire["systemInstruction"] == "be brief"
    assert t.LiveConfig.from_dict(wire) == config


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_random_round_trips_and_compiled_encoder_matches_to_dict(cls):
    rng = random.Random(cls.__name__)
    for _ in range(30):
        obj = random_instance(rng, cls, presence=0.7)
        wire = obj.to_dict()
        assert _to_wire(obj) == wire
        assert type(obj).from_dict(json.loads(json.dumps(wire))) == obj


def test_schema_still_works():
    # types.py avoids `from __future__ import annotations` so schema() can validate.
    with warnings.catch_warnings():
        # marshmallow 3 deprecation notices, attributed to dataclasses_json.mm
        warnings.simplefilter("ignore")
        errors = t.Part.schema().validate({"text": 5})
    assert "text" in errors


# --- reprs hide secrets ---------------------------------------------------------------

HANDLE = "Cg1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk" * 4


def test_resumption_update_repr_shows_a_prefix_and_the_length_only():
    update = t.SessionResumptionUpdate(new_handle=HANDLE, resumable=True)
    assert repr(update) == (
        "SessionResumptionUpdate(new_handle='Cg1hYmNk\u2026(%d chars)', resumable=True, "
        "last_consumed_client_message_index=None)" % len(HANDLE)
    )
    assert str(update) == repr(update)
    assert HANDLE[:9] not in repr(update)


def test_secret_reprs_keep_values_equality_and_wire_form():
    update = t.SessionResumptionUpdate(new_handle=HANDLE, resumable=True)
    assert update.new_handle == HANDLE
    assert update.to_dict() == {"newHandle": HANDLE, "resumable": True}
    assert t.SessionResumptionUpdate.from_dict(update.to_dict()) == update
    assert update != t.SessionResumptionUpdate(new_handle=HANDLE + "x", resumable=True)
    config = t.SessionResumptionConfig(handle=HANDLE)
    assert config.to_dict() == {"handle": HANDLE}
    assert json.loads(config.to_json()) == {"handle": HANDLE}


@pytest.mark.parametrize(
    "obj",
    [
        t.SessionResumptionUpdate(new_handle=HANDLE),
        t.SessionResumptionConfig(handle=HANDLE, transparent=True),
        t.LiveServerMessage(session_resumption_update=t.SessionResumptionUpdate(new_handle=HANDLE)),
        t.LiveConfig(session_resumption=t.SessionResumptionConfig(handle=HANDLE)),
        t.LiveClientMessage(
            setup=t.BidiGenerateContentSetup(
                session_resumption=t.SessionResumptionConfig(handle=HANDLE)
            )
        ),
        t.SetupComplete(voice_consent_signature=t.VoiceConsentSignature(signature=HANDLE)),
    ],
    ids=lambda obj: type(obj).__name__,
)
def test_no_model_repr_shows_a_full_handle(obj):
    text = repr(obj)
    assert "(%d chars)" % len(HANDLE) in text
    assert all(HANDLE[i : i + 9] not in text for i in range(len(HANDLE) - 8))


@pytest.mark.parametrize("handle", ["a", "ab", "abcdefgh", "abcdefghijklmnop"])
def test_a_short_handle_is_never_shown_in_full(handle):
    text = repr(t.SessionResumptionConfig(handle=handle))
    assert "'%s'" % handle not in text and "(%d chars)" % len(handle) in text


def test_secret_fields_of_other_types_show_no_value():
    assert repr(t.SessionResumptionConfig(handle=None)) == (
        "SessionResumptionConfig(handle=None, transparent=None)"
    )
    assert "handle=''" in repr(t.SessionResumptionConfig(handle=""))
    leaked = t.SessionResumptionConfig(handle=b"secret-bytes")  # wrong type set by user code
    assert "secret" not in repr(leaked) and "<bytes>" in repr(leaked)


def test_mcp_server_headers_are_masked_in_reprs_only():
    servers = [{
        "name": "tools",
        "streamableHttpTransport": {
            "url": "https://mcp.example.com",
            "headers": {"Authorization": "Bearer mcp-secret-1"},
        },
        "apiKey": "mcp-secret-2",
    }]
    tool = t.Tool(mcp_servers=servers)
    text = repr(t.LiveConfig(tools=[tool]))
    assert "mcp-secret" not in text
    assert "'Authorization': '[secure]'" in text and "https://mcp.example.com" in text
    assert tool.to_dict()["mcpServers"] == servers
    assert servers[0]["apiKey"] == "mcp-secret-2"  # the user's value is not touched


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_every_repr_names_the_class_and_its_fields(cls):
    rng = random.Random("repr" + cls.__name__)
    obj = random_instance(rng, cls, presence=0.7)
    text = repr(obj)
    assert text.startswith(cls.__name__ + "(")
    for field in dataclasses.fields(cls):
        if field.repr:
            assert field.name + "=" in text
