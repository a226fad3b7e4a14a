"""Threaded session against the emulator: connect, callbacks, sending, receiving, closing."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, List

import pytest

import livesync
from livesync import (
    InvalidConfig,
    InvalidStatus,
    SessionClosedError,
    SessionClosedOK,
    SetupRejected,
)
from tests.utils import TIMEOUT, Recorder, client_messages, headers, wait_for

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}


def connect(emu: Any, **kwargs: Any) -> livesync.Session:
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    kwargs.setdefault("config", TEXT)
    return client.connect(MODEL, **kwargs)


def sent_payloads(emu: Any, conn: int = 0) -> List[dict]:
    return [m.message for m in client_messages(emu.connections[conn])]


# Connect.


def test_connect_returns_after_setup_complete_and_ask_answers(emulator: Any) -> None:
    """connect() returns an open session; ask() returns the joined text and usage of a turn."""
    with connect(emulator) as session:
        assert session.state == "open"
        turn = session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
    assert turn.text == "The capital of France is Paris."
    assert turn.usage is not None and turn.usage.total_token_count
    assert len([m for m in turn.messages if m.text]) >= 2  # streamed in chunks
    setup = emulator.connections[0].setup
    assert setup["model"] == "models/" + MODEL
    assert setup["sessionResumption"] == {}


def test_key_travels_in_header_not_url(emulator: Any) -> None:
    """The API key is sent as x-goog-api-key, never in the URL; user agent names livesync."""
    with connect(emulator):
        pass
    record = emulator.connections[0]
    assert emulator.api_key not in record.path and "key=" not in record.path
    assert record.path.endswith("v1beta.GenerativeService.BidiGenerateContent")
    assert headers(record).get("x-goog-api-key") == "[secure]"
    assert "livesync/" in headers(record).get("x-goog-api-client", "")


def test_ephemeral_token_uses_constrained_endpoint(emulator: Any) -> None:
    """An auth_tokens/ key switches to v1alpha BidiGenerateContentConstrained with Token auth."""
    import requests

    reply = requests.post(
        emulator.rest_url + "/v1alpha/auth_tokens", json={"uses": 1},
        headers={"x-goog-api-key": emulator.api_key}, timeout=5,
    )
    token = reply.json()["name"]
    client = livesync.Client(api_key=token, base_url=emulator.base_url)
    with client.connect(MODEL, config=TEXT) as session:
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    record = emulator.connections[0]
    assert "v1alpha.GenerativeService.BidiGenerateContentConstrained" in record.path
    assert headers(record).get("authorization") == "[secure]"


def test_vertex_bearer_from_token_provider(emulator: Any) -> None:
    """Vertex builds the model resource name and sends the provider's bearer token."""
    calls: List[int] = []

    def provider() -> str:
        calls.append(1)
        return emulator.api_key

    client = livesync.Client(vertexai=True, project="p", location="us-central1",
                             token_provider=provider, base_url=emulator.base_url)
    with client.connect(MODEL, config=TEXT) as session:
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    record = emulator.connections[0]
    assert "LlmBidiService/BidiGenerateContent" in record.path
    assert record.setup["model"] == (
        "projects/p/locations/us-central1/publishers/google/models/" + MODEL)
    assert calls == [1]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"config": {"response_modalities": ["TEXT", "AUDIO"]}}, None),
        ({"config": {"no_such_option": 1}}, None),
        ({"open_timeout": 0}, "open_timeout"),
        ({"reconnect": "yes"}, "reconnect"),
        ({"handle_store": livesync.MemoryHandleStore()}, "session_key"),
    ],
)
def test_bad_arguments_fail_before_any_io(emulator: Any, kwargs: dict, field: Any) -> None:
    """Bad config or arguments raise InvalidConfig at once; nothing reaches the server."""
    with pytest.raises(InvalidConfig) as info:
        connect(emulator, **kwargs)
    if field:
        assert info.value.field == field
    assert emulator.connections == []


def test_bad_model_and_missing_key_fail_before_any_io(emulator: Any) -> None:
    """A malformed model name or a missing key is reported before any connection."""
    client = livesync.Client(api_key="k", base_url=emulator.base_url)
    with pytest.raises(InvalidConfig, match="model"):
        client.connect("models/../evil?x=1")
    with pytest.raises(InvalidConfig, match="API key"):
        livesync.Client(base_url=emulator.base_url)
    assert emulator.connections == []


def test_unknown_model_is_rejected_with_the_server_reason(emulator: Any) -> None:
    """Setup rejected by the server (1008) raises SetupRejected with code and reason."""
    client = livesync.Client(api_key=emulator.api_key, base_url=emulator.base_url)
    started = time.monotonic()
    with pytest.raises(SetupRejected) as info:
        client.connect("gemini-no-such-model")
    assert info.value.code == 1008
    assert "is not found for API version v1beta" in info.value.reason
    assert time.monotonic() - started < 5 * TIMEOUT
    assert len(emulator.connections) == 1  # no retry


def test_wrong_key_is_rejected_with_1007(emulator: Any) -> None:
    """A wrong key surfaces as SetupRejected(1007) with the real reason, never retried."""
    client = livesync.Client(api_key="wrong-key", base_url=emulator.base_url)
    with pytest.raises(SetupRejected) as info:
        client.connect(MODEL)
    assert info.value.code == 1007 and "API key not valid" in info.value.reason
    assert "wrong-key" not in str(info.value)


def test_refused_upgrade_raises_invalid_status(emulator: Any) -> None:
    """An HTTP status on the upgrade raises InvalidStatus promptly, with the status."""
    emulator.refuse_next_upgrade(status=403, body="forbidden")
    with pytest.raises(InvalidStatus) as info:
        connect(emulator)
    assert info.value.status_code == 403


def test_connect_times_out_when_the_server_never_answers() -> None:
    """A server that accepts TCP but never answers the upgrade gives ConnectTimeout."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        url = "ws://127.0.0.1:%d" % server.getsockname()[1]
        client = livesync.Client(api_key="k", base_url=url)
        started = time.monotonic()
        with pytest.raises(livesync.ConnectTimeout):
            client.connect(MODEL, open_timeout=TIMEOUT)
        assert time.monotonic() - started < 4 * TIMEOUT
    finally:
        server.close()


def test_a_setup_that_never_completes_times_out(emulator: Any) -> None:
    """The upgrade succeeds but setupComplete never comes: ConnectTimeout after
    open_timeout, with the connection aborted (the supervisor reads the setup)."""
    emulator.stall_next_setup()
    started = time.monotonic()
    with pytest.raises(livesync.ConnectTimeout):
        connect(emulator, open_timeout=TIMEOUT)
    assert time.monotonic() - started < 4 * TIMEOUT


def test_close_during_a_stalled_setup_returns_promptly(emulator: Any) -> None:
    """close() while a reconnect waits for setupComplete ends that wait at once,
    not after open_timeout: it aborts the socket the supervisor is reading."""
    rec = Recorder()
    session = connect(emulator, open_timeout=60.0, on_close=rec.on_close)
    emulator.stall_next_setup()
    emulator.drop()
    wait_for(lambda: len(emulator.connections) == 2 and any(
        "setup" in m.message for m in client_messages(emulator.connections[1])))
    started = time.monotonic()
    session.close(timeout=30.0)
    assert time.monotonic() - started < 4 * TIMEOUT
    assert session.closed
    closed = rec.wait("on_close")[0]
    assert (closed.code, closed.error) == (1000, None)  # a user close, as documented


# Callbacks.


def test_callbacks_run_on_the_dispatcher_in_order(emulator: Any) -> None:
    """on_open first, on_message in server order on one dispatcher thread, on_close once."""
    rec = Recorder()
    session = connect(emulator, **rec.callbacks())
    session.send_text("What is the capital of France?")
    rec.wait("on_message",
             where=lambda m: bool(m.server_content and m.server_content.turn_complete))
    rec.wait("on_resumption_update", 2)
    session.close()
    session.close()  # idempotent
    assert len(rec.get("on_open")) == 1 and len(rec.get("on_close")) == 1
    closed = rec.get("on_close")[0]
    assert closed.code == 1000 and closed.error is None
    threads = {t for name in rec.threads for t in rec.threads[name]}
    assert threads == {"livesync-dispatch-%s" % session.id}
    kinds = [m.kind for m in rec.get("on_message")]
    assert kinds[0] == "setup_complete"
    text = "".join(m.text or "" for m in rec.get("on_message"))
    assert text == "The capital of France is Paris."
    assert rec.get("on_resumption_update")[0].resumable


def test_callback_exception_is_logged_counted_and_reported(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising callback is logged with traceback, counted, sent to on_error; session lives."""
    rec = Recorder()

    def bad(message: Any) -> None:
        raise RuntimeError("boom")

    with connect(emulator, on_message=bad, on_error=rec.on_error) as session:
        errors = rec.wait("on_error")
        assert isinstance(errors[0].error, RuntimeError) and errors[0].callback == "on_message"
        assert session.ask("hello", timeout=10 * TIMEOUT).text
        assert session.stats().callback_errors >= 1
    assert any(r.exc_info and r.levelno == logging.ERROR for r in caplog.records)


def test_fail_fast_ends_the_session_on_a_callback_error(emulator: Any) -> None:
    """With fail_fast, the first callback exception closes the session with that cause."""
    rec = Recorder()

    def bad(message: Any) -> None:
        raise RuntimeError("boom")

    session = connect(emulator, on_message=bad, on_close=rec.on_close, fail_fast=True)
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, SessionClosedError)
    assert isinstance(closed.error.__cause__, RuntimeError)
    with pytest.raises(SessionClosedError):
        session.wait_closed(5 * TIMEOUT)


def test_blocking_callback_does_not_stall_reading_pongs_or_goaway(make_emulator: Any) -> None:
    """A callback blocked for seconds: the reader keeps reading and answering the server's
    pings (0.3 s timeout), and a goAway still rotates the connection on time."""
    emu = make_emulator(ping_interval=0.1, ping_timeout=0.3)
    blocked = threading.Event()
    rec = Recorder()

    def slow(message: Any) -> None:
        if message.server_content and message.server_content.turn_complete:
            blocked.set()
            threading.Event().wait(6 * TIMEOUT)  # the user's slow work, not synchronisation

    session = connect(emu, on_message=slow, on_reconnect=rec.on_reconnect)
    try:
        session.send_text("What is the capital of France?")
        assert blocked.wait(10 * TIMEOUT)
        before = session.stats().messages_in
        emu.send_go_away(time_left=1.0)
        assert wait_for(lambda: session.stats().rotations_planned == 1, 5 * TIMEOUT)
        assert blocked.is_set() and len(rec.get("on_reconnect")) == 0  # still blocked
        assert session.stats().messages_in > before  # the reader went on reading
        assert emu.connections[0].client_close_code == 1000  # we closed it, not keepalive
        assert not wait_for(lambda: emu.connections[-1].close_code is not None, 4 * TIMEOUT)
    finally:
        session.close(timeout=10 * TIMEOUT)
    # close() discards what was still queued for callbacks, on_reconnect included.
    assert session.stats().rotations_planned == 1 and not rec.get("on_reconnect")
    assert all(c.close_code != 1011 for c in emu.connections)


# Sending.


def test_concurrent_sends_arrive_complete_and_in_per_thread_order(emulator: Any) -> None:
    """1,000 sends from 8 threads all arrive, each thread's in its own order.

    (Content without turnComplete: user turns are paced one generation at a time.)"""
    with connect(emulator) as session:
        def worker(n: int) -> None:
            for i in range(125):
                session.send_client_content(turns="t%d-%d" % (n, i), turn_complete=False)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wait_for(lambda: len(client_messages(emulator.connections[0])) >= 1000, 20 * TIMEOUT)
    texts = [p["clientContent"]["turns"][0]["parts"][0]["text"] for p in sent_payloads(emulator)
             if "clientContent" in p]
    assert len(texts) == 1000
    for n in range(8):
        mine = [t for t in texts if t.startswith("t%d-" % n)]
        assert mine == ["t%d-%d" % (n, i) for i in range(125)]
    indices = [m.index for m in client_messages(emulator.connections[0])]
    assert indices == list(range(1, len(indices) + 1))


def test_send_from_inside_a_callback(emulator: Any) -> None:
    """send_* works from a callback (the dispatcher thread)."""
    rec = Recorder()
    answered = threading.Event()

    def on_message(message: Any) -> None:
        rec.on_message(message)
        if message.setup_complete is not None:
            session_box[0].send_text("hello")
        if message.server_content and message.server_content.turn_complete:
            answered.set()

    session_box: List[Any] = []
    client = livesync.Client(api_key=emulator.api_key, base_url=emulator.base_url)
    # setupComplete is dispatched after connect returns the session object.
    gate = threading.Event()

    def gated(message: Any) -> None:
        gate.wait(5.0)
        on_message(message)

    session = client.connect(MODEL, config=TEXT, on_message=gated)
    session_box.append(session)
    gate.set()
    assert answered.wait(10 * TIMEOUT)
    session.close()


def test_wire_format_is_camel_case_with_standard_base64(emulator: Any) -> None:
    """Audio goes out as realtimeInput.audio with a rate mime type and standard base64."""
    pcm = bytes(range(256)) * 4
    with connect(emulator) as session:
        session.send_audio(pcm)
        session.send_realtime_input(audio_stream_end=True)
        assert wait_for(lambda: len(client_messages(emulator.connections[0])) >= 2)
    first = sent_payloads(emulator)[0]
    assert first["realtimeInput"]["audio"]["mimeType"] == "audio/pcm;rate=16000"
    import base64

    assert base64.b64decode(first["realtimeInput"]["audio"]["data"]) == pcm
    assert "mediaChunks" not in json.dumps(sent_payloads(emulator))


def test_send_validation_raises_before_sending(emulator: Any) -> None:
    """Two realtime fields, or a non-audio mime type, raise InvalidConfig; nothing is sent."""
    with connect(emulator) as session:
        with pytest.raises(InvalidConfig):
            session.send_realtime_input(text="a", audio_stream_end=True)
        with pytest.raises(InvalidConfig):
            session.send_realtime_input(audio={"mime_type": "image/png", "data": b"xx"})
        with pytest.raises(InvalidConfig):
            session.send_tool_response([{"name": "f", "response": {}}])
    assert client_messages(emulator.connections[0]) == []


# Receiving.


def test_receive_yields_across_turns(emulator: Any) -> None:
    """receive() keeps yielding after turnComplete, including the post-turn handle update."""
    with connect(emulator) as session:
        session.send_text("first")
        seen: List[Any] = []
        completes = 0
        for message in session.receive(timeout=10 * TIMEOUT):
            seen.append(message)
            if message.server_content and message.server_content.turn_complete:
                completes += 1
                if completes == 1:
                    session.send_text("second")
            if completes == 2 and message.session_resumption_update is not None:
                break
    assert completes == 2
    assert seen[0].setup_complete is not None


def test_receive_times_out_and_ends_after_close(emulator: Any) -> None:
    """receive(timeout) raises TimeoutError when idle and stops after the session closes."""
    session = connect(emulator)
    drained = list(_take_until_idle(session))
    assert drained and drained[0].setup_complete is not None
    session.close()
    assert list(session.receive(timeout=5 * TIMEOUT)) == []


def _take_until_idle(session: livesync.Session) -> Any:
    try:
        for message in session.receive(timeout=2 * TIMEOUT):
            yield message
    except TimeoutError:
        return


# Closing.


def test_close_from_a_callback_returns_and_tears_down(emulator: Any) -> None:
    """close() inside on_message returns at once; on_close follows; no thread survives."""
    rec = Recorder()
    box: List[Any] = []
    ready = threading.Event()

    def on_message(message: Any) -> None:
        ready.wait(5.0)
        if message.setup_complete is not None:
            box[0].close()
            rec.on_message(message)

    session = connect(emulator, on_message=on_message, on_close=rec.on_close)
    box.append(session)
    ready.set()
    closed = rec.wait("on_close")[0]
    assert closed.code == 1000
    assert session.wait_closed(5 * TIMEOUT)
    with pytest.raises(SessionClosedOK):
        session.send_text("too late")


def test_close_is_bounded_against_a_stalled_server(emulator: Any) -> None:
    """A server that stops answering does not stretch close() beyond close_timeout."""
    session = connect(emulator, close_timeout=2 * TIMEOUT)
    emulator.stall()
    started = time.monotonic()
    session.close()
    elapsed = time.monotonic() - started
    assert elapsed < 2 * TIMEOUT + 0.5
    assert session.closed


@pytest.mark.parametrize("code, reason", [
    (1007, "Request contains an invalid argument."),
    (1008, "Requested entity was not found."), (1011, "Internal error encountered."),
])
def test_server_close_reaches_on_close(emulator: Any, code: int, reason: str) -> None:
    """Without reconnection, a server close reaches on_close with its code and reason."""
    rec = Recorder()
    session = connect(emulator, reconnect=False, on_close=rec.on_close)
    emulator.close(code, reason)
    closed = rec.wait("on_close")[0]
    assert (closed.code, closed.reason) == (code, reason)
    assert isinstance(closed.error, SessionClosedError)
    with pytest.raises(SessionClosedError):
        session.send_text("x")


def test_normal_server_close_is_not_an_error(emulator: Any) -> None:
    """Without reconnection, a server 1000 ends the session cleanly (no error)."""
    rec = Recorder()
    session = connect(emulator, reconnect=False, on_close=rec.on_close)
    emulator.close(1000, "bye")
    closed = rec.wait("on_close")[0]
    assert (closed.code, closed.reason, closed.error) == (1000, "bye", None)
    assert session.wait_closed(5 * TIMEOUT)
    with pytest.raises(SessionClosedOK):
        session.send_text("x")


def test_drop_without_close_frame_reaches_on_close(emulator: Any) -> None:
    """A TCP drop without a close frame is reported as 1006."""
    rec = Recorder()
    session = connect(emulator, reconnect=False, on_close=rec.on_close)  # noqa: F841 (kept referenced)
    emulator.drop()
    closed = rec.wait("on_close")[0]
    assert closed.code == 1006 and isinstance(closed.error, SessionClosedError)


def test_context_manager_closes_with_1011_on_error(emulator: Any) -> None:
    """Leaving the with-block by an exception closes the session with 1011."""
    with pytest.raises(KeyError):
        with connect(emulator) as session:
            raise KeyError("x")
    assert session.closed
    assert emulator.wait_for(lambda: emulator.connections[0].close_code == 1011)


def test_stats_and_repr(emulator: Any) -> None:
    """stats() counts traffic; the repr shows state, not secrets."""
    with connect(emulator) as session:
        session.ask("hello", timeout=10 * TIMEOUT)
        stats = session.stats()
        assert stats.state == "open" and stats.generation == 1 and stats.connections == 1
        assert stats.messages_in >= 4 and stats.messages_out == 2
        assert stats.bytes_in > 0 and stats.bytes_out > 0
        assert stats.handle_age is not None
        assert session.resumption_handle
        assert session.resumption_handle not in repr(session)
    assert session.stats().state == "closed"


def test_no_secret_in_logs_reprs_or_errors(
    make_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, neither the key nor a full handle shows up in logs, reprs or errors."""
    canary = "CANARY-KEY-7f3a9c"
    emu = make_emulator(api_key=canary)
    caplog.set_level(logging.DEBUG, logger="livesync")
    client = livesync.Client(api_key=canary, base_url=emu.base_url)
    rec = Recorder()
    session = client.connect(MODEL, config=TEXT, on_close=rec.on_close)
    session.ask("hello", timeout=10 * TIMEOUT)
    handle = session.resumption_handle
    assert handle
    emu.drop()
    assert wait_for(lambda: session.stats().connections == 2, 10 * TIMEOUT)
    session.close()
    texts = [caplog.text, repr(session), repr(client), repr(session.stats()),
             repr(rec.wait("on_close")[0])]
    with pytest.raises(SetupRejected) as info:
        livesync.Client(api_key=canary + "x", base_url=emu.base_url).connect(MODEL)
    texts.append(str(info.value))
    for text in texts:
        assert canary not in text
        assert handle not in text
