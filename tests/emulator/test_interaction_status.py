"""interactionStatus: off by default, IDLE on every turnComplete, or IN_PROGRESS + background."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient, content_flags, texts

Connect = Callable[..., WsClient]


def idle(message: Dict[str, Any]) -> bool:
    return message.get("serverContent", {}).get("interactionStatus") == "IDLE"


def statuses(messages: List[Dict[str, Any]]) -> List[str]:
    return [m["serverContent"]["interactionStatus"] for m in messages
            if "interactionStatus" in m.get("serverContent", {})]


def test_no_interaction_status_by_default(emu: Emulator, connect: Connect) -> None:
    """Without the option the field is never sent (as in the recordings)."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("hello")
    assert statuses(client.turn()) == []


def test_idle_mode_marks_every_turn_complete(make_emulator: Callable[..., Emulator],
                                             connect: Connect) -> None:
    """interaction_status="idle": turnComplete carries IDLE, nothing follows it."""
    emu = make_emulator(interaction_status="idle")
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("What is the capital of France?")
    messages = client.turn()
    assert messages[-1]["serverContent"] == {"turnComplete": True, "interactionStatus": "IDLE"}
    assert statuses(messages) == ["IDLE"]


def test_background_mode_sequence(make_emulator: Callable[..., Emulator],
                                  connect: Connect) -> None:
    """"background": IN_PROGRESS turnComplete, background output, then an IDLE turnComplete."""
    emu = make_emulator(interaction_status="background", time_scale=0.01)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, sessionResumption={})
    client.message()  # the handle after setupComplete
    client.text("What is the capital of France?")
    messages = client.until(idle)
    end = next(i for i, m in enumerate(messages) if m.get("serverContent", {}).get(
        "turnComplete"))
    assert messages[end]["serverContent"]["interactionStatus"] == "IN_PROGRESS"
    assert "usageMetadata" in messages[end]
    after = messages[end + 1:]
    assert "".join(texts(after)) == "Background work finished."
    assert after[-1] == {"serverContent": {"turnComplete": True, "interactionStatus": "IDLE"}}
    # No resumable handle before the IDLE turnComplete; one right after it.
    assert not [m for m in messages if m.get("sessionResumptionUpdate", {}).get("newHandle")]
    assert client.message()["sessionResumptionUpdate"]["resumable"] is True


def test_background_output_is_interrupted_by_barge_in(make_emulator: Callable[..., Emulator],
                                                      connect: Connect) -> None:
    """A barge-in during the background phase interrupts it; IDLE still ends it."""
    emu = make_emulator(interaction_status="background", background_delay=60.0)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("hello")
    client.until(lambda m: m.get("serverContent", {}).get("interactionStatus") == "IN_PROGRESS")
    client.text("What is the capital of France?")
    messages = client.until(idle)
    assert content_flags(messages) == ["interrupted", "turnComplete"]
    follow = client.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
    assert "".join(texts(follow)) == "The capital of France is Paris."


def test_background_audio_matches_modality(make_emulator: Callable[..., Emulator],
                                           connect: Connect) -> None:
    """AUDIO modality: the background output is audio (with transcription when asked)."""
    emu = make_emulator(interaction_status="background", time_scale=0.01)
    client = connect(emu)
    client.setup(outputAudioTranscription={})
    client.text("hello")
    client.until(lambda m: m.get("serverContent", {}).get("interactionStatus") == "IN_PROGRESS")
    messages = client.until(idle)
    parts = [p for m in messages for p in m.get("serverContent", {}).get("modelTurn", {}).get(
        "parts", [])]
    assert parts and all("inlineData" in p for p in parts)
    spoken = "".join(m.get("serverContent", {}).get("outputTranscription", {}).get("text", "")
                     for m in messages)
    assert spoken == "Background work finished."


def test_invalid_interaction_status_option() -> None:
    """Only None, "idle" and "background" are accepted."""
    with pytest.raises(ValueError):
        Emulator(interaction_status="busy")
