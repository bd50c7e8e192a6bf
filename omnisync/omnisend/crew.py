"""The shared state of a delivery pipeline's threads (:mod:`omnisync.omnisend.pipeline`)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("omnisync.omnisend")

#: Real seconds a blocked thread waits before re-checking for an abort (no timing depends on it).
TICK = 0.05

T = TypeVar("T")


class Crew:
    """The abort flag and first fatal error of one pipeline's threads, its ``stop`` event,
    and waits on queues and semaphores that give up once aborted, so that no thread hangs
    at shutdown."""

    def __init__(self, *, name: str, stop: threading.Event) -> None:
        self.name = name
        self.stop = stop
        self.aborted = threading.Event()
        self.fatal: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, error: BaseException) -> None:
        """Abort with ``error`` (the first error wins)."""
        with self._lock:
            if self.fatal is None:
                self.fatal = error
                logger.error(
                    "%s aborted: %s",
                    self.name,
                    error,
                    extra={"event": "omnisend.pipeline_aborted"},
                )
        self.aborted.set()

    def stopping(self) -> bool:
        """Whether the run was stopped or the pipeline aborted: nothing new is sent."""
        return self.stop.is_set() or self.aborted.is_set()

    def raise_if_aborted(self) -> None:
        if self.fatal is not None:
            raise self.fatal
        if self.aborted.is_set():
            raise RuntimeError(f"{self.name} was aborted")

    def start(self, target: Callable[[], None], name: str) -> threading.Thread:
        """Start a daemon thread; anything it raises aborts the crew with that error
        (a listener that raised, a bug) instead of leaving the others waiting."""

        def guarded() -> None:
            try:
                target()
            except BaseException as error:
                self.fail(error)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    def acquire(self, semaphore: threading.BoundedSemaphore) -> bool:
        """Wait for the semaphore; ``False`` (not held) if aborted meanwhile."""
        while not semaphore.acquire(timeout=TICK):
            if self.aborted.is_set():
                return False
        if self.aborted.is_set():
            semaphore.release()
            return False
        return True

    def put(self, target: queue.Queue[T | None], item: T | None, *, force: bool = False) -> None:
        """Put, blocking while full; once aborted give up — or, with ``force`` (shutdown
        sentinels), drop queued work to make room: after an abort none of it is sent."""
        while True:
            try:
                target.put(item, timeout=TICK)
                return
            except queue.Full:
                if self.aborted.is_set():
                    if not force:
                        return
                    with contextlib.suppress(queue.Empty):
                        target.get_nowait()

    def get(self, source: queue.Queue[T | None]) -> T | None:
        """The next item, or ``None`` (shut down) once aborted."""
        while not self.aborted.is_set():
            with contextlib.suppress(queue.Empty):
                return source.get(timeout=TICK)
        return None
