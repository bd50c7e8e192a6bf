"""Recording a run's effects: the delivery pipeline's listener that writes the ledger.

Each callback is one store transaction: a batch's items are recorded as an
*intent* before the request may leave, become in flight under Omnisend's id,
then move into the ledger when acknowledged (released when refused; left in
flight when abandoned, for the next run to settle). A store error propagates
into the pipeline, which aborts: a run that cannot record must not keep sending.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.engine.results import SAMPLE_SIZE, FailureSample
from omnisync.masking import mask_email
from omnisync.omnisend.batches import ItemFailure
from omnisync.omnisend.errors import OmnisendError
from omnisync.state import InflightItem, LedgerStore


class LedgerRecorder:
    """The pipeline listener of one run (shared by its pipelines). Thread-safe.

    ``on_change`` is called after every callback that changed a count; it must
    be cheap and thread-safe.
    """

    def __init__(
        self,
        store: LedgerStore,
        export: str,
        *,
        clock: Clock,
        on_change: Callable[[], None],
        maybe_sent: frozenset[str] = frozenset(),
    ) -> None:
        self._store = store
        self._export = export
        self._maybe_sent = maybe_sent
        #: The e-mails of ``maybe_sent`` (a killed run's intents) this run recorded.
        self.maybe_sent_recorded: set[str] = set()
        # A renamed tag: per e-mail, the old tag whose removal is not acknowledged yet;
        # then the e-mails it was removed from, for the export's tag (see renaming()).
        self._renaming: dict[str, str] = {}
        self._renamed: list[str] = []
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._expected: dict[str, InflightItem] = {}
        # Per intent token, then per batch id until its outcome.
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

    def batch_sending(self, emails: tuple[str, ...]) -> str:
        with self._lock:
            items = [self._expected.pop(email) for email in emails]
        return self._intend(items)

    def batch_resending(self, stopped_id: str, emails: tuple[str, ...]) -> str:
        wanted = set(emails)
        items = [
            item
            for batch in self._store.inflight_batches(self._export)
            if batch.batch_id == stopped_id
            for item in batch.items
            if item.email in wanted
        ]
        # The intent first: a process killed before the release leaves them in both, the
        # stopped batch (released by the next run's settling) and the intent (looked up).
        token = self._intend(items)
        self._store.release(self._export, stopped_id, emails)
        return token

    def _intend(self, items: list[InflightItem]) -> str:
        """Record ``items`` as the intent of a new batch; returns its provisional id."""
        token = uuid.uuid4().hex
        self._store.record_intent(self._export, token, items, now=self._clock.wall())
        then_tag = frozenset(item.email for item in items if item.then_tag)
        with self._lock:
            self._sent[token] = _SentBatch(len(items), then_tag)
        return token

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        self._store.record_created(self._export, provisional_id, batch_id, now=self._clock.wall())
        with self._lock:
            self.batches += 1
            self._sent[batch_id] = self._sent.pop(provisional_id)

    def batch_not_created(self, provisional_id: str, error: OmnisendError) -> None:
        # Cancelled before it left, refused by a 4xx, never connected: nothing was
        # processed, released. Otherwise (no answer, a 408 or 5xx, a 2xx without an id)
        # the batch may exist: the intent is kept, and the next run looks its contacts
        # up before sending a consent again.
        with self._lock:
            del self._sent[provisional_id]
        if not error.maybe_processed:
            self._store.release_intent(self._export, provisional_id)
            return
        with self._lock:
            self._sample(
                "a batch that may have been created",
                f"{error}; its contacts are looked up by the next run before any consent"
                " record is sent again",
            )

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        with self._lock:
            sent = [self._sent.pop(batch_id) for batch_id, _ in acknowledged]
        # As many distinct e-mails as the intent recorded are the whole batch, which
        # the store moves without matching e-mails.
        moves = [
            (batch_id, None if batch.is_whole(emails) else emails)
            for (batch_id, emails), batch in zip(acknowledged, sent, strict=True)
        ]
        self._store.acknowledge_batches(self._export, moves, now=self._clock.wall())
        with self._lock:
            for (_, emails), batch in zip(acknowledged, sent, strict=True):
                if self._maybe_sent:
                    self.maybe_sent_recorded.update(self._maybe_sent.intersection(emails))
                self.upserted += len(emails)
                # The pipeline tags exactly the accepted e-mails it was told to tag.
                self.tags_after_upsert += len(batch.then_tag.intersection(emails))
        self._on_change()

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        emails = [failure.email for failure in failures]
        self._store.release(self._export, batch_id, emails)
        with self._lock:
            # Reported after the batch's acknowledgements: its record is done with.
            self._sent.pop(batch_id, None)
            self.upsert_failed += len(failures)
            for failure in failures:
                self._sample(mask_email(failure.email), _failure_reason(failure))
        self._on_change()

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...], *, reason: str = "") -> None:
        # Left in flight on purpose: Omnisend may still process the batch, and the
        # next run asks it before deciding what to send again.
        with self._lock:
            self._sent.pop(batch_id, None)
            if reason:
                self._sample(f"batch {batch_id}", reason)
        self._on_change()

    def renaming(self, email: str, old_tag: str) -> None:
        """Announce that this contact's ledger tag ``old_tag`` is being removed, and that the
        export's tag is to be added once Omnisend acknowledges that (:meth:`renamed`).

        The ledger holds one tag per contact: added only after the old one is gone, the
        export's tag is never on a contact beside the old one, so the ledger's tag is
        always one the contact holds (or, in doubt, may hold), whatever fails, stops or is
        killed in between (a contact that leaves loses it; a second rename removes it)."""
        with self._lock:
            self._renaming[email] = old_tag

    def renamed(self) -> list[str]:
        """The e-mails announced by :meth:`renaming` whose old tag Omnisend removed since
        the last call: ready for the export's tag."""
        with self._lock:
            ready, self._renamed = self._renamed, []
        return ready

    def tags_sending(self, tag: str, emails: tuple[str, ...], *, adding: bool) -> None:
        # Cleared by tags_added / tags_removed; a failed call leaves it, for the next
        # run's diff to send again (tags calls are idempotent).
        self._store.mark_tag_in_doubt(
            self._export, tag, emails, adding=adding, now=self._clock.wall()
        )

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        self._store.mark_tagged(self._export, tag, emails, now=self._clock.wall())
        with self._lock:
            self.tagged += len(emails)
        self._on_change()

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        self._store.mark_untagged(self._export, tag, emails, now=self._clock.wall())
        with self._lock:
            self.untagged += len(emails)
            if self._renaming:
                for email in emails:
                    if self._renaming.get(email) == tag:
                        del self._renaming[email]
                        self._renamed.append(email)
        self._on_change()

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: OmnisendError) -> None:
        # Maybe applied (an answer lost): the tag stays in doubt (tags_sending).
        with self._lock:
            self.tag_failed += len(emails)
            self._sample(f"tag {tag!r} for {len(emails)} contact(s)", str(error))
        self._on_change()

    def removals_not_sent(self, tag: str, emails: tuple[str, ...]) -> None:
        """Nothing to record: the ledger keeps the old tag, which the contact keeps (in
        doubt if :meth:`tags_sending` announced the call before a stop cancelled it: the
        next run removes it again, or adds it again to a member, both harmless)."""

    def _sample(self, subject: str, reason: str) -> None:
        if len(self.failure_samples) < SAMPLE_SIZE:
            self.failure_samples.append(FailureSample(subject, reason))


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
