from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnisync.daemon.scheduler import RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(base_seconds=10, cap_seconds=60, max_attempts=10)

    def delay(attempt):
        moment = policy.retry_at(attempt=attempt, now=NOW, next_regular=None)
        return (moment - NOW).total_seconds() if moment is not None else None

    assert [delay(attempt) for attempt in range(1, 7)] == [10, 20, 40, 60, 60, 60]
    assert RetryPolicy(cap_seconds=60, max_attempts=20_000).retry_at(
        attempt=10_000, now=NOW, next_regular=None
    ) == NOW + timedelta(seconds=60)


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
