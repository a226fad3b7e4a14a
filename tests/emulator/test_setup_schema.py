"""Setup validation like a proto-JSON parser: unknown names, enum values, types, no model."""

from __future__ import annotations

from typing import Any, Callable, Dict

import pytest

from livesync.emulator import Emulator
from tests.emulator.helpers import WsClient

Connect = Callable[..., WsClient]

VERTEX_MODEL = "projects/p/locations/l/publishers/google/models/gemini-live-2.5-flash"

EVERY_FIELD: Dict[str, Any] = {
    "generation_config": {
        "response_modalities": ["AUDIO"], "temperature": 0.7, "topK": 40.0, "top_p": 0.9,
        "maxOutputTokens": 100, "seed": 3, "candidateCount": 1, "presencePenalty": 0.1,
        "frequency_penalty": 0.2, "media_resolution": "MEDIA_RESOLUTION_LOW",
        "enableAffectiveDialog": True, "audioTimestamp": False, "logprobs": 1,
        "responseLogprobs": False, "responseMimeType": "text/plain", "stopSequences": ["x"],
        "responseSchema": {"type": "OBJECT"}, "responseJsonSchema": {"type": "object"},
        "routingConfig": {"autoMode": {}}, "modelSelectionConfig": {},
        "enableEnhancedCivicAnswers": False, "responseFormat": [{}],
        "audioTranscriptionConfig": {"mode": "VERBATIM"},
        "speech_config": {"language_code": "en-US", "voice_config": {
            "prebuilt_voice_config": {"voice_name": "Kore"}, "voice": "Kore"}},
        "thinking_config": {"include_thoughts": True, "thinking_budget": 128,
                            "thinking_level": "XHIGH"},
        "translationConfig": {"targetLanguageCode": "fr", "echoTargetLanguage": False},
    },
    "system_instruction": {"role": "system", "parts": [{"text": "Be brief."}]},
    "tools": [{"googleSearch": {}}, {"codeExecution": {}}, {"urlContext": {}},
              {"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING",
                                         "parameters": {"type": "OBJECT", "anything": 1},
                                         "response": {"whatever": True}}]}],
    "realtime_input_config": {
        "automatic_activity_detection": {"disabled": False, "start_of_speech_sensitivity":
                                         "START_SENSITIVITY_LOW", "silence_duration_ms": 300,
                                         "prefixPaddingMs": 20,
                                         "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH"},
        "activity_handling": "START_OF_ACTIVITY_INTERRUPTS",
        "turnCoverage": "TURN_INCLUDES_ALL_INPUT", "interimTranscriptTimestampEnabled": True},
    "session_resumption": {"handle": None},
    "context_window_compression": {"trigger_tokens": "1000",
                                   "sliding_window": {"target_tokens": 500}},
    "input_audio_transcription": {"mode": "SMART", "sourceText": "x", "diarization": True,
                                  "languageCodes": ["en"], "wordTimestamp": True},
    "outputAudioTranscription": {},
    "proactivity": {"proactive_audio": True, "proactiveVideo": False},
    "historyConfig": {"initial_history_in_client_content": False},
    "avatarConfig": {"avatarName": "a", "customizedAvatar": {"imageMimeType": "image/png",
                                                             "imageData": "AAAA"}},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "labels": {"team": "x"},
    "explicitVadSignal": False,
}


def refusal(emu: Emulator, connect: Connect, setup: Dict[str, Any], url: str = "") -> Any:
    client = connect(emu, url or None)
    client.send({"setup": setup})
    return client.closed()


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
def test_every_field_is_accepted(emu: Emulator, connect: Connect, backend: str) -> None:
    """Every 3.6.1 setup field, camelCase or snake_case at any depth, is accepted."""
    model = VERTEX_MODEL if backend == "vertex" else "models/gemini-live-2.5-flash"
    headers = ["Authorization: Bearer " + emu.api_key] if backend == "vertex" else []
    client = connect(emu, emu.url(backend), headers=headers)
    assert "setupComplete" in client.setup(model=model, **EVERY_FIELD)


@pytest.mark.parametrize("setup, reason", [
    ({"fooBar": 1}, "Invalid JSON payload received. Unknown name \"fooBar\" at 'setup': "
     "Cannot find field."),
    ({"generationConfig": {"responseModality": ["TEXT"]}}, "Invalid JSON payload received. "
     "Unknown name \"responseModality\" at 'setup.generation_config': Cannot find field."),
    ({"generation_config": {"speech_config": {"voice_config": {"prebuiltVoice": {}}}}},
     "Invalid JSON payload received. Unknown name \"prebuiltVoice\" at "
     "'setup.generation_config.speech_config.voice_config': Cannot find field."),
    ({"tools": [{"functionDeclarations": [{"name": "f", "params": {}}]}]},
     "Invalid JSON payload received. Unknown name \"params\" at "
     "'setup.tools[0].function_declarations[0]': Cannot find field."),
    ({"generationConfig": {"responseModalities": ["SPEECH"]}},
     "Invalid value at 'setup.generation_config.response_modalities[0]' (type.googleapis.com/"
     "google.ai.generativelanguage.v1beta.GenerationConfig.Modality), \"SPEECH\""),
    ({"generationConfig": {"temperature": "hot"}},
     "Invalid value at 'setup.generation_config.temperature' (TYPE_FLOAT), \"hot\""),
])
def test_malformed_setup_closes_1007(emu: Emulator, connect: Connect,
                                     setup: Dict[str, Any], reason: str) -> None:
    """Unknown names, unknown enum values and wrong types close 1007 with proto-JSON text."""
    setup = dict(setup, model="models/gemini-live-2.5-flash")
    assert refusal(emu, connect, setup) == (1007, reason[:123])


def test_vertex_type_urls_name_the_vertex_package(emu: Emulator, connect: Connect) -> None:
    """On Vertex the type URL names google.cloud.aiplatform.<version>."""
    client = connect(emu, emu.url("vertex"), headers=["Authorization: Bearer " + emu.api_key])
    client.send({"setup": {"model": VERTEX_MODEL, "generationConfig": {
        "mediaResolution": "HUGE"}}})
    code, reason = client.closed()
    assert code == 1007 and "(type.googleapis.com/google.cloud.aiplatform.v1beta1." in reason


def test_setup_without_model_closes_1011(emu: Emulator, connect: Connect) -> None:
    """A setup with no model closes 1011 "Internal error encountered." (real v1alpha)."""
    assert refusal(emu, connect, {"generationConfig": {}}) == (1011, "Internal error encountered.")


def test_validate_setup_false_accepts_unknown_fields(make_emulator: Callable[..., Emulator],
                                                     connect: Connect) -> None:
    """validate_setup=False turns the parser checks off."""
    emu = make_emulator(validate_setup=False)
    client = connect(emu)
    assert "setupComplete" in client.setup(fooBar=1, generationConfig={"x": 1})
