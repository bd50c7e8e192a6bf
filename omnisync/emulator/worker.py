"""The background thread that applies asynchronous work when its modelled time comes.

Batches and tag calls are answered at once and applied later, as Omnisend
does. Each piece of work is scheduled at a modelled time (``clock.now()``
seconds); the worker thread runs them in time order, one at a time. It never
calls ``clock.sleep`` (a :class:`~omnisync.clock.FakeClock` would jump
forward): it waits on a condition for at most a few real milliseconds and
looks at the clock again, so a scaled clock, the system clock and a fake
clock advanced by a test all work.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from omnisync.clock import Clock

logger = logging.getLogger("omnisync.emulator")

#: The longest real pause between two looks at the clock.
_MAX_REAL_WAIT = 0.01


class Worker:
    """Runs scheduled callables in modelled-time order on one daemon thread."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._scale = float(getattr(clock, "scale", 1.0))
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._busy = False
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(
            target=self._run, name="omnisend-emulator-worker", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop after the callable in progress; work not yet run is dropped."""
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def schedule(self, due: float, work: Callable[[], object]) -> None:
        """Run ``work`` once ``clock.now() >= due`` (after earlier work, and work scheduled
        earlier for the same time)."""
        with self._condition:
            heapq.heappush(self._queue, (due, next(self._sequence), work))
            self._condition.notify_all()

    def clear(self) -> None:
        """Drop every piece of work not yet started."""
        with self._condition:
            self._queue.clear()

    def wait_idle(self, timeout: float, *, due_only: bool = False) -> bool:
        """Block (real seconds) until nothing is queued or running; ``False`` on timeout.

        With ``due_only``, wait only for the work due by now (the way to settle
        after advancing a :class:`~omnisync.clock.FakeClock`).
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._busy or (
                self._queue and (not due_only or self._queue[0][0] <= self._clock.now())
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, _MAX_REAL_WAIT))
        return True

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._running:
                    return
                if not self._queue:
                    self._condition.wait()  # schedule() and stop() notify
                    continue
                lateness = self._clock.now() - self._queue[0][0]
                if lateness < 0:
                    self._condition.wait(min(-lateness / self._scale, _MAX_REAL_WAIT))
                    continue
                _, _, work = heapq.heappop(self._queue)
                self._busy = True
            try:
                work()
            except Exception:
                # The worker must survive a bug in one piece of work.
                logger.exception("emulator work failed", extra={"event": "emulator_work_failed"})
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()
