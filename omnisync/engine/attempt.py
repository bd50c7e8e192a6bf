"""One export run's apply phase and mutable bookkeeping: counts as they grow, the result."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace

from omnisync.clock import Clock
from omnisync.config.model import Export
from omnisync.contact import ContactWrite
from omnisync.engine.clients import RequestCounter
from omnisync.engine.recorder import LedgerRecorder
from omnisync.engine.report import PlanTally
from omnisync.engine.results import (
    SAMPLE_SIZE,
    Phase,
    RunCounts,
    RunProgress,
    RunResult,
    Tallied,
)
from omnisync.engine.settle import Settlement, without_repeated_consent
from omnisync.mapping import MappingPlan
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.pipeline import DeliveryPipeline
from omnisync.planning import Leaver, WorkItem
from omnisync.state import LedgerStore


# No repr: settlement holds full e-mail addresses, which must never reach a log line.
@dataclass(eq=False, kw_only=True, repr=False)
class RunAttempt:
    """Private to one run; progress listeners read :meth:`counts` snapshots."""

    export: Export
    progress: RunProgress | None
    stop: threading.Event
    allow_large_change: bool
    full: bool
    counter: RequestCounter | None = None
    recorder: LedgerRecorder | None = None
    tally: PlanTally | None = None  # from staging on
    settlement: Settlement = field(default_factory=Settlement)
    items_seen: int = 0
    leavers_seen: int = 0
    waiting: int = 0  # upserts held back for a batch Omnisend has not finished
    upserts_queued: int = 0
    then_tag_queued: int = 0
    tag_adds_queued: int = 0
    removes_queued: int = 0
    stopped: bool = False
    _progress_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def phase(self, phase: Phase) -> None:
        if self.progress is not None:
            self.progress.phase_started(phase, self.counts())

    def changed(self) -> None:
        if self.progress is not None:
            with self._progress_lock:
                self.progress.counts_updated(self.counts())

    def counts(self) -> RunCounts:
        tally, recorder = self.tally, self.recorder
        counts = RunCounts(
            **asdict(tally.tallied() if tally is not None else Tallied()),
            **(asdict(self.counter) if self.counter else {}),  # requests, rate_limited
            upserts_planned=self.upserts_queued,
            tag_changes_planned=self.tag_adds_queued + self.then_tag_queued + self.removes_queued,
            settled=self.settlement.acknowledged,
        )
        if tally is None or recorder is None:  # not applying yet: nothing queued or pending
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
        stage = tally.staged.counts
        unreached = max(0, stage.work - self.items_seen) + max(0, stage.leaving - self.leavers_seen)
        upserts_done = counts.upserted + counts.upsert_failed
        tag_changes = self.tag_adds_queued + recorder.tags_after_upsert + self.removes_queued
        tags_done = counts.tagged + counts.untagged + counts.tag_failed
        pending_upserts = max(0, self.upserts_queued - upserts_done) + counts.upsert_failed
        pending_tags = max(0, tag_changes - tags_done) + counts.tag_failed
        return replace(counts, pending=unreached + pending_upserts + pending_tags)

    def apply(
        self,
        *,
        store: LedgerStore,
        client: OmnisendClient,
        clock: Clock,
        poll_interval: float,
        max_batches_in_flight: int,
        stop_grace: float,
    ) -> None:
        """Send what the tally's staged export needs, through a :class:`DeliveryPipeline`
        per tag, and record what Omnisend acknowledged (a :class:`LedgerRecorder`).

        Every item that needs an upsert is mapped and tallied (so plan and run
        agree). ``stop`` is honoured between items: nothing new is handed over,
        what was sent is followed and recorded. Raises what the pipelines raise
        (an aborting ``ApiError``, a ``StateError``).
        """
        export = self.export
        recorder = LedgerRecorder(
            store,
            export.name,
            clock=clock,
            on_change=self.changed,
            maybe_sent=self.settlement.maybe_sent,
        )
        self.recorder = recorder
        tally = self.tally
        assert tally is not None, "the runner tallies what it staged"
        staged = tally.staged
        pipelines: dict[str, DeliveryPipeline] = {}
        with ExitStack() as open_pipelines:

            def pipeline_for(tag: str) -> DeliveryPipeline:
                if tag not in pipelines:
                    pipelines[tag] = open_pipelines.enter_context(
                        DeliveryPipeline(
                            client,
                            tag,
                            listener=recorder,
                            stop=self.stop,
                            clock=clock,
                            max_batches_in_flight=max_batches_in_flight,
                            poll_interval=poll_interval,
                            stop_grace=stop_grace,
                        )
                    )
                return pipelines[tag]

            main = pipeline_for(export.tag)
            now = clock.wall()
            plan = MappingPlan(export)
            stop = self.stop
            maybe_sent, unresolved = self.settlement.maybe_sent, self.settlement.unresolved

            def apply_item(item: WorkItem) -> bool:
                """Queue one member's work; ``False`` once the pipeline takes no more."""
                outcome = plan.map_work(item, now=now)
                actions = tally.add(item, outcome)
                # A renamed tag: the export's is added once the old one is removed (below).
                renaming = actions.remove_old_tag is not None
                if actions.upsert and item.email in unresolved:
                    # Its batch may yet be applied, consent and all: it waits (pending).
                    self.waiting += 1
                    return True
                if actions.upsert:
                    assert outcome is not None and isinstance(outcome.result, ContactWrite)
                    write = outcome.result
                    if write.email in maybe_sent and write.consent is not None:
                        # A killed run may have sent this very write: don't repeat its consent.
                        write = without_repeated_consent(write, client.get_contact(write.email))
                    then_tag = actions.tag and not renaming
                    recorder.expect(item.email, item.fingerprint, then_tag=then_tag)
                    # (One too large for any batch is invalid: the tally never lets it here.)
                    if not main.upsert(write, then_tag=then_tag):
                        return False
                    self.then_tag_queued += then_tag
                    self.upserts_queued += 1
                elif actions.tag and not renaming:
                    if not main.add_tag(item.email):
                        return False
                    self.tag_adds_queued += 1
                # Seen once its work is queued (an invalid item: never sent, counted by
                # the tally); one the pipeline refused (a stop) stays unreached, pending.
                self.items_seen += 1
                if actions.remove_old_tag is not None:
                    if actions.tag:
                        recorder.renaming(item.email, actions.remove_old_tag)
                    if not pipeline_for(actions.remove_old_tag).remove_tag(item.email):
                        return False  # a stop: the old tag stays on it, and in the ledger
                    self.removes_queued += 1
                    self.tag_adds_queued += actions.tag  # pending until added, below
                return True

            for item in staged.work():
                if stop.is_set() or not apply_item(item):
                    break
            sampled: list[Leaver] = []
            for leaver in staged.leavers():
                if stop.is_set():
                    break
                if len(sampled) < SAMPLE_SIZE:  # the tally samples no more; skip the call
                    sampled.append(leaver)
                if not pipeline_for(leaver.tag).remove_tag(leaver.email):
                    break
                self.leavers_seen += 1
                self.removes_queued += 1
            tally.add_leavers(sampled)
            self.changed()
            # The export's own pipeline last: old tags are removed while it drains.
            for tag, pipeline in list(pipelines.items()):
                if tag != export.tag:
                    pipeline.finish()
            for email in recorder.renamed():
                if stop.is_set() or not main.add_tag(email):
                    break
            main.finish()
            self.stopped = stop.is_set()
        # A maybe-sent contact this run recorded needs no more looking up; the others (not
        # reached, refused, out of the segment for now) stay in their intent.
        for intent in self.settlement.intents:
            left = [item for item in intent.items if item.email not in recorder.maybe_sent_recorded]
            if not left:
                store.release_intent(export.name, intent.batch_id)
            elif len(left) < len(intent.items):
                store.record_intent(export.name, intent.batch_id, left, now=clock.wall())

    def partial_reason(self, counts: RunCounts) -> str:
        parts = []
        if self.stopped:
            parts.append("stopped before finishing")
        if counts.upsert_failed:
            parts.append(f"Omnisend refused {counts.upsert_failed:,} contact(s)")
        if counts.tag_failed:
            parts.append(f"{counts.tag_failed:,} tag change(s) failed")
        if self.waiting:
            parts.append(f"{self.waiting:,} contact(s) wait for a batch Omnisend has not finished")
        if self.recorder is not None:
            for sample in self.recorder.failure_samples:
                parts.append(f"{sample.subject}: {sample.reason}")
        parts.append(f"{counts.pending:,} operation(s) {_left(full=self.full)}")
        return "; ".join(parts)

    def result(self, base: RunResult) -> RunResult:
        """``base`` completed with what this attempt learnt (samples, reasons)."""
        if self.tally is None or self.recorder is None:  # the apply phase never began
            return replace(base, stopped=self.stopped, full=self.full)
        report = self.tally.report()
        return replace(
            base,
            stopped=self.stopped,
            full=self.full,
            invalid_reasons=report.invalid_reasons,
            warnings=report.warnings,
            duplicates_sample=report.duplicates_sample,
            failure_samples=tuple(self.recorder.failure_samples),
        )


def _left(*, full: bool) -> str:
    """What becomes of the operations a run did not do: a full resync's are no run's."""
    if full:
        return (
            "of the full resync not sent: the next run sends only what changed; run it"
            " again with --full to finish"
        )
    return "left for the next run"
