"""Reconnection policy, outage bookkeeping and the close-classification table.

Pure: no sleeping, no clock, no I/O. Time and randomness are passed in, so every
decision is a repeatable function of its inputs.

How a connection (or an attempt at one) ended decides what the supervisor does:

======================================================  ===========
outcome                                                 action
======================================================  ===========
a failure retrying cannot fix (``Outcome.fatal``:       ``FATAL``
TLS certificate verification, bad credentials)
HTTP 408, 429 or 5xx on the upgrade                     ``RETRY``
any other HTTP status (400, 401, 403, 404, ...)         ``FATAL``
1011 "Token has been used too many times" with a fixed  ``FATAL``
credential (a ``token_provider`` mints a new one:
``RETRY``)
``goAway`` received, then any close except 1007         ``ROTATE``
1008 within ``TOOL_RESPONSE_WINDOW`` seconds of a tool  ``RETRY``
response (native-audio models close so at random)
1007 invalid argument, 1008 policy / not found,         ``FATAL``
1002, 1003, 1009, 1010
1000, 1001, 1011, 1012–1014, other codes                ``RETRY``
no close frame: refused, DNS, TLS handshake, timeouts,  ``RETRY``
drops, keepalive timeout
======================================================  ===========

``ROTATE`` and ``RETRY`` both resume with the latest handle. A close before the
first ``setupComplete`` of a session is always fatal. A refused resume
(:meth:`ReconnectPolicy.resume_refused`: a 1007/1008 during the setup of a
resume, or right after it, before any progress: a poisoned resume) goes to the
``on_resume_refused`` policy instead of the table: the session layer applies both.

Outages and storms are different things (DESIGN.md §3.3):

- An **outage** is everything between a useful connection going down and the next
  one: failed dials, refusals, short-lived connections. It is governed only by
  backoff with full jitter, ``Retry-After``, ``max_attempts`` and ``max_elapsed``.
  With the defaults a session rides out any outage shorter than ``max_elapsed``,
  however many attempts that takes. :class:`Outage` keeps its history, immutably
  (urllib3 ``Retry`` style): ``outage = outage.record(outcome, now)``.
- A **storm** is the same server close code *and* reason ending, ``storm_threshold``
  times in a row, connections that reached ``setupComplete`` and lived less than
  ``storm_window`` (a poisoned resume). Outcomes without a close frame never count.
  Only a storm trips the breaker.

A connection is **useful** when it reached ``setupComplete`` and either stayed
open ``reset_after`` seconds or made progress (model output or a new resumable
handle), and did not end like a storm (a close frame within ``storm_window``).
The end of a useful connection starts a fresh outage: a new attempt history, a
new time budget, the backoff from its first step.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from dataclasses import dataclass
from typing import Final, FrozenSet, Iterator, Optional, Tuple

from .exceptions import Attempt, InvalidConfig, ReconnectExhausted

__all__ = ["Action", "Outage", "Outcome", "ReconnectPolicy", "classify"]

FATAL_CLOSE_CODES: Final[FrozenSet[int]] = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
RETRY_HTTP_STATUSES: Final[FrozenSet[int]] = frozenset({408, 429})

#: Seconds after a tool response within which a 1008 close is taken as the service's
#: flake on native-audio models (docs/protocol.md §6), not a client error.
TOOL_RESPONSE_WINDOW: Final = 5.0
#: Close reason of a resume with a spent ephemeral token (observed: a resume may use one).
TOKEN_SPENT: Final = "Token has been used too many times"

WHY_ATTEMPTS: Final = "reconnect attempts exhausted"
WHY_BUDGET: Final = "reconnect time budget exhausted"
WHY_STORM: Final = "close storm"


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
        retry_after: seconds the server asked to wait (``Retry-After`` on a refused
            upgrade), if it did.
        reached_setup: the connection reached ``setupComplete``: this is the end of
            a connection that was up, not a failed attempt at one.
        lived: seconds the connection stayed open after ``setupComplete``.
        progressed: after ``setupComplete`` the server sent model output (content,
            a tool call, a turn end) or a new resumable handle.
        fatal: retrying cannot help (TLS certificate verification failed, a
            credential or configuration error); :func:`classify` says ``FATAL``.
        resumed: the connection (or attempt) resumed a session with a handle.
        after_tool_response: the last client message on the connection was a tool
            response, written less than ``TOOL_RESPONSE_WINDOW`` seconds before it ended.
    """

    code: Optional[int] = None
    reason: str = ""
    status_code: Optional[int] = None
    error: str = ""
    after_go_away: bool = False
    retry_after: Optional[float] = None
    reached_setup: bool = False
    lived: float = 0.0
    progressed: bool = False
    fatal: bool = False
    resumed: bool = False
    after_tool_response: bool = False

    @property
    def effective_code(self) -> int:
        """The close code, with 1006 standing for "no close frame"."""
        return 1006 if self.code is None else self.code


def classify(outcome: Outcome, *, renewable_credential: bool = False) -> Action:
    """Return the action for ``outcome`` per the table in the module docstring.

    ``renewable_credential``: every dial gets a new credential (a ``token_provider``).
    """
    if outcome.fatal:
        return Action.FATAL
    if outcome.status_code is not None:
        status = outcome.status_code
        if status in RETRY_HTTP_STATUSES or 500 <= status <= 599:
            return Action.RETRY
        return Action.FATAL
    code = outcome.effective_code
    if code == 1011 and TOKEN_SPENT in outcome.reason and not renewable_credential:
        return Action.FATAL
    if outcome.after_go_away and code != 1007:
        return Action.ROTATE
    if code == 1008 and outcome.after_tool_response:
        return Action.RETRY
    if code in FATAL_CLOSE_CODES:
        return Action.FATAL
    return Action.RETRY


@dataclass(frozen=True)
class ReconnectPolicy:
    """How livesync keeps a session alive. Immutable; share it freely.

    Args:
        max_attempts: reconnection attempts per outage before giving up
            (None, the default: no cap; ``max_elapsed`` bounds the outage).
        max_elapsed: seconds one outage may last before giving up (None: no cap).
        initial_delay: upper bound of the first backoff delay, in seconds.
        max_delay: cap on any backoff delay, in seconds.
        factor: growth of the delay bound per attempt.
        jitter: full jitter (a uniform draw in ``[0, bound]``); False uses the bound.
        reset_after: a connection that stayed open this many seconds after
            ``setupComplete`` was useful: its end starts a fresh outage.
        storm_threshold: the same close code and reason ending this many
            connections in a row, each within ``storm_window``, ends the session.
        storm_window: seconds after ``setupComplete`` within which a server close
            counts toward a storm.
        on_resume_refused: ``"fresh"`` starts a new session when the server refuses
            the handle (the conversation is lost; reported), ``"fail"`` ends the session.
            A storm falls back the same way once before giving up.
        rotation_margin: after ``goAway``, rotate at the latest this many seconds
            before the deadline (capped at a quarter of the notice).
        replay_margin: on the Gemini API (no transparent acks) a resumption handle is
            taken to cover the client messages sent this many seconds, plus twice the
            measured round-trip time (at least 20 ms), before it arrived; later ones
            are replayed after a resume. Raise it for a server that lags behind its
            input.
    """

    max_attempts: Optional[int] = None
    max_elapsed: Optional[float] = 300.0
    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: bool = True
    reset_after: float = 10.0
    storm_threshold: int = 5
    storm_window: float = 10.0
    on_resume_refused: str = "fresh"
    rotation_margin: float = 5.0
    replay_margin: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InvalidConfig("max_attempts must be at least 1", field="max_attempts")
        if self.max_elapsed is not None and self.max_elapsed <= 0:
            raise InvalidConfig("max_elapsed must be positive", field="max_elapsed")
        for name in ("initial_delay", "max_delay", "reset_after", "storm_window",
                     "rotation_margin", "replay_margin"):
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

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Return the delay before attempt ``attempt`` (from 0) of an outage.

        Full jitter: a uniform draw in ``[0, min(max_delay, initial_delay *
        factor**attempt)]`` (the bound itself when ``jitter`` is off).
        """
        bound = min(self.max_delay, self.initial_delay)
        if bound > 0:
            try:
                bound = min(self.max_delay, self.initial_delay * self.factor ** attempt)
            except OverflowError:  # far past the cap
                bound = self.max_delay
        return rng.uniform(0.0, bound) if self.jitter else bound

    def delays(self, rng: Optional[random.Random] = None) -> Iterator[float]:
        """Yield the delay before each attempt of one outage; stops at ``max_attempts``.

        The plain backoff sequence of :meth:`backoff`, without ``Retry-After``,
        time budget or storms; :class:`Outage` applies those. Never sleeps.
        """
        rng = rng if rng is not None else random.Random()
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            yield self.backoff(attempt, rng)
            attempt += 1

    def storm_close(self, outcome: Outcome) -> bool:
        """Whether ``outcome`` counts toward a storm: a server close frame (not after
        ``goAway``) within ``storm_window`` seconds of ``setupComplete``, before the
        connection made any progress (a model message)."""
        return (outcome.reached_setup and outcome.code is not None and not outcome.progressed
                and not outcome.after_go_away and outcome.lived < self.storm_window)

    def resume_refused(self, outcome: Outcome) -> bool:
        """Whether the server refused to restore the session: a 1007 or 1008 close of a
        resume during its setup, or within ``storm_window`` after it before any
        progress (a poisoned resume: the restored context fails again at once), unless
        it followed a tool response (then it is retried, see :func:`classify`)."""
        if not outcome.resumed or outcome.code not in (1007, 1008) or (
                outcome.status_code is not None or outcome.after_tool_response):
            return False
        return not outcome.reached_setup or self.storm_close(outcome)

    def useful(self, outcome: Outcome) -> bool:
        """Whether ``outcome`` ends a connection that was up and useful (its end starts
        a fresh outage): it reached ``setupComplete``, did not end like a storm, and
        stayed open ``reset_after`` seconds or made progress."""
        return (outcome.reached_setup and not self.storm_close(outcome)
                and (outcome.lived >= self.reset_after or outcome.progressed))

    def rotation_lead(self, time_left: float) -> float:
        """Seconds before a goAway deadline at which rotation is forced."""
        return min(self.rotation_margin, max(time_left, 0.0) / 4)


@dataclass(frozen=True)
class Outage:
    """One outage: what ended the last useful connection, and every attempt since.

    Immutable, like urllib3's ``Retry``: each method returns a new object. The
    supervisor only waits and dials::

        # a connection ended with ``ended`` (its first one, or the one the
        # kept ``outage`` led to: record() starts afresh if it was useful)
        outage = Outage.start(policy, ended, now) if outage is None \
            else outage.record(ended, now)
        while True:
            outage = outage.next_attempt(rng, now)      # or ReconnectExhausted
            wait(outage.delay); dial and set up
            if it failed:
                outage = outage.record(failure, now)    # then classify(failure)
                continue
            break                                       # keep ``outage``

    Attributes:
        policy: the reconnect policy.
        cause: what ended the latest connection of the outage (not a failed dial);
            its code and reason are reported when the outage is exhausted.
        started_at: when the outage started (the caller's clock).
        history: one :class:`~livesync.Attempt` per attempt that failed or led to
            a connection that was not useful, numbered from 1.
        delay: the delay chosen by the latest :meth:`next_attempt`.
        streak: connections in a row ended like a storm with ``cause``'s code and
            reason.
        retry_after: the ``Retry-After`` of the latest recorded attempt.
        fell_back: :meth:`fall_back` was used in this outage.
    """

    policy: ReconnectPolicy
    cause: Outcome
    started_at: float
    history: Tuple[Attempt, ...] = ()
    delay: float = 0.0
    streak: int = 0
    retry_after: Optional[float] = None
    fell_back: bool = False

    @classmethod
    def start(cls, policy: ReconnectPolicy, cause: Outcome, now: float) -> Outage:
        """Start an outage: a connection ended with ``cause`` at time ``now``."""
        return cls(policy, cause, now, streak=1 if policy.storm_close(cause) else 0)

    @property
    def attempt(self) -> int:
        """The number of the next (or current) attempt, from 1."""
        return len(self.history) + 1

    def elapsed(self, now: float) -> float:
        """Seconds since the outage started."""
        return now - self.started_at

    def record(self, outcome: Outcome, now: float) -> Outage:
        """Return the outage with the attempt that ended with ``outcome`` added.

        ``outcome`` is a failed attempt (refused, timed out, closed before
        ``setupComplete``), or the end of the connection the latest attempt made.
        If that connection was useful (:meth:`ReconnectPolicy.useful`), a fresh
        outage starts at ``now`` instead.
        """
        policy = self.policy
        if policy.useful(outcome):
            return Outage.start(policy, outcome, now)
        attempt = Attempt(self.attempt, self.delay, outcome.code, outcome.status_code,
                          outcome.error, outcome.reason, outcome.retry_after)
        cause, streak = self.cause, self.streak
        if outcome.reached_setup:
            cause = outcome
            if not policy.storm_close(outcome):
                streak = 0
            elif streak and (outcome.code, outcome.reason) == (self.cause.code,
                                                                self.cause.reason):
                streak += 1
            else:
                streak = 1
        return dataclasses.replace(self, cause=cause, history=self.history + (attempt,),
                                   streak=streak, retry_after=outcome.retry_after)

    def storm(self) -> bool:
        """Whether the storm breaker has tripped."""
        return self.streak >= self.policy.storm_threshold

    def fall_back(self) -> Outage:
        """Return the outage with the storm forgotten, once the supervisor fell back
        per ``on_resume_refused`` (a fresh session instead of the poisoned resume)."""
        return dataclasses.replace(self, streak=0, fell_back=True)

    def next_attempt(self, rng: random.Random, now: float) -> Outage:
        """Return the outage with :attr:`delay` set for the next attempt.

        The first attempt after a planned rotation (``goAway``) waits 0. Otherwise
        the backoff of :meth:`ReconnectPolicy.backoff`, raised to the server's
        ``Retry-After``, and cut to what is left of ``max_elapsed`` so the last
        attempt happens at the end of the budget.

        Raises:
            ReconnectExhausted: a storm, ``max_attempts`` reached, or ``max_elapsed``
                used up (or a ``Retry-After`` that goes past it). It carries the
                history and the code and reason of :attr:`cause`.
        """
        policy = self.policy
        done = len(self.history)
        if self.storm():
            raise self.exhausted(WHY_STORM)
        if policy.max_attempts is not None and done >= policy.max_attempts:
            raise self.exhausted(WHY_ATTEMPTS)
        if done == 0 and classify(self.cause) is Action.ROTATE:
            delay = 0.0
        else:
            delay = policy.backoff(done, rng)
        if self.retry_after is not None:
            delay = max(delay, self.retry_after)
        if policy.max_elapsed is not None:
            left = policy.max_elapsed - self.elapsed(now)
            if left <= 0 or (self.retry_after is not None and self.retry_after > left):
                raise self.exhausted(WHY_BUDGET)
            delay = min(delay, left)
        return dataclasses.replace(self, delay=delay)

    def exhausted(self, why: str) -> ReconnectExhausted:
        """The error that ends the session, with the history and :attr:`cause`."""
        return ReconnectExhausted(self.history, self.cause.code, self.cause.reason, why=why)
