"""Session maintenance against the emulator: rotation, resume, replay, policies, stores."""

from __future__ import annotations

import gc
import logging
import threading
import time
import tracemalloc
from typing import Any, List

import pytest

import livesync
from livesync import ReconnectExhausted, ReconnectPolicy, SessionClosedError
from tests.utils import TIMEOUT, Recorder, client_messages, realtime, wait_for

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, rotation_margin=0.05)


def connect(emu: Any, **kwargs: Any) -> livesync.Session:
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    kwargs.setdefault("config", TEXT)
    kwargs.setdefault("reconnect", FAST)
    return client.connect(MODEL, **kwargs)


def pcm(n: int, loud: bool) -> bytes:
    """n ms of 16 kHz PCM, loud (speech) or silent; each chunk distinct by a marker."""
    sample = (8000 if loud else 0).to_bytes(2, "little", signed=True)
    return sample * (16 * n)


def session_messages(emu: Any, kind: str) -> List[Any]:
    (record,) = emu.sessions.values()
    return [m for m in record.messages if kind in m.message.get("realtimeInput", {})]


def test_resumption_handle_is_tracked(emulator: Any) -> None:
    """The session exposes the latest resumable handle from the server."""
    with connect(emulator) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        first = session.resumption_handle
        session.ask("hello", timeout=10 * TIMEOUT)
        assert wait_for(lambda: session.resumption_handle != first)


def test_go_away_rotates_at_a_safe_point_with_the_latest_handle(emulator: Any) -> None:
    """goAway while idle: dial new, close old, resume with the latest handle; nothing lost."""
    rec = Recorder()
    with connect(emulator, on_goaway=rec.on_goaway, on_reconnect=rec.on_reconnect,
                 on_resumption_update=rec.on_resumption_update) as session:
        session.ask("My name is Ada.", timeout=10 * TIMEOUT)
        rec.wait("on_resumption_update", 2, where=lambda u: u.resumable)
        handle = session.resumption_handle
        emulator.send_go_away(time_left=30.0)
        event = rec.wait("on_reconnect")[0]
        assert rec.get("on_goaway")[0].time_left.total_seconds() == pytest.approx(30.0, abs=1)
        assert event.planned and event.resumed and event.cause == "goAway"
        assert event.gap_ms >= 0 and event.dropped == 0
        assert emulator.connections[1].setup["sessionResumption"] == {"handle": handle}
        assert emulator.connections[0].close_code == 1000
        turn = session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
        assert turn.text == "The capital of France is Paris."
        stats = session.stats()
        assert stats.rotations_planned == 1 and stats.resumed == 1 and stats.generation == 2
    (record,) = emulator.sessions.values()
    assert len(record.connections) == 2


def test_a_rotation_whose_dial_fails_reconnects_and_resumes(emulator: Any) -> None:
    """The rotation closes the old connection before it dials (the close handshake
    overlaps the dial); a refused dial then falls back to reconnecting, and the
    session resumes with the latest handle, nothing lost."""
    rec = Recorder()
    with connect(emulator, on_reconnect=rec.on_reconnect,
                 on_resumption_update=rec.on_resumption_update) as session:
        session.ask("My name is Ada.", timeout=10 * TIMEOUT)
        rec.wait("on_resumption_update", 2, where=lambda u: u.resumable)
        handle = session.resumption_handle
        emulator.refuse_next_upgrade(status=503)
        emulator.send_go_away(time_left=30.0)
        event = rec.wait("on_reconnect")[0]
        assert event.resumed and event.dropped == 0
        assert [u.status for u in emulator.upgrades][-2:] == [503, 101]
        assert emulator.connections[0].close_code == 1000
        assert emulator.connections[1].setup["sessionResumption"] == {"handle": handle}
        turn = session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
        assert turn.text == "The capital of France is Paris."
    (record,) = emulator.sessions.values()
    assert len(record.connections) == 2


def test_connection_lifetime_is_survived_repeatedly(make_emulator: Any) -> None:
    """With real lifetimes (scaled), the session rotates before each deadline close."""
    emu = make_emulator(time_scale=0.001)  # 10 min → 0.6 s, goAway 60 ms before
    rec = Recorder()
    with connect(emu, on_reconnect=rec.on_reconnect, on_close=rec.on_close) as session:
        rec.wait("on_reconnect", 3, timeout=30 * TIMEOUT)
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    assert all(e.planned and e.resumed for e in rec.get("on_reconnect"))
    assert all(c.close_code != 1011 for c in emu.connections[:3])


def test_a_forced_rotation_keeps_its_lead_before_the_deadline(make_emulator: Any) -> None:
    """Found by CI (3.9): the lead before a goAway deadline was a quarter of the time
    *remaining*, recomputed at every wake-up, so it shrank with it and a rotation
    forced mid-generation only came at the deadline, racing the server's close. The
    lead is fixed when the goAway arrives: min(rotation_margin, notice / 4)."""
    emu = make_emulator(chunk_delay=0.2)  # a 20-chunk reply takes 4 s: no safe point
    rec = Recorder()
    with connect(emu, on_reconnect=rec.on_reconnect, on_message=rec.on_message,
                 reconnect=ReconnectPolicy(rotation_margin=0.3)) as session:
        session.send_text("Please repeat this sentence slowly, word for word, " * 5)
        rec.wait("on_message", where=lambda m: bool(m.text))
        sent = time.time()
        emu.send_go_away(time_left=2.0)  # lead 0.3 s: rotate 1.7 s after, mid-reply
        rec.wait("on_reconnect", timeout=20 * TIMEOUT)
        old = emu.connections[0]
        assert old.client_close_code == 1000
        assert old.closed_at is not None and old.closed_at - sent < 1.9  # not at the cut


def test_rotation_forced_by_deadline_mid_generation(make_emulator: Any) -> None:
    """A goAway during a long generation forces rotation before the deadline; ask() still
    returns a complete answer (the question is replayed on the resumed session)."""
    emu = make_emulator(chunk_delay=0.05)  # a 20-chunk reply takes about a second
    rec = Recorder()
    question = "Please repeat this sentence slowly, word for word, " * 5
    with connect(emu, on_reconnect=rec.on_reconnect, on_message=rec.on_message,
                 reconnect=ReconnectPolicy(rotation_margin=0.3)) as session:
        result: List[Any] = []
        asker = threading.Thread(target=lambda: result.append(
            session.ask(question, timeout=20 * TIMEOUT)))
        asker.start()
        rec.wait("on_message", where=lambda m: bool(m.text))
        emu.send_go_away(time_left=0.4)
        event = rec.wait("on_reconnect")[0]
        asker.join(20 * TIMEOUT)
        assert event.planned and event.replayed >= 1
        assert emu.connections[0].client_close_code == 1000  # we rotated before the cut
        assert result and result[0].text == "You said: " + question.strip()


def test_drop_mid_turn_with_audio_streaming_loses_nothing(make_emulator: Any) -> None:
    """TCP drop while audio streams: every audio chunk is in the resumed session once."""
    emu = make_emulator(chunk_delay=0.02)  # the handle comes well after the last chunk
    rec = Recorder()
    with connect(emu, on_reconnect=rec.on_reconnect, on_message=rec.on_message,
                 config={"response_modalities": ["TEXT"],
                         "realtime_input_config": {"automatic_activity_detection": {
                             "silence_duration_ms": 200}}}) as session:
        chunks = 0
        for _ in range(10):       # 200 ms of speech…
            session.send_audio(pcm(20, loud=True))
            chunks += 1
        for _ in range(12):       # …then 240 ms silence: the turn ends, a reply streams
            session.send_audio(pcm(20, loud=False))
            chunks += 1
        rec.wait("on_message", where=lambda m: bool(
            m.session_resumption_update and m.session_resumption_update.resumable
            and rec.get("on_message").index(m) > 2))
        for _ in range(5):        # more audio after the handle…
            session.send_audio(pcm(20, loud=True))
            chunks += 1
        assert wait_for(lambda: len(client_messages(emu.connections[0])) == chunks)
        emu.drop()                # …then the connection dies mid-turn
        for _ in range(5):        # audio sent during the reconnect is queued
            session.send_audio(pcm(20, loud=True))
            chunks += 1
        event = rec.wait("on_reconnect")[0]
        assert not event.planned and event.resumed and event.dropped == 0
        assert wait_for(lambda: len(session_messages(emu, "audio")) == chunks, 10 * TIMEOUT)
    audio = session_messages(emu, "audio")
    assert len(audio) == chunks  # exactly once each: none lost, none doubled


def test_transparent_resumption_prunes_by_index(make_emulator: Any) -> None:
    """Vertex transparent: indices restart at 1, acked messages are not replayed."""
    emu = make_emulator()
    client = livesync.Client(vertexai=True, project="p", location="us-central1",
                             token_provider=lambda: emu.api_key, base_url=emu.base_url)
    rec = Recorder()
    with client.connect(MODEL, config=TEXT, reconnect=FAST,
                        on_reconnect=rec.on_reconnect) as session:
        session.ask("hello", timeout=10 * TIMEOUT)
        assert emu.connections[0].setup["sessionResumption"] == {"transparent": True}
        for i in range(3):  # quiet audio: no reply, so no new acknowledgement
            session.send_audio(pcm(20, loud=False)[:-2] + bytes([i, 0]))
        assert wait_for(lambda: len(client_messages(emu.connections[0])) == 4)
        emu.drop()
        event = rec.wait("on_reconnect")[0]
        assert event.replayed == 3
        assert wait_for(lambda: len(emu.connections) == 2
                        and len(client_messages(emu.connections[1])) == 3)
        assert [m.index for m in client_messages(emu.connections[1])] == [1, 2, 3]
        assert emu.connections[1].setup["sessionResumption"]["transparent"] is True
    (record,) = emu.sessions.values()
    assert len(realtime(record, "audio")) == 3
    assert len([m for m in client_messages(record) if m.kind == "clientContent"]) == 1


def test_blanking_update_keeps_the_good_handle(emulator: Any) -> None:
    """An empty {} update after a good handle does not erase it; the resume uses it."""
    with connect(emulator) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        handle = session.resumption_handle
        emulator.send_raw({"sessionResumptionUpdate": {}})
        emulator.send_raw({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}})
        assert wait_for(lambda: session.stats().messages_in >= 4)
        assert session.resumption_handle == handle
        emulator.drop()
        assert wait_for(lambda: len(emulator.connections) == 2 and emulator.connections[1].setup)
        assert emulator.connections[1].setup["sessionResumption"]["handle"] == handle


def test_expired_handle_falls_back_to_a_fresh_session(make_emulator: Any) -> None:
    """A refused resume starts a fresh session by default and reports resumed=False."""
    emu = make_emulator()
    rec = Recorder()
    with connect(emu, on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        emu.refuse_next_resume()
        emu.drop()
        event = rec.wait("on_reconnect")[0]
        assert not event.resumed
        assert session.ask("hello", timeout=10 * TIMEOUT).text
        assert session.stats().fresh == 1
    assert "handle" not in emu.connections[-1].setup["sessionResumption"]


def test_expired_handle_with_fail_policy_ends_the_session(emulator: Any) -> None:
    """With on_resume_refused='fail', a refused resume ends the session with the error."""
    rec = Recorder()
    policy = ReconnectPolicy(initial_delay=0.01, on_resume_refused="fail")
    session = connect(emulator, reconnect=policy, on_close=rec.on_close)
    assert wait_for(lambda: session.resumption_handle is not None)
    emulator.refuse_next_resume()
    emulator.drop()
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, SessionClosedError)
    assert closed.code == 1008
    assert len(emulator.connections) == 2


@pytest.mark.parametrize("code", [1007, 1008])
def test_fatal_codes_are_never_retried(emulator: Any, code: int) -> None:
    """1007/1008 end the session at once; no second connection is made."""
    rec = Recorder()
    session = connect(emulator, on_close=rec.on_close)  # noqa: F841 (kept referenced)
    emulator.close(code, "Request contains an invalid argument.")
    closed = rec.wait("on_close")[0]
    assert closed.code == code and isinstance(closed.error, SessionClosedError)
    assert len(emulator.connections) == 1


def _close_every_connection(emu: Any, rec: Recorder, code: int, reason: str) -> None:
    """Close each new connection right after its setupComplete until the session ends."""
    closed_ids: set = set()
    while not rec.get("on_close"):
        ready = [c for c in emu.connections if c.open and c.session_id and c.id not in closed_ids]
        for conn in ready:
            closed_ids.add(conn.id)
            emu.close(code, reason, conn=conn)
        emu.wait_for(lambda: bool(rec.get("on_close")) or any(
            c.open and c.session_id and c.id not in closed_ids for c in emu.connections))


@pytest.mark.parametrize("fallback", ["fresh", "fail"])
def test_storm_breaker_falls_back_then_gives_up(emulator: Any, fallback: str) -> None:
    """The same close right after setupComplete again and again is a poisoned resume:
    with on_resume_refused='fresh' livesync starts a fresh session once, then gives up
    with ReconnectExhausted; with 'fail' it gives up at once."""
    rec = Recorder()
    policy = ReconnectPolicy(initial_delay=0.001, max_delay=0.005, storm_threshold=3,
                             on_resume_refused=fallback)
    session = connect(emulator, reconnect=policy, on_close=rec.on_close)  # noqa: F841 (kept referenced)
    _close_every_connection(emulator, rec, 1011, "Internal error encountered.")
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, ReconnectExhausted)
    assert "storm" in str(closed.error)
    assert closed.code == 1011 and closed.reason == "Internal error encountered."
    connections = emulator.connections
    if fallback == "fresh":
        assert len(connections) == 6
        assert "handle" not in connections[3].setup["sessionResumption"]
        assert len(emulator.sessions) == 2
    else:
        assert len(connections) == 3


def test_separate_recovered_drops_do_not_add_up(emulator: Any) -> None:
    """Issue 8 item 2: drops each followed by a useful connection never trip the breaker."""
    rec = Recorder()
    policy = ReconnectPolicy(initial_delay=0.001, max_delay=0.005, storm_threshold=2)
    with connect(emulator, reconnect=policy, on_reconnect=rec.on_reconnect,
                 on_close=rec.on_close) as session:
        for n in range(1, 6):
            session.ask("hello %d" % n, timeout=10 * TIMEOUT)  # the connection is useful
            emulator.close(1011, "Internal error encountered.")
            rec.wait("on_reconnect", n)
        assert session.ask("still there?", timeout=10 * TIMEOUT).text
    assert not rec.get("on_close")[0].error


def test_attempts_exhausted_carry_the_history(emulator: Any) -> None:
    """When every attempt is refused (503), ReconnectExhausted lists the attempts."""
    rec = Recorder()
    policy = ReconnectPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002,
                             storm_threshold=10)
    session = connect(emulator, reconnect=policy, on_close=rec.on_close)  # noqa: F841 (kept referenced)
    emulator.refuse_upgrades(3, status=503)
    emulator.drop()
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, ReconnectExhausted)
    assert [a.status_code for a in closed.error.attempts] == [503, 503, 503]


def test_http_401_on_reconnect_is_fatal(emulator: Any) -> None:
    """An auth refusal during a reconnect ends the session instead of looping."""
    rec = Recorder()
    session = connect(emulator, on_close=rec.on_close)  # noqa: F841 (kept referenced)
    emulator.refuse_next_upgrade(status=401)
    emulator.drop()
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, SessionClosedError)
    assert isinstance(closed.error.__cause__, livesync.InvalidStatus)


def test_close_during_backoff_returns_promptly(emulator: Any) -> None:
    """close() while waiting out a long backoff returns at once."""
    policy = ReconnectPolicy(initial_delay=60.0, max_delay=60.0, jitter=False)
    session = connect(emulator, reconnect=policy)
    emulator.drop()
    assert wait_for(lambda: session.state == "reconnecting")
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < 2 * TIMEOUT
    assert session.closed


def test_sends_during_reconnect_are_queued_and_flushed_in_order(emulator: Any) -> None:
    """Text sent while disconnected arrives after the resume, in order, exactly once."""
    policy = ReconnectPolicy(initial_delay=0.3, max_delay=0.3, jitter=False)
    with connect(emulator, reconnect=policy) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        emulator.drop()
        assert wait_for(lambda: session.state == "reconnecting")
        for i in range(5):
            session.send_realtime_input(text="queued-%d" % i)
        assert wait_for(lambda: len(emulator.connections) == 2 and
                        len(client_messages(emulator.connections[1])) == 5, 10 * TIMEOUT)
    texts = realtime(emulator.connections[1], "text")
    assert texts == ["queued-%d" % i for i in range(5)]


def test_tool_response_survives_a_forced_rotation(make_emulator: Any) -> None:
    """A tool response sent while the connection rotates is delivered on the new one,
    and the model's answer uses it."""
    emu = make_emulator()
    config = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": [
        {"name": "get_current_weather", "description": "weather",
         "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}}}]}]}
    rec = Recorder()
    with connect(emu, config=config, on_reconnect=rec.on_reconnect,
                 on_message=rec.on_message) as session:
        session.send_text("What is the weather in Paris?")
        (message,) = rec.wait("on_message", where=lambda m: m.tool_call is not None)
        emu.send_go_away(time_left=0.2)
        rec.wait("on_reconnect")
        call = message.tool_call.function_calls[0]
        session.send_tool_response([livesync.FunctionResponse(
            id=call.id, name=call.name, response={"result": "18C"})])
        rec.wait("on_message", where=lambda m: "18C" in (m.text or ""))


def test_fifty_rotations_without_growth(
    make_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """50 consecutive rotations: no thread growth, bounded memory, all planned and resumed."""
    caplog.set_level(logging.WARNING, logger="livesync")  # captured records are not leaks
    emu = make_emulator()
    rec = Recorder()
    with connect(emu, on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        baseline_threads = threading.active_count()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1, 51):
            emu.send_go_away(time_left=10.0)
            rec.wait("on_reconnect", n, timeout=10 * TIMEOUT)
            assert wait_for(lambda: emu.connections[-1].open and
                            session.resumption_handle is not None)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert threading.active_count() <= baseline_threads + 1
        assert growth < 2_000_000
        assert session.stats().rotations_planned == 50
    assert all(e.planned and e.resumed for e in rec.get("on_reconnect"))


def test_token_provider_is_called_on_every_dial(emulator: Any) -> None:
    """The credential provider runs for each connection (bearer refresh)."""
    tokens = ["tok-%d" % i for i in range(3)]
    for t in tokens:
        emulator.bearer_tokens.add(t)
    issued: List[str] = []

    def provider() -> str:
        issued.append(tokens[len(issued)])
        return issued[-1]

    client = livesync.Client(vertexai=True, project="p", location="us-central1",
                             token_provider=provider, base_url=emulator.base_url)
    rec = Recorder()
    with client.connect(MODEL, config=TEXT, reconnect=FAST, on_reconnect=rec.on_reconnect):
        emulator.drop()
        rec.wait("on_reconnect")
    assert issued == ["tok-0", "tok-1"]


def test_file_handle_store_resumes_after_a_restart(emulator: Any, tmp_path: Any) -> None:
    """A new process (here: a new client) resumes the stored session with its history."""
    store = livesync.FileHandleStore(tmp_path / "handles.json")
    updates = Recorder()
    with connect(emulator, handle_store=store, session_key="chat",
                 on_resumption_update=updates.on_resumption_update) as first:
        first.ask("My name is Ada.", timeout=10 * TIMEOUT)
        # ask() returns at turnComplete; the handle issued after the turn comes later.
        # Wait for it (the second resumable update; the first follows setupComplete)
        # and for the store to hold it.
        setup_update, turn_update = updates.wait(
            "on_resumption_update", 2, where=lambda u: u.resumable and bool(u.new_handle))
        handle = turn_update.new_handle
        assert handle != setup_update.new_handle
        assert wait_for(lambda: store.load("chat") is not None and
                        store.load("chat").handle == handle)
        assert first.resumption_handle == handle
    rec = Recorder()
    again = livesync.FileHandleStore(tmp_path / "handles.json")
    with connect(emulator, handle_store=again, session_key="chat", on_open=rec.on_open):
        assert rec.wait("on_open")[0].resumed
    assert emulator.connections[1].setup["sessionResumption"] == {"handle": handle}
    assert len(emulator.sessions) == 1  # the same server-side session continued


def test_keepalive_timeout_resumes_on_a_new_connection(emulator: Any) -> None:
    """A server that stops answering pings is declared dead and the session resumes."""
    rec = Recorder()
    with connect(emulator, ping_interval=0.1, ping_timeout=0.2,
                 on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        emulator.stall()
        event = rec.wait("on_reconnect")[0]
        assert event.cause == "keepalive timeout" and event.resumed and not event.planned
        assert session.ask("hello", timeout=10 * TIMEOUT).text


def test_warns_before_the_uncompressed_audio_limit(
    emulator: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audio without context window compression warns ahead of the session limit."""
    import livesync._driver

    monkeypatch.setattr(livesync._driver, "AUDIO_SESSION_LIMIT", 0.2)  # 15 min, scaled
    with connect(emulator, ping_interval=0.05) as session:
        session.send_audio(pcm(20, loud=False))
        assert wait_for(lambda: "context window compression" in caplog.text)
    caplog.clear()
    config = {"response_modalities": ["TEXT"],
              "context_window_compression": {"sliding_window": {}}}
    with connect(emulator, config=config, ping_interval=0.05) as session:
        session.send_audio(pcm(20, loud=False))
        # Past the (scaled) limit, still no warning:
        assert not wait_for(lambda: "context window compression" in caplog.text, 0.5)


def test_connect_with_a_refused_explicit_handle_fails(emulator: Any) -> None:
    """Issue 8 item 7: connect(resumption_handle=…) that the server refuses raises
    SetupRejected saying so, instead of silently starting a fresh session."""
    with pytest.raises(livesync.SetupRejected) as info:
        connect(emulator, resumption_handle="Cg-unknown-handle-0123456789abcdef")
    assert info.value.code == 1008 and "resumption handle was refused" in str(info.value)
    assert "Cg-unknown" not in str(info.value)


def test_a_refused_stored_handle_starts_fresh(emulator: Any) -> None:
    """A handle from the handle store that the server refuses starts a fresh session
    (on_open says resumed=False), or fails with on_resume_refused='fail'."""
    store = livesync.MemoryHandleStore()
    store.save("chat", livesync.StoredHandle("Cg-unknown-handle-0123456789abcdef", time.time()))
    rec = Recorder()
    with connect(emulator, handle_store=store, session_key="chat",
                 on_open=rec.on_open) as session:
        assert not rec.wait("on_open")[0].resumed
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    store.save("chat", livesync.StoredHandle("Cg-unknown-handle-0123456789abcdef", time.time()))
    with pytest.raises(livesync.SetupRejected) as info:
        connect(emulator, handle_store=store, session_key="chat",
                reconnect=ReconnectPolicy(on_resume_refused="fail"))
    assert info.value.code == 1008


def test_an_outage_of_refused_upgrades_is_ridden_out(emulator: Any) -> None:
    """Issue 8 item 1: seconds of HTTP 503 on every upgrade are an outage, not a storm:
    the session keeps trying (backoff) and resumes once the server is back."""
    rec = Recorder()
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, storm_threshold=2)
    with connect(emulator, reconnect=policy, on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        emulator.refuse_upgrades_for(4 * TIMEOUT, status=503)
        emulator.drop()
        event = rec.wait("on_reconnect", timeout=20 * TIMEOUT)[0]
        assert event.resumed and event.attempts > 5
        refused = [u for u in emulator.upgrades if u.status == 503]
        assert len(refused) >= 5
        assert session.ask("hello", timeout=10 * TIMEOUT).text


def test_retry_after_is_honoured(emulator: Any) -> None:
    """A 503 with Retry-After makes the next attempt wait at least that long."""
    rec = Recorder()
    with connect(emulator, reconnect=FAST, on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        emulator.refuse_next_upgrade(status=503, retry_after=2 * TIMEOUT)
        emulator.drop()
        rec.wait("on_reconnect", timeout=20 * TIMEOUT)
        accepted = [u for u in emulator.upgrades if u.status == 101]
        assert len(accepted) == 2
        connections = emulator.connections
        assert connections[1].opened_at - connections[0].closed_at >= 2 * TIMEOUT * 0.9


def test_a_failing_token_provider_is_retried_during_a_reconnect(emulator: Any) -> None:
    """Issue 8 item 3: a credential that fails once during a reconnect is retried."""
    calls: List[int] = []

    def provider() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("metadata server hiccup")
        return emulator.api_key

    client = livesync.Client(vertexai=True, project="p", location="us-central1",
                             token_provider=provider, base_url=emulator.base_url)
    rec = Recorder()
    with client.connect(MODEL, config=TEXT, reconnect=FAST, on_reconnect=rec.on_reconnect):
        emulator.drop()
        event = rec.wait("on_reconnect")[0]
    assert event.attempts == 2 and len(calls) == 3


@pytest.mark.parametrize("provider", [
    lambda: (_ for _ in ()).throw(RuntimeError("no credentials")),
    lambda: None,
], ids=["raises", "returns-none"])
def test_a_failing_token_provider_fails_connect_quickly(emulator: Any, provider: Any) -> None:
    """Issue 8 item 3: connect() raises a ConnectError instead of hanging; no thread leaks."""
    client = livesync.Client(vertexai=True, project="p", location="us-central1",
                             token_provider=provider, base_url=emulator.base_url)
    started = time.monotonic()
    with pytest.raises(livesync.ConnectError) as info:
        client.connect(MODEL, config=TEXT, open_timeout=4 * TIMEOUT)
    assert time.monotonic() - started < 4 * TIMEOUT
    assert "token_provider" in str(info.value)


def test_reconnected_cause_is_what_ended_the_connection(emulator: Any) -> None:
    """Issue 8 item 6: the cause names the server's close code and reason, not the
    failed attempts after it (those are counted in attempts)."""
    rec = Recorder()
    with connect(emulator, on_reconnect=rec.on_reconnect) as session:
        assert wait_for(lambda: session.resumption_handle is not None)
        emulator.refuse_upgrades(2, status=503)
        emulator.close(1011, "Internal error encountered.")
        event = rec.wait("on_reconnect")[0]
    assert event.cause == "close 1011 Internal error encountered."
    assert event.attempts == 3
