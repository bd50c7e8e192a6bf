"""Virtual time for tests with several threads: a discrete-event clock.

``FakeClock`` advances by every sleep, so two threads sleeping at once add up
their sleeps. :class:`VirtualClock` instead lets time stand still while any
participating thread is running, and when every participant is asleep (or
done) jumps to the earliest wake-up. So a thread that returns from a sleep
reads exactly the time it slept until, whatever the other threads do.
"""

from __future__ import annotations

import heapq
import threading
from datetime import UTC, datetime, timedelta


class VirtualClock:
    """A clock shared by ``participants`` threads; each calls :meth:`done` when it ends."""

    def __init__(self, participants: int, *, start: float = 0.0) -> None:
        self._now = start
        self._active = participants
        self._sleepers: list[float] = []
        self._condition = threading.Condition()

    def now(self) -> float:
        with self._condition:
            return self._now

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now())

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._condition:
            wake = self._now + seconds
            heapq.heappush(self._sleepers, wake)
            self._condition.notify_all()  # for wait_for_sleepers
            self._active -= 1
            self._advance_if_idle()
            while self._now < wake:
                self._condition.wait()

    def wait_for_sleepers(self, count: int = 1) -> None:
        """Block the calling thread (still counted as running) until ``count`` threads sleep."""
        with self._condition:
            self._condition.wait_for(lambda: len(self._sleepers) >= count, timeout=10.0)

    def done(self) -> None:
        with self._condition:
            self._active -= 1
            self._advance_if_idle()

    def _advance_if_idle(self) -> None:
        if self._active > 0 or not self._sleepers:
            return
        self._now = max(self._now, self._sleepers[0])
        # The threads woken now count as running before they are scheduled,
        # so time cannot move again until they sleep or finish.
        while self._sleepers and self._sleepers[0] <= self._now:
            heapq.heappop(self._sleepers)
            self._active += 1
        self._condition.notify_all()
