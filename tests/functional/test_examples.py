"""The examples run end to end against the embedded emulator (README's first command)."""

from __future__ import annotations

import base64
import importlib.util
import math
import os
import re
import struct
import subprocess
import sys
import threading
import types
import wave
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import livesync
from livesync import audio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(*args: str, timeout: float = 50) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLES.parent)] + sys.path))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
    )


def load_example(name: str) -> types.ModuleType:
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("example_" + name, EXAMPLES / (name + ".py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, expected", [
    ("demo.py", ["connections 3, planned 1, unplanned 1"]),
    ("resume_after_restart.py", ["server-side sessions: 1"]),
    ("quickstart.py", ["< You said: Tell me a short story.",
                       "ask() returned: 'The capital of France is Paris.'", "closed: 1000"]),
    ("tools.py", [
        "[toolCall get_current_weather({'location': 'Paris'})]",
        '< get_current_weather returned {"location": "Paris", "sky": "clear", '
        '"temperature": "18C"}',
        "[toolCall search_flights({'destination': 'Tokyo'})]",
        "[toolCallCancellation: the call stops; no response is sent]",
        "< (interrupted)\n< You said: Actually, never mind.",
        "dropped: 0",
        "[ask() called get_current_weather({'location': 'Paris'})]",
    ]),
])
def test_example_runs(script: str, expected: List[str]) -> None:
    """Each example exits cleanly and prints what it demonstrates."""
    result = run_example(str(EXAMPLES / script))
    assert result.returncode == 0, result.stderr[-2000:]
    for text in expected:
        assert text in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


def speech_like_wav(path: Path, *, rate: int = 44100, channels: int = 2,
                    width: int = 2, speech: Tuple[float, float] = (0.3, 1.8),
                    seconds: float = 2.4) -> None:
    """A tone with a syllable-like envelope: loud enough for the emulator's VAD (RMS ≥ 500)."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        envelope = 0.6 + 0.4 * math.sin(2 * math.pi * 4 * t)
        value = int(8000 * envelope * math.sin(2 * math.pi * 180 * t))
        value = value if speech[0] <= t < speech[1] else 0
        sample = (value >> (8 * (2 - width)) if width < 2 else value << (8 * (width - 2)))
        frames += sample.to_bytes(width, "little", signed=True) * channels
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(bytes(frames))


def test_audio_file_survives_rotations_mid_stream(tmp_path: Path) -> None:
    """A 44.1 kHz stereo WAV streamed in real time across rotations gets its whole reply."""
    source, out = tmp_path / "question.wav", tmp_path / "reply.wav"
    speech_like_wav(source)
    result = run_example(str(EXAMPLES / "audio_file.py"), str(source), "--out", str(out),
                         "--lifetime", "1.0")
    assert result.returncode == 0, result.stderr[-2000:]
    stdout = result.stdout
    assert "streaming 120 chunks (2.40 s of 16 kHz audio)" in stdout
    rotations = [(int(chunk), int(dropped)) for chunk, dropped in re.findall(
        r"planned reconnect after goAway at chunk (\d+): resumed=True, .*dropped (\d+)\]", stdout)]
    assert rotations and any(0 < chunk < 120 for chunk, _ in rotations), stdout
    assert all(dropped == 0 for _, dropped in rotations)
    # The emulator heard every chunk of the 1.5 s of speech, in one turn, on the last
    # connection: once each, but for chunks replayed as unconfirmed (sent just before a
    # handle, under load; the documented limit of audio outside an activity).
    totals = re.search(r"connections \d+, rotations [1-9]\d*, replayed \d+ "
                       r"\((\d+) unconfirmed\), dropped 0\n", stdout)
    assert totals, stdout
    slack = int(totals.group(1)) * 0.02
    heard = float(re.search(r"you said: \(audio (\d+\.\d+) s\)", stdout).group(1))
    assert 1.50 <= heard <= 1.50 + slack + 1e-9, stdout
    assert "reply: I heard %.2f seconds of audio." % heard in stdout
    with wave.open(str(out)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        # "I heard 1.50 seconds of audio." is 30 characters: 0.6 s at 0.02 s/char.
        assert wav.getnframes() == int(0.6 * 24000)


def test_audio_file_fast_and_generated_sample(tmp_path: Path) -> None:
    """Without a file it streams its own sample; --fast sends without pacing."""
    out = tmp_path / "reply.wav"
    result = run_example(str(EXAMPLES / "audio_file.py"), "--fast", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reply: I heard 1.20 seconds of audio." in result.stdout
    assert audio.read_wav(str(out))[1] == 24000


@pytest.mark.parametrize("width, message", [(3, "24-bit PCM"), (1, "8-bit PCM")])
def test_audio_file_refuses_unsupported_formats(tmp_path: Path, width: int, message: str) -> None:
    """A WAV file that is not 16-bit PCM gets a clear message and exit status 2."""
    source = tmp_path / "hifi.wav"
    speech_like_wav(source, rate=48000, width=width, seconds=0.1)
    result = run_example(str(EXAMPLES / "audio_file.py"), str(source), "--fast")
    assert result.returncode == 2
    assert message in result.stderr and "ffmpeg" in result.stderr
    assert "Traceback" not in result.stderr


class FakeMicrophone:
    """sounddevice.RawInputStream's read(): speech, then silence, 10× faster than real time."""

    def __init__(self, speech_seconds: float = 0.6) -> None:
        self.speech_frames = int(speech_seconds * audio.INPUT_RATE)
        self.position = 0
        self.reads = 0
        self._pace = threading.Event()

    def read(self, frames: int) -> Tuple[bytes, bool]:
        self._pace.wait(frames / audio.INPUT_RATE / 10)  # a device blocks until it has audio
        self.reads += 1
        samples = []
        for i in range(self.position, self.position + frames):
            loud = i < self.speech_frames
            samples.append(int(6000 * math.sin(2 * math.pi * 200 * i / 16000)) if loud else 0)
        self.position += frames
        return struct.pack("<%dh" % frames, *samples), False


class FakeSpeaker:
    """sounddevice.RawOutputStream's write(): keeps what was played."""

    def __init__(self) -> None:
        self.played = bytearray()
        self.threads: List[str] = []

    def write(self, data: bytes) -> bool:
        self.played += data
        self.threads.append(threading.current_thread().name)
        return False


def test_microphone_converses_with_fake_streams(emulator: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """converse() sends the microphone's audio and plays the reply audio on the speaker."""
    microphone = load_example("microphone")
    client = livesync.Client(api_key=emulator.api_key, base_url=emulator.base_url)
    mic, speaker = FakeMicrophone(), FakeSpeaker()
    stats = microphone.converse(client, microphone.EMULATOR_MODEL, mic, speaker, max_turns=1,
                                timeout=10)
    assert stats.dropped == 0 and not client.sessions
    sent_audio = b"".join(
        base64.b64decode(part["inlineData"]["data"])
        for message in emulator.connections[0].sent
        for part in message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
        if "inlineData" in part)
    assert sent_audio and bytes(speaker.played) == sent_audio
    assert set(speaker.threads) == {"example-player"}
    printed = capsys.readouterr().out
    assert "you: (audio 0.60 s)" in printed and "I heard 0.60 seconds of audio." in printed
    received = [m for m in emulator.connections[0].messages if m.kind == "realtimeInput"]
    assert 0 < len(received) <= mic.reads


def test_microphone_without_sounddevice_says_how_to_install() -> None:
    """Without sounddevice, microphone.py explains the extra to install and exits 1."""
    code = ("import runpy, sys; sys.modules['sounddevice'] = None; sys.argv = ['microphone.py'];"
            "runpy.run_path(%r, run_name='__main__')" % str(EXAMPLES / "microphone.py"))
    result = run_example("-c", code)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "pip install 'livesync[audio]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_microphone_player_drops_queued_audio_on_barge_in() -> None:
    """Player.flush() (on ``interrupted``) drops what is queued; the chunk playing finishes."""
    microphone = load_example("microphone")
    release, playing = threading.Event(), threading.Event()

    class SlowSpeaker(FakeSpeaker):
        def write(self, data: bytes) -> bool:
            playing.set()
            release.wait(10)  # the device is busy playing
            return super().write(data)

    speaker = SlowSpeaker()
    player = microphone.Player(speaker)
    try:
        for chunk in (b"\x01\x00", b"\x02\x00", b"\x03\x00"):
            player.play(chunk)
        assert playing.wait(10) and not player.drain(0.01)  # the first chunk is playing
        player.flush()
        release.set()
        assert player.drain(10)
        assert bytes(speaker.played) == b"\x01\x00"
    finally:
        player.stop()
