"""The sans-I/O session state: handle ledger, evidence-based replay, pacing, tool ledger."""

from __future__ import annotations

import json
from typing import List

import pytest

from livesync import InvalidConfig, SendQueueFull, parse_server_message
from livesync.protocol import (
    MIN_COVERAGE_MARGIN,
    Outbound,
    SessionProtocol,
    State,
)

HANDLE_A = "Cig0ZDR1OTViNHVjOWh6aGJvMmhwdWk3NzJiZWRwYW91bnNtajgxZHN1"
HANDLE_B = "CihyNDg4aGJvMmhwdWk3NzJiZWRwYW91bnNtajgxZHN1cnN0dXZ3eHl6"
TEXT = {"modelTurn": {"parts": [{"text": "Hello"}]}}


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


def handle(p: SessionProtocol, value: str = HANDLE_A, now: float = 10.0) -> None:
    p.receive(update(value, resumable=True), now)


def content(**fields) -> object:
    return msg({"serverContent": fields})


def output(p: SessionProtocol, now: float = 1.0):
    return p.receive(content(**TEXT), now)


def end(p: SessionProtocol, now: float = 1.0):
    return p.receive(content(turnComplete=True), now)


def opened(**kwargs) -> SessionProtocol:
    p = SessionProtocol({"model": "models/m"}, **kwargs)
    p.begin_connection(resume=False)
    p.open()
    return p


def send(p: SessionProtocol, kind: str, text: str = "{}", now: float = 0.0, **kw) -> Outbound:
    entry = p.enqueue(kind, text, now, **kw)
    assert entry is not None, "expected %s to be written at once" % kind
    entry.written_at = now  # as the writing thread does once the bytes are out
    return entry


def turn(p: SessionProtocol, text: str = "q", now: float = 0.0) -> Outbound:
    return send(p, "content", text, now, turn_complete=True)


def resume(p: SessionProtocol, now: float = 100.0) -> List[Outbound]:
    """Reconnect with the latest handle and return what gets (re)sent, in order."""
    p.begin_connection(resume=True)
    p.open()
    written = []
    while (entry := p.next_to_send(now)) is not None:
        entry.written_at = now
        written.append(entry)
    return written


def test_setup_turns_resumption_on_and_carries_the_handle() -> None:
    """setup always asks for resumption and carries the handle only when resuming."""
    p = SessionProtocol({"model": "models/m"}, handle=HANDLE_A)
    first = json.loads(p.begin_connection(resume=True))
    assert first["setup"]["sessionResumption"] == {"handle": HANDLE_A}
    fresh = json.loads(p.begin_connection(resume=False))
    assert fresh["setup"]["sessionResumption"] == {}
    assert p.generation == 2


def test_transparent_flag_is_sent() -> None:
    """Vertex transparent resumption is requested in every setup."""
    p = SessionProtocol({"model": "m"}, transparent=True)
    assert json.loads(p.begin_connection(resume=False))["setup"]["sessionResumption"] == {
        "transparent": True}


def test_empty_update_never_erases_a_good_handle() -> None:
    """{} and resumable=false updates keep the last good handle."""
    p = opened()
    handle(p)
    p.receive(update(), 11.0)
    p.receive(update(HANDLE_B, resumable=False), 12.0)
    assert p.resumption_handle == HANDLE_A


def test_a_turn_proven_by_its_answer_is_covered() -> None:
    """A user turn whose generation started before the handle is not replayed."""
    p = opened()
    q = turn(p)
    assert output(p).owner == q.seq
    end(p)
    handle(p, now=0.001)  # however close to the send: evidence, not timing
    assert resume(p) == []


def test_an_unanswered_turn_is_replayed_however_old() -> None:
    """A turn the server had not read when the handle came (it lags its input) is replayed.

    Issue 7 item 2: the timing rule counted it as covered and lost it."""
    p = opened()
    turn(p, "first")
    output(p)
    turn(p, "second", now=0.5)  # the first one's generation has started: not paced
    end(p, 1.0)
    handle(p, now=60.0)  # issued at the first answer's end, before "second" was read
    assert [e.text for e in resume(p)] == ["second"]


def test_a_barge_in_is_proven_by_the_interruption_it_caused() -> None:
    """Issue 7 item 1: a turn sent mid-reply is proven by `interrupted`, so the handle
    after the next answer covers it and it is never replayed (no duplicate)."""
    p = opened()
    first = turn(p, "count")
    assert output(p).owner == first.seq
    barge = turn(p, "stop", now=0.1)
    assert p.receive(content(interrupted=True), 0.2).owner == first.seq
    assert end(p, 0.2).owner == first.seq  # the bare turnComplete closes the cut generation
    assert output(p, 0.3).owner == barge.seq
    end(p, 0.4)
    handle(p, now=0.4)
    assert resume(p) == []


def test_turns_are_paced_until_the_previous_generation_started() -> None:
    """A second turn waits while the first is unproven; output releases it."""
    p = opened()
    first = turn(p, "a")
    assert p.enqueue("content", "b", 0.0, turn_complete=True) is None
    assert p.enqueue("audio", "pcm", 0.0) is None  # everything after a held turn waits too
    assert p.hold_deadline() == pytest.approx(5.0)
    assert p.next_to_send(0.1) is None
    assert output(p).flush
    second = p.next_to_send(0.2)
    assert second is not None and second.text == "b" and second.index == first.index + 1
    assert p.next_to_send(0.2).kind == "audio"


def test_after_an_interruption_the_next_turn_waits_for_the_owed_generation() -> None:
    """A turn proven by `interrupted` still owes a generation; the next turn waits for it,
    so it can never cancel that generation before it starts (ambiguous evidence)."""
    p = opened()
    turn(p, "a")
    output(p)
    b = turn(p, "b")
    p.receive(content(interrupted=True), 0.1)
    end(p, 0.1)
    assert p.enqueue("content", "c", 0.2, turn_complete=True) is None
    assert output(p, 0.3).owner == b.seq
    assert p.next_to_send(0.3).text == "c"


def test_pacing_gives_up_after_the_hold_timeout() -> None:
    """Without evidence, a held turn goes out after hold_timeout."""
    p = opened(hold_timeout=2.0)
    turn(p, "a")
    assert p.enqueue("content", "b", 0.0, turn_complete=True) is None
    assert p.next_to_send(1.9) is None
    assert p.next_to_send(2.0).text == "b"


def test_a_replayed_turn_holds_the_next_one_again() -> None:
    """The new connection's server reads a replayed turn anew: the next turn waits for
    its evidence again (sent at once, it could be answered with it, and never proven)."""
    p = opened(hold_timeout=5.0)
    handle(p, now=0.0)
    turn(p, "a", 0.0)
    assert p.enqueue("content", "b", 0.0, turn_complete=True) is None
    for now in (3.0, 6.0, 9.0):
        p.begin_rotation()
        assert [e.text for e in resume(p, now)] == ["a"]
        assert p.next_to_send(now + 4.9) is None
    assert p.next_to_send(14.0).text == "b"


def test_evidence_after_the_pacing_gave_up_proves_the_older_turn_first() -> None:
    """After a hold timeout two turns are unproven; the first evidence may be the older
    turn's (a server slower than the timeout), so it proves only that one: a handle after
    it covers the older turn and the newer one is replayed (it was lost: seen in the chaos
    soak, a handle issued before the server had read the newer turn covered it)."""
    p = opened(hold_timeout=5.0)
    turn(p, "a", 0.0)
    assert p.enqueue("content", "b", 0.0, turn_complete=True) is None
    b = p.next_to_send(5.0)
    assert b is not None and b.text == "b"
    output(p, 6.0)  # a's generation, read late
    end(p, 6.1)
    handle(p, now=6.2)
    p.begin_rotation()
    assert [e.text for e in resume(p, 7.0)] == ["b"]


def test_after_the_pacing_gave_up_each_evidence_proves_the_next_turn() -> None:
    """Evidence proves the unproven turns in the order they were sent, and the generation
    that follows a turn's interruption proves nothing more: with three turns unproven,
    the third is not covered by the second's generation."""
    p = opened(hold_timeout=5.0)
    turn(p, "a", 0.0)
    assert p.enqueue("content", "b", 0.0, turn_complete=True) is None
    assert p.next_to_send(5.0) is not None
    p.enqueue("content", "c", 5.0, turn_complete=True)
    assert p.next_to_send(10.0).text == "c"  # given up again
    output(p, 11.0)  # a's
    p.receive(content(interrupted=True), 11.1)  # b's
    output(p, 11.2)  # b's generation: proves nothing more
    end(p, 11.3)
    handle(p, now=11.4)
    p.begin_rotation()
    assert [e.text for e in resume(p, 12.0)] == ["c"]


def test_no_evidence_input_is_covered_by_time_or_counted_unconfirmed() -> None:
    """Audio has no evidence: old enough it is covered, close to the handle it is replayed
    and counted as possibly duplicated."""
    p = opened(replay_margin=1.0)
    send(p, "audio", "old", now=0.0)
    send(p, "audio", "recent", now=9.5)
    handle(p, now=10.0)
    replayed = resume(p)
    assert [e.text for e in replayed] == ["recent"]
    assert p.counters.unconfirmed == 1 and p.counters.replayed == 1


def test_input_after_an_unproven_turn_is_never_covered_by_time() -> None:
    """By in-order reading, audio sent after an unanswered turn was not read either."""
    p = opened()
    turn(p, "q", now=0.0)
    send(p, "audio", "pcm", now=0.0)
    handle(p, now=50.0)
    assert [e.text for e in resume(p)] == ["q", "pcm"]
    assert p.counters.unconfirmed == 0


def test_a_completing_tool_response_is_proven_by_the_continuation() -> None:
    """Issue 7 item 3b: the answer to the last open call is covered once the model goes on."""
    p = opened()
    turn(p, "weather?")
    call = {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}
    p.receive(msg({"toolCall": call}), 0.1)
    response = p.tool_response([{"id": "c1", "name": "w", "response": {"t": 1}}], 0.2)
    assert response is not None and response.expects == "tool"
    output(p, 0.3)
    end(p, 0.3)
    handle(p, now=0.3)
    assert resume(p) == [] and p.safe_to_rotate()


def test_unknown_tool_call_id_is_refused_and_nothing_is_queued() -> None:
    """Issue 7 item 3c: a response for an id never seen raises, naming the id."""
    p = opened()
    with pytest.raises(InvalidConfig, match="nope"):
        p.tool_response([{"id": "nope", "name": "w", "response": {}}], 0.0)
    assert resume(p) == []


def test_a_cancelled_call_is_never_answered() -> None:
    """Issue 7 item 3a: responses to cancelled calls are not sent, now or after a resume."""
    p = opened()
    turn(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.1)
    handle(p, now=0.05)
    p.receive(msg({"toolCallCancellation": {"ids": ["c1"]}}), 0.2)
    assert p.tool_response([{"id": "c1", "name": "w", "response": {}}], 0.3) is None
    assert p.counters.dropped == 1 and p.counters.dropped_tool_ids == ["c1"]
    assert all(e.kind != "tool_response" for e in resume(p))


def test_a_response_written_before_the_cancellation_is_not_replayed() -> None:
    """A response already sent when its call is cancelled is never replayed."""
    p = opened()
    turn(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.1)
    assert p.tool_response([{"id": "c1", "name": "w", "response": {}}], 0.2) is not None
    p.receive(msg({"toolCallCancellation": {"ids": ["c1"]}}), 0.3)
    assert all(e.kind != "tool_response" for e in resume(p))
    # Nothing proves the old connection read it before it ended: counted as dropped.
    assert p.counters.dropped == 1 and p.counters.dropped_tool_ids == ["c1"]


def test_resume_holds_responses_until_the_model_asks_again() -> None:
    """A call received after the handle is forgotten by the restored session: its
    response is held, then sent under the re-issued id; the re-issue is hidden."""
    p = opened()
    handle(p, now=0.0)
    turn(p, "weather?", now=0.1)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "old", "name": "w",
                                                    "args": {"city": "Paris"}}]}}), 0.2)
    p.tool_response([{"id": "old", "name": "w", "response": {"t": 18}}], 0.3)
    replayed = resume(p)
    assert [e.kind for e in replayed] == ["content"]
    output(p)  # the replayed question is answered again...
    received = p.receive(msg({"toolCall": {"functionCalls": [
        {"id": "new", "name": "w", "args": {"city": "Paris"}}]}}), 1.0)
    assert received.hidden == {"new"} and received.flush
    resent = p.next_to_send(1.0)
    assert json.loads(resent.text)["toolResponse"]["functionResponses"][0]["id"] == "new"
    assert p.tools.current_id("old") == "new"


def test_late_response_to_a_forgotten_call_goes_to_the_new_id() -> None:
    """A response given after the re-issue, under the old id, is sent under the new one."""
    p = opened()
    handle(p, now=0.0)
    turn(p, now=0.1)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "old", "name": "w", "args": {}}]}}), 0.2)
    resume(p)
    output(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "new", "name": "w", "args": {}}]}}), 1.0)
    entry = p.tool_response([{"id": "old", "name": "w", "response": {}}], 1.1)
    assert entry is not None and entry.tool_ids == ("new",)


def test_held_response_is_lost_when_the_model_does_not_ask_again() -> None:
    """The model ends a turn without re-issuing the call: the held response is dropped."""
    p = opened()
    handle(p, now=0.0)
    turn(p, now=0.1)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "old", "name": "w", "args": {}}]}}), 0.2)
    p.tool_response([{"id": "old", "name": "w", "response": {}}], 0.3)
    resume(p)
    output(p)
    end(p)
    assert p.counters.dropped == 1 and p.counters.dropped_tool_ids == ["old"]


def test_sent_media_evicted_is_dropped_only_if_the_resumed_handle_misses_it() -> None:
    """Issue 7 item 4: eviction on a healthy connection loses nothing; a resume that the
    handle does not cover counts each evicted chunk once."""
    p = opened(max_buffered_media=10)
    for i in range(5):
        send(p, "audio", "chunk-%d" % i, now=float(i))  # 7 bytes each: one fits
    assert p.counters.dropped == 0
    handle(p, now=2.5)  # covers chunks sent at 0, 1, 2 by time
    resume(p)
    assert p.counters.dropped == 1  # chunk 3 was evicted and is not covered; 4 is replayed


def test_media_claimed_long_before_a_handle_but_written_after_it_is_replayed() -> None:
    """Coverage by time counts from the end of the write, not from the claim: a sending
    thread paused between the two (a garbage collection) writes the chunk after the
    server issued the handle, which then does not cover it. Before, a chunk claimed
    more than the margin before the handle arrived was taken as covered and lost at a
    resume. It is replayed, and counted as unconfirmed (the write may have been over
    just before the handle was issued)."""
    p = opened()
    late = p.enqueue("audio", "late", 0.0)
    assert late is not None  # claimed; the write is still in flight
    handle(p, now=5.0)
    assert [e.text for e in resume(p)] == ["late"]
    assert p.counters.unconfirmed == 1 and p.counters.dropped == 0

    p = opened(max_buffered_media=10)
    late = p.enqueue("audio", "late-0", 0.0)
    send(p, "audio", "next-1", now=0.1)  # evicts late-0, still being written
    handle(p, now=5.0)
    assert [e.text for e in resume(p)] == []  # next-1 was covered
    assert p.counters.dropped == 1 and p.counters.unconfirmed == 1


def test_media_a_handle_may_have_covered_evicted_in_an_outage_is_also_unconfirmed() -> None:
    """A chunk written just before a handle arrived may or may not be covered by it, so
    it goes back to the queue at a resume (a replay counts it as unconfirmed). Evicted
    from the queue during the outage instead, it is dropped; if the handle did cover
    it, the server still has it, so it counts as unconfirmed too. Before, it counted
    as dropped alone: stats().dropped then over-reported what was missing."""
    p = opened(max_buffered_media=10)
    send(p, "audio", "chunk-0", now=0.0)
    handle(p, now=0.01)  # within the margin: unsure
    p.begin_connection(resume=True)  # not open yet: an outage
    assert p.enqueue("audio", "chunk-1", 1.0) is None  # evicts chunk-0 from the queue
    assert p.counters.dropped == 1 and p.counters.unconfirmed == 1


def test_coverage_by_time_counts_from_when_the_handle_is_known_to_have_arrived() -> None:
    """The reader got to the handle at 5.0, but it was in the socket since before 0.5
    (the transport's quiet_since): a chunk written at 1.0 came after the server issued
    it. Before, coverage counted back from 5.0 and took the chunk as covered."""
    p = opened()
    send(p, "audio", "after-the-handle", now=1.0)
    p.receive(update(HANDLE_A, resumable=True), 5.0, 0.5)
    assert [e.text for e in resume(p)] == ["after-the-handle"]
    assert p.counters.unconfirmed == 1


def test_unsent_media_evicted_is_dropped_at_once() -> None:
    """Media queued while disconnected and evicted is a loss right away."""
    p = SessionProtocol({"model": "m"}, max_buffered_media=10)
    p.begin_connection(resume=False)
    for i in range(3):
        assert p.enqueue("audio", "chunk-%d" % i, 0.0) is None
    assert p.counters.dropped == 2


def test_text_is_never_evicted_and_overflow_raises() -> None:
    """Non-media messages are kept; past max_buffered_messages a send raises."""
    p = SessionProtocol({"model": "m"}, max_buffered_messages=2)
    p.begin_connection(resume=False)
    p.enqueue("content", "a", 0.0, turn_complete=False)
    p.enqueue("content", "b", 0.0, turn_complete=False)
    with pytest.raises(SendQueueFull):
        p.enqueue("content", "c", 0.0, turn_complete=False)


def test_sent_media_past_the_age_is_evicted_and_dropped_only_if_a_resume_misses_it() -> None:
    """Issue 10: with max_buffered_media_age, sent media enqueued more than that many
    seconds ago leaves the buffer at the next enqueue; as with the byte bound, it is
    counted as dropped only if a resume happens before a handle covers it."""
    p = opened(max_buffered_media_age=5.0)
    send(p, "audio", "a0", now=0.0)
    send(p, "audio", "a1", now=1.5)
    send(p, "audio", "a2", now=6.5)  # a0 is 6.5 s old: evicted; a1, exactly 5 s old, stays
    assert p.counters.dropped == 0  # a handle may still cover a0
    assert [e.text for e in resume(p)] == ["a1", "a2"]
    assert p.counters.dropped == 1

    p = opened(max_buffered_media_age=5.0)
    send(p, "audio", "a0", now=0.0)
    send(p, "audio", "a1", now=6.0)  # a0 evicted
    handle(p, now=8.0)  # covers a0 and a1 by time
    assert resume(p) == [] and p.counters.dropped == 0


def test_media_covered_by_a_handle_is_gone_before_the_age_bound_looks() -> None:
    """Only uncovered media is evicted by age (and counted at a resume); a handle
    already released what it covers."""
    p = opened(max_buffered_media_age=5.0)
    send(p, "audio", "a0", now=0.0)
    send(p, "audio", "a1", now=1.0)
    handle(p, now=3.0)  # covers a0 and a1
    send(p, "audio", "a2", now=4.0)
    send(p, "audio", "a3", now=10.0)  # a2 is 6 s old: evicted
    assert [e.text for e in resume(p)] == ["a3"]
    assert p.counters.dropped == 1  # a2 only


def test_unsent_media_past_the_age_is_dropped_at_once() -> None:
    """Media queued during an outage, or waiting to be replayed, and older than
    max_buffered_media_age is a loss right away."""
    p = SessionProtocol({"model": "m"}, max_buffered_media_age=5.0)
    p.begin_connection(resume=False)
    for i, now in enumerate((0.0, 2.0, 4.0, 6.0)):
        assert p.enqueue("audio", "a%d" % i, now) is None
    assert p.counters.dropped == 1  # a0
    assert p.enqueue("audio", "a4", 9.5) is None  # a1 and a2 are older than 4.5
    assert p.counters.dropped == 3
    p.open()
    assert [e.text for e in iter(lambda: p.next_to_send(9.5), None)] == ["a3", "a4"]

    p.begin_connection(resume=True)  # a3 and a4 wait to be replayed
    assert p.enqueue("audio", "a5", 12.0) is None  # a3 is 6 s old
    assert p.counters.dropped == 4


def test_the_age_bound_never_evicts_other_messages() -> None:
    """Text, markers and audioStreamEnd stay whatever their age; any enqueue applies
    the bound to the media."""
    p = opened(max_buffered_media_age=1.0)
    send(p, "content", "c0", now=0.0)
    send(p, "audio", "a0", now=0.0)
    send(p, "audio_stream_end", "e0", now=0.0)
    send(p, "audio", "a1", now=10.0)  # a0 evicted
    send(p, "content", "c1", now=20.0)  # a1 evicted
    assert [e.text for e in resume(p)] == ["c0", "e0", "c1"]
    assert p.counters.dropped == 2


def test_without_an_age_media_is_bounded_by_bytes_only() -> None:
    """max_buffered_media_age=None (the default) keeps media of any age."""
    p = opened(max_buffered_media_age=None)
    for i, now in enumerate((0.0, 100.0, 10_000.0)):
        send(p, "audio", "a%d" % i, now=now)
    assert [e.text for e in resume(p)] == ["a0", "a1", "a2"]
    assert p.counters.dropped == 0


def test_the_byte_bound_still_applies_alongside_the_age() -> None:
    """Whichever bound is reached first evicts the oldest media."""
    p = opened(max_buffered_media=10, max_buffered_media_age=5.0)
    send(p, "audio", "chunk-0", now=0.0)
    send(p, "audio", "chunk-1", now=1.0)  # 14 bytes: chunk-0 evicted, young as it is
    send(p, "audio", "b", now=2.0)
    send(p, "audio", "c", now=6.5)  # 9 bytes, but chunk-1 is 5.5 s old: evicted
    assert [e.text for e in resume(p)] == ["b", "c"]
    assert p.counters.dropped == 2


def test_transparent_index_prunes_exactly() -> None:
    """Vertex: lastConsumedClientMessageIndex removes exactly the acknowledged messages."""
    p = opened(transparent=True)
    for i in range(4):
        send(p, "audio", "a%d" % i)
    p.receive(update(HANDLE_A, resumable=True, index=2), 1.0)
    replayed = resume(p)
    assert [e.text for e in replayed] == ["a2", "a3"]
    assert [e.index for e in replayed] == [1, 2]  # indices restart per connection


def test_fresh_session_forgets_handle_and_sent_input_keeps_unsent() -> None:
    """A refused resume drops what the lost session had, keeps what was never sent."""
    p = opened()
    turn(p, "sent")
    p.begin_connection(resume=True)
    p.enqueue("content", "queued", 0.0, turn_complete=False)
    p.start_fresh()
    assert p.resumption_handle is None and p.counters.dropped == 1
    p.begin_connection(resume=False)
    p.open()
    assert [e.text for e in [p.next_to_send(1.0)]] == ["queued"]


def test_safe_point_and_go_away_deadline() -> None:
    """Rotation waits for an idle model with everything covered, or the deadline."""
    p = opened()
    p.receive(msg({"goAway": {"timeLeft": "10s"}}), 0.0)
    turn(p)
    output(p)
    assert not p.rotation_due(1.0, lead=2.0)
    end(p)
    assert not p.rotation_due(1.0, lead=2.0)  # no handle covers the turn yet
    handle(p, now=1.0)
    assert p.safe_to_rotate() and p.rotation_due(1.0, lead=2.0)
    send(p, "content", "x", turn_complete=False)
    assert not p.safe_to_rotate()
    assert p.rotation_due(8.0, lead=2.0)  # deadline - lead reached


def test_media_only_buffer_does_not_block_the_safe_point() -> None:
    """Uncovered silent audio never postpones a rotation to the deadline."""
    p = opened()
    handle(p, now=0.0)
    send(p, "audio", "pcm", now=0.5)
    assert p.safe_to_rotate()


def test_state_follows_connections() -> None:
    """CONNECTING until setupComplete, OPEN, CONNECTING again during a rotation."""
    p = SessionProtocol({"model": "m"})
    p.begin_connection(resume=False)
    assert p.state is State.CONNECTING
    p.open()
    assert p.state is State.OPEN
    p.begin_rotation()
    assert p.state is State.CONNECTING and p.enqueue("audio", "x", 0.0) is None


def test_a_call_cancelled_after_the_handle_is_not_held_across_a_resume() -> None:
    """A cancelled call is never re-issued: its late response is dropped, not held."""
    p = opened()
    handle(p, now=0.0)
    turn(p, now=0.1)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.2)
    p.receive(msg({"toolCallCancellation": {"ids": ["c1"]}}), 0.3)
    resume(p)
    assert p.tool_response([{"id": "c1", "name": "w", "response": {}}], 1.0) is None
    assert p.counters.dropped_tool_ids == ["c1"] and not p.tools.held()


def test_a_tool_response_never_waits_behind_a_paced_turn() -> None:
    """The model waits for the tool response: it goes out ahead of a held user turn
    (found by the chaos soak: a turn held for evidence that only the response brings)."""
    p = opened()
    turn(p, "weather?")
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.1)
    turn(p, "and tomorrow?", now=0.2)  # the call proved the first turn: written
    assert p.enqueue("content", "third", 0.3, turn_complete=True) is None  # paced
    response = p.tool_response([{"id": "c1", "name": "w", "response": {}}], 0.4)
    assert response is not None and response.kind == "tool_response"


def test_replayed_turns_are_paced_again() -> None:
    """After a resume the replayed turns go out one generation at a time, as at first."""
    p = opened()
    turn(p, "a", now=0.0)
    assert p.enqueue("content", "b", 0.0, turn_complete=True) is None
    assert [e.text for e in resume(p, now=50.0)] == ["a"]  # "b" waits for a's answer
    output(p, 50.1)
    assert p.next_to_send(50.1).text == "b"


def test_renames_chain_across_resumes() -> None:
    """A call re-issued on two successive resumes is answered under its latest id."""
    p = opened()
    handle(p, now=0.0)
    turn(p, now=0.1)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "v1", "name": "w", "args": {}}]}}), 0.2)
    for new in ("v2", "v3"):
        resume(p)
        output(p)
        p.receive(msg({"toolCall": {"functionCalls": [{"id": new, "name": "w", "args": {}}]}}),
                  1.0)
    entry = p.tool_response([{"id": "v1", "name": "w", "response": {}}], 2.0)
    assert entry is not None and entry.tool_ids == ("v3",)
    with pytest.raises(InvalidConfig, match="answered already"):
        p.tool_response([{"id": "v1", "name": "w", "response": {}}], 2.1)


def test_two_forgotten_calls_with_the_same_signature_map_in_order() -> None:
    """The same question asked twice: each re-issue answers the next forgotten call
    (found by the chaos soak: one signature slot mapped responses to the wrong id)."""
    p = opened()
    handle(p, now=0.0)
    for old in ("a1", "a2"):
        turn(p, now=0.1)
        output(p)
        p.receive(msg({"toolCall": {"functionCalls": [{"id": old, "name": "w",
                                                        "args": {"c": "x"}}]}}), 0.2)
        p.tool_response([{"id": old, "name": "w", "response": {"n": old}}], 0.3)
        output(p)
        end(p)
    resume(p)
    sent = []
    for new in ("b1", "b2"):
        output(p)
        p.receive(msg({"toolCall": {"functionCalls": [{"id": new, "name": "w",
                                                        "args": {"c": "x"}}]}}), 1.0)
        while (entry := p.next_to_send(1.0)) is not None:
            if entry.kind == "tool_response":
                sent.append(json.loads(entry.text)["toolResponse"]["functionResponses"][0])
        end(p)
    assert [(r["id"], r["response"]["n"]) for r in sent] == [("b1", "a1"), ("b2", "a2")]


def test_answers_to_calls_before_a_handle_are_never_replayed() -> None:
    """A handle comes only when the model is idle, so calls made before it are settled:
    an answer still buffered is not replayed (found by the chaos soak: replaying it
    after the handle ended the session with 1008)."""
    p = opened()
    turn(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.1)
    p.tool_response([{"id": "c1", "name": "w", "response": {}}], 0.2)
    handle(p, now=0.3)  # no continuation seen (cut off), yet the handle settles c1
    assert all(e.kind != "tool_response" for e in resume(p))


def test_a_call_asked_again_under_the_same_id_is_answered_once() -> None:
    """Found by fuzzing: a re-issue that reuses the old id (and omits empty args) is the
    same open call; a second answer to it is refused, never held twice."""
    p = opened()
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "a", "name": "f", "args": {}}]}}), 0.0)
    resume(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "a", "name": "f"}]}}), 0.1)
    assert p.tool_response([{"id": "a", "name": "f", "response": {}}], 0.2) is not None
    with pytest.raises(InvalidConfig, match="answered already"):
        p.tool_response([{"id": "a", "name": "f", "response": {}}], 0.3)


def test_an_answer_to_a_cancelled_call_sent_just_before_a_handle_is_accounted() -> None:
    """Found by the chaos soak: the server cancels a call (barge-in), becomes idle and
    issues a handle while the answer is still on its way. The handle does not prove the
    answer read: if the connection ends, it is counted dropped (and unconfirmed), never
    forgotten silently; it is never replayed."""
    p = opened(replay_margin=1.0)
    turn(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.1)
    assert p.tool_response([{"id": "c1", "name": "w", "response": {}}], 0.2) is not None
    p.receive(msg({"toolCallCancellation": {"ids": ["c1"]}}), 0.21)
    handle(p, now=0.22)
    assert all(e.kind != "tool_response" for e in resume(p))
    assert p.counters.dropped == 1 and p.counters.dropped_tool_ids == ["c1"]
    assert p.counters.unconfirmed == 1  # the server may have read it before the handle


def test_an_answer_to_a_cancelled_call_long_before_a_handle_is_covered() -> None:
    """Sent well before the handle, the answer was read (in order) and ignored."""
    p = opened(replay_margin=1.0)
    turn(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "c1", "name": "w", "args": {}}]}}), 0.1)
    answer = p.tool_response([{"id": "c1", "name": "w", "response": {}}], 0.2)
    assert answer is not None
    answer.written_at = 0.2
    p.receive(msg({"toolCallCancellation": {"ids": ["c1"]}}), 0.3)
    handle(p, now=10.0)
    assert resume(p) == []
    assert p.counters.dropped == 0 and p.counters.unconfirmed == 0


def test_an_activity_open_at_a_fresh_start_is_reopened_in_the_fresh_session() -> None:
    """Found by the chaos soak: the server refused the handle while an activity was open.
    The fresh session must be inside an activity too, else realtime text sent meanwhile
    is a turn for the server but not for livesync (no evidence expected): replayed after
    the next drop and answered twice."""
    p = opened()
    start = send(p, "activity_start")
    p.start_fresh()
    p.begin_connection(resume=False)
    p.open()
    reopened = p.next_to_send(1.0)
    assert reopened is start and reopened.expects == "activity"
    text = send(p, "text", json.dumps({"realtimeInput": {"text": "inside"}}), now=1.1)
    assert not text.turn  # inside the activity, for the server as for livesync
    end = send(p, "activity_end", now=1.2)
    assert end.turn
    assert p.counters.dropped == 0


def test_a_fresh_session_gets_the_start_of_an_activity_whose_end_was_never_sent() -> None:
    """The activity was written up to its activityStart when the connection failed; the
    application closed it meanwhile. A fresh session gets activityStart again before the
    queued activityEnd: alone, the activityEnd would be one the server ignores (the
    emulator does), a user turn never answered that holds the next one back."""
    p = opened()
    start = send(p, "activity_start")
    send(p, "audio", "{}", now=0.1)
    p.begin_rotation()
    p.enqueue("activity_end", "{}", 0.2)
    p.begin_connection(resume=True)
    p.start_fresh()
    p.begin_connection(resume=False)
    p.open()
    assert p.next_to_send(1.0) is start
    assert p.next_to_send(1.0).kind == "activity_end"
    assert p.counters.dropped == 1  # the audio inside it, sent to the refused session


def test_a_covered_activity_start_is_sent_again_to_a_fresh_session() -> None:
    """Even when a handle covered the activityStart, a fresh session needs it."""
    p = opened(transparent=True)
    start = send(p, "activity_start")
    send(p, "audio", "{}", now=0.1)
    p.receive(update(HANDLE_A, resumable=True, index=2), 50.0)  # consumed both
    assert not p._sent
    p.start_fresh()
    p.begin_connection(resume=False)
    p.open()
    assert p.next_to_send(51.0) is start


def test_a_late_answer_to_a_call_of_a_refused_session_is_dropped_not_raised() -> None:
    """Found by the chaos soak: the app answers a call (re-issued under a new id) after
    the server refused the handle. The call is gone with the old session: the answer is
    dropped and reported, never an InvalidConfig for a call the app was shown."""
    p = opened()
    turn(p)
    p.receive(msg({"toolCall": {"functionCalls": [{"id": "a", "name": "w", "args": {}}]}}), 0.1)
    p.start_fresh()
    assert p.tool_response([{"id": "a", "name": "w", "response": {}}], 0.2) is None
    assert p.counters.dropped_tool_ids == ["a"]
    with pytest.raises(InvalidConfig):  # an id never shown stays an error
        p.tool_response([{"id": "zzz", "name": "w", "response": {}}], 0.3)


def test_a_handle_right_after_setup_covers_nothing_sent_on_the_connection() -> None:
    """Found by the audio example under load: a handle the server sends with its
    setupComplete (before it reads what follows) restores the old state; audio written
    just before it arrived was not read. Only a handle after a turn ended on this
    connection covers by time."""
    p = opened()
    send(p, "audio", "{}", now=0.0)
    p.receive(msg({"setupComplete": {}}), 4.9)  # (as on a connection set up meanwhile)
    handle(p, now=5.0)  # long after the audio, but the one that came with setupComplete
    assert [e.kind for e in resume(p)] == ["audio"]
    turn(p, now=101.0)
    output(p, 102.0)
    end(p, 103.0)
    handle(p, now=110.0)
    assert resume(p) == []


def test_a_go_away_between_setup_complete_and_its_handle_changes_nothing() -> None:
    """Found by the fresh chaos soak (1 run in 50 under load): a goAway injected between
    setupComplete and the handle that answers the setup made that handle cover the
    replays just written, which the next rotation then lost without counting them."""
    p = opened()
    p.receive(msg({"setupComplete": {}}), 4.9)
    send(p, "audio", "{}", now=4.91)  # a replay, written as the connection opened
    p.receive(msg({"goAway": {"timeLeft": "1s"}}), 4.95)
    p.receive(msg({"usageMetadata": {"totalTokenCount": 3}}), 4.96)
    handle(p, now=5.0)  # the setup's handle: it restores the old state
    assert [e.kind for e in resume(p)] == ["audio"]


def test_a_loopback_round_trip_does_not_shrink_the_coverage_margin_below_its_floor() -> None:
    """Found by the long-session benchmark: with a round trip of 1 ms (loopback), audio
    written 3.7 ms before a handle arrived was taken as covered, while the server,
    lagging its input by 2.6 ms, had not read it: lost at the next rotation, counted
    nowhere. A round trip says little about how fast a server reads its input."""
    p = opened()
    p.observe_rtt(0.001)
    send(p, "audio", "{}", now=10.0)
    handle(p, now=10.0037)
    assert [e.kind for e in resume(p)] == ["audio"]
    assert p.counters.unconfirmed == 1  # replayed: the server may have read it after all
    assert p.coverage_margin == MIN_COVERAGE_MARGIN
    p = opened(replay_margin=0.5)
    p.observe_rtt(0.001)
    assert p.coverage_margin == 0.5 + MIN_COVERAGE_MARGIN  # a lagging server: raised further
