"""Exactly once across resumes (issue 7): evidence-based replay, tool calls, accounting.

Each test is deterministic: the emulator gets the pacing (``chunk_delay``) or the
input lag it needs, and the tests wait on events, never on time.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any, List, Optional

import pytest

import livesync
from livesync import ReconnectPolicy
from livesync._transport import Frame, Transport
from tests.utils import TIMEOUT, Recorder, client_messages, wait_for

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
WEATHER = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": [
    {"name": "get_current_weather", "description": "weather",
     "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}}}]}]}
#: How long the reader pauses after the audio is read: more than the coverage margin
#: (20 ms plus two round trips, a few ms on loopback even under load).
READER_PAUSE = 0.3
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, rotation_margin=0.05)


def connect(emu: Any, **kwargs: Any) -> livesync.Session:
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    kwargs.setdefault("config", TEXT)
    kwargs.setdefault("reconnect", FAST)
    return client.connect(MODEL, **kwargs)


def user_texts(emu: Any) -> List[str]:
    """The user texts folded into the (single) server session, in order."""
    (record,) = emu.sessions.values()
    texts = []
    for m in client_messages(record):
        for turn in m.message.get("clientContent", {}).get("turns", []):
            texts.extend(p.get("text", "") for p in turn.get("parts", []))
        if "text" in m.message.get("realtimeInput", {}):
            texts.append(m.message["realtimeInput"]["text"])
    return texts


def resumable(update: Any) -> bool:
    return bool(update.resumable and update.new_handle)


def test_barge_in_is_not_duplicated_after_a_drop(make_emulator: Any) -> None:
    """Item 1: a turn sent while the model talks is proven read by the interruption it
    causes, so the handle after its answer covers it and a drop never replays it.

    With a replay margin (for a laggy server) the old timing rule never counted such a
    turn as covered and sent it twice."""
    emu = make_emulator(chunk_delay=0.02)
    rec = Recorder()
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, replay_margin=5.0)
    with connect(emu, reconnect=policy, on_message=rec.on_message,
                 on_reconnect=rec.on_reconnect,
                 on_resumption_update=rec.on_resumption_update) as session:
        session.send_text("count to 100")
        rec.wait("on_message", where=lambda m: bool(m.text))
        handles = len([u for u in rec.get("on_resumption_update") if resumable(u)])
        session.send_text("What is the capital of France?")
        rec.wait("on_message", where=lambda m: "Paris" in (m.text or ""))
        rec.wait("on_resumption_update", handles + 1, where=resumable)
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed
        assert session.ask("are you there?", timeout=10 * TIMEOUT).text
    texts = user_texts(emu)
    assert texts.count("What is the capital of France?") == 1
    assert texts.count("count to 100") == 1


def test_a_turn_the_server_had_not_read_is_replayed(make_emulator: Any) -> None:
    """Item 2: the handle at the end of a reply does not cover a turn the lagging server
    had not read yet, however long ago it was sent: it is replayed and answered once."""
    emu = make_emulator(chunk_delay=0.02)
    rec = Recorder()
    with connect(emu, on_message=rec.on_message, on_reconnect=rec.on_reconnect,
                 on_resumption_update=rec.on_resumption_update) as session:
        session.send_text("count to 10")
        rec.wait("on_message", where=lambda m: bool(m.text))
        handles = len([u for u in rec.get("on_resumption_update") if resumable(u)])
        emu.set_input_lag(60.0)  # the server reads nothing more before the drop
        session.send_audio(b"\x00\x00" * 16000)  # a large audio message, then a question
        session.send_text("What is the capital of Japan?")
        rec.wait("on_resumption_update", handles + 1, where=resumable)
        emu.drop()
        emu.set_input_lag(0.0)
        event = rec.wait("on_reconnect")[0]
        # The question is replayed. The audio before it has no evidence either way: the
        # timing fallback counts it as covered when it was sent long enough before the
        # handle (a server lagging more than that can lose such input, as documented),
        # else it is replayed as unconfirmed.
        assert event.resumed and event.replayed - event.unconfirmed == 1
        rec.wait("on_message", where=lambda m: "Tokyo" in (m.text or ""))
    assert user_texts(emu).count("What is the capital of Japan?") == 1


def test_audio_claimed_before_a_handle_but_written_after_it_is_replayed(
        make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sending thread pauses between claiming an audio chunk and writing it (as in
    a garbage collection), while the reply ends and its handle arrives; the server reads
    the chunk after issuing that handle. A resume with the handle must replay the chunk.
    Before, coverage by time counted from the claim, long enough before the handle, so
    the chunk was taken as covered and lost (the CI chaos soak's "consumed then
    rewound" audio)."""
    emu = make_emulator(chunk_delay=0.02)
    rec = Recorder()
    chunk = b"\x07\x00" * 800
    marker = base64.b64encode(chunk).decode()
    handles: List[Any] = []
    write = Transport.send_text

    def paused_write(self: Transport, data: str) -> int:
        if marker in data:  # claimed: wait for the next handle before writing
            assert wait_for(lambda: len(rec.get("on_resumption_update")) > len(handles))
        return write(self, data)

    monkeypatch.setattr(Transport, "send_text", paused_write)
    with connect(emu, on_message=rec.on_message, on_reconnect=rec.on_reconnect,
                 on_resumption_update=rec.on_resumption_update) as session:
        session.send_text("count to 30")
        rec.wait("on_message", where=lambda m: bool(m.text))
        handles.extend(rec.get("on_resumption_update"))
        session.send_audio(chunk)  # the reply goes on for ~0.3 s before its handle
        assert resumable(rec.get("on_resumption_update")[-1])
        assert wait_for(lambda: len(audio_messages(emu)) == 1)  # read after the handle
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed
        assert wait_for(lambda: len(audio_messages(emu)) == 1)
    assert [m.message["realtimeInput"]["audio"]["data"] for m in audio_messages(emu)] == [
        marker]


def test_audio_written_while_the_reader_is_late_to_a_handle_is_replayed(
        make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader thread has the reply's handle in hand but pauses before acting on it
    (as in a garbage collection), while the application writes an audio chunk: the
    server reads it after issuing the handle. A resume with the handle must replay the
    chunk. Before, coverage by time counted back from when the reader got to the
    handle, more than the margin after the write, and the chunk was lost."""
    emu = make_emulator(chunk_delay=0.02)
    rec = Recorder()
    chunk = b"\x09\x00" * 800
    armed, paused, go_on = threading.Event(), threading.Event(), threading.Event()
    read = Transport.recv

    def late_read(self: Transport, timeout: Optional[float] = None) -> Any:
        item = read(self, timeout)
        if armed.is_set() and isinstance(item, Frame) and b'"newHandle"' in item.data:
            armed.clear()
            paused.set()
            assert go_on.wait(TIMEOUT)
        return item

    monkeypatch.setattr(Transport, "recv", late_read)
    with connect(emu, on_message=rec.on_message, on_reconnect=rec.on_reconnect,
                 on_resumption_update=rec.on_resumption_update) as session:
        session.send_text("count to 30")
        rec.wait("on_message", where=lambda m: bool(m.text))
        handles = len(rec.get("on_resumption_update"))
        armed.set()
        assert paused.wait(TIMEOUT)  # the reply's handle is here; the reader pauses
        session.send_audio(chunk)
        assert wait_for(lambda: len(audio_messages(emu)) == 1)  # read after the handle
        threading.Event().wait(READER_PAUSE)  # the rest of the pause (not a sync)
        go_on.set()
        rec.wait("on_resumption_update", handles + 1)
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed
        assert wait_for(lambda: len(audio_messages(emu)) == 1)
    assert len(audio_messages(emu)) == 1


def test_a_late_answer_to_a_cancelled_call_is_not_sent_after_a_reconnect(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 3a: a barge-in cancels a tool call; after a reconnect the application's late
    answer to it is not sent (the server would close the session with 1008)."""
    rec = Recorder()
    with connect(emulator, config=WEATHER, on_message=rec.on_message,
                 on_reconnect=rec.on_reconnect, on_close=rec.on_close) as session:
        session.send_text("What is the weather in Paris?")
        (call_message,) = rec.wait("on_message", where=lambda m: m.tool_call is not None)
        session.send_text("Never mind.")
        rec.wait("on_message", where=lambda m: m.tool_call_cancellation is not None)
        rec.wait("on_message", where=lambda m: "mind." in (m.text or ""))
        emulator.drop()
        rec.wait("on_reconnect")
        call = call_message.tool_call.function_calls[0]
        session.send_tool_response([livesync.FunctionResponse(
            id=call.id, name=call.name, response={"temp": "18C"})])
        assert "cancelled" in caplog.text
        assert session.stats().dropped == 1
        assert session.ask("are you there?", timeout=10 * TIMEOUT).text
        assert not rec.get("on_close")
    assert all(m.kind != "toolResponse" for c in emulator.connections for m in c.messages)


def test_a_fast_tool_response_is_covered_and_never_replayed(emulator: Any) -> None:
    """Item 3b: the model's continuation proves the tool response read; the next goAway
    rotates at the safe point and does not replay it (a duplicate ends with 1008)."""
    rec = Recorder()
    sessions: List[Any] = []

    def answer(message: Any) -> None:
        rec.on_message(message)
        for call in message.tool_call.function_calls if message.tool_call else ():
            sessions[0].send_tool_response([livesync.FunctionResponse(
                id=call.id, name=call.name, response={"temp": "18C"})])

    with connect(emulator, config=WEATHER, on_message=answer,
                 on_reconnect=rec.on_reconnect, on_close=rec.on_close,
                 on_resumption_update=rec.on_resumption_update) as session:
        sessions.append(session)
        session.send_text("What is the weather in Paris?")
        rec.wait("on_message", where=lambda m: "18C" in (m.text or ""))
        rec.wait("on_resumption_update", 2, where=resumable)
        emulator.send_go_away(time_left=30.0)
        event = rec.wait("on_reconnect")[0]
        assert event.planned and event.replayed == 0
        assert session.ask("are you there?", timeout=10 * TIMEOUT).text
        assert not rec.get("on_close")
    (record,) = emulator.sessions.values()
    assert len([m for m in client_messages(record) if m.kind == "toolResponse"]) == 1
    assert emulator.connections[0].client_close_code == 1000  # not forced at the deadline


def test_media_dropped_in_an_outage_is_counted_exactly(make_emulator: Any) -> None:
    """Item 4: audio evicted while disconnected is reported once, in Reconnected.dropped
    and stats().dropped; what was not dropped reaches the server exactly once, give or
    take what livesync reports as unconfirmed (audio sent just before a handle arrived:
    the emulator hands one out right after setupComplete, before it reads the replays)."""
    emu = make_emulator()
    rec = Recorder()
    chunk = 3200  # 100 ms of 16 kHz PCM; base64 + JSON ≈ 4.4 kB per message
    with connect(emu, on_reconnect=rec.on_reconnect, max_buffered_media=20_000) as session:
        total = dropped = unsure = 0
        assert wait_for(lambda: session.resumption_handle is not None)  # else no resume
        for outage in range(1, 4):
            assert wait_for(lambda: session.state == "open")
            emu.refuse_upgrades_for(60.0)
            emu.drop()
            assert wait_for(lambda: session.state == "reconnecting")
            for i in range(12):
                session.send_audio(bytes([outage, i]) * (chunk // 2))
                total += 1
            emu.refuse_upgrades_for(0)
            event = rec.wait("on_reconnect", outage)[-1]
            assert event.dropped > 0
            dropped += event.dropped
            unsure += event.unconfirmed
        assert session.stats().dropped == dropped
        assert wait_for(lambda: len(audio_messages(emu)) >= total - dropped)
        assert len(audio_messages(emu)) <= total - dropped + unsure


def audio_messages(emu: Any) -> List[Any]:
    (record,) = emu.sessions.values()
    return [m for m in client_messages(record) if "audio" in m.message.get("realtimeInput", {})]


def test_healthy_streaming_logs_no_drop_warning(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 4: evicting sent audio from the replay buffer on a healthy connection loses
    nothing, so it logs no WARNING and counts nothing as dropped."""
    caplog.set_level(logging.INFO, logger="livesync")
    with connect(emulator, max_buffered_media=20_000) as session:
        for i in range(50):
            session.send_audio(bytes([i, 0]) * 1600)
        assert wait_for(lambda: len(client_messages(emulator.connections[0])) == 50)
        assert session.stats().dropped == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_activity_whose_end_was_held_is_whole_in_a_fresh_session(
        make_emulator: Any) -> None:
    """The activity's activityStart was written; its activityEnd waited behind a question
    (pacing) when the connection dropped and the server refused the resume. The fresh
    session gets activityStart again before that activityEnd, and answers the activity.
    Before, it got the activityEnd alone, which it ignores: a user turn never answered,
    holding the next one back (the suspected cause of a chaos soak's stuck session)."""
    emu = make_emulator(input_lag=5.0)  # the question is not answered before the drop
    rec = Recorder()
    config = dict(TEXT, realtime_input_config={"automatic_activity_detection": {
        "disabled": True}})
    with connect(emu, config=config, on_message=rec.on_message,
                 on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        session.send_realtime_input(activity_start={})
        session.send_text("a question")
        sent = session.stats().messages_out
        session.send_realtime_input(activity_end={})
        assert session.stats().messages_out == sent  # held behind the question
        emu.refuse_next_resume()
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed is False
        fresh = emu.connections[-1]
        assert wait_for(lambda: any("activityEnd" in m.message.get("realtimeInput", {})
                                    for m in client_messages(fresh)), timeout=20 * TIMEOUT)
        assert [next(iter(m.message["realtimeInput"])) for m in client_messages(fresh)] == [
            "activityStart", "activityEnd"]
