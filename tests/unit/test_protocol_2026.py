"""The session core and today's Live API: interactionStatus, contextUpdate, history."""

from __future__ import annotations

import json

from livesync.history import History
from livesync.protocol import SessionProtocol, turn_over

from .test_protocol import content, end, handle, msg, opened, output, resume, send, turn


def context(p: SessionProtocol, body: dict, now: float = 0.0):
    return p.enqueue("context_update", json.dumps({"contextUpdate": body}), now)


def setup_of(p: SessionProtocol, *, resume: bool = False) -> dict:
    return json.loads(p.begin_connection(resume=resume))["setup"]


INSTRUCTION = {"parts": [{"text": "Be brief."}], "role": "user"}
TOOLS = [{"functionDeclarations": [{"name": "lookup"}]}]


def test_turn_over_follows_interaction_status() -> None:
    """IN_PROGRESS keeps the turn open; IDLE (or the old REQUIRES_ACTION) ends it."""
    def over(**fields) -> bool:
        return turn_over(msg({"serverContent": fields}).server_content)

    assert over(turnComplete=True)
    assert not over(turnComplete=True, interactionStatus="IN_PROGRESS")
    assert over(turnComplete=True, interactionStatus="IDLE")
    assert over(interactionStatus="IDLE")
    assert over(interactionStatus="REQUIRES_ACTION")
    assert not over(generationComplete=True)
    assert not turn_over(None)


def test_in_progress_keeps_the_model_busy_until_idle() -> None:
    """No safe point while background output may follow; the owner stays the turn."""
    p = opened()
    asked = turn(p)
    assert output(p).owner == asked.seq
    in_progress = p.receive(content(turnComplete=True, interactionStatus="IN_PROGRESS"), 1.0)
    assert in_progress.owner == asked.seq
    assert not p.idle
    handle(p)
    p.receive(msg({"goAway": {"timeLeft": "30s"}}), 2.0)
    assert not p.safe_to_rotate()
    assert output(p, 3.0).owner == asked.seq  # background output belongs to the same turn
    p.receive(content(turnComplete=True, interactionStatus="IDLE"), 4.0)
    assert p.idle and p.safe_to_rotate()


def test_a_turn_sent_during_background_output_is_proven_by_its_own_generation() -> None:
    """The next turn is not mistaken for covered by the background output."""
    p = opened()
    turn(p)
    output(p)
    p.receive(content(turnComplete=True, interactionStatus="IN_PROGRESS"), 1.0)
    second = turn(p, now=1.5)
    output(p, 2.0)  # background output of the first turn
    handle(p, now=2.1)
    assert [e.seq for e in resume(p)] == [second.seq]


def test_context_update_is_folded_into_the_setup_of_a_fresh_session() -> None:
    """A fresh session starts with the updated instruction and tools; [] clears tools."""
    p = SessionProtocol({"model": "models/m", "tools": TOOLS})
    p.begin_connection(resume=False)
    p.open()
    context(p, {"systemInstruction": INSTRUCTION})
    p.start_fresh()
    fresh = setup_of(p)
    assert fresh["systemInstruction"] == INSTRUCTION and fresh["tools"] == TOOLS
    p.open()
    context(p, {"tools": {"tools": []}})
    assert "tools" not in setup_of(p)


def test_context_update_is_folded_only_when_written() -> None:
    """Queued behind a paced turn, the update is not in the setup yet: order is kept."""
    p = opened()
    turn(p)
    assert p.enqueue("content", "{}", 0.0, turn_complete=True) is None  # paced
    assert context(p, {"systemInstruction": INSTRUCTION}) is None  # queued behind it
    p.start_fresh()
    assert "systemInstruction" not in setup_of(p)


def test_context_update_is_replayed_until_proven_and_never_unconfirmed() -> None:
    """Without later evidence a handle does not cover it; replaying it changes nothing."""
    p = opened()
    update = context(p, {"systemInstruction": INSTRUCTION})
    assert update is not None
    handle(p, now=50.0)  # long after: a timed message would be covered now
    replayed = resume(p)
    assert [e.kind for e in replayed] == ["context_update"]
    assert p.counters.unconfirmed == 0
    asked = turn(p, now=101.0)
    output(p, 102.0)
    end(p, 103.0)
    handle(p, now=104.0)
    assert resume(p) == []
    assert asked.index > 0


def test_uncovered_context_update_does_not_block_the_safe_point() -> None:
    """Rotation may happen with an update uncovered: the new connection replays it."""
    p = opened()
    context(p, {"systemInstruction": INSTRUCTION})
    handle(p)
    p.receive(msg({"goAway": {"timeLeft": "30s"}}), 11.0)
    assert p.safe_to_rotate()


def test_fresh_session_is_seeded_with_the_conversation_text() -> None:
    """With initialHistoryInClientContent the fresh session gets the text first."""
    p = SessionProtocol({"model": "models/m",
                         "historyConfig": {"initialHistoryInClientContent": True}})
    p.begin_connection(resume=False)
    p.open()
    send(p, "text", json.dumps({"realtimeInput": {"text": "What is 2+2?"}}))
    p.receive(content(modelTurn={"parts": [{"text": "It is "}]}), 1.0)
    p.receive(content(modelTurn={"parts": [{"text": "4."}]}), 1.1)
    end(p, 1.2)
    p.start_fresh()
    p.begin_connection(resume=False)
    p.open()
    first = p.next_to_send(2.0)
    assert first is not None and first.kind == "history"
    assert json.loads(first.text) == {"clientContent": {"turns": [
        {"role": "user", "parts": [{"text": "What is 2+2?"}]},
        {"role": "model", "parts": [{"text": "It is 4."}]},
    ], "turnComplete": True}}
    assert p.counters.dropped == 0  # the answered question is history, not a loss


def test_without_history_config_a_fresh_session_starts_empty() -> None:
    p = opened()
    turn(p, json.dumps({"clientContent": {"turns": [{"parts": [{"text": "hi"}]}]}}))
    output(p)
    end(p)
    p.start_fresh()
    p.begin_connection(resume=False)
    p.open()
    assert p.next_to_send(2.0) is None


def test_history_keeps_transcripts_and_is_bounded() -> None:
    """Transcriptions stand for audio; the oldest turns go first past the limit."""
    h = History(max_chars=30)
    h.record_received(msg({"serverContent": {"inputTranscription": {"text": "hello there"}}}),
                      False)
    h.record_received(msg({"serverContent": {"outputTranscription": {"text": "hi, how can"}}}),
                      False)
    h.record_received(msg({"serverContent": {"outputTranscription": {"text": " I help?"}}}),
                      False)
    h.record_received(msg({"serverContent": {"turnComplete": True}}), True)
    h.record_received(msg({"serverContent": {"inputTranscription": {"text": "weather"}}}),
                      False)
    message = h.message()
    assert message is not None
    turns = message["clientContent"]["turns"]
    assert [t["role"] for t in turns] == ["model", "user"]
    assert turns[0]["parts"][0]["text"] == "hi, how can I help?"
    one = History(max_chars=10)
    one.record_sent("text", json.dumps({"realtimeInput": {"text": "x" * 25}}))
    only = one.message()
    assert only is not None and only["clientContent"]["turns"][0]["parts"][0]["text"] == "x" * 10
