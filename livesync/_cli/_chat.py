"""``python -m livesync chat``: an interactive text chat, against the Live API or the emulator.

Threads: the main thread reads stdin, calls :meth:`Session.ask` (blocking) and
prints each answer on stdout; livesync's dispatcher thread runs ``on_reconnect``
and ``on_close``, which print one status line each on stderr (dim on a
terminal). Ctrl-C (KeyboardInterrupt on the main thread) closes the session with
code 1000 and exits 130; end of input closes it and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import wave
from typing import Any, Dict, Optional

import livesync

from ._common import Style, emulator_class, positive_number, warn

TEXT_MODEL = "gemini-live-2.5-flash-preview"
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
ANSWER_TIMEOUT = 120.0
OUTPUT_RATE = 24000
"""The Live API's reply audio: 24 kHz, 16-bit little-endian, mono PCM."""

EPILOG = """\
examples:
  python -m livesync chat --emulator                  # offline, no key
  echo "What is the capital of France?" | python -m livesync chat --emulator
  GEMINI_API_KEY=... python -m livesync chat --system "Answer in one sentence."
  python -m livesync chat --emulator --audio-out reply.wav
  python -m livesync chat --emulator --time-scale 0.01   # connections rotate every 6 s

One line of input is one question; end of input (Ctrl-D) or Ctrl-C ends the chat.
Reconnections are reported on stderr, e.g. [reconnected: planned, resumed, 12 ms].
The API key comes from GEMINI_API_KEY or GOOGLE_API_KEY (never from the command line).
"""


def add_parser(commands: Any) -> None:
    """Declare the ``chat`` subcommand."""
    parser = commands.add_parser(
        "chat", help="interactive text chat (real API or --emulator)",
        description="Chat with a Live model from the terminal, one question per line\n"
                    "(stdin may be a pipe). The session survives goAway rotations and drops.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emulator", action="store_true",
                        help="chat with an offline emulator started in-process (no key)")
    parser.add_argument("--model", default=None, metavar="M",
                        help="model name (default %s; with --audio-out %s)"
                             % (TEXT_MODEL, AUDIO_MODEL))
    parser.add_argument("--system", default=None, metavar="TEXT",
                        help="system instruction")
    parser.add_argument("--audio-out", default=None, metavar="FILE",
                        help="ask for spoken answers: print their transcript and write the "
                             "audio of every answer to FILE (WAV, 24 kHz 16-bit mono)")
    parser.add_argument("--time-scale", type=positive_number, default=1.0, metavar="F",
                        help="with --emulator: multiply its durations by F (connection "
                             "lifetime 600 s x F)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the chat on the main thread; return 0, 1 (failure), 2 (no key) or 130 (Ctrl-C)."""
    # Ctrl-C closes the session even when the shell started us with SIGINT ignored
    # (a background job of a non-interactive shell inherits that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.emulator:
            return run_with_emulator(args)
        if args.time_scale != 1.0:
            warn("--time-scale applies to the emulator: add --emulator")
            return 2
        if not any(os.environ.get(name) for name in KEY_VARIABLES):
            warn("no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), "
                 "or use --emulator to chat offline")
            return 2
        try:
            client = livesync.Client()
        except livesync.InvalidConfig as exc:
            warn("%s", exc)
            return 2
        return chat(client, args)
    except KeyboardInterrupt:  # before the session was open, or while it closed
        return 130


def run_with_emulator(args: argparse.Namespace) -> int:
    """Start an emulator in-process (its own threads), chat with it, stop it."""
    emulator_type = emulator_class()
    if emulator_type is None:
        return 1
    with emulator_type(time_scale=args.time_scale) as emu:
        return chat(livesync.Client(api_key=emu.api_key, base_url=emu.base_url), args)


def chat(client: livesync.Client, args: argparse.Namespace) -> int:
    """Connect, answer lines from stdin until EOF or Ctrl-C, close (code 1000)."""
    audio = None
    if args.audio_out is not None:
        try:
            audio = AudioFile(args.audio_out)
        except OSError as exc:
            warn("cannot write %s: %s", args.audio_out, exc.strerror or exc)
            return 1
    try:
        return connect_and_converse(client, args, audio)
    finally:
        if audio is not None:
            audio.close()


def connect_and_converse(client: livesync.Client, args: argparse.Namespace,
                         audio: Optional[AudioFile]) -> int:
    """Open the session, run :func:`converse`, close the session whatever happens."""
    status = Status()
    try:
        session = client.connect(
            args.model or (AUDIO_MODEL if audio else TEXT_MODEL), config=live_config(args),
            on_reconnect=status.on_reconnect, on_close=status.on_close)
    except livesync.LiveSyncError as exc:
        warn("could not open a session: %s", exc)
        return 1
    try:
        return converse(session, audio)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the close
        if sys.stdout.isatty():
            print()
        return 130
    finally:
        session.close()  # idempotent; bounded by close_timeout


def live_config(args: argparse.Namespace) -> Dict[str, Any]:
    """The session's config: TEXT answers, or AUDIO with output transcription."""
    config: Dict[str, Any] = {"response_modalities": ["TEXT"]}
    if args.audio_out is not None:
        config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
    if args.system:
        config["system_instruction"] = args.system
    return config


def converse(session: livesync.Session, audio: Optional[AudioFile]) -> int:
    """Ask each non-empty input line and print the answer (main thread)."""
    while True:
        line = read_line()
        if line is None:
            return 0
        if not line.strip():
            continue
        try:
            turn = session.ask(line.strip(), timeout=ANSWER_TIMEOUT)
        except TimeoutError as exc:
            warn("no answer: %s", exc)
            continue
        except livesync.SessionClosed as exc:
            warn("the session ended: %s", exc)
            return 1
        if audio is not None:
            audio.write(turn.audio)
            print(turn.transcript or turn.text, flush=True)
        else:
            print(turn.text, flush=True)


def read_line() -> Optional[str]:
    """One line of input, with a ``> `` prompt on a terminal; None at end of input."""
    if sys.stdin.isatty():
        try:
            return input("> ")
        except EOFError:
            return None
    line = sys.stdin.readline()
    return line if line else None


class Status:
    """Prints reconnections and the close as one dim line each on stderr.

    The callbacks run on livesync's dispatcher thread.
    """

    def __init__(self) -> None:
        self.style = Style(sys.stderr)

    def show(self, text: str) -> None:
        print(self.style.dim("[%s]" % text), file=sys.stderr, flush=True)

    def on_reconnect(self, event: livesync.Reconnected) -> None:
        parts = ["planned" if event.planned else "unplanned",
                 "resumed" if event.resumed else "FRESH session: earlier context lost",
                 "%.0f ms" % event.gap_ms]
        if event.replayed:
            parts.append("replayed %d" % event.replayed)
        if event.dropped:
            parts.append("dropped %d" % event.dropped)
        self.show("reconnected: " + ", ".join(parts))

    def on_close(self, event: livesync.Closed) -> None:
        detail = " %s" % event.reason if event.reason else ""
        error = ": %s" % event.error if event.error is not None else ""
        self.show("closed: %s%s%s" % (event.code, detail, error))


class AudioFile:
    """The reply audio of every answer, appended to one WAV file (main thread only).

    ``wave`` rewrites the header after each write, so the file is valid after
    every answer, even if the chat is killed later. (``Turn.save_wav`` writes one
    turn per file; a chat has many turns.)
    """

    def __init__(self, path: str) -> None:
        self._wav = wave.open(path, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(OUTPUT_RATE)
        self._wav.writeframes(b"")  # writes the header now: a valid, empty WAV

    def write(self, pcm: bytes) -> None:
        """Append 24 kHz 16-bit mono PCM."""
        self._wav.writeframes(pcm)

    def close(self) -> None:
        """Finish the file; idempotent."""
        self._wav.close()
