"""Run functions for the daemon's in-process tests: real code paths, observable and gated."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from omnisync.config.model import Config
from omnisync.daemon.runs import LiveProgress, RunOutcome
from omnisync.engine.results import RunCounts


@dataclass
class GatedRuns:
    """A daemon Engine: each run waits for ``release`` (or its stop event), batch by batch,
    and records itself.

    ``batches`` batches of ``batch_seconds`` each; the stop event is honoured at
    each batch boundary, like the engine's runner. ``statuses`` scripts the
    outcomes of successive runs (the last repeats).
    """

    batches: int = 3
    batch_seconds: float = 0.01
    statuses: list[str] = field(default_factory=lambda: ["succeeded"])
    release: threading.Event = field(default_factory=threading.Event)
    started: list[tuple[str, str, str]] = field(default_factory=list)
    finished: list[tuple[str, str, int]] = field(default_factory=list)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    max_active: dict[str, int] = field(default_factory=dict)
    _running: dict[str, int] = field(default_factory=dict)

    def __call__(
        self,
        config: Config,
        export: str,
        *,
        trigger: str,
        stop: threading.Event,
        progress: LiveProgress,
    ) -> RunOutcome:
        began = time.monotonic()
        with self.lock:
            self.started.append((export, trigger, config.revision))
            self._running[export] = self._running.get(export, 0) + 1
            self.max_active[export] = max(self.max_active.get(export, 0), self._running[export])
            index = len(self.started) - 1
        progress.recorded(f"h{index + 1}")
        progress.phase_started("applying", RunCounts())
        self.release.wait(timeout=30)
        done = 0
        for _ in range(self.batches):
            if stop.is_set():
                break
            time.sleep(self.batch_seconds)
            done += 1
            progress.counts_updated(RunCounts(upserted=done * 10))
        with self.lock:
            self._running[export] -= 1
            self.finished.append((export, trigger, done))
            self.spans.append((export, began, time.monotonic()))
        status = self.statuses[min(index, len(self.statuses) - 1)]
        if stop.is_set() and done < self.batches:
            status = "partial"
        return RunOutcome(
            status=status,
            counts={"upserted": done * 10, "invalid": 1},
            error=None if status != "failed" else "source unreadable",
        )

    # The rest of the daemon's Engine: no history, every export may run.
    def last_run(self, export: str) -> None:
        return None

    def refusal(self, config: Config, export: str) -> None:
        return None


def wait_until(
    predicate, *, timeout: float = 20.0, interval: float = 0.02, message: str = "condition"
):
    """Poll ``predicate`` until truthy; its value, or AssertionError naming ``message``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)
