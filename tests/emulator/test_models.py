"""Per-model behaviour: mediaChunks on 2.x models, per-model connection lifetimes."""

from __future__ import annotations

import base64
from typing import Callable

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient, pcm, texts

Connect = Callable[..., WsClient]

DEPRECATED = "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."


def chunks(data: bytes, mime: str = "audio/pcm;rate=16000") -> dict:
    return {"realtimeInput": {"mediaChunks": [
        {"mimeType": mime, "data": base64.b64encode(data).decode()}]}}


def test_media_chunks_are_audio_on_2x_models(emu: Emulator, connect: Connect) -> None:
    """gemini-live-2.5-flash-preview takes mediaChunks as realtime audio (VAD, reply)."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.send(chunks(pcm(400, True) + pcm(600, False)))
    assert "".join(texts(client.turn())) == "I heard 0.40 seconds of audio."
    client.send(chunks(b"\xff\xd8", "image/jpeg"))
    emu.wait_for(lambda: emu.connections[0].backlog == 0 and len(
        emu.connections[0].messages) == 3)
    assert next(iter(emu.sessions.values())).has_video


def test_media_chunks_models_option(make_emulator: Callable[..., Emulator],
                                    connect: Connect) -> None:
    """media_chunks_models lists the models that accept mediaChunks; others refuse."""
    emu = make_emulator(media_chunks_models=["gemini-3.1-flash-live-preview"])
    accepted = connect(emu)
    accepted.setup(model="models/gemini-3.1-flash-live-preview", generationConfig=TEXT_CONFIG)
    accepted.send(chunks(pcm(300, True) + pcm(600, False)))
    assert "".join(texts(accepted.turn())) == "I heard 0.30 seconds of audio."
    refused = connect(emu)
    refused.setup()
    refused.send(chunks(pcm(10, False)))
    assert refused.closed() == (1007, DEPRECATED)


def test_model_lifetimes_option(make_emulator: Callable[..., Emulator],
                                connect: Connect) -> None:
    """model_lifetimes sets one model's lifetime: goAway, then 1011 Deadline at that time."""
    emu = make_emulator(time_scale=0.0001, connection_lifetime=100000.0,
                        model_lifetimes={"gemini-3.1-flash-live-preview": 3480.0})
    client = connect(emu)
    client.setup(model="models/gemini-3.1-flash-live-preview")
    assert "goAway" in client.message()
    assert client.closed() == (1011, "Deadline expired before operation could complete.")
    record = emu.wait_closed(1)
    assert record.closed_at is not None and record.closed_at - record.opened_at >= 0.348
    other = connect(emu)
    other.setup()
    other.text("hello")
    other.turn()
    assert emu.connections[1].open
