"""RetryPolicy (retry matrix, jitter bounds, retryAfter precedence) and the exception tree."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnisync.omnisend.errors import ApiError, FieldProblem
from omnisync.omnisend.retry import RetryPolicy, is_transient, retry_after_seconds

NOW = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, None])
def test_transient_failures_are_retried(status: int | None) -> None:
    assert is_transient(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 413, 422, 429, 302])
def test_client_errors_are_never_retried_with_backoff(status: int) -> None:
    assert not is_transient(status)  # a 429 waits out its retryAfter instead


def test_transient_retries_stop_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=4)
    rng = random.Random(1)
    delays = [policy.transient_delay(failures, random=rng) for failures in range(1, 5)]
    assert all(delay is not None for delay in delays[:3])
    assert delays[3] is None  # the 4th failure was the 4th attempt: give up


@given(failures=st.integers(min_value=1, max_value=40), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_within_the_capped_exponential(failures: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, max_attempts=100)
    delay = policy.transient_delay(failures, random=random.Random(seed))
    assert delay is not None
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (failures - 1))


def test_backoff_jitter_comes_from_the_injected_random() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(n, random=random.Random(7)) for n in range(1, 8)]
    again = [policy.backoff(n, random=random.Random(7)) for n in range(1, 8)]
    other = [policy.backoff(n, random=random.Random(8)) for n in range(1, 8)]
    assert first == again != other
    # Spread over the whole range, not clustered at the top (full jitter).
    samples = [policy.backoff(10, random=random.Random(seed)) for seed in range(400)]
    assert min(samples) < 3.0 and max(samples) > 27.0


def test_retry_after_precedence_body_then_header_then_none() -> None:
    assert retry_after_seconds(12, "30", wall_now=NOW) == 12.0
    assert retry_after_seconds(None, "30", wall_now=NOW) == 30.0
    assert retry_after_seconds("oops", " 4 ", wall_now=NOW) == 4.0
    assert retry_after_seconds(None, "Fri, 20 Mar 2026 12:00:45 GMT", wall_now=NOW) == 45.0
    assert retry_after_seconds(None, "Fri, 20 Mar 2026 11:00:00 GMT", wall_now=NOW) == 0.0
    assert retry_after_seconds(None, "soon", wall_now=NOW) is None
    assert retry_after_seconds(-3, None, wall_now=NOW) is None
    assert retry_after_seconds(True, None, wall_now=NOW) is None
    assert retry_after_seconds(None, None, wall_now=NOW) is None


def test_429_waits_what_the_server_asks_then_backs_off_without_it() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0)
    rng = random.Random(3)
    assert policy.rate_limit_delay(retry_after=17.0, rate_limited=1, waited=0.0, random=rng) == 17
    fallback = policy.rate_limit_delay(retry_after=None, rate_limited=3, waited=0.0, random=rng)
    assert fallback is not None and 0.0 <= fallback <= 4.0


def test_a_429_storm_is_ridden_out_for_the_whole_budget_then_given_up() -> None:
    policy = RetryPolicy(rate_limit_budget=900.0, max_attempts=2)
    waited, rounds = 0.0, 0
    while True:
        delay = policy.rate_limit_delay(
            retry_after=60.0, rate_limited=rounds + 1, waited=waited, random=random.Random(0)
        )
        if delay is None:
            break
        waited += delay
        rounds += 1
    # 15 minutes of 60-second waits, far beyond max_attempts (429s don't use it up).
    assert rounds == 15 and waited == 900.0


@given(
    retry_after=st.sampled_from([0.0, 0.2, None]),
    seed=st.integers(0, 2**32),
)
def test_a_429_asking_for_less_than_the_floor_backs_off_and_ends_within_the_budget(
    retry_after: float | None, seed: int
) -> None:
    # retryAfter 0 (a server rounding down to whole seconds, or a Retry-After date already
    # past) once waited nothing, so the waits never reached the budget.
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, rate_limit_budget=900.0)
    rng = random.Random(seed)
    delays: list[float] = []
    while (
        delay := policy.rate_limit_delay(
            retry_after=retry_after, rate_limited=len(delays) + 1, waited=sum(delays), random=rng
        )
    ) is not None:
        delays.append(delay)
        assert len(delays) <= 900 / 0.5, "the waits never reach the budget"
    assert all(
        0.5 <= delay <= max(0.5, min(30.0, 0.5 * 2**index)) for index, delay in enumerate(delays)
    )
    assert sum(delays) <= 900.0
    assert sum(delays) > 900.0 - 30.0  # ridden out to the end of the budget, not cut short


def test_a_retry_policy_whose_waits_could_stay_at_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="base_delay"):
        RetryPolicy(base_delay=0.0)


@pytest.mark.parametrize(
    ("status", "advice", "aborts"),
    [
        (400, "fix the data", False),
        (401, "the API key is wrong or revoked", True),
        (403, "lacks a scope, e.g. contacts.write", True),
        (404, "no such endpoint or object", False),
        (409, "run again", False),
        (410, "API version 2026-03-15 is retired; upgrade omnisync", True),
        (422, "check the data", False),
        (429, "lower rate_limit", False),
        (500, "run again later", False),
        (503, "run again later", False),
        (418, "does not expect", False),
    ],
)
def test_each_status_makes_an_error_that_says_what_to_fix(
    status: int, advice: str, aborts: bool
) -> None:
    problem = {
        "title": "Problem",
        "detail": "something happened",
        "instance": "urn:omnisend:request:1234",
        "errors": [{"field": "identifiers[0].id", "code": "invalid_format", "message": "bad"}],
    }
    error = ApiError("create a batch", status=status, problem=problem)
    assert error.status == status and error.aborts_run is aborts
    assert advice in str(error)
    assert "urn:omnisend:request:1234" in str(error)
    assert "create a batch" in str(error)
    assert error.problems == (FieldProblem("identifiers[0].id", "invalid_format", "bad"),)


def test_a_problem_without_json_still_makes_a_clear_error() -> None:
    error = ApiError("list batches", status=502, problem={})
    assert "run again later" in str(error)
    assert str(error).startswith("list batches: Omnisend answered 502")
    assert "trace" not in str(error)
