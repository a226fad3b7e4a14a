"""The sans-I/O session state: handle ledger, replay buffer, rotation decisions."""

from __future__ import annotations

import json

import pytest

from livesync import SendQueueFull, parse_server_message
from livesync.protocol import SessionProtocol, State

HANDLE_A = "Cig0ZDR1OTViNHVjOWh6aGJvMmhwdWk3NzJiZWRwYW91bnNtajgxZHN1"
HANDLE_B = "CihyNDg4aGJvMmhwdWk3NzJiZWRwYW91bnNtajgxZHN1cnN0dXZ3eHl6"


def msg(obj: dict):
    return parse_server_message(json.dumps(obj, indent=2).encode())


def update(handle=None, resumable=False, index=None):
    body: dict = {}
    if handle:
        body["newHandle"] = handle
    if resumable:
        body["resumable"] = True
    if index is not None:
        body["lastConsumedClientMessageIndex"] = str(index)
    return msg({"sessionResumptionUpdate": body})


def opened(**kwargs) -> SessionProtocol:
    p = SessionProtocol({"model": "models/m"}, **kwargs)
    p.begin_connection()
    p.receive(msg({"setupComplete": {}}), 0.0)
    assert p.open() == []
    return p


def send(p: SessionProtocol, kind: str, text: str, now: float):
    entry, _ = p.enqueue(kind, text)
    p.sent(entry, now)
    return entry


def test_setup_turns_resumption_on_and_carries_the_handle() -> None:
    """The first setup has sessionResumption {}; a resume setup carries the handle."""
    p = SessionProtocol({"model": "models/m"})
    p.begin_connection()
    assert json.loads(p.setup_message(resume=False)) == {
        "setup": {"model": "models/m", "sessionResumption": {}}}
    p.receive(update(HANDLE_A, True), 1.0)
    setup = json.loads(p.setup_message(resume=True))["setup"]
    assert setup["sessionResumption"] == {"handle": HANDLE_A}


def test_transparent_flag_is_sent() -> None:
    """Transparent resumption asks for it in every setup."""
    p = SessionProtocol({"model": "m"}, transparent=True)
    assert json.loads(p.setup_message(resume=False))["setup"]["sessionResumption"] == {
        "transparent": True}


def test_empty_update_never_erases_a_good_handle() -> None:
    """{} and resumable-false updates leave the latest resumable handle in place."""
    p = opened()
    p.receive(update(HANDLE_A, True), 1.0)
    p.receive(update(), 2.0)
    p.receive(update(HANDLE_B, False), 3.0)
    assert p.resumption_handle == HANDLE_A
    p.receive(update(HANDLE_B, True), 4.0)
    assert p.resumption_handle == HANDLE_B
    assert p.handle_issued_at == 4.0


def test_handle_covers_messages_sent_before_it_arrived() -> None:
    """Gemini API: a handle prunes the messages sent before it; later ones stay for replay."""
    p = opened()
    send(p, "text", "a", 1.0)
    send(p, "audio", "b", 2.0)
    p.receive(update(HANDLE_A, True), 2.5)
    later = send(p, "audio", "c", 3.0)
    assert list(p.buffer) == [later]


def test_replay_margin_keeps_messages_close_to_the_handle() -> None:
    """With a replay margin, messages sent just before the handle are still replayed."""
    p = opened(replay_margin=0.5)
    send(p, "text", "old", 1.0)
    recent = send(p, "text", "recent", 2.2)
    p.receive(update(HANDLE_A, True), 2.5)
    assert list(p.buffer) == [recent]


def test_message_in_flight_when_the_handle_was_issued_is_not_covered() -> None:
    """A handle arriving less than 2×RTT after a send may predate it: the send stays buffered."""
    p = opened()
    p.observe_rtt(0.010)
    early = send(p, "text", "early", 1.000)
    in_flight = send(p, "text", "question", 1.995)
    p.receive(update(HANDLE_A, True), 2.000)
    assert list(p.buffer) == [in_flight] and early not in p.buffer
    assert p.coverage_margin == pytest.approx(0.020)


def test_turn_sent_while_idle_is_covered_once_the_server_completes_a_turn() -> None:
    """A question answered by a completed turn is covered by the next handle, however fast."""
    p = opened()
    p.observe_rtt(1.0)  # a slow link: time alone would not cover it
    q, _ = p.enqueue("content", "q", starts_turn=True)
    p.sent(q, 10.0)
    p.receive(update(HANDLE_A, True), 10.1)
    assert list(p.buffer) == [q]  # handle in flight when q was sent
    p.receive(msg({"serverContent": {"modelTurn": {"parts": [{"text": "a"}]}}}), 10.2)
    p.receive(msg({"serverContent": {"turnComplete": True}}), 10.3)
    p.receive(update(HANDLE_B, True), 10.4)
    assert list(p.buffer) == []


def test_turn_sent_while_generating_needs_the_time_rule() -> None:
    """A question sent during a generation is not proven by that generation's turnComplete."""
    p = opened()
    p.observe_rtt(1.0)
    p.receive(msg({"serverContent": {"modelTurn": {"parts": [{"text": "a"}]}}}), 9.0)
    q, _ = p.enqueue("content", "q", starts_turn=True)
    p.sent(q, 10.0)
    p.receive(msg({"serverContent": {"turnComplete": True}}), 10.3)
    p.receive(update(HANDLE_B, True), 10.4)
    assert list(p.buffer) == [q]


def test_transparent_index_prunes_exactly() -> None:
    """Vertex transparent: entries with index ≤ lastConsumedClientMessageIndex are dropped."""
    p = opened(transparent=True)
    entries = [send(p, "audio", str(i), float(i)) for i in range(1, 6)]
    assert [e.index for e in entries] == [1, 2, 3, 4, 5]
    p.receive(update(HANDLE_A, True, index=3), 10.0)
    assert [e.text for e in p.buffer] == ["4", "5"]


def test_indices_restart_at_one_per_connection_and_replay_in_order() -> None:
    """After a reconnect, the buffer is replayed first with indices from 1."""
    p = opened(transparent=True)
    for i in range(3):
        send(p, "audio", str(i), float(i))
    p.receive(update(HANDLE_A, True, index=1), 5.0)
    p.begin_connection()
    replay = p.open()
    assert [e.text for e in replay] == ["1", "2"]
    assert [p.sent(e, 6.0) for e in replay] == [1, 2]
    fresh = send(p, "text", "new", 7.0)
    assert fresh.index == 3
    p.receive(update(HANDLE_B, True, index=2), 8.0)
    assert [e.text for e in p.buffer] == ["new"]


def test_media_is_evicted_oldest_first_but_text_never() -> None:
    """Past max_buffered_media old audio goes; text stays; too much text raises."""
    p = SessionProtocol({"model": "m"}, max_buffered_media=30, max_buffered_messages=2)
    p.begin_connection()
    _, evicted = p.enqueue("audio", "x" * 20)
    assert evicted == 0
    p.enqueue("text", "hello")
    _, evicted = p.enqueue("audio", "y" * 20)
    assert evicted == 1
    assert [e.text for e in p.buffer] == ["hello", "y" * 20]
    assert p.evicted_since_handle() == 1
    p.enqueue("tool_response", "t")
    with pytest.raises(SendQueueFull):
        p.enqueue("content", "one too many")


def test_safe_point_needs_idle_model_no_tool_calls_and_a_covering_handle() -> None:
    """Rotation is safe only with no generation, no pending tool call, an empty buffer."""
    p = opened()
    assert not p.safe_to_rotate()  # no handle yet
    p.receive(update(HANDLE_A, True), 1.0)
    assert p.safe_to_rotate()
    send(p, "text", "q", 2.0)
    assert not p.safe_to_rotate()
    p.receive(msg({"serverContent": {"modelTurn": {"parts": [{"text": "a"}]}}}), 2.1)
    p.receive(update(), 2.2)
    assert p.generating and not p.safe_to_rotate()
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "f"}]}}), 2.3)
    p.receive(msg({"serverContent": {"turnComplete": True}}), 2.4)
    p.receive(update(HANDLE_B, True), 2.5)
    assert p.pending_tool_calls == {"c1"} and not p.safe_to_rotate()
    entry, _ = p.enqueue("tool_response", "r", tool_ids=("c1",))
    p.sent(entry, 2.6)
    p.receive(update(HANDLE_A, True), 2.7)
    assert p.safe_to_rotate()


def test_go_away_deadline_forces_rotation() -> None:
    """After goAway, rotation is due at once when safe, else at deadline − lead."""
    p = opened()
    p.receive(msg({"goAway": {"timeLeft": "10s"}}), 100.0)
    assert p.go_away_deadline == 110.0
    send(p, "text", "busy", 101.0)
    assert not p.rotation_due(101.0, lead=2.0)
    assert p.rotation_due(108.0, lead=2.0)
    p.receive(update(HANDLE_A, True), 102.0)
    assert p.rotation_due(102.0, lead=2.0)


def test_cancelled_tool_call_is_not_pending() -> None:
    """toolCallCancellation removes the call from the pending set."""
    p = opened()
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "f"}]}}), 1.0)
    p.receive(msg({"toolCallCancellation": {"ids": ["c1"]}}), 1.1)
    assert p.pending_tool_calls == set()


def call(call_id: str, name: str = "f", **args):
    return msg({"toolCall": {"functionCalls": [{"id": call_id, "name": name, "args": args}]}})


def test_resume_holds_responses_until_the_model_asks_again() -> None:
    """A response to a call the restored session never saw is held, then sent to the new id."""
    p = opened()
    p.receive(call("old", x=1), 1.0)
    p.receive(update(HANDLE_A, True), 2.0)
    p.receive(call("new", x=2), 3.0)
    kept, _ = p.enqueue("tool_response", "r-old", tool_ids=("old",))
    body = {"toolResponse": {"functionResponses": [{"id": "new", "name": "f", "response": {}}]}}
    p.enqueue("tool_response", json.dumps(body), tool_ids=("new",))
    p.prepare_resume()
    assert list(p.buffer) == [kept]
    assert not p.safe_to_rotate()
    resend = p.receive(call("new-2", x=2), 4.0)
    assert [(old, new) for old, new, _ in resend] == [("new", "new-2")]
    assert p.is_reissue("new-2") and not p.is_reissue("old")
    renamed = p.renamed_response(resend[0][2], "new", "new-2")
    assert json.loads(renamed.text)["toolResponse"]["functionResponses"][0]["id"] == "new-2"
    assert renamed.tool_ids == ("new-2",)


def test_late_response_to_a_forgotten_call_goes_to_the_new_id() -> None:
    """If the app answers after the re-issue, its old id maps to the new one."""
    p = opened()
    p.receive(update(HANDLE_A, True), 1.0)
    p.receive(call("c1", city="Paris"), 2.0)
    p.prepare_resume()
    assert p.receive(call("c2", city="Paris"), 3.0) == []
    assert p.current_call_id("c1") == "c2"
    assert p.pending_tool_calls == {"c2"}
    assert p.receive(call("c3", city="Rome"), 3.5) == [] and not p.is_reissue("c3")


def test_response_between_resume_and_reissue_is_held() -> None:
    """Answering a forgotten call before the model re-asks holds the response for the new id."""
    p = opened()
    p.receive(update(HANDLE_A, True), 1.0)
    p.receive(call("c1"), 2.0)
    p.prepare_resume()
    entry, _ = p.enqueue("tool_response", "r", tool_ids=("c1",))
    assert entry.held and list(p.buffer) == []
    resend = p.receive(call("c2"), 3.0)
    assert [(old, new) for old, new, _ in resend] == [("c1", "c2")]


def test_held_response_is_reported_lost_when_the_model_never_asks_again() -> None:
    """A held response whose call never comes back is reported once the model is idle."""
    p = opened()
    p.receive(update(HANDLE_A, True), 1.0)
    p.receive(call("c1"), 2.0)
    p.enqueue("tool_response", "r", tool_ids=("c1",))
    p.prepare_resume()
    p.receive(update(HANDLE_B, True), 3.0)  # first handle on the new connection: still held
    assert p.lost_tool_responses == []
    p.receive(msg({"serverContent": {"turnComplete": True}}), 4.0)
    assert p.lost_tool_responses == ["c1"]


def test_fresh_session_forgets_handle_and_sent_input_keeps_unsent() -> None:
    """A refused resume drops what the lost session had, keeps what was never sent."""
    p = opened()
    p.receive(update(HANDLE_A, True), 1.0)
    send(p, "text", "sent", 2.0)
    p.begin_connection()
    queued, _ = p.enqueue("text", "queued")
    dropped = p.start_fresh()
    assert [e.text for e in dropped] == ["sent"]
    assert list(p.buffer) == [queued] and p.resumption_handle is None
    assert p.state is State.CONNECTING
