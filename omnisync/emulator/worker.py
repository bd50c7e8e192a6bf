"""The background thread that applies asynchronous work when its modelled time comes.

Batches and tag calls are answered at once and applied later, as Omnisend
does. Each piece of work is scheduled at a modelled time (``clock.now()``
seconds); the worker runs them in time order. It never calls
``clock.sleep`` (a :class:`~omnisync.clock.FakeClock` would jump forward); it
waits on a condition for at most a few real milliseconds and looks again, so
a scaled clock, the system clock and a fake clock all work.
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

    def __init__(self, clock: Clock, *, name: str = "omnisend-emulator-worker") -> None:
        self._clock = clock
        self._scale = float(getattr(clock, "scale", 1.0))
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._busy = False
        #: Threads in wait_idle: the only ones told at once that a piece of work ended.
        self._idle_waiters = 0
        self._running = False
        self._thread: threading.Thread | None = None
        self._name = name

    def start(self) -> None:
        with self._condition:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the callable in progress; work not yet due is dropped."""
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def schedule(self, due: float, work: Callable[[], None], *, wake: bool = True) -> None:
        """Run ``work`` once ``clock.now() >= due``.

        The worker thread is woken only when ``work`` is the next to come due
        (otherwise it already waits for earlier work). ``wake=False`` promises
        that the caller calls :meth:`run_due` once it is done (the HTTP handler
        does after every answer): work already due is then left to that call,
        which spares a thread wake-up and a race for the GIL.
        """
        entry = (due, next(self._sequence), work)
        with self._condition:
            heapq.heappush(self._queue, entry)
            if self._queue[0] is entry and (wake or due > self._clock.now()):
                self._condition.notify_all()

    def run_due(self) -> None:
        """Run the work due by now on the calling thread, unless the worker is busy.

        One piece of work runs at a time whichever thread runs it, so work is
        still applied in modelled-time order. A connection thread that has
        just answered calls this: applying a batch due at once there saves a
        wake-up of the worker thread.
        """
        while True:
            with self._condition:
                if (
                    self._busy
                    or not self._running
                    or not self._queue
                    or self._queue[0][0] > self._clock.now()
                ):
                    return
                _, _, work = heapq.heappop(self._queue)
                self._busy = True
            self._apply(work)

    def clear(self) -> None:
        with self._condition:
            self._queue.clear()

    def pending(self) -> int:
        with self._condition:
            return len(self._queue) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float, *, due_only: bool = False) -> bool:
        """Block (real seconds) until nothing is queued or running; ``False`` on timeout.

        With ``due_only``, wait only for the work due by now (the way to settle
        after advancing a :class:`~omnisync.clock.FakeClock`).
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            self._idle_waiters += 1
            try:
                while self._busy or (
                    self._queue and (not due_only or self._queue[0][0] <= self._clock.now())
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._condition.wait(min(remaining, _MAX_REAL_WAIT))
            finally:
                self._idle_waiters -= 1
        return True

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._running:
                    return
                if not self._queue:
                    # Nothing to do: schedule() wakes the worker for the next work to come.
                    self._condition.wait(_MAX_REAL_WAIT * 10)
                    continue
                if self._busy:
                    # A connection thread is applying work (run_due): look again
                    # shortly rather than be woken after each piece it applies.
                    self._condition.wait(_MAX_REAL_WAIT)
                    continue
                lateness = self._clock.now() - self._queue[0][0]
                if lateness < 0:
                    self._condition.wait(min(-lateness / self._scale, _MAX_REAL_WAIT))
                    continue
                _, _, work = heapq.heappop(self._queue)
                self._busy = True
            self._apply(work)
            # Give the GIL away between two pieces of work: with a backlog the
            # loop would otherwise keep it for a whole switch interval (5 ms)
            # while requests wait to be answered.
            time.sleep(0)

    def _apply(self, work: Callable[[], None]) -> None:
        """Run one piece of work popped with ``_busy`` set; clear it after."""
        try:
            work()
        except Exception:
            # The worker must survive a bug in one piece of work.
            logger.exception("emulator work failed", extra={"event": "emulator_work_failed"})
        finally:
            with self._condition:
                self._busy = False
                if self._idle_waiters:
                    # Only wait_idle needs to hear it at once (the worker looks
                    # again by itself): waking threads for nothing costs a
                    # system call and a race for the GIL per piece of work.
                    self._condition.notify_all()
