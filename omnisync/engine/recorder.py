"""Recording a run's effects: the delivery pipeline's listener that writes the ledger.

:class:`LedgerRecorder` receives the pipeline's callbacks and turns each into
one store transaction, so the ledger holds exactly what Omnisend
acknowledged, batch by batch:

- ``batch_sending`` → the batch's items are recorded as an *intent* under a
  provisional token, with the fingerprints the runner announced through
  :meth:`LedgerRecorder.expect`, before the request may leave (Omnisend only
  names a batch in its answer); ``batch_created`` → they become in flight
  under Omnisend's id. A process killed between the two leaves the intent:
  the next run knows those contacts *may* have been sent (see
  :mod:`omnisync.engine.settle`); ``batch_not_created`` → an intent whose
  batch surely does not exist is forgotten;
- ``upserts_acknowledged`` → those in-flight items move into the ledger (a
  poll round's batches in one transaction);
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
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.engine.results import FailureSample
from omnisync.masking import mask_email
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.model import ItemFailure
from omnisync.state import InflightItem, LedgerStore

#: How many refused items a run keeps as examples (masked) for its summary.
FAILURE_SAMPLES = 5


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
        self._expected: dict[str, InflightItem] = {}
        #: Per intent token, then per batch id until its outcome: how many items
        #: were recorded (tells a whole batch acknowledged) and which are tagged after.
        self._sent: dict[str, _SentBatch] = {}
        self.batches = 0
        self.upserted = 0
        self.upsert_failed = 0
        self.tags_after_upsert = 0
        self.tagged = 0
        self.untagged = 0
        self.tag_failed = 0
        self.failure_samples: list[FailureSample] = []

    def expect(self, email: str, fingerprint: int, *, then_tag: bool) -> None:
        """Announce an upsert about to be queued: its fingerprint, and whether to tag after."""
        # One dict assignment, atomic: no lock for the hottest call of a run.
        self._expected[email] = InflightItem(email, fingerprint, then_tag)

    # -- DeliveryListener ---------------------------------------------------------

    def batch_sending(self, emails: tuple[str, ...]) -> str:
        """Record the batch's contacts as an intent under a new token, before sending."""
        token = uuid.uuid4().hex
        with self._lock:
            expected = self._expected
            items = {email: expected.pop(email) for email in emails}
            then_tag = frozenset(email for email, item in items.items() if item.then_tag)
        self._store.record_intent(self._export, token, list(items.values()), now=self._clock.wall())
        with self._lock:
            self._sent[token] = _SentBatch(len(items), then_tag)
        return token

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        """Omnisend returned the batch's id: the intent's items are now in flight under it."""
        self._store.record_created(self._export, provisional_id, batch_id, now=self._clock.wall())
        with self._lock:
            self.batches += 1
            self._sent[batch_id] = self._sent.pop(provisional_id)

    def batch_not_created(self, provisional_id: str, error: OmnisendError) -> None:
        """Omnisend answering an error, or the request cancelled before it was sent
        (a stop), means nothing was processed: forget the intent. Anything else (the
        network) may hide a batch that was created: keep the intent for the next run
        to resolve."""
        with self._lock:
            del self._sent[provisional_id]
        if isinstance(error, ApiError | RequestCancelled):
            self._store.release_intent(self._export, provisional_id)

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        with self._lock:
            sent = [self._sent.pop(batch_id) for batch_id, _ in acknowledged]
        # The pipeline names only a batch's own e-mails: as many distinct ones as
        # the intent recorded are the whole batch, which the store then moves
        # without matching e-mails.
        moves = [
            (batch_id, None if batch.is_whole(emails) else emails)
            for (batch_id, emails), batch in zip(acknowledged, sent, strict=True)
        ]
        self._store.acknowledge_batches(self._export, moves, now=self._clock.wall())
        with self._lock:
            for (_, emails), batch in zip(acknowledged, sent, strict=True):
                self.upserted += len(emails)
                # The pipeline tags exactly the accepted e-mails it was told to tag.
                self.tags_after_upsert += len(batch.then_tag.intersection(emails))
        self._changed()

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        emails = [failure.email for failure in failures]
        self._store.release(self._export, batch_id, emails)
        with self._lock:
            # A batch's outcome is reported all at once, acknowledgements first: its
            # record is done with.
            self._sent.pop(batch_id, None)
            self.upsert_failed += len(failures)
            for failure in failures:
                self._sample(mask_email(failure.email), _failure_reason(failure))
        self._changed()

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...]) -> None:
        # Left in flight on purpose: Omnisend may still process the batch, and the
        # next run asks it before deciding what to send again.
        with self._lock:
            self._sent.pop(batch_id, None)
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

    def _sample(self, subject: str, reason: str) -> None:
        if len(self.failure_samples) < FAILURE_SAMPLES:
            self.failure_samples.append(FailureSample(subject, reason))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


@dataclass(frozen=True)
class _SentBatch:
    size: int
    then_tag: frozenset[str]

    def is_whole(self, emails: tuple[str, ...]) -> bool:
        return len(emails) == self.size and len(set(emails)) == self.size


def _failure_reason(failure: ItemFailure) -> str:
    if failure.problems:
        return "; ".join(f"{problem.field}: {problem.message}" for problem in failure.problems)
    return f"{failure.response_code} {failure.title}".strip()
