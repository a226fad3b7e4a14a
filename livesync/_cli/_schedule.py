"""Fault injection on a schedule for ``python -m livesync emulator``.

Grammar (one flag per fault kind; each may be repeated; SECONDS are real
seconds, the first injection happens SECONDS after start, then every SECONDS):

=================================================  =========================================
``--drop-every SECONDS``                           TCP drop without a close frame (client: 1006)
``--close-every SECONDS:CODE[:REASON]``            close frame, e.g. ``60:1011`` or
                                                   ``45:1008:Requested entity was not found.``
``--go-away-every SECONDS[:TIME_LEFT]``            an early ``goAway`` (default notice), enforced
``--stall-every SECONDS``                          stop reading and sending, keep TCP open
``--refuse-resume-every SECONDS[:CODE[:REASON]]``  refuse the next resume after each tick
``--refuse-upgrades-every SECONDS:WINDOW[:STATUS]`` refuse every upgrade for WINDOW s (HTTP 503)
=================================================  =========================================

Connection faults hit the newest open connection; with none open, the tick is
skipped and logged. Parsing is pure; :class:`FaultSchedule` owns one timer
thread (``livesync-faults``) that calls the emulator's thread-safe,
non-blocking fault methods and prints one line per injection.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import threading
import time
from typing import Any, Callable, List, Optional, Sequence, TextIO, Tuple

from ._common import close_code, close_reason, non_negative_seconds, positive_seconds


@dataclasses.dataclass(frozen=True)
class Fault:
    """One scheduled fault: ``action`` every ``every`` real seconds, with its parameters."""

    action: str
    every: float
    code: Optional[int] = None
    reason: Optional[str] = None
    seconds: Optional[float] = None
    status: int = 503

    def describe(self) -> str:
        """A short human description, e.g. ``close 1011 every 60 s``."""
        detail = {
            "close": " %s%s" % (self.code, " %r" % self.reason if self.reason else ""),
            "go-away": "" if self.seconds is None else " (%g s left)" % self.seconds,
            "refuse-resume": "" if self.code is None else " with %s" % self.code,
            "refuse-upgrades": " for %g s (HTTP %d)" % (self.seconds or 0, self.status),
        }.get(self.action, "")
        return "%s%s every %g s" % (self.action, detail, self.every)


def _split(text: str, least: int, most: int, form: str) -> List[str]:
    parts = text.split(":", most - 1)
    if not least <= len(parts) <= most or not all(parts[:least]):
        raise argparse.ArgumentTypeError("expected %s, not %r" % (form, text))
    return parts


def drop_spec(text: str) -> Fault:
    """``SECONDS``."""
    return Fault("drop", positive_seconds(text))


def stall_spec(text: str) -> Fault:
    """``SECONDS``."""
    return Fault("stall", positive_seconds(text))


def close_spec(text: str) -> Fault:
    """``SECONDS:CODE[:REASON]``."""
    parts = _split(text, 2, 3, "SECONDS:CODE[:REASON]")
    reason = close_reason(parts[2]) if len(parts) == 3 else ""
    return Fault("close", positive_seconds(parts[0]), code=close_code(parts[1]), reason=reason)


def go_away_spec(text: str) -> Fault:
    """``SECONDS[:TIME_LEFT]``."""
    parts = _split(text, 1, 2, "SECONDS[:TIME_LEFT]")
    left = non_negative_seconds(parts[1]) if len(parts) == 2 else None
    return Fault("go-away", positive_seconds(parts[0]), seconds=left)


def refuse_resume_spec(text: str) -> Fault:
    """``SECONDS[:CODE[:REASON]]``."""
    parts = _split(text, 1, 3, "SECONDS[:CODE[:REASON]]")
    code = close_code(parts[1]) if len(parts) >= 2 else None
    reason = close_reason(parts[2]) if len(parts) == 3 else None
    return Fault("refuse-resume", positive_seconds(parts[0]), code=code, reason=reason)


def refuse_upgrades_spec(text: str) -> Fault:
    """``SECONDS:WINDOW[:STATUS]``."""
    parts = _split(text, 2, 3, "SECONDS:WINDOW[:STATUS]")
    status = 503
    if len(parts) == 3:
        if not parts[2].isdigit() or not 400 <= int(parts[2]) <= 599:
            raise argparse.ArgumentTypeError("STATUS must be an HTTP error status 400-599")
        status = int(parts[2])
    return Fault("refuse-upgrades", positive_seconds(parts[0]),
                 seconds=positive_seconds(parts[1]), status=status)


FLAGS: Tuple[Tuple[str, Callable[[str], Fault], str, str], ...] = (
    ("--drop-every", drop_spec, "SECONDS", "cut the TCP connection (no close frame)"),
    ("--close-every", close_spec, "SECONDS:CODE[:REASON]",
     "send a close frame, e.g. 60:1011 or '45:1008:Requested entity was not found.'"),
    ("--go-away-every", go_away_spec, "SECONDS[:TIME_LEFT]",
     "send an early goAway (TIME_LEFT real seconds, default the notice), then close 1011"),
    ("--stall-every", stall_spec, "SECONDS", "stop answering, keep TCP open"),
    ("--refuse-resume-every", refuse_resume_spec, "SECONDS[:CODE[:REASON]]",
     "refuse the next resume after each tick (default 1008 Requested entity was not found.)"),
    ("--refuse-upgrades-every", refuse_upgrades_spec, "SECONDS:WINDOW[:STATUS]",
     "refuse every WebSocket upgrade for WINDOW seconds with HTTP STATUS (default 503)"),
)
"""The schedule flags: (flag, parser, metavar, help)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the schedule flags (repeatable; collected in ``args.faults``)."""
    group = parser.add_argument_group(
        "fault schedule", "real seconds; first at SECONDS after start, then every SECONDS; "
        "each flag may be repeated; connection faults hit the newest open connection")
    for flag, parse, metavar, text in FLAGS:
        group.add_argument(flag, dest="faults", action="append", type=parse, default=[],
                           metavar=metavar, help=text)


class FaultSchedule:
    """Injects ``faults`` into ``emulator`` on its own timer thread, logging each one.

    :meth:`start` and :meth:`stop` are called from the main thread; the
    injections run on the ``livesync-faults`` thread.
    """

    def __init__(self, emulator: Any, faults: Sequence[Fault], out: TextIO) -> None:
        self.emulator = emulator
        self.faults = tuple(faults)
        self.out = out
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="livesync-faults", daemon=True)

    def start(self) -> None:
        """Start the timer thread (no-op without faults)."""
        self._start = time.monotonic()
        if self.faults:
            self._thread.start()

    def stop(self) -> None:
        """Stop the timer thread; idempotent, waits at most a second."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)

    def _run(self) -> None:
        queue = [(self._start + f.every, i, f) for i, f in enumerate(self.faults)]
        heapq.heapify(queue)
        while True:
            due, index, fault = queue[0]
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            heapq.heapreplace(queue, (due + fault.every, index, fault))
            self.log(self.inject(fault))

    def log(self, text: str) -> None:
        """Print ``[  12.00s] text`` (timer thread)."""
        print("[%8.2fs] %s" % (time.monotonic() - self._start, text), file=self.out, flush=True)

    def inject(self, fault: Fault) -> str:
        """Inject one fault now; return what was done (timer thread)."""
        emu = self.emulator
        if fault.action == "refuse-resume":
            emu.refuse_next_resume(fault.code, fault.reason)
            return "armed: the next resume will be refused"
        if fault.action == "refuse-upgrades":
            window = fault.seconds or 0.0
            emu.refuse_upgrades_for(window, status=fault.status)
            return "refusing upgrades for %g s with HTTP %d" % (window, fault.status)
        target = newest_open(emu)
        try:
            if target is None:
                raise LookupError("no open connection")
            self._hit(fault, target)
        except LookupError as exc:
            return "%s skipped: %s" % (fault.action, exc)
        return "%s -> connection %d" % (fault.describe().rsplit(" every ", 1)[0], target)

    def _hit(self, fault: Fault, conn: int) -> None:
        emu = self.emulator
        if fault.action == "drop":
            emu.drop(conn)
        elif fault.action == "stall":
            emu.stall(conn)
        elif fault.action == "close":
            emu.close(fault.code, fault.reason or "", conn)
        else:
            emu.send_go_away(fault.seconds, conn)


def newest_open(emulator: Any) -> Optional[int]:
    """The id of the newest open connection, or None."""
    open_ids = [c.id for c in emulator.connections if c.open and not c.stalled]
    return max(open_ids) if open_ids else None
