"""ReconnectPolicy delays and the close classification table (pure)."""

from __future__ import annotations

import random

import pytest

from livesync import InvalidConfig, ReconnectPolicy
from livesync.reconnect import Action, Outcome, classify


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
    ],
)
def test_invalid_policy_names_the_field(kwargs: dict, field: str) -> None:
    """A bad policy value raises InvalidConfig naming the field."""
    with pytest.raises(InvalidConfig) as info:
        ReconnectPolicy(**kwargs)
    assert info.value.field == field


def test_rotation_lead_is_capped_by_a_quarter_of_the_notice() -> None:
    """The forced-rotation lead never exceeds a quarter of the time left."""
    policy = ReconnectPolicy(rotation_margin=5.0)
    assert policy.rotation_lead(60.0) == 5.0
    assert policy.rotation_lead(0.08) == pytest.approx(0.02)
