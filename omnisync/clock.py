"""Time as an injected dependency: real, scaled (an hour of traffic in seconds) or fake;
and parse_time(), the one reader of the timestamps the state store and Omnisend give."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """``now()``: monotonic seconds (only differences mean anything); ``wall()``: the
    current time, aware, UTC; ``sleep(seconds)``: block for that much of this clock's time."""

    def now(self) -> float: ...

    def wall(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


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
    """Real time running ``scale`` times faster: one real second is ``scale`` modelled seconds."""

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
    """Time that moves only when told to: ``sleep`` and ``advance`` move it at once.
    Thread-safe."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._start = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> datetime:
        with self._lock:
            return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self._now - self._start)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 / RFC 3339 timestamp (``Z`` accepted, naive read as UTC), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
