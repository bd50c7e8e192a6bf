"""Recording a run's effects: the delivery pipeline's listener that writes the ledger.

:class:`LedgerRecorder` receives the pipeline's callbacks and turns each into
one store transaction, so the ledger holds exactly what Omnisend
acknowledged, batch by batch:

- ``batch_created`` → the batch's items become in-flight, with the
  fingerprints the runner announced through :meth:`LedgerRecorder.expect`;
- ``upserts_acknowledged`` → those in-flight items move into the ledger;
- ``upserts_failed`` → those in-flight items are released: pending, the next
  run's diff sends them again;
- ``batch_abandoned`` → nothing: the items stay in flight and the next run
  asks Omnisend what became of them before deciding what to send again;
- ``tags_added`` / ``tags_removed`` → the entries' tag is set / cleared.

A store error raised here propagates into the pipeline, which aborts and
raises it from ``finish()``: a run that cannot record must not keep sending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.masking import mask_email
from omnisync.omnisend.errors import OmnisendError
from omnisync.omnisend.model import ItemFailure
from omnisync.state import InflightItem, LedgerStore

#: How many refused items a run keeps as examples (masked) for its summary.
FAILURE_SAMPLES = 5


@dataclass(frozen=True)
class FailureSample:
    """One refused item or call, for the run summary: what (masked) and Omnisend's reason."""

    subject: str
    reason: str


class LedgerRecorder:
    """The pipeline listener of one run; records acknowledged work. Thread-safe.

    Several pipelines (the export's tag and, after a tag rename, the old tag)
    may share one recorder. ``on_change`` is called after every callback that
    changed a count (progress reporting); it must be cheap and thread-safe.
    """

    def __init__(
        self,
        store: LedgerStore,
        export: str,
        *,
        clock: Clock,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._export = export
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._expected: dict[str, tuple[int, bool]] = {}
        self._then_tag: dict[str, set[str]] = {}
        self.batches = 0
        self.upserted = 0
        self.upsert_failed = 0
        self.abandoned = 0
        self.tags_after_upsert = 0
        self.tagged = 0
        self.untagged = 0
        self.tag_failed = 0
        self.failure_samples: list[FailureSample] = []

    def expect(self, email: str, fingerprint: int, *, then_tag: bool) -> None:
        """Announce an upsert about to be queued: its fingerprint, and whether to tag after."""
        with self._lock:
            self._expected[email] = (fingerprint, then_tag)

    # -- DeliveryListener ---------------------------------------------------------

    def batch_created(self, batch_id: str, emails: tuple[str, ...]) -> None:
        with self._lock:
            items = [InflightItem(email, *self._expected.pop(email)) for email in emails]
            then_tag = {item.email for item in items if item.then_tag}
            if then_tag:
                self._then_tag[batch_id] = then_tag
            self.batches += 1
        self._store.record_inflight(self._export, batch_id, items, now=self._clock.wall())

    def upserts_acknowledged(self, batch_id: str, emails: tuple[str, ...]) -> None:
        self._store.acknowledge(self._export, batch_id, emails, now=self._clock.wall())
        with self._lock:
            self.upserted += len(emails)
            waiting = self._then_tag.pop(batch_id, set())
            # The pipeline tags exactly the accepted e-mails it was told to tag.
            self.tags_after_upsert += sum(1 for email in emails if email in waiting)
        self._changed()

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        emails = [failure.email for failure in failures]
        self._store.release(self._export, batch_id, emails)
        with self._lock:
            self.upsert_failed += len(failures)
            self._forget_then_tag(batch_id, emails)
            for failure in failures:
                self._sample(mask_email(failure.email), _failure_reason(failure))
        self._changed()

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...]) -> None:
        # Left in flight on purpose: Omnisend may still process the batch, and the
        # next run asks it before deciding what to send again.
        with self._lock:
            self.abandoned += len(emails)
            self._forget_then_tag(batch_id, emails)
        self._changed()

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        self._store.mark_tagged(self._export, tag, emails, now=self._clock.wall())
        with self._lock:
            self.tagged += len(emails)
        self._changed()

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        self._store.mark_untagged(self._export, tag, emails, now=self._clock.wall())
        with self._lock:
            self.untagged += len(emails)
        self._changed()

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: OmnisendError) -> None:
        with self._lock:
            self.tag_failed += len(emails)
            self._sample(f"tag {tag!r} for {len(emails)} contact(s)", str(error))
        self._changed()

    # -- plumbing -------------------------------------------------------------------

    def _forget_then_tag(self, batch_id: str, emails: Collection[str]) -> None:
        waiting = self._then_tag.get(batch_id)
        if waiting is not None:
            waiting.difference_update(emails)
            if not waiting:
                del self._then_tag[batch_id]

    def _sample(self, subject: str, reason: str) -> None:
        if len(self.failure_samples) < FAILURE_SAMPLES:
            self.failure_samples.append(FailureSample(subject, reason))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


def _failure_reason(failure: ItemFailure) -> str:
    if failure.problems:
        return "; ".join(f"{problem.field}: {problem.message}" for problem in failure.problems)
    return f"{failure.response_code} {failure.title}".strip()
