"""What to retry and how long to wait: the client's retry policy.

Pure: no I/O; randomness comes from an injected :class:`random.Random` and
calendar time (for an HTTP-date ``Retry-After``) is passed in.

- 408, 5xx and transport errors (status ``None``) are retried up to
  ``max_attempts`` attempts in all, after an exponential backoff with full
  jitter (uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``).
- 429 waits ``retryAfter`` from the JSON body, else a ``Retry-After`` header,
  else the same backoff; 429s are retried until their waits add up to
  ``rate_limit_budget`` (15 minutes by default): a storm is ridden out, it
  does not abort a run. They do not use up ``max_attempts``.
- Anything else — 400, 401, 403, 404, 409, 410, 422 and every other status —
  is never retried: repeating it cannot help.
"""

from __future__ import annotations

import math
import random as random_module
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

RATE_LIMITED = 429
#: Statuses besides 5xx that are worth another attempt.
TRANSIENT_STATUSES: frozenset[int] = frozenset({408})


def is_transient(status: int | None) -> bool:
    """True for a failure worth retrying with backoff: a transport error, 408 or 5xx."""
    return status is None or status in TRANSIENT_STATUSES or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries one request.

    ``max_attempts`` counts every attempt of a request that meets transient
    failures (the first included). ``rate_limit_budget`` bounds the total
    seconds one request may spend waiting out 429s.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limit_budget: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.rate_limit_budget < 0:
            raise ValueError("delays and budgets must not be negative")

    def backoff(self, failures: int, *, random: random_module.Random) -> float:
        """Full-jitter backoff after the ``failures``-th consecutive failure (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(failures - 1, 0))
        return random.uniform(0.0, ceiling)

    def transient_delay(self, failures: int, *, random: random_module.Random) -> float | None:
        """Seconds to wait before the next attempt after ``failures`` transient failures,
        or ``None`` when the attempts are used up."""
        if failures >= self.max_attempts:
            return None
        return self.backoff(failures, random=random)

    def rate_limit_delay(
        self,
        *,
        retry_after: float | None,
        rate_limited: int,
        waited: float,
        random: random_module.Random,
    ) -> float | None:
        """Seconds to wait after the ``rate_limited``-th 429 of one request, or ``None``
        when waiting them would take the request's 429 waits past the budget.

        ``retry_after`` is what the server asked for (see :func:`retry_after_seconds`);
        ``waited`` the seconds already waited on earlier 429s of the same request.
        """
        delay = (
            retry_after if retry_after is not None else self.backoff(rate_limited, random=random)
        )
        if waited + delay > self.rate_limit_budget:
            return None
        return delay


def retry_after_seconds(
    body_retry_after: object, header: str | None, *, wall_now: datetime
) -> float | None:
    """The wait a 429 asks for: the body's ``retryAfter``, else the ``Retry-After`` header.

    The header may be delta-seconds or an HTTP-date (relative to ``wall_now``).
    Returns ``None`` when neither gives a usable, non-negative number.
    """
    from_body = _seconds(body_retry_after)
    if from_body is not None:
        return from_body
    if header is None:
        return None
    text = header.strip()
    from_header = _seconds(text)
    if from_header is not None:
        return from_header
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - wall_now).total_seconds(), 0.0)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
