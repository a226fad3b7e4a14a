"""Talk to the Live API: your microphone in, the model's voice out (``sounddevice``).

Needs the optional extra: ``pip install 'livesync[audio]'`` (``sounddevice``,
which needs the PortAudio library: ``apt install libportaudio2`` on Debian and
Ubuntu; it comes with the wheels on macOS and Windows). Use headphones: with
loudspeakers the model hears itself and interrupts its own answers.

By default it runs against the embedded offline emulator (no key, no network),
whose scripted model answers each thing you say with how long you spoke, as a
400 Hz tone. ``--live`` talks to the real Gemini Live API with the key in
``GEMINI_API_KEY``. Ctrl-C ends the conversation.

Run: ``python examples/microphone.py`` (or ``--live``, ``--turns 1``)

The core, :func:`converse`, takes any objects with sounddevice's raw-stream
interface (``mic.read(frames) -> (buffer, overflowed)``, ``speaker.write(bytes)``),
so it runs without sound hardware too (the tests drive it with fakes).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import threading
from typing import Any, Deque, List, Optional, Protocol, Tuple

import livesync
from livesync import audio

EMULATOR_MODEL = "gemini-live-2.5-flash-preview"
LIVE_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
CHUNK_MS = 20
INSTALL_HINT = (
    "microphone.py needs the sounddevice package: pip install 'livesync[audio]'\n"
    "(and the PortAudio library: apt install libportaudio2 on Debian/Ubuntu)"
)


class InputStream(Protocol):
    """What :func:`converse` needs from a microphone (``sounddevice.RawInputStream``)."""

    def read(self, frames: int) -> Tuple[Any, bool]: ...


class OutputStream(Protocol):
    """What :func:`converse` needs from a speaker (``sounddevice.RawOutputStream``)."""

    def write(self, data: bytes) -> Any: ...


class Player:
    """Plays reply audio on its own thread, so a slow speaker never holds up callbacks.

    ``on_message`` (livesync's dispatcher thread) only queues audio; on
    ``interrupted`` (you started talking over the model) what is still queued
    is thrown away, so the model stops speaking at once.
    """

    def __init__(self, speaker: OutputStream) -> None:
        self._speaker = speaker
        self._chunks: Deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._playing = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="example-player", daemon=True)
        self._thread.start()

    def play(self, pcm: bytes) -> None:
        with self._cond:
            self._chunks.append(pcm)
            self._cond.notify_all()

    def flush(self) -> None:
        """Drop the audio not played yet (a barge-in)."""
        with self._cond:
            self._chunks.clear()

    def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until everything queued has been played."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._chunks and not self._playing, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._chunks or self._stopped)
                if self._stopped:
                    return
                pcm = self._chunks.popleft()
                self._playing = True
            try:
                self._speaker.write(pcm)  # blocks while the device plays
            finally:
                with self._cond:
                    self._playing = False
                    self._cond.notify_all()


def converse(client: livesync.Client, model: str, mic: InputStream, speaker: OutputStream, *,
             max_turns: Optional[int] = None, stop: Optional[threading.Event] = None,
             timeout: float = 60.0) -> livesync.SessionStats:
    """Send ``mic`` to the model and play its replies on ``speaker`` until stopped.

    ``mic`` gives 16 kHz mono int16 audio, ``speaker`` takes 24 kHz mono int16.
    Blocks the calling thread (which reads the microphone) until ``stop`` is
    set, ``max_turns`` replies have been played, or Ctrl-C.
    """
    stop = stop or threading.Event()
    player = Player(speaker)
    turns = [0]

    def on_message(message: livesync.LiveServerMessage) -> None:
        if message.data:
            player.play(message.data)
        content = message.server_content
        if content is None:
            return
        if content.interrupted:
            player.flush()
            print("  [interrupted]")
        if content.input_transcription and content.input_transcription.text:
            print("you:", content.input_transcription.text)
        if content.output_transcription and content.output_transcription.text:
            print(content.output_transcription.text, end="", flush=True)
        if content.turn_complete:
            print()
            turns[0] += 1
            if max_turns is not None and turns[0] >= max_turns:
                stop.set()

    session = client.connect(
        model,
        config={"response_modalities": ["AUDIO"],
                "input_audio_transcription": {}, "output_audio_transcription": {}},
        on_message=on_message,
        on_reconnect=lambda event: print("  [reconnected, resumed=%s]" % event.resumed),
    )
    frames = audio.INPUT_RATE * CHUNK_MS // 1000
    try:
        with session:
            print("listening; speak now (Ctrl-C to stop)")
            while not stop.is_set():
                data, overflowed = mic.read(frames)  # blocks for CHUNK_MS on a real device
                # send_audio is safe from any thread, never waits for a reconnect
                # (audio sent meanwhile is queued and replayed).
                session.send_audio(bytes(data), audio.INPUT_RATE)
            player.drain(timeout)
            return session.stats()
    except KeyboardInterrupt:
        print("\nbye")
        return session.stats()
    finally:
        player.stop()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", action="store_true",
                        help="use the real Gemini Live API (GEMINI_API_KEY), not the emulator")
    parser.add_argument("--model", help="model name (default: %s, or %s with --live)" % (
        EMULATOR_MODEL, LIVE_MODEL))
    parser.add_argument("--turns", type=int, default=None,
                        help="stop after this many replies (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        print("%s\n(%s)" % (INSTALL_HINT, exc), file=sys.stderr)
        return 1
    with contextlib.ExitStack() as stack:
        if args.live:
            client = livesync.Client()
        else:
            from livesync.emulator import Emulator

            emu = stack.enter_context(Emulator())
            client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
        mic = stack.enter_context(sounddevice.RawInputStream(
            samplerate=audio.INPUT_RATE, channels=1, dtype="int16"))
        speaker = stack.enter_context(sounddevice.RawOutputStream(
            samplerate=audio.OUTPUT_RATE, channels=1, dtype="int16"))
        model = args.model or (LIVE_MODEL if args.live else EMULATOR_MODEL)
        converse(client, model, mic, speaker, max_turns=args.turns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
