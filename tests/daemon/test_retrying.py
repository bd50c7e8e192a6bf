from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnisync.daemon.retrying import RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(base_seconds=10, cap_seconds=60, max_attempts=10)
    assert [policy.delay(attempt) for attempt in range(1, 7)] == [10, 20, 40, 60, 60, 60]
    assert policy.delay(10_000) == 60


def test_retry_only_before_the_next_regular_run():
    policy = RetryPolicy(base_seconds=30, cap_seconds=600, max_attempts=5)
    assert policy.retry_at(
        attempt=1, now=NOW, next_regular=NOW + timedelta(minutes=5)
    ) == NOW + timedelta(seconds=30)
    assert policy.retry_at(attempt=4, now=NOW, next_regular=NOW + timedelta(minutes=4)) is None
    assert policy.retry_at(attempt=4, now=NOW, next_regular=None) == NOW + timedelta(seconds=240)


def test_gives_up_after_max_attempts():
    policy = RetryPolicy(base_seconds=1, cap_seconds=1, max_attempts=2)
    assert policy.retry_at(attempt=2, now=NOW, next_regular=None) is not None
    assert policy.retry_at(attempt=3, now=NOW, next_regular=None) is None


@pytest.mark.parametrize(
    "kwargs", [{"base_seconds": 0}, {"base_seconds": 10, "cap_seconds": 5}, {"max_attempts": -1}]
)
def test_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
