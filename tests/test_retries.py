"""The one retry policy: attempts, doubling backoff with a cap, jitter, retry-after."""

from __future__ import annotations

import math
import random

import pytest

from helios.retries import RetryPolicy


def test_backoff_doubles_up_to_the_cap_then_gives_up() -> None:
    policy = RetryPolicy(attempts=5, base_s=0.5, cap_s=3.0)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, None]


def test_one_attempt_never_retries() -> None:
    assert RetryPolicy(attempts=1).delay_s(1) is None
    assert RetryPolicy(attempts=1).delay_s(1, retry_after=0.1) is None


def test_without_a_limit_it_never_gives_up_and_never_overflows() -> None:
    policy = RetryPolicy(attempts=None, base_s=0.1, cap_s=5.0)
    assert policy.delay_s(1) == 0.1
    assert policy.delay_s(10_000) == 5.0
    assert RetryPolicy(attempts=None, base_s=0.1).delay_s(10_000) == pytest.approx(0.1 * 2.0**1000)


def test_jitter_takes_off_up_to_its_share() -> None:
    policy = RetryPolicy(attempts=None, base_s=1.0, cap_s=8.0, jitter=0.25)
    rng, same = random.Random(0), random.Random(0)
    for n in range(1, 8):
        full = min(2.0 ** (n - 1), 8.0)
        delay = policy.delay_s(n, rng=rng)
        assert delay == full * (1.0 - 0.25 * same.random())
        assert delay is not None and 0.75 * full <= delay <= full
    unseeded = policy.delay_s(1)
    assert unseeded is not None and 0.75 <= unseeded <= 1.0


def test_a_retry_after_is_waited_exactly_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=3, base_s=0.5, cap_s=1.0, jitter=0.25, max_retry_wait_s=30)
    rng = random.Random(0)
    assert policy.delay_s(1, retry_after=12.0, rng=rng) == 12.0  # above the backoff cap
    assert policy.delay_s(1, retry_after=30.0) == 30.0
    assert policy.delay_s(1, retry_after=31.0) is None  # to the caller, not slept through
    assert policy.delay_s(3, retry_after=1.0) is None  # no attempt left
    assert rng.random() == random.Random(0).random()  # no jitter drawn for a retry-after


def test_the_scheduler_schedule() -> None:
    # what DAG tasks and alert webhooks always did: backoff_s * 2 ** (attempt - 1)
    policy = RetryPolicy(attempts=4, base_s=0.5)
    assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]
    assert RetryPolicy(attempts=3, base_s=0).delay_s(2) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"base_s": -1.0},
        {"cap_s": -1.0},
        {"max_retry_wait_s": -1.0},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_nonsense_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy().delay_s(0)
    assert RetryPolicy().cap_s == math.inf
