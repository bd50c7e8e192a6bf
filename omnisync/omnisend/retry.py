"""The client's retry policy: what to retry and how long to wait.

Pure: randomness comes from an injected :class:`random.Random`, calendar time (for an
HTTP-date ``Retry-After``) is passed in.

- 408, 5xx and transport errors (status ``None``) are retried up to ``max_attempts``
  attempts in all (the first included), after an exponential backoff with full jitter
  (uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``).
- 429 waits ``retryAfter`` from the JSON body, else a ``Retry-After`` header, until a
  wait would end more than ``rate_limit_budget`` (15 minutes) after the request's first
  429, on the clock (so the caller's real waits count, pauses other threads imposed
  included): a storm is ridden out, it does not abort a run. 429s use up no attempts.
  Without either, or when they ask for less than ``base_delay`` (``retryAfter`` is
  whole seconds, so a server rounding down sends 0; a ``Retry-After`` date may be
  already past), it waits the same backoff, but never less than ``base_delay``: every
  wait counts towards the budget, so a storm of such answers ends too.
- Any other status is never retried: repeating it cannot help.
"""

from __future__ import annotations

import math
import random as random_module
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime


def is_transient(status: int | None) -> bool:
    """True for a failure worth retrying with backoff: a transport error, 408 or 5xx."""
    return status is None or status == 408 or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries one request (see the module docstring). ``base_delay`` must
    be positive: it is the least a 429 waits, which keeps a 429 storm within budget."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limit_budget: float = 900.0

    def __post_init__(self) -> None:
        if not self.base_delay > 0:
            raise ValueError(f"base_delay must be positive, got {self.base_delay}")

    def backoff(self, failures: int, *, random: random_module.Random) -> float:
        """Full-jitter backoff after the ``failures``-th consecutive failure (1-based)."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2.0 ** (failures - 1)))

    def transient_delay(self, failures: int, *, random: random_module.Random) -> float | None:
        """Seconds to wait after ``failures`` transient failures; ``None``: attempts used up."""
        return None if failures >= self.max_attempts else self.backoff(failures, random=random)

    def rate_limit_delay(
        self,
        *,
        retry_after: float | None,
        rate_limited: int,
        waited: float,
        random: random_module.Random,
    ) -> float | None:
        """Seconds to wait after the ``rate_limited``-th 429 of one request (``retry_after``,
        else the backoff, at least ``base_delay``); ``None`` if that would take the request
        past budget, ``waited`` being the clock seconds since its first 429."""
        if retry_after is None or retry_after < self.base_delay:
            # No usable advice: back off, and wait at least base_delay even when the full
            # jitter draws less, or waits adding up to nothing would never reach the budget.
            retry_after = max(self.base_delay, self.backoff(rate_limited, random=random))
        return None if waited + retry_after > self.rate_limit_budget else retry_after


def retry_after_seconds(
    body_retry_after: object, header: str | None, *, wall_now: datetime
) -> float | None:
    """The wait a 429 asks for: the body's ``retryAfter``, else the ``Retry-After`` header
    (delta-seconds or an HTTP-date, relative to ``wall_now``); ``None`` when neither gives
    a usable, non-negative number."""
    for value in (body_retry_after, header):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number) and number >= 0:
            return number
    if header is None:
        return None
    try:
        when = parsedate_to_datetime(header.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - wall_now).total_seconds(), 0.0)
