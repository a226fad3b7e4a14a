"""ReconnectPolicy delays, the Outage bookkeeping and the close classification table (pure).

Outage tests use a seeded ``random.Random`` and explicit ``now`` values (a fake clock).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Dict, List, Tuple

import pytest

from livesync import Attempt, InvalidConfig, ReconnectExhausted, ReconnectPolicy
from livesync.reconnect import Action, Outage, Outcome, classify

REFUSED = Outcome(error="could not connect: connection refused")
DROPPED = Outcome(error="connection lost: connection reset", reached_setup=True, lived=2.0)


def test_delays_are_exact_with_a_seeded_rng() -> None:
    """Full-jitter delays are uniform draws under an exponentially growing, capped bound."""
    policy = ReconnectPolicy(max_attempts=6, initial_delay=1.0, max_delay=8.0, factor=2.0)
    expected_rng = random.Random(42)
    bounds = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    expected = [expected_rng.uniform(0.0, b) for b in bounds]
    assert list(policy.delays(random.Random(42))) == expected


def test_delays_without_jitter_are_the_bounds() -> None:
    """With jitter off the delays are the capped exponential bounds themselves."""
    policy = ReconnectPolicy(max_attempts=5, initial_delay=0.5, max_delay=3.0, jitter=False)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_delays_without_attempt_cap_never_overflow() -> None:
    """An uncapped policy keeps yielding bounded delays."""
    delays = ReconnectPolicy(max_attempts=None, jitter=False, max_delay=7.0).delays()
    values = [next(delays) for _ in range(5000)]
    assert values[-1] == 7.0


def test_zero_initial_delay_means_no_wait() -> None:
    """A zero initial delay retries at once, however many attempts."""
    delays = ReconnectPolicy(max_attempts=3, initial_delay=0.0).delays(random.Random(0))
    assert list(delays) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "outcome, action",
    [
        (Outcome(code=1000), Action.RETRY),
        (Outcome(code=1001), Action.RETRY),
        (Outcome(code=None, error="connection lost"), Action.RETRY),
        (Outcome(code=1011, reason="Internal error encountered."), Action.RETRY),
        (Outcome(code=1012), Action.RETRY),
        (Outcome(code=1013), Action.RETRY),
        (Outcome(code=1014), Action.RETRY),
        (Outcome(code=1007, reason="Request contains an invalid argument."), Action.FATAL),
        (Outcome(code=1008, reason="models/x is not found"), Action.FATAL),
        (Outcome(code=1009), Action.FATAL),
        (Outcome(code=1011, reason="Deadline expired", after_go_away=True), Action.ROTATE),
        (Outcome(code=1000, after_go_away=True), Action.ROTATE),
        (Outcome(code=1008, after_go_away=True), Action.ROTATE),
        (Outcome(code=1007, after_go_away=True), Action.FATAL),
        (Outcome(status_code=429), Action.RETRY),
        (Outcome(status_code=503), Action.RETRY),
        (Outcome(status_code=400), Action.FATAL),
        (Outcome(status_code=401), Action.FATAL),
        (Outcome(status_code=403), Action.FATAL),
        (Outcome(status_code=404), Action.FATAL),
        (Outcome(status_code=408), Action.RETRY),
        (Outcome(status_code=500), Action.RETRY),
        (Outcome(error="could not connect: connection refused"), Action.RETRY),
        (Outcome(error="timed out after 10.0s connecting"), Action.RETRY),
        (Outcome(error="certificate verification failed: hostname mismatch", fatal=True),
         Action.FATAL),
        (Outcome(code=1011, after_go_away=True, fatal=True), Action.FATAL),
        (Outcome(status_code=503, fatal=True), Action.FATAL),
    ],
)
def test_classification_table(outcome: Outcome, action: Action) -> None:
    """Each close code or HTTP status maps to the action DESIGN.md §3.4 gives it."""
    assert classify(outcome) is action


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_elapsed": 0}, "max_elapsed"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"factor": 0.5}, "factor"),
        ({"storm_threshold": 1}, "storm_threshold"),
        ({"on_resume_refused": "maybe"}, "on_resume_refused"),
        ({"replay_margin": -0.1}, "replay_margin"),
        ({"storm_window": -1}, "storm_window"),
    ],
)
def test_invalid_policy_names_the_field(kwargs: Dict[str, Any], field: str) -> None:
    """A bad policy value raises InvalidConfig naming the field."""
    with pytest.raises(InvalidConfig) as info:
        ReconnectPolicy(**kwargs)
    assert info.value.field == field


def test_rotation_lead_is_capped_by_a_quarter_of_the_notice() -> None:
    """The forced-rotation lead never exceeds a quarter of the time left."""
    policy = ReconnectPolicy(rotation_margin=5.0)
    assert policy.rotation_lead(60.0) == 5.0
    assert policy.rotation_lead(0.08) == pytest.approx(0.02)


# Outage: outages are ridden out by backoff and budgets; only storms trip the breaker.


def closed(code: int, reason: str = "", lived: float = 1.0, **kwargs: object) -> Outcome:
    """The end of a connection that reached setupComplete and was closed by the server."""
    return Outcome(code, reason, reached_setup=True, lived=lived, **kwargs)  # type: ignore


def ride(outage: Outage, outcomes: List[Outcome], rng: random.Random, now: float,
         step: float) -> Tuple[Outage, float]:
    """Attempt once per outcome, each failing with it; return the outage and the clock."""
    for outcome in outcomes:
        outage = outage.next_attempt(rng, now)
        now += outage.delay + step
        outage = outage.record(outcome, now)
    return outage, now


def test_default_policy_rides_out_a_long_outage_of_refused_dials() -> None:
    """100 refused dials over 4 minutes do not exhaust the default policy."""
    rng = random.Random(1)
    outage = Outage.start(ReconnectPolicy(), DROPPED, now=1000.0)
    for n in range(100):
        outage = outage.next_attempt(rng, now=1000.0 + n * 2.4)
        outage = outage.record(REFUSED, now=1000.0 + n * 2.4 + 0.01)
    assert len(outage.history) == 100
    assert outage.next_attempt(rng, now=1000.0 + 240.0).delay <= 30.0


def test_default_policy_rides_out_an_outage_by_its_own_delays() -> None:
    """With the delays the policy itself picks, refusals for 4 minutes never exhaust it."""
    rng = random.Random(7)
    outage, now = ride(Outage.start(ReconnectPolicy(), DROPPED, 0.0), [], rng, 0.0, 0.0)
    while now < 240.0:
        outage, now = ride(outage, [REFUSED], rng, now, step=0.05)
    assert outage.attempt > 10
    assert not outage.storm()


def test_max_elapsed_exhausts_the_outage() -> None:
    """Past max_elapsed, next_attempt raises ReconnectExhausted naming the time budget."""
    policy = ReconnectPolicy(max_elapsed=60.0)
    outage = Outage.start(policy, DROPPED, now=0.0)
    outage = outage.next_attempt(random.Random(0), now=0.0).record(REFUSED, now=1.0)
    with pytest.raises(ReconnectExhausted) as info:
        outage.next_attempt(random.Random(0), now=60.0)
    assert info.value.why == "reconnect time budget exhausted"
    assert info.value.attempts == outage.history


def test_the_last_delay_is_cut_to_end_at_the_budget() -> None:
    """A delay that would pass max_elapsed is shortened, so the outage gets a last attempt."""
    policy = ReconnectPolicy(max_elapsed=10.0, initial_delay=30.0, jitter=False)
    outage = Outage.start(policy, DROPPED, now=100.0)
    assert outage.next_attempt(random.Random(0), now=104.0).delay == pytest.approx(6.0)


def test_max_attempts_exhausts_the_outage() -> None:
    """After max_attempts failed attempts, next_attempt raises with the whole history."""
    policy = ReconnectPolicy(max_attempts=3, initial_delay=0.01)
    rng = random.Random(3)
    outage, now = ride(Outage.start(policy, DROPPED, 0.0), [REFUSED] * 3, rng, 0.0, 0.1)
    with pytest.raises(ReconnectExhausted) as info:
        outage.next_attempt(rng, now)
    assert info.value.why == "reconnect attempts exhausted"
    assert [a.number for a in info.value.attempts] == [1, 2, 3]


def test_retry_after_is_honoured_for_the_next_attempt_only() -> None:
    """A Retry-After raises the next delay to at least its value; later ones back off."""
    policy = ReconnectPolicy(initial_delay=0.5, jitter=False)
    outage = Outage.start(policy, DROPPED, now=0.0).next_attempt(random.Random(0), 0.0)
    outage = outage.record(Outcome(status_code=429, retry_after=7.0), now=0.6)
    outage = outage.next_attempt(random.Random(0), now=0.6)
    assert outage.delay == 7.0
    outage = outage.record(REFUSED, now=7.7).next_attempt(random.Random(0), now=7.7)
    assert outage.delay == 2.0  # the plain backoff bound of attempt 3
    assert [a.retry_after for a in outage.history] == [7.0, None]


def test_retry_after_beyond_the_budget_exhausts() -> None:
    """Waiting a Retry-After that ends past max_elapsed gives up instead of waiting."""
    policy = ReconnectPolicy(max_elapsed=60.0)
    outage = Outage.start(policy, DROPPED, now=0.0).next_attempt(random.Random(0), 0.0)
    outage = outage.record(Outcome(status_code=503, retry_after=120.0), now=1.0)
    with pytest.raises(ReconnectExhausted) as info:
        outage.next_attempt(random.Random(0), now=1.0)
    assert info.value.why == "reconnect time budget exhausted"


def test_delays_are_full_jitter_draws_with_a_seeded_rng() -> None:
    """Attempt n waits uniform(0, min(max_delay, initial_delay * factor**n))."""
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=8.0, max_elapsed=None)
    rng, expected_rng = random.Random(42), random.Random(42)
    outage = Outage.start(policy, DROPPED, now=0.0)
    delays = []
    for _ in range(6):
        outage = outage.next_attempt(rng, now=0.0)
        delays.append(outage.delay)
        outage = outage.record(REFUSED, now=0.0)
    assert delays == [expected_rng.uniform(0.0, b) for b in (1.0, 2.0, 4.0, 8.0, 8.0, 8.0)]
    assert [a.delay for a in outage.history] == delays


def test_identical_closes_right_after_setup_trip_the_storm() -> None:
    """Five connections closed with the same code and reason soon after setupComplete
    are a storm; the error names the storm and that close."""
    ended = closed(1011, "Internal error encountered.", lived=2.0)
    rng = random.Random(5)
    outage = Outage.start(ReconnectPolicy(), ended, now=0.0)
    outage, now = ride(outage, [ended] * 3, rng, 0.0, 0.5)
    assert not outage.storm()
    outage, now = ride(outage, [ended], rng, now, 0.5)
    assert outage.storm()
    with pytest.raises(ReconnectExhausted) as info:
        outage.next_attempt(rng, now)
    error = info.value
    assert error.why == "close storm"
    assert (error.code, error.reason) == (1011, "Internal error encountered.")
    assert [a.code for a in error.attempts] == [1011] * 4


def test_failed_dials_between_storm_closes_do_not_break_the_streak() -> None:
    """Refused dials between the closes neither count toward nor reset the storm."""
    ended = closed(1011, "Internal error encountered.")
    outage = Outage.start(ReconnectPolicy(storm_threshold=3), ended, now=0.0)
    outage, _ = ride(outage, [REFUSED, ended, REFUSED, REFUSED, ended], random.Random(0), 0.0,
                     0.1)
    assert outage.storm()


def test_drops_without_a_close_frame_never_storm() -> None:
    """Five connections lost without a close frame are an outage, not a storm."""
    rng = random.Random(6)
    outage, now = ride(Outage.start(ReconnectPolicy(), DROPPED, 0.0), [DROPPED] * 5, rng,
                       0.0, 0.5)
    assert not outage.storm()
    assert outage.next_attempt(rng, now).attempt == 6


def test_different_reasons_do_not_storm() -> None:
    """The same code with a different reason each time is not a storm."""
    outcomes = [closed(1011, "reason %d" % n) for n in range(6)]
    outage = Outage.start(ReconnectPolicy(), outcomes[0], now=0.0)
    outage, _ = ride(outage, outcomes[1:], random.Random(0), 0.0, 0.1)
    assert not outage.storm()
    assert outage.streak == 1


@pytest.mark.parametrize(
    "ended",
    [
        closed(1011, "x", lived=10.0),            # not right after setupComplete
        closed(1000, "x", after_go_away=True),   # a planned rotation
        Outcome(1011, "x"),                      # closed before setupComplete
    ],
)
def test_closes_that_are_not_storm_closes(ended: Outcome) -> None:
    """Late closes, closes after goAway and closes before setupComplete never count."""
    policy = ReconnectPolicy(storm_threshold=2, reset_after=60.0)
    outage, _ = ride(Outage.start(policy, ended, 0.0), [ended] * 4, random.Random(0), 0.0, 0.1)
    assert not outage.storm()


def test_storm_falls_back_once_then_gives_up() -> None:
    """After fall_back the streak starts over; a second storm is final."""
    ended = closed(1008, "session not found")
    policy = ReconnectPolicy(storm_threshold=2)
    outage, now = ride(Outage.start(policy, ended, 0.0), [ended], random.Random(0), 0.0, 0.1)
    assert outage.storm() and not outage.fell_back
    outage = outage.fall_back()
    assert not outage.storm() and outage.fell_back
    outage, now = ride(outage, [ended, ended], random.Random(0), now, 0.1)
    assert outage.storm() and outage.fell_back
    with pytest.raises(ReconnectExhausted):
        outage.next_attempt(random.Random(0), now)


def test_history_numbers_attempts_and_keeps_what_ended_them() -> None:
    """Each failed attempt and each short-lived connection is one numbered Attempt."""
    policy = ReconnectPolicy(jitter=False, initial_delay=1.0)
    outage = Outage.start(policy, DROPPED, now=0.0)
    outcomes = [
        REFUSED,
        Outcome(status_code=503, error="server rejected WebSocket connection: HTTP 503",
                retry_after=3.0),
        closed(1011, "Internal error encountered.", lived=1.0),
    ]
    outage, _ = ride(outage, outcomes, random.Random(0), 0.0, 0.1)
    assert outage.history == (
        Attempt(1, 1.0, error=REFUSED.error),
        Attempt(2, 2.0, status_code=503, error=outcomes[1].error, retry_after=3.0),
        Attempt(3, 4.0, code=1011, reason="Internal error encountered."),
    )
    assert outage.attempt == 4


def test_exhaustion_reports_what_ended_the_connection_not_the_last_dial() -> None:
    """The error carries the close that ended the connection, not the last failed dial."""
    policy = ReconnectPolicy(max_attempts=2)
    ended = closed(1011, "Session duration limit exceeded.", lived=600.0)
    outage = Outage.start(policy, ended, now=0.0)
    outage, now = ride(outage, [REFUSED, Outcome(status_code=503)], random.Random(0), 0.0, 0.1)
    with pytest.raises(ReconnectExhausted) as info:
        outage.next_attempt(random.Random(0), now)
    assert (info.value.code, info.value.reason) == (1011, "Session duration limit exceeded.")
    assert "Session duration limit exceeded." in str(info.value)


def test_a_useful_connection_starts_a_fresh_outage() -> None:
    """After a connection that was up and useful, history, budget and backoff start over."""
    policy = ReconnectPolicy(jitter=False, initial_delay=1.0, max_elapsed=60.0)
    outage, now = ride(Outage.start(policy, DROPPED, 0.0), [REFUSED] * 4, random.Random(0),
                       0.0, 1.0)
    assert outage.attempt == 5
    useful = Outcome(error="connection lost", reached_setup=True, lived=policy.reset_after)
    fresh = outage.record(useful, now=now + 100.0)
    assert fresh.history == () and fresh.cause == useful and fresh.started_at == now + 100.0
    assert fresh.next_attempt(random.Random(0), now=now + 100.0).delay == 1.0


def test_progress_makes_a_short_connection_useful_unless_it_ends_like_a_storm() -> None:
    """Model output makes a connection useful; a close after progress is not a storm."""
    policy = ReconnectPolicy()
    short_drop = dataclasses.replace(DROPPED, progressed=True)
    assert policy.useful(short_drop)
    assert not policy.useful(DROPPED)
    assert policy.useful(closed(1011, "x", lived=1.0, progressed=True))
    assert not policy.storm_close(closed(1011, "x", lived=1.0, progressed=True))
    assert not policy.useful(closed(1011, "x", lived=1.0))
    assert not policy.useful(Outcome(1000, progressed=True))  # never reached setupComplete
    assert policy.useful(closed(1000, "", lived=policy.reset_after))


def test_a_short_connection_continues_the_outage() -> None:
    """A connection that was not useful adds to the history instead of resetting it."""
    outage, now = ride(Outage.start(ReconnectPolicy(), DROPPED, 0.0), [REFUSED, DROPPED],
                       random.Random(0), 0.0, 0.1)
    assert outage.attempt == 3 and outage.started_at == 0.0


def test_the_first_attempt_after_a_planned_rotation_does_not_wait() -> None:
    """A connection ended after goAway is dialed again at once; later attempts back off."""
    ended = closed(1000, "", lived=600.0, after_go_away=True)
    policy = ReconnectPolicy(jitter=False)
    outage = Outage.start(policy, ended, now=0.0).next_attempt(random.Random(0), 0.0)
    assert outage.delay == 0.0
    outage = outage.record(REFUSED, now=0.1).next_attempt(random.Random(0), now=0.1)
    assert outage.delay == policy.initial_delay * policy.factor


def test_outage_is_immutable() -> None:
    """record and next_attempt return new objects and leave the original untouched."""
    outage = Outage.start(ReconnectPolicy(), DROPPED, now=0.0)
    planned = outage.next_attempt(random.Random(0), now=0.0)
    recorded = planned.record(REFUSED, now=1.0)
    assert planned is not outage and recorded is not planned
    assert outage.history == () and planned.history == () and len(recorded.history) == 1
    assert outage.delay == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        recorded.streak = 9  # type: ignore[misc]


SPENT = Outcome(1011, "Token has been used too many times", resumed=True)


def test_a_spent_token_is_fatal_unless_a_provider_mints_a_new_one() -> None:
    """Retrying a resume with a used-up ephemeral token cannot help; a new token can."""
    assert classify(SPENT) is Action.FATAL
    assert classify(SPENT, renewable_credential=True) is Action.RETRY
    assert classify(dataclasses.replace(SPENT, after_go_away=True)) is Action.FATAL


def test_a_1008_right_after_a_tool_response_is_retried() -> None:
    """Native-audio models close with 1008 after a tool response at random: resume."""
    after_tool = Outcome(1008, "Requested entity was not found.", reached_setup=True,
                         lived=30.0, progressed=True, after_tool_response=True)
    assert classify(after_tool) is Action.RETRY
    assert classify(dataclasses.replace(after_tool, after_tool_response=False)) is Action.FATAL


@pytest.mark.parametrize(("outcome", "refused"), [
    (Outcome(1008, "Requested entity was not found.", resumed=True), True),
    (Outcome(1007, "Request contains an invalid argument.", resumed=True), True),
    (Outcome(1007, "x", resumed=True, reached_setup=True, lived=2.0), True),  # poisoned
    (Outcome(1007, "x", resumed=True, reached_setup=True, lived=2.0, progressed=True), False),
    (Outcome(1007, "x", resumed=True, reached_setup=True, lived=60.0), False),
    (Outcome(1007, "x", resumed=False), False),
    (Outcome(1011, "Internal error encountered.", resumed=True), False),
    (Outcome(1008, "x", resumed=True, reached_setup=True, lived=1.0,
             after_tool_response=True), False),
    (Outcome(status_code=404, resumed=True), False),
])
def test_resume_refused(outcome: Outcome, refused: bool) -> None:
    """A 1007/1008 refusing a resume during setup, or right after it before progress."""
    assert ReconnectPolicy().resume_refused(outcome) is refused
