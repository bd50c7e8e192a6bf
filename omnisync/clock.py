"""Time as an injected dependency.

Everything that waits or measures time takes a :class:`Clock`, so tests run an
hour of modelled traffic in seconds (:class:`ScaledClock`) or none at all
(:class:`FakeClock`). ``now()`` is monotonic seconds; ``wall()`` is the
calendar time used for records that people read.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of time and a way to wait for it."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""

    def wall(self) -> datetime:
        """Timezone-aware current calendar time (UTC)."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` of this clock's time."""


class SystemClock:
    """Real time."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Real time running ``scale`` times faster: one real second is ``scale`` modelled seconds.

    The emulator and the client share one scale in tests, so that a 60-second
    rate-limit window passes in one real second at ``scale=60``.
    """

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._origin = time.monotonic()
        self._wall_origin = datetime.now(UTC)

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.scale

    def wall(self) -> datetime:
        return self._wall_origin + timedelta(seconds=self.now())

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)


class FakeClock:
    """Time that moves only when told to: ``sleep`` advances it instantly.

    Thread-safe. ``advance`` moves time without a sleeper, for tests that
    drive a component step by step.
    """

    def __init__(self, start: float = 0.0, *, wall_start: datetime | None = None) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> datetime:
        with self._lock:
            return self._wall_start + timedelta(seconds=self._now - self._start)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
