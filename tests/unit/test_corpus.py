"""The decoder and the message builders against livesync's own corpus (``tests/corpus``).

It covers every server message kind and quirk of the recorded real sessions and
the 2026 shapes, so the decoder is tested on any clone; ``test_recordings.py``
stays as the extra check against the real traffic when it is present.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import re
from typing import Any, List

import pytest

import livesync
from livesync._messages import (
    audio_message,
    build_setup,
    client_content,
    realtime_input,
    tool_response,
)
from livesync.exceptions import InvalidConfig
from livesync.types import Blob, LiveClientMessage, LiveServerMessage, decode_duration
from tests.corpus import CLIENT_SHAPES, SERVER_SHAPES, client_shape, server_shape
from tests.corpus.shapes import ORIGINS, PCM_C

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def resolve(obj: Any, path: str) -> Any:
    """Follow ``a.b[0].c`` through attributes, dict keys and list indices."""
    for name, index in _STEP.findall(path):
        if index:
            obj = obj[int(index)]
        elif isinstance(obj, dict):
            obj = obj[name]
        elif dataclasses.is_dataclass(obj) and name not in {f.name for f in
                                                            dataclasses.fields(obj)} \
                and not hasattr(type(obj), name):
            raise AttributeError("%s has no field %r" % (type(obj).__name__, name))
        else:
            obj = getattr(obj, name)
    return obj


def same(actual: Any, expected: Any) -> bool:
    """Equality, with a Duration string accepted for an expected timedelta."""
    if isinstance(expected, datetime.timedelta) and isinstance(actual, str):
        return decode_duration(actual) == expected
    return type(actual) is type(expected) and actual == expected or (
        expected is None and actual is None)


def _ids(shapes: Any) -> List[str]:
    return [shape.name for shape in shapes]


def test_corpus_is_well_formed():
    """Names are unique, origins known, every raw frame is one JSON object."""
    assert len({s.name for s in SERVER_SHAPES}) == len(SERVER_SHAPES)
    assert len({s.name for s in CLIENT_SHAPES}) == len(CLIENT_SHAPES)
    for shape in SERVER_SHAPES:
        assert shape.origin in ORIGINS, shape.name
        assert isinstance(shape.wire, dict), shape.name
    for shape in CLIENT_SHAPES:
        assert len(shape.message) == 1, shape.name
        assert shape.backend in ("gemini", "vertex", "any"), shape.name
        assert shape.camel == (shape.canonical is None), shape.name


def test_corpus_covers_every_server_kind():
    """Every oneof case, usage alone and an unknown message appear in the corpus."""
    kinds = {shape.kind for shape in SERVER_SHAPES}
    expected = {f.name for f in dataclasses.fields(LiveServerMessage)
                if f.name not in ("unknown", "extra")}
    assert expected | {"unknown"} <= kinds


def test_corpus_covers_the_recorded_quirks():
    """The quirks seen in real traffic each have a shape."""
    raws = [shape.raw for shape in SERVER_SHAPES]
    assert any('"sessionId"' in raw for raw in raws)
    assert any('"candidatesTokenCount"' in raw for raw in raws)
    assert any('"lastConsumedClientMessageIndex": "' in raw for raw in raws)
    assert any('"timeLeft": "9.5s"' in raw for raw in raws)
    assert any("\n  " in raw for raw in raws) and any("\n" not in raw for raw in raws)
    b64 = [part["inlineData"]["data"] for shape in SERVER_SHAPES
           for part in ((shape.wire.get("serverContent") or {}).get("modelTurn") or {})
           .get("parts", []) if "inlineData" in part]
    assert any("+" in data or "/" in data for data in b64)
    assert any("-" in data or "_" in data for data in b64)


@pytest.mark.parametrize("shape", SERVER_SHAPES, ids=_ids(SERVER_SHAPES))
def test_server_shape_decodes(shape):
    """parse_server_message decodes the shape like from_dict, with the expected kind."""
    message = livesync.parse_server_message(shape.raw)
    assert message == LiveServerMessage.from_dict(json.loads(shape.raw))
    assert message.kind == shape.kind
    assert (message.unknown or None) == (dict(shape.unknown) if shape.unknown else None)
    # The server sends binary frames: bytes, bytearray and memoryview decode the same.
    data = shape.raw.encode("utf-8")
    for frame in (data, bytearray(data), memoryview(data)):
        assert livesync.parse_server_message(frame) == message
    for path, expected in shape.expect.items():
        actual = resolve(message, path)
        assert same(actual, expected), "%s: %s = %r, expected %r" % (
            shape.name, path, actual, expected)


@pytest.mark.parametrize("shape", SERVER_SHAPES, ids=_ids(SERVER_SHAPES))
def test_server_shape_survives_reencoding(shape):
    """to_dict() of a decoded shape decodes back to an equal message."""
    message = livesync.parse_server_message(shape.raw)
    again = livesync.parse_server_message(json.dumps(message.to_dict()))
    assert again == message


def test_turn_text_joins_across_messages():
    """A streamed text reply joins piece by piece, as in the recorded sessions."""
    pieces = [server_shape("text_part_gemini"), server_shape("text_part_vertex_role")]
    text = "".join(livesync.parse_server_message(p.raw).text for p in pieces)
    assert text == "Sure, I'll help.\n"


def test_audio_alphabets_decode_to_the_same_bytes():
    """Standard and URL-safe base64 of the same audio give the same bytes."""
    standard = base64.b64encode(PCM_C).decode()
    urlsafe = base64.urlsafe_b64encode(PCM_C).decode()
    assert standard != urlsafe
    frames = [json.dumps({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm", "data": data}}]}}}) for data in (standard,
                                                                               urlsafe)]
    assert [livesync.parse_server_message(f).data for f in frames] == [PCM_C, PCM_C]


def test_handles_are_not_shown_in_reprs():
    """A decoded resumption handle is a bearer capability: its repr hides it."""
    shape = server_shape("resumption_update_handle")
    message = livesync.parse_server_message(shape.raw)
    handle = message.session_resumption_update.new_handle
    assert handle not in repr(message)


def test_malformed_values_raise_protocol_error():
    """Wrong types in known fields are a ProtocolError naming the field, not a crash."""
    bad = [
        {"goAway": {"timeLeft": "soon"}},
        {"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "4x"}},
        {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "a!b"}}]}}},
        {"usageMetadata": {"totalTokenCount": 1.5}},
    ]
    for wire in bad:
        with pytest.raises(livesync.ProtocolError):
            livesync.parse_server_message(json.dumps(wire))


# --- client shapes --------------------------------------------------------------------------


def _camelize(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): _camelize(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_camelize(item) for item in value]
    return value


@pytest.mark.parametrize("shape", [s for s in CLIENT_SHAPES if not s.camel],
                         ids=_ids(s for s in CLIENT_SHAPES if not s.camel))
def test_sdk_snake_case_shape_matches_its_camel_twin(shape):
    """The snake_case forms the Python SDK sends mean the same as the documented form."""
    assert _camelize(shape.message) == client_shape(shape.canonical).message


_CLIENT_KEYS = {_camelize({f.name: None}).popitem()[0]
                for f in dataclasses.fields(LiveClientMessage) if f.name != "extra"}
_MODELLED = [s for s in CLIENT_SHAPES if s.camel and not s.deprecated and s.key in _CLIENT_KEYS]


@pytest.mark.parametrize("shape", _MODELLED, ids=_ids(_MODELLED))
def test_client_shape_round_trips_through_the_types(shape):
    """Every documented client shape livesync models survives from_dict/to_dict."""
    wire = json.loads(json.dumps(shape.message))
    if shape.name == "setup_int64_strings":  # livesync writes int64 as numbers
        compression = wire["setup"]["contextWindowCompression"]
        compression["triggerTokens"] = 25600
        compression["slidingWindow"]["targetTokens"] = 12800
    if shape.name == "realtime_audio_urlsafe":  # livesync writes the standard alphabet
        wire = client_shape("realtime_audio").message
    assert LiveClientMessage.from_dict(shape.message).to_dict() == wire


@pytest.mark.parametrize("name", ["context_update", "context_update_clear_tools",
                                  "context_update_instruction"])
def test_context_update_round_trips_through_the_types(name):
    """contextUpdate is modelled by LiveClientMessage."""
    message = client_shape(name).message
    assert LiveClientMessage.from_dict(message).to_dict() == message


def test_builders_reproduce_setup_shapes():
    """build_setup gives the documented setup bodies."""
    gemini = "models/gemini-live-2.5-flash-preview"
    assert build_setup(gemini, None, vertexai=False) == client_shape("setup_minimal").message[
        "setup"]
    config = {"response_modalities": ["TEXT"],
              "realtime_input_config": {"automatic_activity_detection": {"disabled": True}}}
    assert build_setup(gemini, config, vertexai=False) == client_shape(
        "setup_text_manual_vad").message["setup"]
    tools = client_shape("setup_tools").message["setup"]["tools"]
    assert build_setup(gemini, {"tools": tools}, vertexai=False) == client_shape(
        "setup_tools").message["setup"]
    vertex = client_shape("setup_vertex_transcription").message["setup"]
    # Vertex: responseModalities defaults to AUDIO, as the official SDKs send it.
    assert build_setup(vertex["model"], {"output_audio_transcription": {}},
                       vertexai=True) == vertex
    full = client_shape("setup_audio_full").message["setup"]
    flat = {key: value for key, value in full.items() if key not in ("model",
                                                                     "generationConfig")}
    flat.update(full["generationConfig"])
    assert build_setup(full["model"], flat, vertexai=False) == full
    resume = client_shape("setup_resume").message["setup"]
    assert build_setup(gemini, {"session_resumption": resume["sessionResumption"]},
                       vertexai=False) == resume
    transparent = client_shape("setup_vertex_transparent").message["setup"]
    assert build_setup(transparent["model"],
                       {"session_resumption": transparent["sessionResumption"]},
                       vertexai=True) == transparent
    with pytest.raises(InvalidConfig):
        build_setup(gemini, {"session_resumption": transparent["sessionResumption"]},
                    vertexai=False)


def test_builders_reproduce_client_content_and_realtime_shapes():
    """client_content and realtime_input give the documented messages, one field each."""
    assert client_content("Hello there") == client_shape("client_content_turn").message
    history = client_shape("client_content_history").message["clientContent"]
    assert client_content(history["turns"], turn_complete=False) == client_shape(
        "client_content_history").message
    assert client_content() == client_shape("client_content_turn_complete_only").message
    assert realtime_input(text="Are you there?") == client_shape("realtime_text").message
    assert realtime_input(activity_start=True) == client_shape("realtime_activity_start").message
    assert realtime_input(activity_end={}) == client_shape("realtime_activity_end").message
    assert realtime_input(audio_stream_end=True) == client_shape(
        "realtime_audio_stream_end").message
    audio = client_shape("realtime_audio").message
    assert realtime_input(audio=PCM_C) == audio
    assert realtime_input(audio=Blob(mime_type="audio/pcm;rate=16000", data=PCM_C)) == audio
    assert json.loads(audio_message(PCM_C)) == audio
    video = client_shape("realtime_video").message
    assert realtime_input(video=video["realtimeInput"]["video"]) == video
    # URL-safe input is re-encoded in the standard alphabet.
    urlsafe = client_shape("realtime_audio_urlsafe").message["realtimeInput"]["audio"]
    assert realtime_input(audio=urlsafe) == audio
    with pytest.raises(InvalidConfig):
        realtime_input(text="a", audio_stream_end=True)


def test_media_chunks_are_never_emitted():
    """A deprecated mediaChunks blob is sent as audio by livesync."""
    chunk = client_shape("realtime_media_chunks").message["realtimeInput"]["mediaChunks"][0]
    built = realtime_input(audio=chunk)
    assert built == client_shape("realtime_audio").message
    assert "mediaChunks" not in built["realtimeInput"]


def test_builders_reproduce_tool_responses():
    """tool_response needs the call id on the Gemini API only."""
    shape = client_shape("tool_response").message
    assert tool_response(shape["toolResponse"]["functionResponses"], vertexai=False) == shape
    non_blocking = client_shape("tool_response_non_blocking").message
    assert tool_response(non_blocking["toolResponse"]["functionResponses"],
                         vertexai=False) == non_blocking
    without_id = client_shape("tool_response_without_id").message
    responses = without_id["toolResponse"]["functionResponses"]
    assert tool_response(responses, vertexai=True) == without_id
    with pytest.raises(InvalidConfig) as info:
        tool_response(responses, vertexai=False)
    assert info.value.field == "id"
