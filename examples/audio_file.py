"""Stream a WAV file to the Live API as if it were a microphone; save the spoken reply.

The file (any rate, mono or stereo, 16-bit PCM) is resampled to the 16 kHz the
Live API takes and sent in 20 ms chunks at the pace of a real microphone. The
reply's 24 kHz audio is written to a WAV file and its transcription printed.

By default it runs against the embedded offline emulator (no key, no network),
whose connections last only ``--lifetime`` seconds, so you can watch the session
move to a new connection in the middle of the stream without losing a chunk.
The emulator's scripted model answers audio with how much speech it heard.

Run::

    python examples/audio_file.py                      # a generated sample, offline
    python examples/audio_file.py question.wav --out reply.wav
    python examples/audio_file.py question.wav --live  # the real API, GEMINI_API_KEY

``--fast`` sends the file as fast as possible; ``--time-scale 0.5`` at twice real time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import threading
import time
from typing import IO, Callable, Iterable, List, Optional, Union

import livesync
from livesync import audio

EMULATOR_MODEL = "gemini-live-2.5-flash-preview"
LIVE_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
CHUNK_MS = 20


class Reply:
    """Collects the reply from ``on_message`` (dispatcher thread) for the main thread."""

    def __init__(self) -> None:
        self.audio = bytearray()
        self.transcript: List[str] = []
        self.heard: List[str] = []
        self.done = threading.Event()

    def on_message(self, message: livesync.LiveServerMessage) -> None:
        if message.data:  # a chunk of 24 kHz PCM
            self.audio += message.data
        content = message.server_content
        if content is None:
            return
        if content.input_transcription and content.input_transcription.text:
            self.heard.append(content.input_transcription.text)
        if content.output_transcription and content.output_transcription.text:
            self.transcript.append(content.output_transcription.text)
        if content.turn_complete:
            self.done.set()


def stream(session: livesync.Session, chunks: Iterable[bytes], *, time_scale: float = 1.0,
           on_chunk: Optional[Callable[[int], None]] = None) -> int:
    """Send ``chunks`` (20 ms each) at ``time_scale`` × real time; return how many.

    Paced against the wall clock from the start (not chunk by chunk), so the
    stream does not drift however long each ``send_audio`` takes. ``send_audio``
    never waits for a reconnect: chunks sent meanwhile are queued and replayed.
    """
    start = time.monotonic()
    count = 0
    for count, chunk in enumerate(chunks, 1):
        session.send_audio(chunk, audio.INPUT_RATE)
        if on_chunk is not None:
            on_chunk(count)
        delay = start + count * CHUNK_MS / 1000 * time_scale - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    # The end of the input: the server's VAD need not wait for more silence.
    session.send_realtime_input(audio_stream_end=True)
    return count


def run(client: livesync.Client, model: str, wav: Union[str, IO[bytes]], out: str, *,
        time_scale: float = 1.0, timeout: float = 60.0) -> livesync.SessionStats:
    """Stream ``wav`` (a path or binary file), wait for the reply, write it to ``out``."""
    # Read, mix down and resample the whole file first: a bad file fails here.
    chunks = list(audio.wav_chunks(wav, rate=audio.INPUT_RATE, chunk_ms=CHUNK_MS))
    print("streaming %d chunks (%.2f s of 16 kHz audio)" % (
        len(chunks), len(chunks) * CHUNK_MS / 1000))
    reply = Reply()
    sent = [0]

    def on_reconnect(event: livesync.Reconnected) -> None:
        print("  [%s reconnect after %s at chunk %d: resumed=%s, gap %.0f ms, replayed %d, "
              "dropped %d]" % ("planned" if event.planned else "unplanned", event.cause,
                               sent[0], event.resumed, event.gap_ms, event.replayed,
                               event.dropped))

    session = client.connect(
        model,
        config={"response_modalities": ["AUDIO"],
                "input_audio_transcription": {}, "output_audio_transcription": {}},
        on_message=reply.on_message,
        on_reconnect=on_reconnect,
    )
    with session:
        count = stream(session, chunks, time_scale=time_scale,
                       on_chunk=lambda n: sent.__setitem__(0, n))
        print("sent %d chunks; waiting for the reply" % count)
        if not reply.done.wait(timeout):
            raise TimeoutError("no reply within %.0f s" % timeout)
        stats = session.stats()
    if reply.heard:
        print("you said:", "".join(reply.heard))
    print("reply:", "".join(reply.transcript) or "(no transcription)")
    audio.write_wav(out, bytes(reply.audio), audio.OUTPUT_RATE)
    print("wrote %s (%.2f s of 24 kHz audio)" % (
        out, len(reply.audio) / (audio.SAMPLE_WIDTH * audio.OUTPUT_RATE)))
    print("connections %d, rotations %d, replayed %d (%d unconfirmed), dropped %d" % (
        stats.connections, stats.rotations_planned + stats.rotations_unplanned,
        stats.replayed, stats.unconfirmed, stats.dropped))
    return stats


def sample_wav() -> io.BytesIO:
    """Two seconds at 44.1 kHz: 0.3 s quiet, 1.2 s of a syllable-like tone, 0.5 s quiet.

    A stand-in for speech that the emulator's voice activity detection hears
    (the real model will not understand it: record yourself for ``--live``).
    """
    rate = 44100
    samples = []
    for i in range(2 * rate):
        t = i / rate
        loud = 0.3 <= t < 1.5
        envelope = 0.6 + 0.4 * math.sin(2 * math.pi * 4 * t)  # four "syllables" a second
        samples.append(int(9000 * envelope * math.sin(2 * math.pi * 220 * t)) if loud else 0)
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    return io.BytesIO(audio.pcm_to_wav(pcm, rate))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wav", nargs="?", help="a 16-bit PCM WAV file (default: a generated "
                        "sample, emulator only)")
    parser.add_argument("--out", default="reply.wav", help="where to write the reply "
                        "(default: %(default)s)")
    parser.add_argument("--live", action="store_true",
                        help="use the real Gemini Live API (GEMINI_API_KEY), not the emulator")
    parser.add_argument("--model", help="model name (default: %s, or %s with --live)" % (
        EMULATOR_MODEL, LIVE_MODEL))
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="pace: 1 = real time, 0.5 = twice as fast, 0 = no pacing")
    parser.add_argument("--fast", action="store_true", help="same as --time-scale 0")
    parser.add_argument("--lifetime", type=float, default=1.0,
                        help="emulator only: seconds each connection lasts (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.time_scale < 0 or args.lifetime <= 0:
        parser.error("--time-scale must be >= 0 and --lifetime > 0")
    if args.live and args.wav is None:
        parser.error("--live needs a WAV file of your own voice")
    source = args.wav if args.wav is not None else sample_wav()
    try:
        audio.read_wav(source)  # check the file before connecting
    except (livesync.InvalidConfig, OSError) as exc:
        print("audio_file.py: %s: %s" % (args.wav, exc), file=sys.stderr)
        return 2
    if not isinstance(source, str):
        source.seek(0)
    with contextlib.ExitStack() as stack:
        if args.live:
            client = livesync.Client()
        else:
            from livesync.emulator import Emulator

            # The real service ends a connection after about 10 minutes (goAway 60 s
            # before); here it happens every --lifetime seconds, goAway halfway.
            emu = stack.enter_context(Emulator(
                connection_lifetime=args.lifetime, go_away_notice=args.lifetime / 2))
            client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
            print("emulator: each connection lasts %.1f s" % args.lifetime)
        model = args.model or (LIVE_MODEL if args.live else EMULATOR_MODEL)
        run(client, model, source, args.out, time_scale=0.0 if args.fast else args.time_scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
