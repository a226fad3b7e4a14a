"""The deterministic scripted model: replies, audio, VAD, barge-in, tools, responder."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Dict, Iterator, List

from livesync.emulator import Emulator, Turn
from tests.emulator.helpers import TEXT_CONFIG, WsClient, content_flags, pcm, texts

Connect = Callable[..., WsClient]

WEATHER_TOOLS = [{"functionDeclarations": [{
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "OBJECT",
                   "properties": {"location": {"type": "STRING"},
                                  "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["location"]}}]}]


def test_text_reply_is_streamed_then_completed(emu: Emulator, connect: Connect) -> None:
    """A text turn streams >= 2 chunks, then generationComplete, then turnComplete+usage."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("What is the capital of France?")
    messages = client.turn()
    chunks = texts(messages)
    assert len(chunks) >= 2 and "".join(chunks) == "The capital of France is Paris."
    assert content_flags(messages)[-2:] == ["generationComplete", "turnComplete"]
    usage = messages[-1]["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["responseTokenCount"]
    assert usage["promptTokensDetails"] == [{"modality": "TEXT",
                                             "tokenCount": usage["promptTokenCount"]}]
    assert usage["responseTokensDetails"][0]["modality"] == "TEXT"


def test_echo_rule_and_realtime_text(emu: Emulator, connect: Connect) -> None:
    """realtimeInput.text starts a turn; unknown text is echoed as "You said: ..."."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.send({"realtimeInput": {"text": "banana bread"}})
    assert "".join(texts(client.turn())) == "You said: banana bread"


def test_history_rule_answers_what_did_i_say(emu: Emulator, connect: Connect) -> None:
    """"what did I say" answers with the previous user text from the history."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("My name is Ada.")
    client.turn()
    client.text("What did I say?")
    assert "".join(texts(client.turn())) == "Earlier you said: My name is Ada."


def test_audio_reply_is_24khz_pcm_with_transcription(emu: Emulator, connect: Connect) -> None:
    """AUDIO modality: inlineData 24 kHz PCM chunks plus outputTranscription of the text."""
    client = connect(emu)
    client.setup(generationConfig={"responseModalities": ["AUDIO"]},
                 outputAudioTranscription={})
    client.text("What is the capital of France?")
    messages = client.turn()
    audio = b""
    transcript = ""
    for m in messages:
        content = m.get("serverContent", {})
        for part in content.get("modelTurn", {}).get("parts", []):
            assert part["inlineData"]["mimeType"] == "audio/pcm;rate=24000"
            audio += base64.b64decode(part["inlineData"]["data"])
        transcript += content.get("outputTranscription", {}).get("text", "")
    assert transcript == "The capital of France is Paris."
    assert len(audio) == int(round(0.02 * len(transcript) * 24000)) * 2  # 20 ms per char
    assert any(audio[i:i + 2] != b"\x00\x00" for i in range(0, 200, 2))
    usage = messages[-1]["usageMetadata"]
    assert usage["responseTokensDetails"][0]["modality"] == "AUDIO"


def test_input_transcription_of_audio(emu: Emulator, connect: Connect) -> None:
    """inputAudioTranscription: the user's speech is transcribed as "(audio S s)"."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, inputAudioTranscription={})
    client.audio(pcm(500, loud=True) + pcm(600, loud=False))
    messages = client.turn()
    assert messages[0] == {"serverContent": {"inputTranscription": {"text": "(audio 0.50 s)"}}}
    assert "".join(texts(messages)) == "I heard 0.50 seconds of audio."
    assert "AUDIO" in json.dumps(messages[-1]["usageMetadata"]["promptTokensDetails"])


def vad_setup(client: WsClient, silence_ms: int) -> None:
    client.setup(generationConfig=TEXT_CONFIG, inputAudioTranscription={},
                 realtimeInputConfig={"automaticActivityDetection": {
                     "silenceDurationMs": silence_ms}})


def test_vad_short_pause_does_not_end_the_turn(emu: Emulator, connect: Connect) -> None:
    """A pause shorter than silenceDurationMs (audio time) keeps one turn going."""
    client = connect(emu)
    vad_setup(client, 300)
    client.audio(pcm(500, True) + pcm(200, False))
    client.audio(pcm(300, True) + pcm(400, False))
    messages = client.turn()
    assert messages[0]["serverContent"]["inputTranscription"]["text"] == "(audio 1.00 s)"


def test_vad_long_pause_ends_the_turn(emu: Emulator, connect: Connect) -> None:
    """The same audio with silenceDurationMs=100 makes two turns."""
    client = connect(emu)
    vad_setup(client, 100)
    client.audio(pcm(500, True) + pcm(200, False))
    first = client.turn()
    client.audio(pcm(300, True) + pcm(400, False))
    second = client.turn()
    assert first[0]["serverContent"]["inputTranscription"]["text"] == "(audio 0.50 s)"
    assert second[0]["serverContent"]["inputTranscription"]["text"] == "(audio 0.30 s)"


def test_audio_stream_end_ends_the_turn(emu: Emulator, connect: Connect) -> None:
    """audioStreamEnd ends a pending speech turn at once."""
    client = connect(emu)
    vad_setup(client, 500)
    client.audio(pcm(400, True))
    client.send({"realtimeInput": {"audioStreamEnd": True}})
    assert client.turn()[0]["serverContent"]["inputTranscription"]["text"] == "(audio 0.40 s)"


def test_non_audio_mime_type_closes_1007(emu: Emulator, connect: Connect) -> None:
    """realtimeInput.audio with a non-audio/ mime type closes 1007."""
    client = connect(emu)
    client.setup()
    client.send({"realtimeInput": {"audio": {"mimeType": "image/png", "data": "AAAA"}}})
    assert client.closed()[0] == 1007


def test_manual_activity_markers(emu: Emulator, connect: Connect) -> None:
    """With VAD disabled, activityStart/activityEnd delimit the turn (even silent audio)."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, inputAudioTranscription={},
                 realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
    client.send({"realtimeInput": {"activityStart": {}}})
    client.audio(pcm(600, loud=False))
    client.send({"realtimeInput": {"activityEnd": {}}})
    messages = client.turn()
    assert messages[0]["serverContent"]["inputTranscription"]["text"] == "(audio 0.60 s)"
    assert "".join(texts(messages)) == "I heard 0.60 seconds of audio."


def test_empty_manual_activity_gets_a_reply(emu: Emulator, connect: Connect) -> None:
    """activityStart then activityEnd with nothing in between still gets a reply."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG,
                 realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
    client.send({"realtimeInput": {"activityStart": {}}})
    client.send({"realtimeInput": {"activityEnd": {}}})
    assert "".join(texts(client.turn())) == "Yeah, I can hear you. What's up?"


def test_activity_markers_with_vad_on_are_accepted(emu: Emulator, connect: Connect) -> None:
    """activityStart/activityEnd with automatic VAD on delimit a turn by default."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.send({"realtimeInput": {"activityStart": {}}})
    client.audio(pcm(500, loud=False))
    client.send({"realtimeInput": {"activityEnd": {}}})
    assert "".join(texts(client.turn())) == "I heard 0.50 seconds of audio."


def test_strict_activity_control_closes_1007(make_emulator: Callable[..., Emulator],
                                             connect: Connect) -> None:
    """strict_activity_control=True: activityStart while automatic VAD is on closes 1007."""
    emu = make_emulator(strict_activity_control=True)
    client = connect(emu)
    client.setup()
    client.send({"realtimeInput": {"activityStart": {}}})
    assert client.closed() == (1007, "Explicit activity control is not supported when "
                               "automatic activity detection is enabled.")


def test_initial_history_does_not_trigger_a_reply(emu: Emulator, connect: Connect) -> None:
    """historyConfig.initialHistoryInClientContent: history before realtime input gets no reply."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG,
                 historyConfig={"initialHistoryInClientContent": True})
    client.send({"clientContent": {"turns": [
        {"role": "user", "parts": [{"text": "My name is Ada."}]},
        {"role": "model", "parts": [{"text": "Hello Ada."}]}], "turnComplete": True}})
    client.send({"realtimeInput": {"text": "What did I say?"}})
    messages = client.turn()
    assert "".join(texts(messages)) == "Earlier you said: My name is Ada."
    assert sum(1 for m in messages if m.get("serverContent", {}).get("turnComplete")) == 1
    client.text("hello")  # after realtime input, clientContent triggers replies again
    assert "".join(texts(client.turn())) == "You said: hello"


def test_barge_in_interrupts_then_completes(make_emulator: Callable[..., Emulator],
                                            connect: Connect) -> None:
    """New clientContent while generating: interrupted -> turnComplete, no generationComplete."""
    emu = make_emulator(chunk_delay=0.01)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("count to 300")
    first = client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
    client.text("What is the capital of France?")
    interrupted = client.turn()
    flags = content_flags(first + interrupted)
    assert flags[-2:] == ["interrupted", "turnComplete"]
    assert "generationComplete" not in flags
    answer = client.turn()
    assert "".join(texts(answer)) == "The capital of France is Paris."
    assert content_flags(answer)[-2:] == ["generationComplete", "turnComplete"]


def test_speech_start_interrupts(make_emulator: Callable[..., Emulator],
                                 connect: Connect) -> None:
    """Server VAD speech start while the model speaks is a barge-in too."""
    emu = make_emulator(chunk_delay=0.01)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("count to 300")
    client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
    client.audio(pcm(100, loud=True))
    assert content_flags(client.turn())[-2:] == ["interrupted", "turnComplete"]


def test_no_interruption_lets_the_turn_finish(make_emulator: Callable[..., Emulator],
                                              connect: Connect) -> None:
    """activityHandling NO_INTERRUPTION: new input waits; the first turn completes."""
    emu = make_emulator(chunk_delay=0.005)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG,
                 realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
    client.text("count to 40")
    client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
    client.text("What is the capital of France?")
    first = client.turn()
    assert "interrupted" not in content_flags(first)
    assert "".join(texts(first)).endswith("39, 40.")
    assert "".join(texts(client.turn())) == "The capital of France is Paris."


def test_tool_call_then_response_then_reply(emu: Emulator, connect: Connect) -> None:
    """A declared function mentioned by the user is called; the reply includes the result."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, tools=WEATHER_TOOLS)
    client.text("What is the weather in Redmond Washington?")
    call = client.until(lambda m: "toolCall" in m)[-1]["toolCall"]["functionCalls"][0]
    assert call["name"] == "get_current_weather"
    assert call["id"].startswith("function-call-") and call["id"][14:].isdigit()
    assert call["args"] == {"location": "Redmond Washington"}
    client.send({"toolResponse": {"functionResponses": [
        {"id": call["id"], "name": call["name"], "response": {"result": "18C"}}]}})
    messages = client.turn()
    assert "".join(texts(messages)) == 'get_current_weather returned {"result": "18C"}'
    assert content_flags(messages)[-2:] == ["generationComplete", "turnComplete"]


def test_tool_args_are_filled_from_the_text(emu: Emulator, connect: Connect) -> None:
    """String args take the words after the last in/for/of; enums take the mentioned value."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, tools=WEATHER_TOOLS)
    client.text("Tell me the weather in Paris, in fahrenheit")
    call = client.until(lambda m: "toolCall" in m)[-1]["toolCall"]["functionCalls"][0]
    assert call["args"] == {"location": "fahrenheit", "unit": "fahrenheit"}
    client.send({"toolResponse": {"functionResponses": [{"id": call["id"], "response": {}}]}})
    client.turn()
    client.text("How is the weather for Redmond?")
    call = client.until(lambda m: "toolCall" in m)[-1]["toolCall"]["functionCalls"][0]
    assert call["args"] == {"location": "Redmond"}


def test_tool_call_cancelled_by_interruption(emu: Emulator, connect: Connect) -> None:
    """Barge-in while a call is pending: toolCallCancellation, interrupted, turnComplete."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, tools=WEATHER_TOOLS)
    client.text("What is the weather in Paris?")
    call_id = client.until(lambda m: "toolCall" in m)[-1]["toolCall"]["functionCalls"][0]["id"]
    client.text("Never mind.")
    messages = client.turn()
    assert messages[0] == {"toolCallCancellation": {"ids": [call_id]}}
    assert content_flags(messages) == ["toolCallCancellation", "interrupted", "turnComplete"]


def test_tool_response_with_unknown_id_is_ignored(emu: Emulator, connect: Connect) -> None:
    """A toolResponse for an id never issued is recorded and ignored (the real server goes on)."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.send({"toolResponse": {"functionResponses": [
        {"id": "function-call-1", "name": "getStatus", "response": {"mood": "happy"}}]}})
    client.text("hello")
    assert "".join(texts(client.turn())) == "You said: hello"
    assert [m.kind for m in emu.connections[0].messages][1] == "toolResponse"
    assert emu.connections[0].open


def test_responder_replaces_the_model(make_emulator: Callable[..., Emulator],
                                      connect: Connect) -> None:
    """responder(turn) can script the turn; None falls back to the default model."""
    seen: List[Turn] = []

    def responder(turn: Turn) -> Any:
        seen.append(turn)
        if "custom" not in turn.text:
            return None

        def script() -> Iterator[Dict[str, Any]]:
            yield {"serverContent": {"modelTurn": {"parts": [{"text": "custom "}]}}}
            yield from turn.reply("reply")
        return script()

    emu = make_emulator(responder=responder)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("a custom turn")
    assert "".join(texts(client.turn())) == "custom reply"
    client.text("hello there")
    assert "".join(texts(client.turn())) == "You said: hello there"
    assert seen[0].kind == "text" and seen[0].history[-1]["parts"][0]["text"] == "a custom turn"
    assert seen[1].history[1] == {"role": "model", "parts": [{"text": "custom reply"}]}
