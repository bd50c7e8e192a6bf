"""The bookkeeping of one export run: counts as they grow, and the final result.

:class:`RunAttempt` is mutable and private to one run; the runner fills it,
progress listeners read :meth:`RunAttempt.counts` snapshots, and
:meth:`RunAttempt.result` completes the :class:`RunResult`.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from omnisync.config.model import Export
from omnisync.engine.clients import RequestCounter
from omnisync.engine.report import PlanTally
from omnisync.engine.results import Phase, RunCounts, RunProgress, RunResult, tallied
from omnisync.planning import StageCounts

if TYPE_CHECKING:
    from omnisync.engine.recorder import LedgerRecorder


class RunAttempt:
    """The mutable bookkeeping of one run, read by progress and the final result."""

    def __init__(
        self,
        export: Export,
        *,
        progress: RunProgress,
        stop: threading.Event,
        allow_large_change: bool,
        full: bool,
    ) -> None:
        self.export = export
        self.progress = progress
        self.stop = stop
        self.counter: RequestCounter | None = None
        self.recorder: LedgerRecorder | None = None
        self.tally: PlanTally | None = None
        self.stage_counts = StageCounts()
        self.duplicates_sample: tuple[str, ...] = ()
        self.settled = 0
        self.maybe_sent: frozenset[str] = frozenset()
        self.items_seen = 0
        self.leavers_seen = 0
        self.upserts_queued = 0
        self.then_tag_queued = 0
        self.tag_adds_queued = 0
        self.removes_queued = 0
        self.stopped = False
        #: A person released this run past the change guards (once).
        self.allow_large_change = allow_large_change
        #: A full resync: every member re-sent and re-tagged.
        self.full = full
        self._progress_lock = threading.Lock()

    def phase(self, phase: Phase) -> None:
        self.progress.phase_started(phase, self.counts())

    def changed(self) -> None:
        with self._progress_lock:
            self.progress.counts_updated(self.counts())

    def counts(self) -> RunCounts:
        stage = self.stage_counts
        counter = self.counter
        # The tally, once the apply phase made one, counts from these same staging counts.
        found = self.tally.tallied() if self.tally is not None else tallied(stage)
        counts = RunCounts(
            **asdict(found),
            upserts_planned=self.upserts_queued,
            tag_changes_planned=self.tag_adds_queued + self.then_tag_queued + self.removes_queued,
            settled=self.settled,
            requests=counter.requests if counter else 0,
            rate_limited=counter.rate_limited if counter else 0,
        )
        recorder = self.recorder
        if recorder is None:  # the apply phase has not begun: nothing queued, nothing pending
            return counts
        # Each of the recorder's counts read once, so that ``pending`` agrees with them.
        counts = replace(
            counts,
            upserted=recorder.upserted,
            upsert_failed=recorder.upsert_failed,
            tagged=recorder.tagged,
            untagged=recorder.untagged,
            tag_failed=recorder.tag_failed,
            batches=recorder.batches,
        )
        unreached = max(0, stage.work - self.items_seen) + max(0, stage.leaving - self.leavers_seen)
        upserts_done = counts.upserted + counts.upsert_failed
        tag_changes = self.tag_adds_queued + recorder.tags_after_upsert + self.removes_queued
        tags_done = counts.tagged + counts.untagged + counts.tag_failed
        pending_upserts = max(0, self.upserts_queued - upserts_done) + counts.upsert_failed
        pending_tags = max(0, tag_changes - tags_done) + counts.tag_failed
        return replace(counts, pending=unreached + pending_upserts + pending_tags)

    def partial_reason(self, counts: RunCounts) -> str:
        parts = []
        if self.stopped:
            parts.append("stopped before finishing")
        if counts.upsert_failed:
            parts.append(f"Omnisend refused {counts.upsert_failed:,} contact(s)")
        if counts.tag_failed:
            parts.append(f"{counts.tag_failed:,} tag change(s) failed")
        if self.recorder is not None:
            for sample in self.recorder.failure_samples:
                parts.append(f"{sample.subject}: {sample.reason}")
        parts.append(f"{counts.pending:,} operation(s) left for the next run")
        return "; ".join(parts)

    def result(self, base: RunResult) -> RunResult:
        """``base`` completed with what this attempt learnt (samples, reasons)."""
        report = self.tally.report() if self.tally is not None else None
        if report is None:
            return replace(base, stopped=self.stopped)
        return replace(
            base,
            stopped=self.stopped,
            invalid_reasons={reason.reason: reason.count for reason in report.invalid_reasons},
            invalid_samples={reason.reason: reason.examples for reason in report.invalid_reasons},
            warnings={reason.reason: reason.count for reason in report.warnings},
            duplicates_sample=self.duplicates_sample,
            failure_samples=tuple(self.recorder.failure_samples) if self.recorder else (),
        )
