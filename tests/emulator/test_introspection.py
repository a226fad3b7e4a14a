"""Introspection records, waiting helpers, stop() and the command line."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

import pytest
import websocket

from livesync.emulator import ClientMessageRecord, Emulator, EmulatorOptions
from tests.emulator.helpers import TEXT_CONFIG, WsClient, abort, pcm

Connect = Callable[..., WsClient]


def test_connection_records_messages_with_indices(emu: Emulator, connect: Connect) -> None:
    """Each client message is recorded with its index (setup = 0), kind and payload."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.send({"realtimeInput": {"text": "one"}})
    client.audio(pcm(20, loud=False))
    client.turn()
    emu.wait_for(lambda: len(emu.connections[0].messages) == 3)
    record = emu.connections[0]
    assert [(m.index, m.kind) for m in record.messages] == [
        (0, "setup"), (1, "realtimeInput"), (2, "realtimeInput")]
    second = record.messages[1]
    assert isinstance(second, ClientMessageRecord)
    assert second.payload == {"text": "one"}
    assert second.message == {"realtimeInput": {"text": "one"}}
    assert second.connection == 1 and second.generation == 1 and second.received_at > 0
    assert record.setup == {"model": "models/gemini-live-2.5-flash-preview",
                            "generationConfig": TEXT_CONFIG}
    assert record.sent[0] == {"setupComplete": {}} and "serverContent" in record.sent_kinds()
    (session,) = emu.sessions.values()
    assert [m.index for m in session.messages] == [1, 2]  # setup is not session state
    assert session.has_audio and not session.has_video


def test_wait_for_raises_timeout_error(emu: Emulator) -> None:
    """wait_for() raises TimeoutError when the predicate stays false."""
    with pytest.raises(TimeoutError):
        emu.wait_for(lambda: len(emu.connections) > 0, timeout=0.05)


def test_wait_for_connections_returns_records(emu: Emulator, connect: Connect) -> None:
    """wait_for_connections(n) blocks until n connections were accepted."""
    connect(emu)
    connect(emu)
    records = emu.wait_for_connections(2)
    assert [r.id for r in records] == [1, 2]


def test_stop_closes_with_1001_and_joins_threads(make_emulator: Callable[..., Emulator],
                                                 connect: Connect) -> None:
    """stop() closes open connections with 1001 and joins every emulator thread."""
    emu = make_emulator()
    clients = [connect(emu) for _ in range(3)]
    for client in clients:
        client.setup()
    results = []
    readers = [threading.Thread(target=lambda c=c: results.append(c.closed())) for c in clients]
    for reader in readers:
        reader.start()
    emu.stop()
    for reader in readers:
        reader.join(5)
    assert results == [(1001, "")] * 3
    assert [t.name for t in threading.enumerate() if t.name.startswith("emulator-")] == []
    assert all(c.closed_by == "stop" and not c.open for c in emu.connections)
    emu.stop()  # idempotent


def test_new_upgrades_after_stop_fail(make_emulator: Callable[..., Emulator]) -> None:
    """After stop() the port no longer accepts connections."""
    emu = make_emulator()
    url = emu.url()
    emu.stop()
    with pytest.raises((ConnectionError, OSError, websocket.WebSocketException)):
        websocket.create_connection(url, timeout=2)


def test_command_line_serves_until_interrupted(tmp_path: object) -> None:
    """python -m livesync.emulator prints the URLs and key and stops on SIGINT."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesync.emulator", "--port", "0", "--api-key", "cli-key",
         "--time-scale", "0.5", "--text-frames"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("base_url: ws://127.0.0.1:")
        assert lines[2].strip() == "api_key:  cli-key"
        base = lines[0].split()[1]
        ws = websocket.create_connection(
            base + "/ws/google.ai.generativelanguage.v1beta.GenerativeService."
            "BidiGenerateContent", header=["x-goog-api-key: cli-key"], timeout=5)
        ws.send('{"setup": {"model": "models/gemini-live-2.5-flash"}}')
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == 1 and b"setupComplete" in data
        abort(ws)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_options_value_and_keywords() -> None:
    """Emulator(options, **overrides) keeps one frozen EmulatorOptions; bad names/values raise."""
    base = EmulatorOptions(time_scale=0.5, models=["models/gemini-live-2.5-flash"])
    emu = Emulator(base, chunk_delay=0.01)
    assert emu.options.time_scale == 0.5 and emu.options.chunk_delay == 0.01
    assert emu.options.models == ("gemini-live-2.5-flash",)
    assert Emulator(time_scale=2.0).options == EmulatorOptions(time_scale=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        emu.options.time_scale = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Emulator(no_such_option=1)
    with pytest.raises(ValueError):
        Emulator(time_scale=0)
