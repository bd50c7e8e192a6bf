"""Recording a run's effects: the delivery pipeline's listener that writes the ledger.

:class:`LedgerRecorder` receives the pipeline's callbacks and turns each into
one store transaction, so the ledger holds exactly what Omnisend
acknowledged, batch by batch:

- just before a batch is created (:class:`IntentRecordingClient`), its items
  are recorded as an *intent* under a provisional token, with the
  fingerprints the runner announced through :meth:`LedgerRecorder.expect`;
  once Omnisend returned the batch's id they become in flight under it. A
  process killed between the two leaves the intent: the next run knows
  those contacts *may* have been sent (see :mod:`omnisync.engine.settle`);
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
from collections.abc import Callable, Collection, Sequence

from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.engine.results import FailureSample
from omnisync.masking import mask_email
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.model import ItemFailure
from omnisync.omnisend.payloads import EncodedBatch, batch_emails
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
        #: Items recorded per intent token, then per batch id: tells a whole batch acknowledged.
        self._sizes: dict[str, int] = {}
        self._then_tag: dict[str, set[str]] = {}
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

    # -- around each batch creation (IntentRecordingClient) -------------------------

    def intend(self, writes: Sequence[ContactWrite] | EncodedBatch) -> str:
        """Record the batch's contacts as an intent under a new token, before sending."""
        token = uuid.uuid4().hex
        with self._lock:
            expected = self._expected
            items = {email: expected.pop(email) for email in batch_emails(writes)}
            then_tag = frozenset(email for email, item in items.items() if item.then_tag)
        self._store.record_intent(self._export, token, list(items.values()), now=self._clock.wall())
        with self._lock:
            self._sizes[token] = len(items)
            if then_tag:
                self._then_tag[token] = set(then_tag)
        return token

    def created(self, token: str, batch_id: str) -> None:
        """Omnisend returned the batch's id: the intent's items are now in flight under it."""
        self._store.record_created(self._export, token, batch_id, now=self._clock.wall())
        with self._lock:
            size = self._sizes.pop(token, None)
            if size is not None:
                self._sizes[batch_id] = size
            waiting = self._then_tag.pop(token, None)
            if waiting is not None:
                self._then_tag[batch_id] = waiting

    def not_created(self, token: str, error: BaseException) -> None:
        """Creating the batch failed. Omnisend answering an error, or the request
        cancelled before it was sent (a stop), means nothing was processed: forget
        the intent. Anything else (the network) may hide a batch that was created:
        keep the intent for the next run to resolve."""
        with self._lock:
            self._then_tag.pop(token, None)
            self._sizes.pop(token, None)
        if isinstance(error, ApiError | RequestCancelled):
            self._store.release_intent(self._export, token)

    # -- DeliveryListener ---------------------------------------------------------

    def batch_created(self, batch_id: str, emails: tuple[str, ...]) -> None:
        # The items are already in flight under this id (see ``created``).
        with self._lock:
            self.batches += 1

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        with self._lock:
            sizes = [self._sizes.pop(batch_id, None) for batch_id, _ in acknowledged]
        # The pipeline names only a batch's own e-mails: as many distinct ones as
        # the intent recorded are the whole batch, which the store then moves
        # without matching e-mails.
        moves = [
            (batch_id, None if _whole(emails, size) else emails)
            for (batch_id, emails), size in zip(acknowledged, sizes, strict=True)
        ]
        self._store.acknowledge_batches(self._export, moves, now=self._clock.wall())
        with self._lock:
            for batch_id, emails in acknowledged:
                self.upserted += len(emails)
                waiting = self._then_tag.pop(batch_id, set())
                # The pipeline tags exactly the accepted e-mails it was told to tag.
                self.tags_after_upsert += len(waiting.intersection(emails))
        self._changed()

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        emails = [failure.email for failure in failures]
        self._store.release(self._export, batch_id, emails)
        with self._lock:
            self._sizes.pop(batch_id, None)
            self.upsert_failed += len(failures)
            self._forget_then_tag(batch_id, emails)
            for failure in failures:
                self._sample(mask_email(failure.email), _failure_reason(failure))
        self._changed()

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...]) -> None:
        # Left in flight on purpose: Omnisend may still process the batch, and the
        # next run asks it before deciding what to send again.
        with self._lock:
            self._sizes.pop(batch_id, None)
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


def _whole(emails: tuple[str, ...], size: int | None) -> bool:
    return size is not None and len(emails) == size and len(set(emails)) == size


def _failure_reason(failure: ItemFailure) -> str:
    if failure.problems:
        return "; ".join(f"{problem.field}: {problem.message}" for problem in failure.problems)
    return f"{failure.response_code} {failure.title}".strip()
