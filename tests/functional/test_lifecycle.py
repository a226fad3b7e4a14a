"""Lifecycle and bad input (issue 8): close semantics, bounded delivery, validation, exits."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from typing import Any, List

import pytest

import livesync
from livesync import InvalidConfig
from tests.utils import TIMEOUT, Recorder, client_messages, wait_for

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}


def client_for(emu: Any) -> livesync.Client:
    return livesync.Client(api_key=emu.api_key, base_url=emu.base_url)


def connect(emu: Any, **kwargs: Any) -> livesync.Session:
    kwargs.setdefault("config", TEXT)
    return client_for(emu).connect(MODEL, **kwargs)


def test_ctrl_c_in_a_with_block_closes_normally_and_reraises(emulator: Any) -> None:
    """Item 9: KeyboardInterrupt inside `with` closes with 1000 (not 1011) and propagates."""
    with pytest.raises(KeyboardInterrupt):
        with connect(emulator):
            raise KeyboardInterrupt
    assert emulator.wait_closed(emulator.connections[0]).client_close_code == 1000


def test_a_dropped_session_is_closed_with_a_resource_warning(emulator: Any) -> None:
    """Item 9: a session whose last reference is gone (a re-run notebook cell) is closed
    instead of rotating for hours, and a ResourceWarning says so."""
    session = connect(emulator)
    name = "livesync-supervisor-" + session.id
    with pytest.warns(ResourceWarning, match="not closed"):
        del session
        gc.collect()
    record = emulator.wait_closed(emulator.connections[0])
    assert record.client_close_code == 1000
    assert wait_for(lambda: all(t.name != name for t in threading.enumerate()))


def test_client_closes_every_session_it_opened(emulator: Any) -> None:
    """Item 9: Client is a context manager; client.sessions lists the open sessions."""
    with client_for(emulator) as client:
        first = client.connect(MODEL, config=TEXT)
        second = client.connect(MODEL, config=TEXT)
        assert set(client.sessions) == {first, second}
        first.close()
        assert client.sessions == [second]
    assert second.closed and client.sessions == []


def test_interpreter_exit_closes_open_sessions(emulator: Any) -> None:
    """Item 9: at interpreter exit an open session gets a bounded close (1001)."""
    script = (
        "import livesync\n"
        "client = livesync.Client(api_key=%r, base_url=%r)\n"
        "session = client.connect(%r, config={'response_modalities': ['TEXT']})\n"
        "print('connected', flush=True)\n" % (emulator.api_key, emulator.base_url, MODEL)
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60 * TIMEOUT)
    assert done.returncode == 0 and "connected" in done.stdout, done.stderr
    assert time.monotonic() - started < 40 * TIMEOUT
    assert emulator.wait_closed(emulator.connections[0]).client_close_code == 1001


@pytest.mark.parametrize("code", [70000, 1005, 1006, 1015, 2999, "abc", True])
def test_close_refuses_codes_a_client_may_not_send(emulator: Any, code: Any) -> None:
    """Item 7: close() checks the code before anything goes out."""
    with connect(emulator) as session:
        with pytest.raises(InvalidConfig) as info:
            session.close(code)
        assert info.value.field == "code" and not session.closed


def test_close_reason_is_cut_at_a_character_boundary(emulator: Any) -> None:
    """Item 7: a long reason is cut to 123 bytes without splitting a UTF-8 character."""
    session = connect(emulator)
    session.close(4000, "é" * 100)
    record = emulator.wait_closed(emulator.connections[0])
    assert record.client_close_code == 4000


def test_unencodable_text_is_refused_before_it_is_buffered(emulator: Any) -> None:
    """Item 4: a lone surrogate raises InvalidConfig (without the text), nothing is queued,
    and the session and its next reconnect are unaffected."""
    rec = Recorder()
    secret = "my private prompt \ud800"
    with connect(emulator, on_reconnect=rec.on_reconnect,
                 reconnect=livesync.ReconnectPolicy(initial_delay=0.01)) as session:
        with pytest.raises(InvalidConfig) as info:
            session.send_text(secret)
        assert "private" not in str(info.value) and info.value.__cause__ is None
        assert info.value.__suppress_context__
        emulator.drop()
        assert rec.wait("on_reconnect")[0].resumed
        assert session.ask("hello", timeout=10 * TIMEOUT).text


def test_unencodable_setup_fails_connect_before_any_io(emulator: Any) -> None:
    """Item 3: a system instruction that cannot be encoded fails connect() at once."""
    with pytest.raises(InvalidConfig) as info:
        connect(emulator, config={"response_modalities": ["TEXT"],
                                  "system_instruction": "be kind \udc00"})
    assert info.value.field == "config"
    assert emulator.upgrades == []


def test_ask_with_a_bad_timeout_sends_nothing(emulator: Any) -> None:
    """Item 7: ask(timeout=-1) raises before the question is sent."""
    with connect(emulator) as session:
        with pytest.raises(InvalidConfig):
            session.ask("hello", timeout=-1)
        assert not client_messages(emulator.connections[0])


def test_close_stops_delivery(make_emulator: Any) -> None:
    """Item 5: after close() returns no callback starts but on_close, once; what was still
    queued is discarded and counted."""
    emu = make_emulator()
    calls: List[str] = []
    done = threading.Event()

    def slow(message: Any) -> None:
        calls.append("message")
        done.wait(TIMEOUT)  # the user's slow work

    session = connect(emu, on_message=slow, on_close=lambda c: calls.append("close"))
    session.send_text("count to 200")
    assert wait_for(lambda: len(emu.connections[0].sent) > 30)
    session.close(timeout=10 * TIMEOUT)
    after = list(calls)
    assert session.closed and after[-1] == "close" and after.count("close") == 1
    assert session.stats().discarded > 0
    done.set()
    assert calls == after


def test_a_slow_consumer_pauses_reading_instead_of_growing_memory(make_emulator: Any) -> None:
    """Item 5: callbacks max_queue messages behind make the reader wait (back-pressure);
    nothing is lost and everything arrives in order."""
    emu = make_emulator()
    texts: List[str] = []
    finished = threading.Event()

    def slow(message: Any) -> None:
        threading.Event().wait(0.002)  # the user's slow work
        if message.text:
            texts.append(message.text)
        if message.server_content and message.server_content.turn_complete:
            finished.set()

    with connect(emu, on_message=slow, max_queue=5) as session:
        session.send_text("count to 300")
        assert finished.wait(40 * TIMEOUT)
        stats = session.stats()
    assert stats.backpressure > 0
    assert "".join(texts) == ", ".join(str(i) for i in range(1, 301)) + "."


def test_a_generation_the_server_starts_is_watched_without_keepalive(emulator: Any) -> None:
    """The supervisor does not poll: a generation begun by the server alone (no client
    send woke it) still starts the stall watch, with pings off."""
    rec = Recorder()
    with connect(emulator, on_reconnect=rec.on_reconnect, ping_interval=None,
                 stall_timeout=2 * TIMEOUT,
                 reconnect=livesync.ReconnectPolicy(initial_delay=0.01)) as session:
        emulator.issue_handle()
        assert wait_for(lambda: session.resumption_handle is not None)
        emulator.send_raw({"serverContent": {"modelTurn": {"parts": [{"text": "Unasked"}]}}})
        event = rec.wait("on_reconnect", timeout=12 * TIMEOUT)[0]  # the safety net: 30 s
        assert event.cause.startswith("stall") and session.stats().stalls == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_idle_session_does_not_wake_its_supervisor(emulator: Any) -> None:
    """Nothing due, nothing happening: the supervisor sleeps (at 1,000 sessions a
    once-a-second poll each was most of livesync's CPU)."""
    with connect(emulator, ping_interval=None) as session:
        emulator.issue_handle()
        assert wait_for(lambda: session.resumption_handle is not None)
        supervisor = next(t for t in threading.enumerate()
                          if t.name == "livesync-supervisor-" + session.id)

        def switches() -> int:
            path = "/proc/self/task/%d/status" % supervisor.native_id
            with open(path) as status:
                line = next(x for x in status if x.startswith("voluntary_ctxt_switches"))
            return int(line.split()[1])

        assert wait_for(lambda: session.stats().messages_in >= 2)  # settled after the handle
        before = switches()
        threading.Event().wait(5 * TIMEOUT)  # the span measured, not a synchronisation
        assert switches() - before <= 1


def test_an_oversized_message_ends_the_session_with_1009(emulator: Any) -> None:
    """Item 5: a server message over max_message_size is refused unread; the session
    closes with 1009 instead of allocating it."""
    rec = Recorder()
    session = connect(emulator, on_close=rec.on_close, max_message_size=100_000)
    emulator.send_raw({"serverContent": {"modelTurn": {"parts": [{"text": "x" * 200_000}]}}})
    closed = rec.wait("on_close")[0]
    assert closed.code == 1009 and isinstance(closed.error, livesync.SessionClosedError)
    assert wait_for(lambda: session.closed)
    assert emulator.wait_closed(emulator.connections[0]).client_close_code == 1009


def test_a_server_silent_mid_turn_is_a_stall(make_emulator: Any) -> None:
    """Stall watchdog: the model stops mid-reply while the connection still answers
    pings; livesync drops it, resumes, replays the question and gets the full answer."""
    release = threading.Event()

    def responder(turn: Any) -> Any:
        if turn.connection_id != 1:
            return None  # the default model on the next connection

        def script() -> Any:
            yield {"serverContent": {"modelTurn": {"parts": [{"text": "I am thinking"}]}}}
            release.wait(30 * TIMEOUT)  # the model hangs; websockets still answers pings
        return script()

    emu = make_emulator(responder=responder)
    rec = Recorder()
    try:
        with connect(emu, on_reconnect=rec.on_reconnect, ping_interval=0.05,
                     ping_timeout=0.5, stall_timeout=2 * TIMEOUT,
                     reconnect=livesync.ReconnectPolicy(initial_delay=0.01)) as session:
            turn = session.ask("What is the capital of France?", timeout=20 * TIMEOUT)
            assert turn.text == "The capital of France is Paris."
            event = rec.wait("on_reconnect")[0]
            assert event.cause.startswith("stall") and event.resumed and event.replayed == 1
            assert session.stats().stalls == 1
    finally:
        release.set()
