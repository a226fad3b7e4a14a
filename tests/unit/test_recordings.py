"""The decoder against real recorded Live API traffic, and against generated messages.

The central claim: the compiled decoder (``parse_server_message``) returns the
same objects as dataclasses-json's ``LiveServerMessage.from_dict`` on every
recorded server message and on a few hundred generated ones covering every
field.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest

from livesync._decode import parse_server_message
from livesync._messages import (
    audio_message,
    build_setup,
    client_content,
    realtime_input,
    tool_response,
)
from livesync.exceptions import InvalidConfig
from livesync.types import Blob, LiveServerMessage
from tests.unit.recordings import (
    EXPECTED_FILES,
    all_model_fields,
    fields_present,
    generated_payloads,
    load_recordings,
    require_recordings,
    server_payloads,
)


@pytest.fixture(scope="module")
def recordings():
    return load_recordings(require_recordings())


def server_messages(recordings, name):
    return [parse_server_message(f.payload) for f in recordings[name] if f.direction == "server"]


def client_frames(recordings, name):
    return [f.json() for f in recordings[name] if f.direction == "client"]


def test_all_recordings_parse(recordings):
    assert len(recordings) == EXPECTED_FILES
    for name, frames in recordings.items():
        assert frames, name
        for frame in frames:
            assert isinstance(frame.json(), dict), name
        # Every session starts with the client's setup and the server's setupComplete.
        assert "setup" in frames[0].json(), name
        assert frames[1].direction == "server", name
        assert parse_server_message(frames[1].payload).kind == "setup_complete", name


def test_every_server_frame_decodes_like_from_dict(recordings):
    count = 0
    for name, frames in recordings.items():
        for frame in frames:
            if frame.direction != "server":
                continue
            fast = parse_server_message(frame.payload)
            slow = LiveServerMessage.from_dict(json.loads(frame.payload))
            assert fast == slow, name
            assert fast.unknown is None, name
            assert fast.kind != "unknown", name
            # str input decodes the same as bytes.
            assert parse_server_message(frame.payload.decode("utf-8")) == fast
            count += 1
    assert count == len(server_payloads())
    assert count >= 40


def test_text_reply(recordings):
    messages = server_messages(recordings, "live_ML_Dev_should_reply_to_realtime_text_input")
    assert [m.kind for m in messages] == ["setup_complete", "server_content", "server_content"]
    assert messages[0].setup_complete.session_id is None  # Gemini API: {}
    assert "".join(m.text for m in messages[1:]) == "Yes, I'm here! How can I help you today?"
    assert messages[1].server_content.model_turn.role is None  # Gemini API omits the role
    assert messages[1].data is None


def test_vertex_session_id_and_audio(recordings):
    messages = server_messages(recordings, "live_Vertex_should_send_text_in_async_session")
    assert messages[0].setup_complete.session_id == "bb8e976e-1bb9-465a-8f11-c6d37248a698"
    raw_frames = [f for f in recordings["live_Vertex_should_send_text_in_async_session"]]
    for message, frame in zip(messages[1:], [f for f in raw_frames if f.direction == "server"][1:]):
        blob = message.server_content.model_turn.parts[0].inline_data
        wire = frame.json()["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
        assert blob.mime_type == "audio/pcm"
        assert blob.data == base64.b64decode(wire["data"])
        assert len(blob.data) == len(base64.b64decode(wire["data"])) > 0
        assert message.data == blob.data
        assert message.text is None
        assert message.server_content.model_turn.role == "model"
    # Recorded audio uses the standard alphabet ("+" and "/").
    data = raw_frames[-1].json()["serverContent"]["modelTurn"]["parts"][0]["inlineData"]["data"]
    assert "/" in data or "+" in data


def test_transcriptions(recordings):
    gemini = server_messages(
        recordings,
        "live_ML_Dev_should_receive_transcription_in_async_session_with_transcription_enabled",
    )
    texts = [m.server_content.output_transcription.text for m in gemini[1:]]
    assert texts[0] == "We"
    assert texts[1].startswith(" could talk about anything you like.")
    vertex = server_messages(
        recordings,
        "live_Vertex_should_receive_transcription_in_async_session_with_transcription_enabled",
    )
    # Vertex sends an empty outputTranscription first.
    assert vertex[1].server_content.output_transcription.text is None
    assert vertex[2].server_content.output_transcription.text == "We"


def test_usage_metadata(recordings):
    for name, response in (
        ("live_ML_Dev_should_send_text_in_async_session", 38),
        ("live_ML_Dev_should_send_content_dict_in_async_session", 31),
    ):
        messages = server_messages(recordings, name)
        assert messages[1].server_content.generation_complete is True
        last = messages[-1]
        # usageMetadata rides beside serverContent.turnComplete.
        assert last.kind == "server_content"
        assert last.server_content.turn_complete is True
        usage = last.usage_metadata
        assert usage.prompt_token_count == 515
        assert usage.response_token_count == response
        assert usage.total_token_count == 515 + response
        assert usage.prompt_tokens_details[0].modality == "TEXT"
        assert usage.prompt_tokens_details[0].token_count == 515
        assert usage.response_tokens_details[0].token_count == response


def test_usage_metadata_vertex_names(recordings):
    frames = recordings["live_ML_Dev_should_send_text_in_async_session"]
    wire = frames[-1].json()
    usage = wire["usageMetadata"]
    usage["candidatesTokenCount"] = usage.pop("responseTokenCount")
    usage["candidatesTokensDetails"] = usage.pop("responseTokensDetails")
    usage["trafficType"] = "ON_DEMAND"
    raw = json.dumps(wire, indent=2)
    message = parse_server_message(raw)
    assert message.usage_metadata.response_token_count == 38
    assert message.usage_metadata.response_tokens_details[0].token_count == 38
    assert message.usage_metadata.traffic_type == "ON_DEMAND"
    assert message == LiveServerMessage.from_dict(json.loads(raw))
    assert message.usage_metadata.to_dict()["responseTokenCount"] == 38


def test_tool_call(recordings):
    messages = server_messages(recordings, "live_ML_Dev_should_send_tool_response")
    code = messages[1].server_content.model_turn.parts[0].executable_code
    assert code.language == "PYTHON"
    assert "get_current_weather" in code.code
    call = messages[2].tool_call.function_calls[0]
    assert call.id == "function-call-5831923424298605773"
    assert call.name == "get_current_weather"
    assert call.args == {"location": "Redmond, WA"}
    vertex = server_messages(recordings, "live_Vertex_should_send_tool_response")
    assert vertex[1].tool_call.function_calls[0].id == "8acdafcd-9c55-44be-84da-da3d2612f9d1"
    assert vertex[2].server_content.generation_complete is True


def test_error_recordings(recordings):
    # The Gemini API "invalid input" session holds only setup and setupComplete:
    # the recording ends there (the error was raised client-side by the SDK).
    frames = recordings["live_ML_Dev_should_return_error_for_invalid_input_in_async_session"]
    assert [f.direction for f in frames] == ["client", "server"]
    assert frames[0].json() == {"setup": {"model": "models/gemini-live-2.5-flash-preview"}}
    assert parse_server_message(frames[1].payload) == LiveServerMessage.from_dict(
        {"setupComplete": {}}
    )
    # On Vertex a toolResponse without an id was accepted and the model replied
    # with audio. livesync refuses that message on the Gemini API only.
    frames = recordings["live_Vertex_should_return_error_for_invalid_input_in_async_session"]
    sent = frames[2].json()
    assert sent == {
        "toolResponse": {"functionResponses": [{"name": "name", "response": {"response": {}}}]}
    }
    responses = sent["toolResponse"]["functionResponses"]
    assert tool_response(responses, vertexai=True) == sent
    with pytest.raises(InvalidConfig) as info:
        tool_response(responses, vertexai=False)
    assert info.value.field == "id"
    reply = parse_server_message(frames[3].payload)
    assert reply.server_content.model_turn.parts[0].inline_data.mime_type == "audio/pcm"


def test_builders_reproduce_recorded_client_frames(recordings):
    gemini_model = "models/gemini-live-2.5-flash-preview"
    sent = client_frames(recordings, "live_ML_Dev_should_reply_to_realtime_text_input")
    assert {
        "setup": build_setup(gemini_model, {"response_modalities": ["TEXT"]}, vertexai=False)
    } == sent[0]
    assert realtime_input(text="Are you there Gemini?") == sent[1]

    sent = client_frames(recordings, "live_ML_Dev_handle_activity_start_and_end")
    config = {
        "responseModalities": ["TEXT"],
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}},
    }
    assert {"setup": build_setup(gemini_model, config, vertexai=False)} == sent[0]
    assert realtime_input(activity_start=True) == sent[1]
    audio = sent[2]["realtimeInput"]["audio"]
    pcm = base64.b64decode(audio["data"])
    assert realtime_input(audio=Blob(mime_type=audio["mimeType"], data=pcm)) == sent[2]
    assert realtime_input(audio=pcm) == sent[2]
    assert json.loads(audio_message(pcm, 16000)) == sent[2]
    assert realtime_input(activity_end={}) == sent[3]

    sent = client_frames(recordings, "live_ML_Dev_should_send_text_in_async_session")
    assert {"setup": build_setup(gemini_model, None, vertexai=False)} == sent[0]
    assert client_content("Hello what should we talk about?") == sent[1]

    sent = client_frames(recordings, "live_ML_Dev_should_send_tool_response")
    tools = sent[0]["setup"]["tools"]
    assert {"setup": build_setup(gemini_model, {"tools": tools}, vertexai=False)} == sent[0]
    assert (
        client_content(
            [{"role": "user", "parts": [{"text": "what is the weather in Redmond Washington"}]}]
        )
        == sent[1]
    )

    sent = client_frames(
        recordings, "live_ML_Dev_should_send_tool_response_with_function_responses"
    )
    response = {"id": "function-call-1", "name": "getStatus", "response": {"mood": "happy"}}
    assert tool_response([response], vertexai=False) == sent[1]

    sent = client_frames(
        recordings,
        "live_Vertex_should_receive_transcription_in_async_session_with_transcription_enabled",
    )
    model = sent[0]["setup"]["model"]
    # Vertex: responseModalities defaults to AUDIO, as the official SDKs send it.
    built = build_setup(model, {"output_audio_transcription": {}}, vertexai=True)
    assert {"setup": built} == sent[0]


def test_recorded_media_chunks_are_never_emitted(recordings):
    # Two recordings use the deprecated mediaChunks; livesync sends audio instead.
    frames = client_frames(recordings, "live_ML_Dev_should_respond_to_realtime_media-audio_input")
    chunk = frames[1]["realtimeInput"]["mediaChunks"][0]
    built = realtime_input(audio=chunk)
    assert "mediaChunks" not in built["realtimeInput"]
    assert built["realtimeInput"]["audio"] == chunk


@pytest.fixture(scope="module")
def generated():
    return generated_payloads(400, seed=20240611)


def test_generated_messages_decode_like_from_dict(generated):
    for message, raw, unknown in generated:
        fast = parse_server_message(raw)
        slow = LiveServerMessage.from_dict(json.loads(raw))
        assert fast == slow
        assert fast == message  # and both equal the message that was encoded
        assert (fast.unknown or {}) == unknown
        assert parse_server_message(raw.decode("utf-8")) == fast


def test_generated_messages_cover_every_field(generated):
    seen = set()
    for message, _, _ in generated:
        fields_present(message, seen)
    missing = all_model_fields() - seen
    assert not missing


def test_generated_messages_include_server_quirks(generated):
    raws = b"".join(raw for _, raw, _ in generated)
    assert b"candidatesTokenCount" in raws
    assert b"someNewField" in raws
    assert any(unknown for _, _, unknown in generated)
    durations = [m.go_away.time_left for m, _, _ in generated if m.go_away and m.go_away.time_left]
    assert any(d.microseconds for d in durations)
    assert all(isinstance(d, datetime.timedelta) for d in durations)


def test_missing_recordings_skip_locally_but_fail_on_ci(monkeypatch, tmp_path):
    import importlib

    helper = importlib.import_module(require_recordings.__module__)
    monkeypatch.setattr(helper, "RECORDINGS_DIR", tmp_path / "absent")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_recordings()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_recordings()
