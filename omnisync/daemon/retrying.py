"""When a failed scheduled run is tried again: capped exponential backoff.

Pure. A scheduled run that fails is retried after ``base``, ``2·base``,
``4·base`` … seconds (never more than ``cap``), at most ``max_attempts``
times, and only while the retry would come before the export's next regular
run — that run is a retry of its own, and two would only overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for failed scheduled runs. ``attempt`` counts retries from 1."""

    base_seconds: float = 30.0
    cap_seconds: float = 900.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("retry backoff needs 0 < base_seconds <= cap_seconds")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        # min() before the power would overflow for absurd attempt numbers.
        exponent = min(attempt - 1, 62)
        return float(min(self.cap_seconds, self.base_seconds * (2**exponent)))

    def retry_at(
        self, *, attempt: int, now: datetime, next_regular: datetime | None
    ) -> datetime | None:
        """When retry ``attempt`` should run, or ``None`` when it should not be scheduled."""
        if attempt > self.max_attempts:
            return None
        moment = now + timedelta(seconds=self.delay(attempt))
        if next_regular is not None and moment >= next_regular:
            return None
        return moment
