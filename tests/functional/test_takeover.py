"""Leases and hand-over of a session key between sessions, against the emulator.

Both sessions live in this process and share one ``MemoryHandleStore`` (the
Redis store is covered in test_redis_store.py and test_flask_app.py): what
matters here is the sequence — the holder finishes at a safe point, saves its
handle, closes, releases; the newcomer resumes with that handle.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List

import pytest

import livesync
import livesync._lease
from livesync import SessionBusy, SessionClosedError, SessionHandedOver
from tests.utils import TIMEOUT, Recorder, client_messages, wait_for

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
FAST = livesync.ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


def connect(emu: Any, store: Any, **kwargs: Any) -> livesync.Session:
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    kwargs.setdefault("config", TEXT)
    kwargs.setdefault("reconnect", FAST)
    return client.connect(MODEL, handle_store=store, session_key="chat", **kwargs)


def texts(emu: Any) -> List[str]:
    """The user texts the server consumed, over the whole (single) server session."""
    (record,) = emu.sessions.values()
    return [m.message["clientContent"]["turns"][0]["parts"][0]["text"]
            for m in client_messages(record) if "clientContent" in m.message]


def saved(store: Any, session: livesync.Session) -> bool:
    stored = store.load("chat")
    return stored is not None and stored.handle == session.resumption_handle


def test_a_held_key_raises_session_busy_before_dialing(emulator: Any) -> None:
    """Without takeover, a second connect with a held key raises SessionBusy naming the
    key and the way to hand over; nothing is dialed and the holder is unaffected."""
    store = livesync.MemoryHandleStore()
    with connect(emulator, store) as holder:
        upgrades = len(emulator.upgrades)
        with pytest.raises(SessionBusy) as info:
            connect(emulator, store)
        assert isinstance(info.value, livesync.ConnectError)
        assert "'chat'" in str(info.value) and "takeover=True" in str(info.value)
        assert info.value.session_key == "chat" and info.value.waited is None
        assert len(emulator.upgrades) == upgrades
        assert holder.ask("hello", timeout=10 * TIMEOUT).text


def test_the_lease_is_renewed_while_the_holder_lives(emulator: Any) -> None:
    """A holder keeps its lease past several lease lifetimes: the supervisor renews it."""
    store = livesync.MemoryHandleStore(lease_ttl=0.3)
    with connect(emulator, store):
        # If renewals stopped, the probe would get the lease after 0.3 s.
        assert not wait_for(lambda: store.acquire_lease("chat", "probe"), 1.5)
    assert store.acquire_lease("chat", "probe")  # released at close


def test_an_idle_holder_hands_over_promptly(emulator: Any) -> None:
    """takeover=True: the idle holder saves its handle, closes and ends with
    SessionHandedOver (on_close, sends); the newcomer resumes the same server
    session and the conversation goes on, each user turn consumed once."""
    store = livesync.MemoryHandleStore()
    rec = Recorder()
    holder = connect(emulator, store, on_close=rec.on_close)
    holder.ask("My name is Ada.", timeout=10 * TIMEOUT)
    assert wait_for(lambda: saved(store, holder))  # the handle issued after the turn
    new = Recorder()
    started = time.monotonic()
    with connect(emulator, store, takeover=True, on_open=new.on_open) as newcomer:
        took = time.monotonic() - started
        (closed,) = rec.wait("on_close")
        assert isinstance(closed.error, SessionHandedOver)
        assert (closed.code, closed.reason) == (1000, "handed over")
        with pytest.raises(SessionHandedOver):
            holder.send_text("too late")
        assert holder.wait_closed(0) is True  # a hand-over is not an error
        assert new.wait("on_open")[0].resumed
        assert newcomer.ask("What did I say?", timeout=10 * TIMEOUT).text == (
            "Earlier you said: My name is Ada.")
        assert emulator.connections[1].setup["sessionResumption"] == {
            "handle": closed.resumption_handle}
    # Prompt: the holder polls every TAKEOVER_POLL, far below HANDOVER_TIMEOUT.
    assert took < livesync._lease.TAKEOVER_POLL + 6 * TIMEOUT
    assert len(emulator.sessions) == 1
    assert texts(emulator) == ["My name is Ada.", "What did I say?"]
    assert emulator.connections[0].client_close_code == 1000


def test_a_holder_mid_reply_hands_over_after_the_reply(make_emulator: Any) -> None:
    """A takeover requested while the holder's reply streams waits for the reply to
    end: the holder's ask() gets the complete turn, then the newcomer resumes."""
    emulator = make_emulator(chunk_delay=0.02, text_chunk_chars=4)
    store = livesync.MemoryHandleStore()
    rec = Recorder()
    holder = connect(emulator, store, on_message=rec.on_message, on_close=rec.on_close)
    result: Dict[str, Any] = {}

    def ask() -> None:
        try:
            result["turn"] = holder.ask("count to 40", timeout=20 * TIMEOUT)
        except BaseException as exc:  # reported below
            result["error"] = exc

    asker = threading.Thread(target=ask, name="test-asker")
    asker.start()
    try:
        rec.wait("on_message", where=lambda m: m.server_content is not None)  # mid-reply
        with connect(emulator, store, takeover=True, takeover_timeout=40 * TIMEOUT) as newcomer:
            asker.join(10 * TIMEOUT)
            assert "error" not in result, result
            assert result["turn"].text.endswith("39, 40.")
            assert isinstance(rec.wait("on_close")[0].error, SessionHandedOver)
            # The whole reply went out on the holder's connection before it closed.
            first = emulator.connections[0]
            assert any((m.get("serverContent") or {}).get("turnComplete") for m in first.sent)
            assert newcomer.ask("What did I say?", timeout=10 * TIMEOUT).text == (
                "Earlier you said: count to 40")
    finally:
        asker.join(10 * TIMEOUT)
        holder.close()
    assert len(emulator.sessions) == 1
    assert texts(emulator) == ["count to 40", "What did I say?"]


def test_a_dead_holder_is_taken_over_after_its_lease_expires(emulator: Any) -> None:
    """A holder that died (its lease is no longer renewed) blocks the key until the
    lease expires; takeover=True then resumes with the last saved handle."""
    store = livesync.MemoryHandleStore(lease_ttl=4 * TIMEOUT)
    with connect(emulator, store) as first:
        first.ask("My name is Ada.", timeout=10 * TIMEOUT)
        assert wait_for(lambda: saved(store, first))
    # A worker that took the lease and died: nobody renews or releases it.
    assert store.acquire_lease("chat", "dead-worker")
    with pytest.raises(SessionBusy):
        connect(emulator, store)
    rec = Recorder()
    started = time.monotonic()
    with connect(emulator, store, takeover=True, takeover_timeout=20 * TIMEOUT,
                 on_open=rec.on_open) as newcomer:
        assert time.monotonic() - started >= 3 * TIMEOUT  # waited for the expiry
        assert rec.wait("on_open")[0].resumed
        assert newcomer.ask("What did I say?", timeout=10 * TIMEOUT).text == (
            "Earlier you said: My name is Ada.")
    assert len(emulator.sessions) == 1


def test_takeover_gives_up_after_takeover_timeout(emulator: Any) -> None:
    """A holder that never hands over (here: a lease nobody polls) makes
    connect(takeover=True) raise SessionBusy after takeover_timeout, and the
    request is withdrawn."""
    store = livesync.MemoryHandleStore(lease_ttl=60.0)
    assert store.acquire_lease("chat", "stuck-worker")
    started = time.monotonic()
    with pytest.raises(SessionBusy) as info:
        connect(emulator, store, takeover=True, takeover_timeout=2 * TIMEOUT)
    assert 2 * TIMEOUT <= time.monotonic() - started < 8 * TIMEOUT
    assert info.value.waited == pytest.approx(2 * TIMEOUT)
    assert "after waiting" in str(info.value)
    assert store.takeover_requested("chat") is None
    assert emulator.upgrades == []


def test_a_holder_without_a_safe_point_hands_over_after_the_bound(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A holder that never reaches a safe point (a tool call left unanswered) hands
    over anyway after HANDOVER_TIMEOUT, with a WARNING."""
    monkeypatch.setattr(livesync._lease, "HANDOVER_TIMEOUT", 4 * TIMEOUT)
    config = dict(TEXT, tools=[{"function_declarations": [
        {"name": "get_weather", "description": "weather"}]}])
    store = livesync.MemoryHandleStore()
    rec = Recorder()
    holder = connect(emulator, store, config=config, on_message=rec.on_message,
                     on_close=rec.on_close)
    try:
        holder.send_text("get weather please")
        rec.wait("on_message", where=lambda m: m.tool_call is not None)  # never answered
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="livesync.session"):
            with connect(emulator, store, config=config, takeover=True,
                         takeover_timeout=40 * TIMEOUT):
                assert time.monotonic() - started >= 4 * TIMEOUT
                assert isinstance(rec.wait("on_close")[0].error, SessionHandedOver)
        assert "before a safe point" in caplog.text
    finally:
        holder.close()


def test_a_lost_lease_ends_the_session_without_touching_the_new_holders_handle(
    emulator: Any,
) -> None:
    """A holder whose lease expired and went to another owner stops at its next
    renewal with SessionClosedError and never saves over the new owner's handle."""
    now = [time.time()]
    store = livesync.MemoryHandleStore(lease_ttl=0.3, clock=lambda: now[0])
    rec = Recorder()
    holder = connect(emulator, store, on_close=rec.on_close,
                     on_resumption_update=rec.on_resumption_update)
    try:
        holder.ask("hello", timeout=10 * TIMEOUT)
        # The handle issued after the turn (the second) is saved: nothing left to save.
        rec.wait("on_resumption_update", 2, where=lambda u: u.resumable and bool(u.new_handle))
        assert wait_for(lambda: saved(store, holder))
        other = livesync.StoredHandle("Cg-other-owners-handle-0123456789", now[0])
        now[0] += 1.0  # the lease expired (as if the holder had hung)
        assert store.acquire_lease("chat", "new-owner")
        store.save("chat", other)
        (closed,) = rec.wait("on_close")
        assert isinstance(closed.error, SessionClosedError)
        assert "lease lost" in str(closed.error)
        assert store.load("chat") == other
        with pytest.raises(SessionClosedError):
            holder.send_text("too late")
    finally:
        holder.close()
    assert store.takeover_requested("chat") is None
    assert not store.acquire_lease("chat", "third")  # still the new owner's


def test_close_forget_deletes_the_handle_and_releases_the_lease(emulator: Any) -> None:
    """close(forget=True) deletes the stored handle and frees the key: the next
    connect starts a new conversation."""
    store = livesync.MemoryHandleStore()
    session = connect(emulator, store)
    session.ask("My name is Ada.", timeout=10 * TIMEOUT)
    assert wait_for(lambda: saved(store, session))
    session.close(forget=True)
    assert store.load("chat") is None
    rec = Recorder()
    with connect(emulator, store, on_open=rec.on_open) as again:
        assert not rec.wait("on_open")[0].resumed
        assert again.ask("What did I say?", timeout=10 * TIMEOUT).text == (
            "You have not said anything before.")
    assert len(emulator.sessions) == 2


def test_close_forget_on_a_handed_over_session_keeps_the_conversation(emulator: Any) -> None:
    """close(forget=True) on a session that was handed over never deletes the new
    holder's handle; on a session that just ended, it deletes its own."""
    store = livesync.MemoryHandleStore()
    holder = connect(emulator, store)
    holder.ask("hello", timeout=10 * TIMEOUT)
    assert wait_for(lambda: saved(store, holder))
    with connect(emulator, store, takeover=True) as newcomer:
        assert holder.wait_closed(10 * TIMEOUT)
        holder.close(forget=True)
        assert store.load("chat") is not None
        assert newcomer.ask("hello again", timeout=10 * TIMEOUT).text
    assert store.load("chat") is not None
    newcomer.close(forget=True)  # already closed: deletes, since nobody holds the key
    assert store.load("chat") is None


def test_takeover_needs_a_store_with_leases(emulator: Any, tmp_path: Any) -> None:
    """takeover=True with a store without leases (or no store) is an InvalidConfig;
    such a store still works without leases."""
    files = livesync.FileHandleStore(tmp_path / "handles.json")
    for kwargs in ({"handle_store": files, "session_key": "chat"}, {}):
        with pytest.raises(livesync.InvalidConfig) as info:
            livesync.Client(api_key=emulator.api_key, base_url=emulator.base_url).connect(
                MODEL, config=TEXT, takeover=True, **kwargs)
        assert info.value.field == "takeover"
    with pytest.raises(livesync.InvalidConfig) as info:
        connect(emulator, livesync.MemoryHandleStore(), takeover="yes")
    assert info.value.field == "takeover"
    client = livesync.Client(api_key=emulator.api_key, base_url=emulator.base_url)
    with client.connect(MODEL, config=TEXT, handle_store=files, session_key="chat"):
        pass


def test_a_holder_waits_until_its_audio_is_covered_by_a_handle(emulator: Any) -> None:
    """Audio the holder sent after its last handle would be lost with its replay
    buffer: it hands over only once a handle covers it, and the resumed server
    session holds that audio exactly once."""
    store = livesync.MemoryHandleStore()
    holder = connect(emulator, store)
    result: Dict[str, Any] = {}

    def take_over() -> None:
        try:
            result["session"] = connect(emulator, store, takeover=True,
                                        takeover_timeout=40 * TIMEOUT)
        except BaseException as exc:  # reported below
            result["error"] = exc

    newcomer = threading.Thread(target=take_over, name="test-newcomer")
    try:
        holder.ask("hello", timeout=10 * TIMEOUT)
        assert wait_for(lambda: saved(store, holder))
        holder.send_audio(b"\x00\x00" * 1600)  # 100 ms of silence: no turn, no handle
        newcomer.start()
        assert wait_for(lambda: store.takeover_requested("chat") is not None)
        # The holder sees the request within TAKEOVER_POLL but must not go yet.
        assert not wait_for(lambda: "session" in result or holder.closed,
                            livesync._lease.TAKEOVER_POLL + 2 * TIMEOUT)
        emulator.issue_handle(emulator.connections[0])
        newcomer.join(20 * TIMEOUT)
        assert "session" in result, result
        result["session"].close()
    finally:
        newcomer.join(20 * TIMEOUT)
        holder.close()
    (record,) = emulator.sessions.values()
    audio = [m for m in client_messages(record) if "audio" in m.message.get("realtimeInput", {})]
    assert len(audio) == 1
