"""Helpers shared by the commands: argument types, terminal styling, handle abbreviation.

Pure functions and one small class; no threads.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, TextIO

if TYPE_CHECKING:
    from ..emulator import Emulator

# Close codes a close frame may carry (RFC 6455 §7.4): 1004-1006 and 1015 are
# reserved, 1015+ up to 2999 unassigned, 3000-4999 for libraries and applications.
SENDABLE_CLOSE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | frozenset(
    range(3000, 5000))

MAX_CLOSE_REASON_BYTES = 123
"""A close frame's payload is at most 125 bytes, 2 of them the code."""


def seconds(text: str, *, allow_zero: bool = False) -> float:
    """Parse a finite number of seconds, positive (or zero if allowed); argparse ``type``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(
            "must be a %s number of seconds, not %r"
            % ("non-negative" if allow_zero else "positive", text))
    return value


def positive_seconds(text: str) -> float:
    """argparse ``type``: seconds > 0."""
    return seconds(text)


def non_negative_seconds(text: str) -> float:
    """argparse ``type``: seconds >= 0."""
    return seconds(text, allow_zero=True)


def positive_number(text: str) -> float:
    """argparse ``type``: a finite factor > 0 (e.g. ``--time-scale``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number, not %r" % text)
    return value


def port(text: str) -> int:
    """argparse ``type``: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("port must be 0-65535, not %d" % value)
    return value


def close_code(text: str) -> int:
    """argparse-style check of a WebSocket close code a server can send."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a close code: %r" % text) from None
    if value not in SENDABLE_CLOSE_CODES:
        raise argparse.ArgumentTypeError(
            "close code %d cannot be sent in a close frame "
            "(use 1000-1003, 1007-1014 or 3000-4999)" % value)
    return value


def close_reason(text: str) -> str:
    """Check that a close reason fits in a close frame."""
    if len(text.encode("utf-8")) > MAX_CLOSE_REASON_BYTES:
        raise argparse.ArgumentTypeError(
            "close reason longer than %d bytes" % MAX_CLOSE_REASON_BYTES)
    return text


def abbreviate(handle: Optional[str], stream: TextIO) -> str:
    """Return the first 6 characters of a resumption handle and an ellipsis, never more.

    Handles are bearer capabilities (STYLE.md 2.10): a full one is never printed.
    """
    if not handle:
        return "-"
    return handle[:6] + ellipsis(stream)


def ellipsis(stream: TextIO) -> str:
    """``…`` if ``stream`` can encode it, else ``...``."""
    try:
        "…".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "..."
    return "…"


def arrow(stream: TextIO) -> str:
    """``→`` if ``stream`` can encode it, else ``->``."""
    try:
        "→".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


class Style:
    """ANSI styling for one stream, enabled only on a terminal (and without ``NO_COLOR``)."""

    def __init__(self, stream: TextIO) -> None:
        isatty: Callable[[], bool] = getattr(stream, "isatty", lambda: False)
        self.enabled = (isatty() and "NO_COLOR" not in os.environ
                        and os.environ.get("TERM") != "dumb")

    def _wrap(self, code: str, text: str) -> str:
        return "\x1b[%sm%s\x1b[0m" % (code, text) if self.enabled and text else text

    def dim(self, text: str) -> str:
        """Faint text (metadata)."""
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        """Bold text."""
        return self._wrap("1", text)

    def green(self, text: str) -> str:
        """Green text (connections)."""
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        """Yellow text (planned events)."""
        return self._wrap("33", text)

    def red(self, text: str) -> str:
        """Red text (faults)."""
        return self._wrap("31", text)

    def cyan(self, text: str) -> str:
        """Cyan text (turns)."""
        return self._wrap("36", text)


def emulator_class() -> Optional[type[Emulator]]:
    """Import :class:`livesync.emulator.Emulator`; print a hint and return None if missing.

    The emulator needs the ``emulator`` extra (``websockets``).
    """
    try:
        from ..emulator import Emulator
    except ImportError as exc:
        print("livesync: the emulator needs the 'emulator' extra (%s): "
              "pip install 'livesync[emulator]'" % exc, file=sys.stderr)
        return None
    return Emulator


def warn(message: str, *args: Any) -> None:
    """Print ``livesync: message`` on stderr."""
    print("livesync: " + (message % args if args else message), file=sys.stderr, flush=True)
