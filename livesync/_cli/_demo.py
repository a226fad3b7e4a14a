"""``python -m livesync demo``: one session across goAway rotations and a drop, offline.

Starts the embedded emulator with a short connection lifetime, asks questions at
a steady pace from the main thread, injects one TCP drop after the first
rotation, and prints a live timeline. Threads: the main thread asks and injects;
livesync's dispatcher thread runs the callbacks (``on_open``, ``on_goaway``,
``on_resumption_update``, ``on_reconnect``, ``on_close``), which only print
through :class:`Timeline` (one lock).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Optional, TextIO

import livesync

from ._common import Style, abbreviate, arrow, emulator_class, positive_seconds

MODEL = "gemini-live-2.5-flash-preview"
NOMINAL_LIFETIME = 600.0
"""The emulator's nominal connection lifetime (the real service's ~10 minutes)."""

QUESTIONS = (
    "What is the capital of France?",
    "What did I just say?",
    "What is the capital of Germany?",
    "Are you there?",
    "Count to 5",
    "What is the capital of Japan?",
    "What did I say?",
)
"""The conversation, cycled; "what did I say" shows a resumed session kept its history."""

DROP_QUESTION = "Count to 20"
"""Asked when the drop is injected: a reply long enough to be cut in the middle."""

EPILOG = """\
examples:
  python -m livesync demo                 # about 10 s: 3 goAway rotations and 1 drop
  python -m livesync demo --lifetime 1    # faster rotations
  python -m livesync demo --quiet         # only the stats line

No API key and no network: the demo runs livesync.emulator in-process.
"""


def add_parser(commands: Any) -> None:
    """Declare the ``demo`` subcommand."""
    parser = commands.add_parser(
        "demo", help="offline demo: one session across rotations and a drop",
        description="Run a conversation against the embedded emulator, whose connections\n"
                    "live only a few seconds, and print how livesync keeps the session:\n"
                    "connections, handles, gaps, replayed messages and turns.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifetime", type=positive_seconds, default=2.5, metavar="SECONDS",
                        help="real lifetime of each emulator connection (default 2.5)")
    parser.add_argument("--rotations", type=rotation_count, default=3, metavar="N",
                        help="goAway rotations to go through, 1-20 (default 3)")
    parser.add_argument("--quiet", action="store_true", help="print only the stats line")
    parser.set_defaults(run=run)


def rotation_count(text: str) -> int:
    """argparse ``type``: 1-20 rotations."""
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 20, not %r" % text)
    return int(text)


class Timeline:
    """Prints the demo's events as aligned lines with relative timestamps.

    Any thread: the main thread (turns, injected faults) and livesync's
    dispatcher thread (the callbacks) both print, under one lock.
    """

    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.style = Style(out)
        self.arrow = arrow(out)
        self.start = time.monotonic()
        self.reconnected_at = self.start
        self.broken = False
        """stdout was closed by its reader; set by any thread, read by the main thread."""
        self._lock = threading.Lock()

    def line(self, kind: str, text: str, color: str = "") -> None:
        """Print ``  12.34s  kind     text``; ``color`` names a :class:`Style` method."""
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        label = "%-7s" % kind
        if color:
            label = getattr(self.style, color)(label)
        with self._lock:
            if self.broken:
                return
            try:
                print("%7.2fs  %s  %s" % (elapsed, label, text), file=self.out, flush=True)
            except BrokenPipeError:  # e.g. `| head`: stop printing, the main thread stops
                self.broken = True

    def since_reconnect(self) -> float:
        """Seconds since the session's connection last changed (or since the start)."""
        return time.monotonic() - self.reconnected_at

    def short(self, handle: Optional[str]) -> str:
        """An abbreviated handle (never the whole one)."""
        return abbreviate(handle, self.out)

    # Callbacks: livesync's dispatcher thread.

    def on_open(self, event: livesync.Opened) -> None:
        self.line("conn 1", "fresh session", "green")

    def on_goaway(self, go_away: livesync.GoAway) -> None:
        left = go_away.time_left.total_seconds() if go_away.time_left else 0.0
        self.line("goAway", "the server ends this connection in %.2f s" % left, "yellow")

    def on_resumption_update(self, update: livesync.SessionResumptionUpdate) -> None:
        if update.resumable and update.new_handle:
            self.line("handle", self.style.dim("%s  new resumption handle" % self.short(
                update.new_handle)), "dim")

    def on_reconnect(self, event: livesync.Reconnected) -> None:
        self.reconnected_at = time.monotonic()
        how = "resumed" if event.resumed else "FRESH session (context lost)"
        why = "planned (%s)" % event.cause if event.planned else "unplanned (%s)" % event.cause
        self.line("conn %d" % event.generation, "%s  %s  gap %.1f ms  replayed %d" % (
            how, self.style.dim(why), event.gap_ms, event.replayed), "green")

    def on_close(self, event: livesync.Closed) -> None:
        self.line("closed", ("code %s %s" % (event.code, event.reason)).rstrip(), "dim")


def run(args: argparse.Namespace) -> int:
    """Run the demo on the main thread; return 0, 1 on a failure, 130 on Ctrl-C."""
    emulator_type = emulator_class()
    if emulator_type is None:
        return 1
    timeline = Timeline(sys.stdout, args.quiet)
    try:
        with emulator_type(time_scale=args.lifetime / NOMINAL_LIFETIME, chunk_delay=0.03) as emu:
            header(timeline, emu.base_url, args.lifetime)
            return converse(timeline, emu, args.rotations, args.lifetime)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except (livesync.LiveSyncError, TimeoutError) as exc:
        print("livesync demo: %s" % exc, file=sys.stderr)
        return 1


def header(timeline: Timeline, base_url: str, lifetime: float) -> None:
    """Print what the demo does (not in --quiet mode)."""
    if timeline.quiet:
        return
    print("livesync demo: one Live session, many connections (offline emulator at %s)\n"
          "each connection lives %.1f s; the server sends goAway shortly before the end\n"
          % (base_url, lifetime), flush=True)
    print(timeline.style.dim("%8s  %-7s  %s" % ("time", "event", "details")), flush=True)


def converse(timeline: Timeline, emu: Any, rotations: int, lifetime: float) -> int:
    """Ask questions until ``rotations`` planned rotations and one drop happened; print stats."""
    drop = DropInjector(timeline, emu)
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    session = client.connect(
        MODEL, config={"response_modalities": ["TEXT"]},
        on_message=drop.on_message, on_open=timeline.on_open, on_goaway=timeline.on_goaway,
        on_resumption_update=timeline.on_resumption_update,
        on_reconnect=timeline.on_reconnect, on_close=timeline.on_close,
        reconnect=livesync.ReconnectPolicy(initial_delay=0.05))
    pace = threading.Event()  # never set: an interruptible sleep between questions
    turns = 0
    deadline = time.monotonic() + 50
    with session:
        while time.monotonic() < deadline:
            planned = session.stats().rotations_planned
            question = QUESTIONS[turns % len(QUESTIONS)]
            if planned >= 1 and not drop.done and timeline.since_reconnect() > lifetime / 3:
                drop.armed = True
                question = DROP_QUESTION
            ask(timeline, session, question)
            turns += 1
            if (planned >= rotations and drop.done) or timeline.broken:
                break
            pace.wait(lifetime * 0.4)
        stats = session.stats()
    print(summary(stats, turns, time.monotonic() - timeline.start), flush=True)
    if stats.rotations_planned >= rotations and drop.done:
        return 0
    print("livesync demo: expected %d rotations and a drop within 50 s" % rotations,
          file=sys.stderr)
    return 1


class DropInjector:
    """Cuts the connection once, on the first chunk of an answer after :attr:`armed` is set.

    ``armed`` is set by the main thread; :meth:`on_message` runs on livesync's
    dispatcher thread (the emulator's ``drop()`` is thread-safe and non-blocking).
    """

    def __init__(self, timeline: Timeline, emu: Any) -> None:
        self.timeline = timeline
        self.emu = emu
        self.armed = False
        self.done = False

    def on_message(self, message: livesync.LiveServerMessage) -> None:
        if not (self.armed and message.text):
            return
        self.armed = False
        try:
            self.emu.drop()
        except LookupError:
            return  # the connection was closing anyway: try again on a later question
        self.done = True
        self.timeline.line("drop", "injected mid-answer: TCP connection cut, no close frame",
                           "red")


def ask(timeline: Timeline, session: livesync.Session, question: str) -> None:
    """Ask on the main thread (blocks until answered) and print the turn."""
    started = time.monotonic()
    turn = session.ask(question, timeout=30)
    took = (time.monotonic() - started) * 1000
    timeline.line("turn", "%s %s %s  %s" % (
        timeline.style.cyan(question), timeline.arrow, turn.text,
        timeline.style.dim("(%.0f ms)" % took)))


def summary(stats: livesync.SessionStats, turns: int, elapsed: float) -> str:
    """The one-line ``stats()`` summary."""
    return ("stats: %d connections (%d planned, %d unplanned), %d resumed, %d fresh, "
            "gap median %.1f ms / max %.1f ms, replayed %d, dropped %d, %d turns in %.1f s" % (
                stats.connections, stats.rotations_planned, stats.rotations_unplanned,
                stats.resumed, stats.fresh, stats.gap_median_ms or 0.0, stats.gap_max_ms or 0.0,
                stats.replayed, stats.dropped, turns, elapsed))
