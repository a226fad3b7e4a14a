"""Session resumption, handles, transparent indices, lifetimes and session limits."""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import pytest

from livesync.emulator import ClientMessageRecord, Emulator, SessionRecord, Turn
from tests.emulator.helpers import TEXT_CONFIG, WsClient, content_flags, pcm, texts

Connect = Callable[..., WsClient]

VERTEX_MODEL = "projects/p/locations/l/publishers/google/models/gemini-live-2.5-flash"


def updates(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [m["sessionResumptionUpdate"] for m in messages if "sessionResumptionUpdate" in m]


def open_resumable(emu: Emulator, connect: Connect, **setup: Any) -> Tuple[WsClient, str]:
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, sessionResumption={}, **setup)
    handle = client.message()["sessionResumptionUpdate"]["newHandle"]
    return client, handle


def resume(emu: Emulator, connect: Connect, handle: str) -> WsClient:
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-live-2.5-flash-preview",
                           "generationConfig": TEXT_CONFIG,
                           "sessionResumption": {"handle": handle}}})
    return client


def test_handle_updates_around_a_turn(emu: Emulator, connect: Connect) -> None:
    """A handle after setupComplete, {} when generation starts, a fresh one after turnComplete."""
    client, first = open_resumable(emu, connect)
    client.text("hello")
    messages = client.until(lambda m: bool(m.get("sessionResumptionUpdate")))
    assert messages[0] == {"sessionResumptionUpdate": {}}
    assert content_flags(messages)[-2:] == ["turnComplete", "sessionResumptionUpdate"]
    last = messages[-1]["sessionResumptionUpdate"]
    assert last["resumable"] is True and len(last["newHandle"]) >= 40
    assert re.fullmatch(r"[A-Za-z0-9_-]+", last["newHandle"]) and last["newHandle"] != first


def test_no_updates_without_session_resumption(emu: Emulator, connect: Connect) -> None:
    """Without setup.sessionResumption the server sends no resumption updates."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("hello")
    assert updates(client.turn()) == []


def test_resume_restores_history(emu: Emulator, connect: Connect) -> None:
    """A resumed session remembers the conversation (the history rule shows it)."""
    client, _ = open_resumable(emu, connect)
    client.text("My name is Ada.")
    handle = client.until(lambda m: bool(m.get("sessionResumptionUpdate")))[-1][
        "sessionResumptionUpdate"]["newHandle"]
    client.ws.close()
    emu.wait_closed(1)
    again = resume(emu, connect, handle)
    again.until(lambda m: "setupComplete" in m)
    again.text("What did I say?")
    assert "".join(texts(again.turn())) == "Earlier you said: My name is Ada."
    (session,) = emu.sessions.values()
    assert session.connections == [1, 2] and emu.connections[1].generation == 2
    assert emu.connections[1].resumed


def test_messages_after_the_handle_are_not_restored(emu: Emulator, connect: Connect) -> None:
    """Resuming rewinds the session to the handle's snapshot; replay makes it whole."""
    client, _ = open_resumable(emu, connect)
    one = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "one"}]}]}}
    two = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "two"}]}]}}
    client.send(one)
    emu.wait_for(lambda: len(emu.connections[0].messages) == 2)
    emu.issue_handle()
    handle = client.message()["sessionResumptionUpdate"]["newHandle"]
    client.send(two)
    emu.wait_for(lambda: len(emu.connections[0].messages) == 3)
    (session,) = emu.sessions.values()
    assert [m.message for m in session.messages] == [one, two]
    emu.drop()
    again = resume(emu, connect, handle)
    again.until(lambda m: "setupComplete" in m)
    assert [m.message for m in session.messages] == [one]
    again.send(two)  # the client's replay
    emu.wait_for(lambda: len(session.messages) == 2)
    assert [m.message for m in session.messages] == [one, two]
    assert [(m.generation, m.index) for m in session.messages] == [(1, 1), (2, 1)]
    assert [c["parts"][0]["text"] for c in session.history] == ["one", "two"]


def test_expired_handle_is_refused(make_emulator: Callable[..., Emulator],
                                   connect: Connect) -> None:
    """A handle past handle_ttl (scaled) is refused with resume_refusal."""
    emu = make_emulator(handle_ttl=1e-9)
    client, handle = open_resumable(emu, connect)
    client.ws.close()
    assert resume(emu, connect, handle).closed() == (1008, "Requested entity was not found.")


def test_unknown_handle_uses_configured_refusal(make_emulator: Callable[..., Emulator],
                                                connect: Connect) -> None:
    """resume_refusal sets the code and reason for unknown handles."""
    emu = make_emulator(resume_refusal=(1007, "Invalid session handle."))
    assert resume(emu, connect, "Cnope").closed() == (1007, "Invalid session handle.")


def test_refuse_next_resume_is_one_shot(emu: Emulator, connect: Connect) -> None:
    """refuse_next_resume(code, reason) refuses one valid resume, then resumes work."""
    client, handle = open_resumable(emu, connect)
    client.ws.close()
    emu.wait_closed(1)
    emu.refuse_next_resume(code=1011, reason="The service is currently unavailable.")
    assert resume(emu, connect, handle).closed() == (
        1011, "The service is currently unavailable.")
    assert "setupComplete" in resume(emu, connect, handle).message()


def test_concurrent_resume_is_rejected(make_emulator: Callable[..., Emulator],
                                       connect: Connect) -> None:
    """Resuming while the old connection is still open closes the new one with 1011."""
    emu = make_emulator(concurrent_resume_grace=0.05)
    _, handle = open_resumable(emu, connect)
    assert resume(emu, connect, handle).closed() == (1011, "Internal error encountered.")
    assert emu.connections[0].open


def test_concurrent_resume_can_be_allowed(make_emulator: Callable[..., Emulator],
                                          connect: Connect) -> None:
    """reject_concurrent_resume=False lets the resume through."""
    emu = make_emulator(reject_concurrent_resume=False)
    _, handle = open_resumable(emu, connect)
    assert "setupComplete" in resume(emu, connect, handle).message()


def vertex(emu: Emulator, connect: Connect, resumption: Dict[str, Any]) -> WsClient:
    client = connect(emu, emu.url("vertex"), key=False,
                     headers=["Authorization: Bearer " + emu.api_key])
    client.setup(model=VERTEX_MODEL, generationConfig=TEXT_CONFIG, sessionResumption=resumption)
    return client


def test_transparent_index_is_a_string_restarting_per_connection(
        emu: Emulator, connect: Connect) -> None:
    """Vertex transparent: lastConsumedClientMessageIndex is a string; 1, 2, ... per connection."""
    client = vertex(emu, connect, {"transparent": True})
    assert "lastConsumedClientMessageIndex" not in client.message()["sessionResumptionUpdate"]
    client.send({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                             "data": ""}}})
    client.text("hello")
    update = client.until(lambda m: bool(m.get("sessionResumptionUpdate")))[-1]
    assert update["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "2"
    handle = update["sessionResumptionUpdate"]["newHandle"]
    client.ws.close()
    emu.wait_closed(1)
    again = vertex(emu, connect, {"handle": handle, "transparent": True})
    again.message()
    again.text("again")
    update = again.until(lambda m: bool(m.get("sessionResumptionUpdate")))[-1]
    assert update["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "1"
    assert [m.index for m in emu.connections[1].messages] == [0, 1]


def test_go_away_then_deadline_close(make_emulator: Callable[..., Emulator],
                                     connect: Connect) -> None:
    """goAway with the real time left, then 1011 "Deadline expired..." at the lifetime."""
    emu = make_emulator(time_scale=0.001)  # 10 min -> 0.6 s; notice 60 s -> 0.06 s
    client = connect(emu)
    client.setup()
    go_away = client.until(lambda m: "goAway" in m, timeout=5)[-1]["goAway"]
    match = re.fullmatch(r"(\d+(?:\.\d{1,9})?)s", go_away["timeLeft"])
    assert match is not None
    left = float(match.group(1))
    assert 0 < left <= 0.06
    assert client.closed() == (1011, "Deadline expired before operation could complete.")
    assert emu.connections[0].close_code == 1011


def test_manual_go_away_with_enforced_close(emu: Emulator, connect: Connect) -> None:
    """send_go_away(time_left) announces real seconds and closes when they run out."""
    client = connect(emu)
    client.setup()
    emu.send_go_away(time_left=0.05)
    assert client.message() == {"goAway": {"timeLeft": "0.05s"}}
    assert client.closed()[0] == 1011


def test_audio_session_limit_closes(make_emulator: Callable[..., Emulator],
                                    connect: Connect) -> None:
    """Without contextWindowCompression, an audio session ends at audio_session_limit."""
    emu = make_emulator(audio_session_limit=0.001)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, sessionResumption={})
    handle = client.message()["sessionResumptionUpdate"]["newHandle"]
    client.audio(pcm(20, loud=False))
    code, reason = client.closed()
    assert code == 1011 and reason.startswith("Session duration limit exceeded.")
    assert resume(emu, connect, handle).closed()[0] == 1008  # the session is over


def test_video_session_limit_closes(make_emulator: Callable[..., Emulator],
                                    connect: Connect) -> None:
    """Video input applies video_session_limit."""
    emu = make_emulator(video_session_limit=0.001)
    client = connect(emu)
    client.setup()
    client.send({"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "/9j/"}}})
    assert client.closed()[0] == 1011


def test_compression_lifts_the_session_limit(make_emulator: Callable[..., Emulator],
                                             connect: Connect) -> None:
    """With contextWindowCompression, audio sessions are not limited."""
    emu = make_emulator(audio_session_limit=0.001)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG,
                 contextWindowCompression={"slidingWindow": {}})
    client.audio(pcm(20, loud=False))
    client.text("hello")
    assert "".join(texts(client.turn())) == "You said: hello"
    assert emu.connections[0].open


@pytest.mark.parametrize("field", ["sessionResumption", "session_resumption"])
def test_resumption_key_spellings(emu: Emulator, connect: Connect, field: str) -> None:
    """sessionResumption is recognised in camelCase and snake_case."""
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-live-2.5-flash", field: {}}})
    assert "setupComplete" in client.message()
    assert client.message()["sessionResumptionUpdate"]["resumable"] is True


# ---------------------------------------------------------------------- idle handles


class Gate:
    """A responder whose reply to "first" stops after one chunk until ``release`` is set.

    The pause is an Event wait on the worker thread, so a test can deliver more
    client messages while the first reply is provably still streaming.
    """

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, turn: Turn) -> Optional[Iterable[Dict[str, Any]]]:
        if turn.text != "first":
            return None
        return self._script(turn)

    def _script(self, turn: Turn) -> Iterator[Dict[str, Any]]:
        yield from turn.reply("part one")
        self.release.wait(5)
        yield from turn.reply("part two")


def user_turns(records: List[ClientMessageRecord]) -> List[str]:
    """The texts of the clientContent turns with turnComplete in a snapshot."""
    out: List[str] = []
    for record in records:
        body = record.payload
        if record.kind == "clientContent" and body.get("turnComplete"):
            out.extend(p["text"] for t in body["turns"] for p in t["parts"])
    return out


def assert_handles_cover_answered_turns(emu: Emulator, received: List[Dict[str, Any]]) -> int:
    """Every resumable handle snapshots only turns whose reply ended before it; return count."""
    records = {h.handle: h for h in emu.handles}
    completed = 0
    handles = 0
    for message in received:
        if message.get("serverContent", {}).get("turnComplete"):
            completed += 1
        update = message.get("sessionResumptionUpdate") or {}
        if update.get("resumable"):
            handles += 1
            turns = user_turns(records[update["newHandle"]].messages)
            assert len(turns) <= completed, (turns, completed)
    return handles


def gated(make_emulator: Callable[..., Emulator], connect: Connect, **setup: Any
          ) -> Tuple[Emulator, Gate, WsClient, SessionRecord]:
    """Open a resumable TEXT session whose first turn is paused after one chunk."""
    gate = Gate()
    emu = make_emulator(responder=gate)
    client, _ = open_resumable(emu, connect, **setup)
    client.text("first")
    client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
    (session,) = emu.sessions.values()
    return emu, gate, client, session


def test_no_handle_while_a_queued_turn_waits(make_emulator: Callable[..., Emulator],
                                             connect: Connect) -> None:
    """NO_INTERRUPTION: a turn that ends while the next one is queued sends no handle."""
    emu, gate, client, session = gated(
        make_emulator, connect,
        realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
    client.text("second")
    emu.wait_for(lambda: len(session.messages) == 2)
    gate.release.set()
    first = client.turn()
    second = client.turn()
    last = client.message()
    assert "".join(texts(client.received)) == "part onepart twoYou said: second"
    assert "".join(texts(second)) == "You said: second"
    assert updates(first) == []  # no handle between the two turns
    assert updates(second) == [{}]  # only "not resumable" when the second one starts
    assert last["sessionResumptionUpdate"]["resumable"] is True
    assert assert_handles_cover_answered_turns(emu, client.received) == 2
    assert user_turns(emu.handles[-1].messages) == ["first", "second"]


def test_no_handle_after_an_interrupted_turn_with_a_queued_turn(
        make_emulator: Callable[..., Emulator], connect: Connect) -> None:
    """A barge-in turn queued behind the interrupted one: the handle waits for its reply."""
    emu, gate, client, session = gated(make_emulator, connect)
    client.text("second")
    emu.wait_for(lambda: len(session.messages) == 2)
    gate.release.set()
    first = client.turn()
    second = client.turn()
    last = client.message()
    assert content_flags(first)[-2:] == ["interrupted", "turnComplete"]
    assert updates(first) == [] and updates(second) == [{}]
    assert last["sessionResumptionUpdate"]["resumable"] is True
    assert assert_handles_cover_answered_turns(emu, client.received) == 2
    assert user_turns(emu.handles[-1].messages) == ["first", "second"]


def test_a_cancelled_queued_turn_does_not_hold_the_handle_back(
        make_emulator: Callable[..., Emulator], connect: Connect) -> None:
    """A queued turn cancelled by further input never runs, so the model is idle without it."""
    emu, gate, client, session = gated(make_emulator, connect)
    client.text("second")
    client.text("third", turn_complete=False)  # barge-in: cancels the queued "second"
    emu.wait_for(lambda: len(session.messages) == 3)
    gate.release.set()
    first = client.turn()
    update = client.message()["sessionResumptionUpdate"]
    assert content_flags(first)[-2:] == ["interrupted", "turnComplete"]
    assert update["resumable"] is True
    assert len(emu.handles[-1].messages) == 3


def test_handles_record_their_snapshots(emu: Emulator, connect: Connect) -> None:
    """emu.handles lists the unexpired handles in issue order, with their snapshots."""
    client, first = open_resumable(emu, connect)
    client.text("hello")
    update = client.until(lambda m: bool(m.get("sessionResumptionUpdate")))[-1]
    handles = emu.handles
    assert [h.handle for h in handles] == [first, update["sessionResumptionUpdate"]["newHandle"]]
    assert [len(h.messages) for h in handles] == [0, 1]
    assert handles[1].last_consumed_index == 1 and handles[1].connection == 1
    assert "hello" in str(handles[1].history) and first not in repr(handles[0])
