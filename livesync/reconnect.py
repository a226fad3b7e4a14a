"""Reconnection policy and the close-classification table (pure: no sleeping, no I/O).

How a connection ended decides what the supervisor does next:

======================================================  ===========
outcome                                                 action
======================================================  ===========
``goAway`` received, then any close except 1007         ``ROTATE``
1000, 1001, 1006 / no close frame, 1011, 1012–1014,     ``RETRY``
socket errors, keepalive timeout, other codes
HTTP 408, 429 or 5xx on the upgrade                     ``RETRY``
1007 invalid argument, 1008 policy / not found,         ``FATAL``
1002, 1003, 1009, 1010, other HTTP statuses
======================================================  ===========

``ROTATE`` and ``RETRY`` both resume with the latest handle; ``RETRY`` goes
through the backoff of :class:`ReconnectPolicy`. A close before the first
``setupComplete`` of a session is always fatal (the session layer decides
that, since only it knows).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Final, FrozenSet, Iterator, Optional

from .exceptions import InvalidConfig

__all__ = ["Action", "Outcome", "ReconnectPolicy", "classify"]

FATAL_CLOSE_CODES: Final[FrozenSet[int]] = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
RETRY_HTTP_STATUSES: Final[FrozenSet[int]] = frozenset({408, 429})


class Action(enum.Enum):
    """What the supervisor does after a connection ended."""

    ROTATE = "rotate"
    RETRY = "retry"
    FATAL = "fatal"


@dataclass(frozen=True)
class Outcome:
    """How one connection (or one connection attempt) ended.

    Attributes:
        code: WebSocket close code received, or None when there was no close frame.
        reason: the close reason text.
        status_code: HTTP status when the upgrade was refused.
        error: a short description of a transport error, if any.
        after_go_away: a ``goAway`` had been received on this connection.
    """

    code: Optional[int] = None
    reason: str = ""
    status_code: Optional[int] = None
    error: str = ""
    after_go_away: bool = False

    @property
    def effective_code(self) -> int:
        """The close code, with 1006 standing for "no close frame"."""
        return 1006 if self.code is None else self.code


def classify(outcome: Outcome) -> Action:
    """Return the action for ``outcome`` per the table in the module docstring."""
    if outcome.status_code is not None:
        status = outcome.status_code
        if status in RETRY_HTTP_STATUSES or 500 <= status <= 599:
            return Action.RETRY
        return Action.FATAL
    code = outcome.effective_code
    if outcome.after_go_away and code != 1007:
        return Action.ROTATE
    if code in FATAL_CLOSE_CODES:
        return Action.FATAL
    return Action.RETRY


@dataclass(frozen=True)
class ReconnectPolicy:
    """How livesync keeps a session alive. Immutable; share it freely.

    Args:
        max_attempts: reconnection attempts per outage before giving up
            (None: no cap; then ``max_elapsed`` should bound it).
        max_elapsed: seconds one outage may last before giving up (None: no cap).
        initial_delay: upper bound of the first backoff delay, in seconds.
        max_delay: cap on any backoff delay, in seconds.
        factor: growth of the delay bound per attempt.
        jitter: full jitter (a uniform draw in ``[0, bound]``); False uses the bound.
        reset_after: a connection that stayed open this many seconds resets the backoff.
        storm_threshold: the same close code this many times in a row ends the session.
        on_resume_refused: ``"fresh"`` starts a new session when the server refuses
            the handle (the conversation is lost; reported), ``"fail"`` ends the session.
        rotation_margin: after ``goAway``, rotate at the latest this many seconds
            before the deadline (capped at a quarter of the notice).
        replay_margin: on the Gemini API (no transparent acks) a resumption handle is
            taken to cover the client messages sent this many seconds, plus twice the
            measured round-trip time, before it arrived; later ones are replayed after
            a resume. Raise it for a server that lags behind its input.
    """

    max_attempts: Optional[int] = 10
    max_elapsed: Optional[float] = 300.0
    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: bool = True
    reset_after: float = 60.0
    storm_threshold: int = 5
    on_resume_refused: str = "fresh"
    rotation_margin: float = 5.0
    replay_margin: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InvalidConfig("max_attempts must be at least 1", field="max_attempts")
        if self.max_elapsed is not None and self.max_elapsed <= 0:
            raise InvalidConfig("max_elapsed must be positive", field="max_elapsed")
        for name in ("initial_delay", "max_delay", "reset_after", "rotation_margin",
                     "replay_margin"):
            if getattr(self, name) < 0:
                raise InvalidConfig("%s must not be negative" % name, field=name)
        if self.factor < 1:
            raise InvalidConfig("factor must be at least 1", field="factor")
        if self.storm_threshold < 2:
            raise InvalidConfig("storm_threshold must be at least 2", field="storm_threshold")
        if self.on_resume_refused not in ("fresh", "fail"):
            raise InvalidConfig(
                "on_resume_refused must be 'fresh' or 'fail'", field="on_resume_refused"
            )

    def delays(self, rng: Optional[random.Random] = None) -> Iterator[float]:
        """Yield the delay before each attempt of one outage; stops at ``max_attempts``.

        Exponential backoff with full jitter: attempt ``n`` (from 0) waits a uniform
        draw in ``[0, min(max_delay, initial_delay * factor**n)]``. Pass a seeded
        ``random.Random`` for repeatable delays. Never sleeps.
        """
        rng = rng if rng is not None else random.Random()
        attempt = 0
        bound = min(self.max_delay, self.initial_delay)
        while self.max_attempts is None or attempt < self.max_attempts:
            yield rng.uniform(0.0, bound) if self.jitter else bound
            bound = min(self.max_delay, bound * self.factor)
            attempt += 1

    def rotation_lead(self, time_left: float) -> float:
        """Seconds before a goAway deadline at which rotation is forced."""
        return min(self.rotation_margin, max(time_left, 0.0) / 4)
