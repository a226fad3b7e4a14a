"""The lean load server (``livesync.emulator.LoadServer``): protocol, handles, goAway, stop."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List

import pytest

import livesync
from livesync.emulator import LoadOptions, LoadServer, LoadStats
from tests.emulator.helpers import GEMINI_MODEL, WsClient, content_flags
from tests.utils import TIMEOUT, Recorder, wait_for

Connect = Callable[..., WsClient]
MODEL = "gemini-live-2.5-flash"
AUDIO = {"response_modalities": ["AUDIO"]}
CHUNK = bytes(640)  # 20 ms of 16 kHz s16le silence: no VAD here, audio is only counted
NOT_FOUND = (1008, "Requested entity was not found.")


@pytest.fixture
def make_load() -> Iterator[Callable[..., LoadServer]]:
    """Start load servers with the given options; stop them all after the test."""
    started: List[LoadServer] = []

    def make(**options: Any) -> LoadServer:
        server = LoadServer(**options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def reply_bytes(seconds: float) -> int:
    """Bytes of 24 kHz s16le PCM in a reply of ``seconds``."""
    return int(round(seconds * 24000)) * 2


def first_handle(client: WsClient, **setup: Any) -> str:
    client.setup(sessionResumption={}, **setup)
    return str(client.message()["sessionResumptionUpdate"]["newHandle"])


def resume(client: WsClient, handle: str, model: str = GEMINI_MODEL) -> None:
    client.send({"setup": {"model": model, "sessionResumption": {"handle": handle}}})


# ---------------------------------------------------------------------- with livesync


def test_livesync_audio_conversation(make_load: Callable[..., LoadServer]) -> None:
    """livesync streams audio and gets paced canned audio replies, each followed by a handle."""
    server = make_load(reply_every=0.2, reply_seconds=0.12, audio_chunk_seconds=0.04)
    recorder = Recorder()
    client = livesync.Client(api_key=server.api_key, base_url=server.base_url)
    with client.connect(MODEL, config=AUDIO, **recorder.callbacks()) as session:
        for _ in range(10):  # 0.2 s of input audio: one reply
            session.send_audio(CHUNK)
        recorder.wait("on_message", where=lambda m: bool(
            m.server_content and m.server_content.turn_complete))
        handle_after_turn = recorder.wait("on_resumption_update", 2,
                                          where=lambda u: bool(u.new_handle))[-1]
        turn = session.ask("Hello?", timeout=20 * TIMEOUT)
        assert session.stats().connections == 1
    messages = recorder.get("on_message")
    assert messages[0].kind == "setup_complete"
    audio = [m.data for m in messages if m.data]
    assert sum(len(a) for a in audio) == 2 * reply_bytes(0.12)  # the audio reply and ask()'s
    assert len(turn.audio) == reply_bytes(0.12) and not turn.interrupted
    assert handle_after_turn.resumable
    stats = server.stats()
    assert stats.audio_chunks_in == 10 and stats.replies == 2 and stats.handles >= 3
    assert stats.chunks_out == 6 and stats.interrupted == 0


def test_go_away_rotation_resumes_with_the_handle(make_load: Callable[..., LoadServer]) -> None:
    """At goAway livesync rotates to a new connection with the last handle; nothing is dropped."""
    server = make_load(time_scale=0.003, reply_every=0.1, reply_seconds=0.04)  # lifetime 1.8 s
    recorder = Recorder()
    client = livesync.Client(api_key=server.api_key, base_url=server.base_url)
    stop = threading.Event()
    with client.connect(MODEL, config=AUDIO, **recorder.callbacks()) as session:
        def stream() -> None:
            while not stop.wait(0.02):
                session.send_audio(CHUNK)

        sender = threading.Thread(target=stream, name="test-sender")
        sender.start()
        try:
            event = recorder.wait("on_reconnect", timeout=20 * TIMEOUT)[0]
        finally:
            stop.set()
            sender.join()
        stats = session.stats()
    assert recorder.get("on_goaway")
    assert event.planned and event.resumed and event.dropped == 0
    assert stats.rotations_planned == 1 and stats.rotations_unplanned == 0
    assert stats.dropped == 0 and stats.fresh == 0
    assert wait_for(lambda: server.stats().open_connections == 0)
    counters = server.stats()
    assert counters.go_aways >= 1 and counters.resumes == 1 and counters.resumes_refused == 0
    assert counters.sessions == 1


# ---------------------------------------------------------------------- raw protocol


def test_setup_complete_then_handle(make_load: Callable[..., LoadServer],
                                    connect: Connect) -> None:
    """setupComplete (no sessionId on the Gemini API), then a resumable opaque handle."""
    server = make_load()
    client = connect(server)
    assert client.setup(sessionResumption={}) == {"setupComplete": {}}
    update = client.message()["sessionResumptionUpdate"]
    assert update["resumable"] is True and update["newHandle"].startswith("Ci")
    assert "lastConsumedClientMessageIndex" not in update


def test_setup_without_resumption_gets_no_handles(make_load: Callable[..., LoadServer],
                                                  connect: Connect) -> None:
    """Without setup.sessionResumption a turn's reply ends with turnComplete and no handle."""
    server = make_load(reply_seconds=0.04)
    client = connect(server)
    client.setup()
    client.text("hi")
    assert content_flags(client.turn()) == ["modelTurn", "generationComplete", "turnComplete"]
    client.text("again")
    assert "sessionResumptionUpdate" not in content_flags(client.turn())


def test_reply_is_paced_at_real_time(make_load: Callable[..., LoadServer],
                                     connect: Connect) -> None:
    """A reply of R seconds takes about R seconds: chunks follow the audio clock."""
    server = make_load(reply_seconds=0.4, audio_chunk_seconds=0.04)
    client = connect(server)
    first_handle(client)
    client.text("hi")
    start = time.monotonic()
    messages = client.turn()
    elapsed = time.monotonic() - start
    assert content_flags(messages) == (["sessionResumptionUpdate"] + ["modelTurn"] * 10
                                       + ["generationComplete", "turnComplete"])
    assert 0.3 <= elapsed < 0.4 + 10 * TIMEOUT
    part = messages[1]["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
    assert part["mimeType"] == "audio/pcm;rate=24000"
    assert len(base64.b64decode(part["data"])) == reply_bytes(0.04)
    assert client.message()["sessionResumptionUpdate"]["resumable"] is True


def test_turn_interrupts_a_reply(make_load: Callable[..., LoadServer], connect: Connect) -> None:
    """A user turn during a reply: interrupted, turnComplete, then the new reply."""
    server = make_load(reply_seconds=5.0)
    client = connect(server)
    first_handle(client)
    client.text("a long answer please")
    client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
    client.text("stop")
    flags = content_flags(client.until(lambda m: m.get("serverContent", {}).get("interrupted")
                                       or False))
    assert "generationComplete" not in flags
    assert content_flags([client.message()]) == ["turnComplete"]
    following = content_flags([client.message(), client.message()])
    assert following == ["sessionResumptionUpdate", "modelTurn"]  # the new reply, no handle
    assert server.stats().interrupted == 1


def test_audio_counts_towards_replies(make_load: Callable[..., LoadServer],
                                      connect: Connect) -> None:
    """Every reply_every seconds of input audio (audio time, any rate) start one reply."""
    server = make_load(reply_every=0.5, reply_seconds=0.04)
    client = connect(server)
    client.setup()
    for _ in range(24):  # 0.48 s at 16 kHz: not yet
        client.audio(CHUNK)
    client.audio(bytes(960), rate=24000)  # 0.02 s at 24 kHz: 0.5 s in all
    assert content_flags(client.turn()) == ["modelTurn", "generationComplete", "turnComplete"]
    stats = server.stats()
    assert stats.audio_chunks_in == 25 and stats.replies == 1
    assert abs(stats.audio_seconds_in - 0.5) < 1e-9


def test_snake_case_media_chunks_count_as_audio(make_load: Callable[..., LoadServer],
                                                connect: Connect) -> None:
    """google-genai's spellings (realtime_input, media_chunks, mime_type) are counted too."""
    server = make_load(reply_every=0.1, reply_seconds=0.04)
    client = connect(server)
    client.setup()
    blob = {"mime_type": "audio/pcm;rate=16000", "data": base64.b64encode(CHUNK).decode()}
    for _ in range(5):
        client.send({"realtime_input": {"media_chunks": [blob]}})
    assert content_flags(client.turn()) == ["modelTurn", "generationComplete", "turnComplete"]
    assert server.stats().audio_chunks_in == 5


def test_initial_history_gets_no_reply(make_load: Callable[..., LoadServer],
                                       connect: Connect) -> None:
    """With initialHistoryInClientContent, clientContent before realtime input is history."""
    server = make_load(reply_seconds=0.04)
    client = connect(server)
    client.setup(historyConfig={"initialHistoryInClientContent": True})
    client.text("earlier turn")  # history: no reply
    client.send({"realtimeInput": {"text": "now answer"}})
    assert content_flags(client.turn()) == ["modelTurn", "generationComplete", "turnComplete"]
    client.text("and this one")  # after realtime input: a turn again
    client.turn()
    assert server.stats().replies == 2


def test_resume_with_issued_handle(make_load: Callable[..., LoadServer],
                                   connect: Connect) -> None:
    """A handle the server issued resumes the session, on another server with the same key too."""
    server = make_load(api_key="shared-key")
    other = make_load(api_key="shared-key")
    handle = first_handle(connect(server))
    again = connect(other)
    resume(again, handle)
    assert again.message() == {"setupComplete": {}}
    assert again.message()["sessionResumptionUpdate"]["newHandle"] != handle
    assert other.stats().resumes == 1


@pytest.mark.parametrize("mangle", [
    lambda h: "Ci" + "A" * 54,                       # unknown
    lambda h: h[:-2] + ("AA" if h[-2:] != "AA" else "BB"),  # forged signature
    lambda h: h[2:],                                 # not a handle at all
])
def test_unknown_handle_is_refused(make_load: Callable[..., LoadServer], connect: Connect,
                                   mangle: Callable[[str], str]) -> None:
    """A handle the server did not issue closes 1008 "Requested entity was not found."."""
    server = make_load()
    handle = first_handle(connect(server))
    client = connect(server)
    resume(client, mangle(handle))
    assert client.closed() == NOT_FOUND
    assert server.stats().resumes_refused == 1


def test_handle_of_another_key_and_expired_handles_are_refused(
        make_load: Callable[..., LoadServer], connect: Connect) -> None:
    """Handles of a server with another key, and handles past handle_ttl, are refused."""
    stranger = make_load()
    server = make_load(time_scale=0.0001, handle_ttl=1.0, connection_lifetime=100000.0)
    foreign = first_handle(connect(stranger))
    client = connect(server)
    resume(client, foreign)
    assert client.closed() == NOT_FOUND
    expired = first_handle(connect(server))  # valid for 0.1 ms
    late = connect(server)
    resume(late, expired)
    assert late.closed() == NOT_FOUND


def test_model_cannot_change_on_resume(make_load: Callable[..., LoadServer],
                                       connect: Connect) -> None:
    """Resuming with another model closes 1007, as the emulator does."""
    server = make_load()
    handle = first_handle(connect(server))
    client = connect(server)
    resume(client, handle, model="models/gemini-3.1-flash-live-preview")
    code, reason = client.closed()
    assert code == 1007 and "model cannot change" in reason


def test_go_away_then_deadline_close(make_load: Callable[..., LoadServer],
                                     connect: Connect) -> None:
    """goAway with timeLeft, then close 1011 "Deadline expired ..." at the lifetime's end."""
    server = make_load(time_scale=0.001)  # lifetime 0.6 s, notice 0.06 s
    client = connect(server)
    client.setup()
    go_away = client.until(lambda m: "goAway" in m)[-1]["goAway"]
    assert go_away["timeLeft"].endswith("s") and 0 < float(go_away["timeLeft"][:-1]) <= 0.06
    assert client.closed() == (1011, "Deadline expired before operation could complete.")
    assert wait_for(lambda: server.stats().deadline_closes == 1)


def test_vertex_session_id_and_transparent_index(make_load: Callable[..., LoadServer],
                                                 connect: Connect) -> None:
    """Vertex: a bearer key, setupComplete.sessionId kept on resume, consumed message indices."""
    server = make_load(reply_seconds=0.04)
    auth = ["Authorization: Bearer " + server.api_key]
    client = connect(server, server.url("vertex"), key=False, headers=auth)
    model = "projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
    session_id = client.setup(model=model, sessionResumption={"transparent": True}
                              )["setupComplete"]["sessionId"]
    client.message()  # the handle after setupComplete (nothing consumed: no index)
    client.audio(CHUNK)
    client.text("hi")
    messages = client.turn()
    assert messages[1]["serverContent"]["modelTurn"]["role"] == "model"
    update = client.message()["sessionResumptionUpdate"]
    assert update["lastConsumedClientMessageIndex"] == "2"
    again = connect(server, server.url("vertex"), key=False, headers=auth)
    resume(again, update["newHandle"], model=model)
    assert again.message()["setupComplete"]["sessionId"] == session_id


# ---------------------------------------------------------------------- HTTP and auth


def test_wrong_key_closes_1007(make_load: Callable[..., LoadServer], connect: Connect) -> None:
    """A wrong API key is refused after the upgrade, like the real service."""
    server = make_load()
    client = connect(server, key=False, headers=["x-goog-api-key: wrong"])
    assert client.closed() == (1007, "API key not valid. Please pass a valid API key.")


def test_http_refusals_and_stats(make_load: Callable[..., LoadServer]) -> None:
    """Unknown paths get 404, Vertex without credentials 401; GET /stats is the counters."""
    server = make_load()
    http = server.base_url.replace("ws://", "http://")
    with urllib.request.urlopen(http + "/stats", timeout=10 * TIMEOUT) as response:
        body: Dict[str, Any] = json.load(response)
    assert set(body) == set(LoadStats().to_dict())
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(http + "/nowhere", timeout=10 * TIMEOUT)
    missing.value.close()
    assert missing.value.code == 404
    import websocket

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(server.url("vertex"), timeout=10 * TIMEOUT)
    assert refused.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as unknown:
        websocket.create_connection(server.base_url + "/ws/unknown", timeout=10 * TIMEOUT)
    assert unknown.value.status_code == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as constrained:  # as the real one
        websocket.create_connection(server.url(version="v1", constrained=True),
                                    timeout=10 * TIMEOUT)
    assert constrained.value.status_code == 404


# ---------------------------------------------------------------------- lifecycle


def test_stop_is_bounded_with_open_connections(connect: Connect) -> None:
    """stop() closes open connections, cuts off a client that never answers, and joins."""
    server = LoadServer(close_timeout=0.3, reply_seconds=30.0).start()
    try:
        silent = connect(server)  # never reads: never answers the closing handshake
        silent.setup()
        busy = connect(server)
        busy.setup()
        busy.text("talk for 30 s")
        busy.message()
        client = livesync.Client(api_key=server.api_key, base_url=server.base_url)
        recorder = Recorder()
        sessions = [client.connect(MODEL, config=AUDIO, reconnect=False, **recorder.callbacks())
                    for _ in range(2)]
        assert wait_for(lambda: server.stats().open_connections == 4)
        start = time.monotonic()
        server.stop()
        took = time.monotonic() - start
    finally:
        server.stop()
    assert took < 0.3 + 3.0
    assert not [t for t in threading.enumerate() if t.name == "emulator-load"]
    assert busy.closed() == (1001, "")
    assert [event.code for event in recorder.wait("on_close", 2)] == [1001, 1001]
    for session in sessions:
        session.close()
    server.stop()  # idempotent


def test_options_are_validated() -> None:
    """Options are one frozen value: invalid values raise ValueError, unknown names TypeError."""
    with pytest.raises(ValueError):
        LoadOptions(reply_seconds=0)
    with pytest.raises(ValueError):
        LoadOptions(audio_chunk_seconds=0.00001)
    with pytest.raises(ValueError):
        LoadOptions(reply_seconds=0.00001)
    with pytest.raises(ValueError):
        LoadOptions(resume_refusal=(1006, "no"))
    with pytest.raises(TypeError):
        LoadServer(vad_threshold=3)
    server = LoadServer(LoadOptions(reply_every=0), api_key="secret-key-1")
    assert server.options.reply_every == 0 and server.api_key == "secret-key-1"
    assert "secret-key-1" not in repr(server.options) + repr(server)


def test_cli_load() -> None:
    """``python -m livesync emulator --load`` serves livesync and stops on SIGTERM."""
    from tests.functional.test_cli import Running

    proc = Running("emulator", "--load", "--port", "0", "--reply-seconds", "0.04")
    try:
        values = {}
        for key in ("base_url", "api_key"):
            line = proc.expect(lambda line: line.startswith(key + ":"))  # noqa: B023
            values[key] = line.split(":", 1)[1].strip()
        proc.expect(lambda line: line.startswith("Serving"))
        client = livesync.Client(api_key=values["api_key"], base_url=values["base_url"])
        with client.connect(MODEL, config=AUDIO) as session:
            assert len(session.ask("hi", timeout=20 * TIMEOUT).audio) == reply_bytes(0.04)
    finally:
        proc.process.send_signal(signal.SIGTERM)
        stderr = proc.finish()
    assert proc.process.returncode == 0 and "Traceback" not in stderr
