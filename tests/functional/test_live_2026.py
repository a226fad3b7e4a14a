"""Today's Live API (issue 11): API versions, contextUpdate, interactionStatus, and the
resume refusals the real service produces, each ending in a defined outcome.

Every test runs against the emulator over real sockets and waits on events, never on time.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Dict, List

import pytest
import requests

import livesync
from livesync import ReconnectPolicy, SessionClosedError, SetupRejected
from tests.utils import TIMEOUT, Recorder, client_messages

MODEL = "gemini-live-2.5-flash-preview"
STABLE = "gemini-live-2.5-flash"
TEXT: Dict[str, Any] = {"response_modalities": ["TEXT"]}
HISTORY: Dict[str, Any] = {"response_modalities": ["TEXT"],
                           "history_config": {"initial_history_in_client_content": True}}
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, rotation_margin=0.05)
ASK_INSTRUCTION = "What is your system instruction?"


def connect(emu: Any, model: str = MODEL, **kwargs: Any) -> livesync.Session:
    client = livesync.Client(api_key=kwargs.pop("api_key", emu.api_key), base_url=emu.base_url,
                             **kwargs.pop("client", {}))
    kwargs.setdefault("config", TEXT)
    kwargs.setdefault("reconnect", FAST)
    return client.connect(model, **kwargs)


def sent_kinds(record: Any) -> List[str]:
    return [m.kind for m in client_messages(record)]


def mint(emu: Any, uses: int = 1) -> str:
    reply = requests.post(emu.rest_url + "/v1alpha/auth_tokens", json={"uses": uses},
                          headers={"x-goog-api-key": emu.api_key}, timeout=TIMEOUT)
    reply.raise_for_status()
    return str(reply.json()["name"])


# API versions.


def test_v1_serves_stable_models_and_names_the_fix_for_preview_ones(make_emulator: Any) -> None:
    """api_version="v1" (google-genai 3.x's default) reaches the v1 endpoint; a preview
    model there is refused with the real 1008 text and a hint."""
    emu = make_emulator()
    with connect(emu, STABLE, client={"api_version": "v1"}) as session:
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    assert emu.connections[0].api_version == "v1"
    with pytest.raises(SetupRejected) as info:
        connect(emu, MODEL, client={"api_version": "v1"})
    assert info.value.code == 1008
    assert "not found for API version v1" in str(info.value)
    assert "v1beta" in str(info.value)  # the hint


# contextUpdate.


def test_context_update_applies_in_order_and_survives_a_resume(make_emulator: Any) -> None:
    """The new instruction answers later turns, on this connection and after a drop."""
    emu = make_emulator()
    rec = Recorder()
    config = dict(TEXT, system_instruction="Be brief.")
    with connect(emu, config=config, on_reconnect=rec.on_reconnect) as session:
        assert session.ask(ASK_INSTRUCTION).text == "My system instruction is: Be brief."
        session.send_context_update(system_instruction="Speak French.")
        assert session.ask(ASK_INSTRUCTION).text == "My system instruction is: Speak French."
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed
        assert session.ask(ASK_INSTRUCTION, timeout=10 * TIMEOUT).text == (
            "My system instruction is: Speak French.")
    (record,) = emu.sessions.values()
    assert "contextUpdate" in sent_kinds(record)


def test_context_update_carries_into_a_fresh_session(make_emulator: Any) -> None:
    """A refused resume starts a fresh session with the updated instruction and tools."""
    emu = make_emulator()
    rec = Recorder()
    tools = [{"function_declarations": [{"name": "read_clock"}]}]
    config = dict(TEXT, system_instruction="Be brief.", tools=tools)
    with connect(emu, config=config, on_reconnect=rec.on_reconnect) as session:
        session.send_context_update(system_instruction="Speak French.", tools=[])
        assert session.ask(ASK_INSTRUCTION).text == "My system instruction is: Speak French."
        emu.refuse_next_resume()
        emu.drop()
        assert not rec.wait("on_reconnect")[0].resumed
        assert session.ask(ASK_INSTRUCTION, timeout=10 * TIMEOUT).text == (
            "My system instruction is: Speak French.")
    fresh = emu.connections[-1]
    setup = fresh.messages[0].message["setup"]
    assert setup["systemInstruction"]["parts"][0]["text"] == "Speak French."
    assert "tools" not in setup


def test_context_update_is_validated_before_anything_is_sent(make_emulator: Any) -> None:
    emu = make_emulator()
    with connect(emu) as session:
        with pytest.raises(livesync.InvalidConfig):
            session.send_context_update()
        with pytest.raises(livesync.InvalidConfig):
            session.send_context_update(tools="clock")  # type: ignore[arg-type]
    assert "contextUpdate" not in sent_kinds(next(iter(emu.sessions.values())))


# interactionStatus.


def test_ask_waits_for_idle_and_keeps_the_background_output(make_emulator: Any) -> None:
    """With IN_PROGRESS, the turn goes on until IDLE; the next ask is answered on its own."""
    emu = make_emulator(interaction_status="background")
    with connect(emu) as session:
        first = session.ask("What is the capital of France?")
        statuses = [m.server_content.interaction_status for m in first.messages
                    if m.server_content is not None and m.server_content.turn_complete]
        assert statuses == ["IN_PROGRESS", "IDLE"]
        assert "Paris" in first.text
        second = session.ask(ASK_INSTRUCTION)
        assert second.text.startswith("I have no system instruction.")


def test_rotation_waits_for_idle_after_in_progress(make_emulator: Any) -> None:
    """A goAway while background output may follow: the rotation comes after IDLE."""
    emu = make_emulator(interaction_status="background")
    events: List[str] = []

    def on_message(message: Any) -> None:
        content = message.server_content
        if content is not None and content.interaction_status:
            events.append(content.interaction_status)
            if content.interaction_status == "IN_PROGRESS":
                emu.send_go_away(30.0)

    rec = Recorder()
    with connect(emu, on_message=on_message, on_reconnect=rec.on_reconnect) as session:
        session.send_text("What is the capital of France?")
        reconnected = rec.wait("on_reconnect")[0]
        events.append("reconnect")
        assert reconnected.planned and reconnected.resumed
    assert events[:3] == ["IN_PROGRESS", "IDLE", "reconnect"]


# Resume refusals.


def test_resume_refused_after_a_deadline_starts_fresh_with_the_conversation(
        make_emulator: Any) -> None:
    """1007 on the resume after a deadline close: a fresh session seeded with the text so
    far (history in clientContent), then answering on; nothing counted as lost."""
    emu = make_emulator(refuse_resume_after_deadline=True, go_away_notice=0.0,
                        connection_lifetime=600.0)
    rec = Recorder()
    with connect(emu, config=HISTORY, on_reconnect=rec.on_reconnect) as session:
        assert "Paris" in session.ask("What is the capital of France?").text
        emu.close(1011, "Deadline expired before operation could complete.")
        reconnected = rec.wait("on_reconnect")[0]
        assert not reconnected.resumed and reconnected.dropped == 0
        assert session.ask("And of Italy?", timeout=10 * TIMEOUT).text
    fresh = [c for c in emu.connections if not c.resumed][-1]
    history = fresh.messages[1].message["clientContent"]
    words = [p["text"] for t in history["turns"] for p in t["parts"]]
    assert words[0] == "What is the capital of France?" and "Paris" in words[1]
    assert history["turnComplete"] is True


def test_a_spent_ephemeral_token_ends_the_session_with_a_hint(make_emulator: Any) -> None:
    """A resume that the token has no use left for: fatal at once, and the error says why."""
    emu = make_emulator(resume_uses_token=True)
    token = mint(emu, uses=1)
    with connect(emu, api_key=token) as session:
        assert session.ask("hello").text
        emu.drop()
        with pytest.raises(SessionClosedError) as info:
            session.wait_closed(10 * TIMEOUT)
    assert info.value.code == 1011 and "token_provider" in str(info.value)
    assert len(emu.connections) == 2  # one refused resume, no retries


def test_a_token_provider_mints_past_a_spent_token(make_emulator: Any) -> None:
    """With a token_provider every dial gets a new token: the resume goes through."""
    emu = make_emulator(resume_uses_token=True)
    tokens = (mint(emu, uses=1) for _ in itertools.count())
    rec = Recorder()
    client = livesync.Client(base_url=emu.base_url, token_provider=lambda: next(tokens))
    with client.connect(MODEL, config=TEXT, reconnect=FAST,
                        on_reconnect=rec.on_reconnect) as session:
        assert session.ask("hello").text
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed
        assert session.ask("still there?", timeout=10 * TIMEOUT).text


def test_a_poisoned_resume_falls_back_to_a_fresh_session_at_once(make_emulator: Any,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A resume the server closes with 1007 seconds after setupComplete (a poisoned
    resume) falls back to a fresh session at once instead of ending the session."""
    emu = make_emulator()
    rec = Recorder()
    with caplog.at_level(logging.WARNING, logger="livesync"):
        with connect(emu, on_reconnect=rec.on_reconnect) as session:
            assert session.ask("hello").text
            emu.poison_session(code=1007, reason="Request contains an invalid argument.",
                               after=0.05)
            emu.drop()
            rec.wait("on_reconnect", where=lambda event: not event.resumed)
            assert session.ask("still there?", timeout=10 * TIMEOUT).text
    resumes = [c for c in emu.connections if c.resumed]
    assert len(resumes) == 1  # fell back at once, no storm of poisoned resumes
    assert any("starting a fresh session" in r.getMessage() for r in caplog.records)


def test_a_1008_right_after_a_tool_response_is_resumed(make_emulator: Any) -> None:
    """Native-audio models sometimes close 1008 after a tool response: livesync resumes
    and the model goes on, instead of ending the session as for a config error."""
    emu = make_emulator()
    rec = Recorder()
    weather = dict(TEXT, tools=[{"function_declarations": [{
        "name": "get_current_weather",
        "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}}}]}])
    with connect(emu, config=weather, on_reconnect=rec.on_reconnect) as session:
        emu.close_after_next_tool_response(code=1008, reason="Requested entity was not found.")
        turn = session.ask("What is the weather in Paris?", timeout=10 * TIMEOUT,
                           tools={"get_current_weather": lambda location: {"temp": "18C"}})
        assert rec.wait("on_reconnect")[0].resumed
        assert turn.text
