"""Omnisend's per-brand sliding-window rate limits (pure: time is passed in).

Every request of a brand counts against ``requests_per_minute``; a call to the
tags endpoint counts against both that and ``tags_per_minute``. A request is
admitted only when *both* windows it belongs to have room; an admitted
request is recorded in both at once.

Rejected (429) requests are **not** counted: Omnisend's exact rule is not
published, and not counting is the friendlier reading, so a client that
waits ``retryAfter`` is always admitted.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0


@dataclass
class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds."""

    limit: int
    window: float = WINDOW_SECONDS
    events: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0.0 when it fits now)."""
        horizon = now - self.window
        events = self.events
        while events and events[0] <= horizon:
            events.popleft()
        if len(events) < self.limit:
            return 0.0
        return events[len(events) - self.limit] + self.window - now

    def record(self, now: float) -> None:
        self.events.append(now)


@dataclass
class BrandLimits:
    """The two windows of one brand. Not thread-safe; the brand's lock guards it."""

    requests_per_minute: int = 400
    tags_per_minute: int = 60
    overall: SlidingWindow = field(init=False)
    tags: SlidingWindow = field(init=False)

    def __post_init__(self) -> None:
        self.overall = SlidingWindow(self.requests_per_minute)
        self.tags = SlidingWindow(self.tags_per_minute)

    def admit(self, now: float, *, is_tags: bool) -> int | None:
        """Record the request and return ``None``, or refuse it with ``retryAfter`` seconds.

        ``retryAfter`` is the wait until every window the request needs admits
        one more, rounded up to whole seconds and at least 1.
        """
        wait = self.overall.wait(now)
        if is_tags:
            wait = max(wait, self.tags.wait(now))
        if wait > 0.0:
            return max(1, math.ceil(wait))
        self.overall.record(now)
        if is_tags:
            self.tags.record(now)
        return None
