"""The setup handshake and its validation (docs/protocol.md §3)."""

from __future__ import annotations

from typing import Callable

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient

Connect = Callable[..., WsClient]


def test_setup_complete_is_empty_on_gemini(emu: Emulator, connect: Connect) -> None:
    """setupComplete is {} on the Gemini API (defaults omitted)."""
    assert connect(emu).setup() == {"setupComplete": {}}


def test_setup_must_come_first(emu: Emulator, connect: Connect) -> None:
    """A message before setup closes 1007 with a clear reason."""
    client = connect(emu)
    client.text("hello")
    code, reason = client.closed()
    assert code == 1007 and "first message must be a setup" in reason


def test_second_setup_is_rejected(emu: Emulator, connect: Connect) -> None:
    """A second setup on the same connection closes 1007."""
    client = connect(emu)
    client.setup()
    client.send({"setup": {"model": "models/gemini-live-2.5-flash"}})
    code, reason = client.closed()
    assert code == 1007 and "only be sent once" in reason


def test_unknown_model_reason_names_the_api_version(emu: Emulator, connect: Connect) -> None:
    """An unknown model closes 1008 with the real reason and the path's API version."""
    client = connect(emu, emu.url(version="v1alpha"))
    client.send({"setup": {"model": "models/nope"}})
    assert client.closed() == (
        1008, "models/nope is not found for API version v1alpha, or is not supported for "
        "bidiGenerateContent")


def test_model_without_prefix_is_accepted(emu: Emulator, connect: Connect) -> None:
    """The model name may omit models/."""
    connect(emu).setup(model="gemini-3.1-flash-live-preview")
    assert emu.sessions[emu.connections[0].session_id or ""].model == (
        "gemini-3.1-flash-live-preview")


def test_two_modalities_close_with_cut_reason(emu: Emulator, connect: Connect) -> None:
    """Two responseModalities close 1007; the reason is the real one cut to 123 bytes."""
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-live-2.5-flash",
                           "generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}}})
    code, reason = client.closed()
    assert code == 1007
    assert reason == ("At most one response modality can be specified in the setup request. "
                      "To enable simultaneous transcription and audio output,")
    assert len(reason.encode()) == 123


def test_native_audio_model_rejects_text(emu: Emulator, connect: Connect) -> None:
    """TEXT on a native-audio model closes 1007 "Cannot extract voices..."."""
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
                           "generationConfig": TEXT_CONFIG}})
    assert client.closed() == (1007, "Cannot extract voices from a non-audio request.")


def test_media_chunks_are_rejected_by_3x_models(emu: Emulator, connect: Connect) -> None:
    """realtimeInput.mediaChunks on a 3.x model closes 1007 with the deprecation reason."""
    client = connect(emu)
    client.setup(model="models/gemini-3.1-flash-live-preview")
    client.send({"realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm", "data": ""}]}})
    assert client.closed() == (
        1007, "realtime_input.media_chunks is deprecated. Use audio, video, or text instead.")


def test_malformed_json_closes_1007(emu: Emulator, connect: Connect) -> None:
    """A frame that is not JSON closes 1007 "Invalid JSON payload received."."""
    client = connect(emu)
    client.setup()
    client.ws.send("{not json")
    code, reason = client.closed()
    assert code == 1007 and reason.startswith("Invalid JSON payload received.")


def test_unknown_top_level_field_closes_1007(emu: Emulator, connect: Connect) -> None:
    """An unknown message type closes 1007 naming the field."""
    client = connect(emu)
    client.setup()
    client.send({"bogus": {}})
    code, reason = client.closed()
    assert code == 1007 and '"bogus"' in reason


def test_snake_case_keys_are_accepted(emu: Emulator, connect: Connect) -> None:
    """snake_case keys (as the Python SDK sends) work like camelCase."""
    client = connect(emu)
    client.setup(generation_config={"response_modalities": ["TEXT"]})
    client.send({"client_content": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}],
                                    "turn_complete": True}})
    assert client.turn()[-1]["serverContent"]["turnComplete"] is True
    assert [m.kind for m in emu.connections[0].messages] == ["setup", "clientContent"]


def test_transparent_is_rejected_on_gemini_api(emu: Emulator, connect: Connect) -> None:
    """sessionResumption.transparent on the Gemini API closes 1007."""
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-live-2.5-flash",
                           "sessionResumption": {"transparent": True}}})
    assert client.closed() == (1007, "Request contains an invalid argument.")


def test_stall_next_setup_never_completes(emu: Emulator, connect: Connect) -> None:
    """stall_next_setup(): setup is recorded but setupComplete never comes."""
    emu.stall_next_setup()
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-live-2.5-flash"}})
    emu.wait_for(lambda: emu.connections and emu.connections[0].stalled)
    assert emu.connections[0].setup == {"model": "models/gemini-live-2.5-flash"}
    client.ws.settimeout(0.2)
    try:
        client.ws.recv_data(control_frame=True)
        raise AssertionError("a stalled connection answered")
    except Exception as exc:  # websocket-client raises its timeout exception
        assert "timed out" in str(exc).lower()
