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
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from omnisync.clock import Clock
from omnisync.masking import mask_email
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import ApiError, OmnisendError
from omnisync.omnisend.model import BatchOutcome, ContactWrite, ItemFailure
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

    # -- around each batch creation (IntentRecordingClient) -------------------------

    def intend(self, emails: Sequence[str]) -> str:
        """Record these contacts as a batch intent under a new token, before sending."""
        token = uuid.uuid4().hex
        with self._lock:
            items = [InflightItem(email, *self._expected.pop(email)) for email in emails]
        self._store.record_intent(self._export, token, items, now=self._clock.wall())
        with self._lock:
            then_tag = {item.email for item in items if item.then_tag}
            if then_tag:
                self._then_tag[token] = then_tag
        return token

    def created(self, token: str, batch_id: str) -> None:
        """Omnisend returned the batch's id: the intent's items are now in flight under it."""
        self._store.record_created(self._export, token, batch_id, now=self._clock.wall())
        with self._lock:
            waiting = self._then_tag.pop(token, None)
            if waiting is not None:
                self._then_tag[batch_id] = waiting

    def not_created(self, token: str, error: BaseException) -> None:
        """Creating the batch failed. Omnisend answering an error means nothing was
        processed: forget the intent. Anything else (the network) may hide a batch
        that was created: keep the intent for the next run to resolve."""
        with self._lock:
            self._then_tag.pop(token, None)
        if isinstance(error, ApiError):
            self._store.release_intent(self._export, token)

    # -- DeliveryListener ---------------------------------------------------------

    def batch_created(self, batch_id: str, emails: tuple[str, ...]) -> None:
        # The items are already in flight under this id (see ``created``).
        with self._lock:
            self.batches += 1

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


class IntentRecordingClient:
    """The client as the delivery pipeline sees it, recording intent around batch creation.

    ``create_batch`` records the batch's items as in flight under a
    provisional id *before* the request and moves them under Omnisend's id
    after it, so no batch can exist at Omnisend without a trace in the
    ledger. Everything else is the wrapped client's.

    The pipeline only reports a batch once it exists (``batch_created``),
    so the record before the request is made here, as a
    :class:`~omnisync.omnisend.delivery.DeliveryClient` wrapper.
    """

    def __init__(self, client: OmnisendClient, recorder: LedgerRecorder) -> None:
        self._client = client
        self._recorder = recorder

    def create_batch(self, writes: Sequence[ContactWrite]) -> str:
        token = self._recorder.intend([write.email for write in writes])
        try:
            batch_id = self._client.create_batch(writes)
        except BaseException as error:
            self._recorder.not_created(token, error)
            raise
        self._recorder.created(token, batch_id)
        return batch_id

    def poll_batches(self, pending: Mapping[str, Collection[str]]) -> list[BatchOutcome]:
        return self._client.poll_batches(pending)

    def wait_for_batches(
        self, pending: Mapping[str, Collection[str]], *, poll_interval: float = 2.0
    ) -> Iterator[BatchOutcome]:
        return self._client.wait_for_batches(pending, poll_interval=poll_interval)

    def add_tag(self, tag: str, emails: Sequence[str]) -> None:
        self._client.add_tag(tag, emails)

    def remove_tag(self, tag: str, emails: Sequence[str]) -> None:
        self._client.remove_tag(tag, emails)

    def get_contact(self, email: str) -> dict[str, Any] | None:
        return self._client.get_contact(email)


def without_repeated_consent(
    write: ContactWrite, contact: Mapping[str, Any] | None
) -> ContactWrite:
    """``write`` without its consent when ``contact`` (Omnisend's) already holds that record.

    For a contact a killed run may already have sent: Omnisend keeps every
    consent record it receives, so sending the same one again would leave a
    duplicate. The status goes with it (it was set together, with the same
    time). Without such a record, ``write`` is returned unchanged.
    """
    consent = write.consent
    if consent is None or contact is None:
        return write
    records = contact.get("consents")
    if not isinstance(records, list):
        return write
    wanted = _instant(consent.changed_at)
    for record in records:
        if (
            isinstance(record, Mapping)
            and record.get("channel", "email") == "email"
            and _instant(record.get("createdAt")) == wanted
            and record.get("source") == consent.source
        ):
            return replace(write, consent=None)
    return write


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
