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

:func:`apply_work` is the apply phase itself: it maps each work item, feeds
the plan tally (so plan and run agree), and hands upserts, tags and untags
to one pipeline per tag.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING

from omnisync.clock import Clock
from omnisync.engine.intents import IntentRecordingClient, without_repeated_consent
from omnisync.engine.plainbatches import PlainBatch
from omnisync.engine.producer import produce_work
from omnisync.engine.report import PlanTally
from omnisync.engine.staged import StagedExport
from omnisync.inflight import PackedItems, pack_items
from omnisync.mapping import MappingPlan
from omnisync.masking import mask_email
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.model import ContactWrite, ItemFailure
from omnisync.omnisend.payloads import EncodedBatch, batch_emails
from omnisync.omnisend.pipeline import DeliveryPipeline
from omnisync.planning import Leaver, WorkRecord
from omnisync.state import InflightItem, LedgerStore

if TYPE_CHECKING:
    from omnisync.engine.attempt import RunAttempt

_new_tuple = tuple.__new__

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
        self._expected: dict[str, InflightItem] = {}
        self._expected_batches: dict[int, tuple[EncodedBatch, PackedItems, frozenset[str]]] = {}
        #: Items recorded per intent token, then per batch id: tells a whole batch acknowledged.
        self._sizes: dict[str, int] = {}
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
        # One dict assignment, atomic: no lock for the hottest call of a run;
        # the named tuple built without its Python-level __new__.
        self._expected[email] = _new_tuple(InflightItem, (email, fingerprint, then_tag))

    def expect_batch(
        self, batch: EncodedBatch, items: PackedItems, *, then_tag: frozenset[str]
    ) -> None:
        """Announce a whole batch about to be queued, its items packed where it was made.

        ``items`` holds one item per e-mail of ``batch``; ``then_tag`` names those
        to tag after. The batch's intent then records the text as it is.
        """
        # Keyed by identity, the batch kept alive beside it (so the id is not reused).
        self._expected_batches[id(batch)] = (batch, items, then_tag)

    # -- around each batch creation (IntentRecordingClient) -------------------------

    def intend(self, writes: Sequence[ContactWrite] | EncodedBatch) -> str:
        """Record the batch's contacts as an intent under a new token, before sending."""
        token = uuid.uuid4().hex
        with self._lock:
            announced = self._expected_batches.pop(id(writes), None)
            if announced is not None and announced[0] is writes:
                _, items, then_tag = announced
            else:
                expected = self._expected
                listed = [expected.pop(email) for email in batch_emails(writes)]
                items = pack_items(listed)
                then_tag = frozenset(item.email for item in listed if item.then_tag)
        self._store.record_intent(self._export, token, items, now=self._clock.wall())
        with self._lock:
            self._sizes[token] = items.count
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


def _whole(emails: tuple[str, ...], size: int | None) -> bool:
    return size is not None and len(emails) == size and len(set(emails)) == size


def _failure_reason(failure: ItemFailure) -> str:
    if failure.problems:
        return "; ".join(f"{problem.field}: {problem.message}" for problem in failure.problems)
    return f"{failure.response_code} {failure.title}".strip()


@dataclass(frozen=True)
class PipelineSettings:
    """How the apply phase paces its pipelines (see ``RunnerSettings``)."""

    poll_interval: float
    max_batches_in_flight: int
    stop_grace: float
    producer_min_work: int


def apply_work(
    attempt: RunAttempt,
    staged: StagedExport,
    *,
    store: LedgerStore,
    client: OmnisendClient,
    clock: Clock,
    settings: PipelineSettings,
) -> None:
    """Send what ``staged`` needs and record what Omnisend acknowledged.

    Upserts (then the tag, once acknowledged), tag-only items, old tags after
    a rename and leavers' tags go through a :class:`DeliveryPipeline` per tag;
    the ledger is written by a :class:`LedgerRecorder`. ``attempt.stop`` is
    honoured between items: nothing new is handed over, what was sent is
    followed and recorded. Raises what the pipelines raise (an aborting
    ``ApiError``, a ``StateError``).
    """
    export = attempt.export
    recorder = LedgerRecorder(store, export.name, clock=clock, on_change=attempt.changed)
    attempt.recorder = recorder
    sender = IntentRecordingClient(client, recorder)
    tally = PlanTally(staged)
    attempt.tally = tally
    with ExitStack() as pipelines:

        def pipeline_for(tag: str) -> DeliveryPipeline:
            found = attempt.pipelines.get(tag)
            if found is None:
                found = pipelines.enter_context(
                    DeliveryPipeline(
                        sender,
                        tag,
                        listener=recorder,
                        stop=attempt.stop,
                        clock=clock,
                        max_batches_in_flight=settings.max_batches_in_flight,
                        poll_interval=settings.poll_interval,
                        stop_grace=settings.stop_grace,
                    )
                )
                attempt.pipelines[tag] = found
            return found

        main = pipeline_for(export.tag)
        now = clock.wall()
        plan = MappingPlan(export, staged.columns)
        stop = attempt.stop

        def apply_other(record: WorkRecord) -> bool:
            """The general way for one record; ``False`` once the pipeline takes no more."""
            item = staged.work_item(record)
            outcome = (
                plan.map_row(item.row, in_ledger=item.in_ledger, now=now)
                if item.needs_upsert
                else None
            )
            actions = tally.add(item, outcome)
            # An item counts as seen once its work is queued: one the pipeline
            # refused (a stop) stays unreached, so the run reports it pending.
            if actions.upsert:
                assert outcome is not None and isinstance(outcome.result, ContactWrite)
                write = outcome.result
                if write.email in attempt.maybe_sent and write.consent is not None:
                    # A killed run may have sent this very write: don't repeat its consent.
                    write = without_repeated_consent(write, client.get_contact(write.email))
                recorder.expect(item.email, item.fingerprint, then_tag=actions.tag)
                if not main.upsert(write, then_tag=actions.tag):
                    return False
                attempt.items_seen += 1
                attempt.upserts_queued += 1
                attempt.then_tag_queued += actions.tag
            elif actions.tag:
                if not main.add_tag(item.email):
                    return False
                attempt.items_seen += 1
                attempt.tag_adds_queued += 1
            else:
                attempt.items_seen += 1
                attempt.invalid += 1
                return True
            if actions.remove_old_tag is not None:
                if not pipeline_for(actions.remove_old_tag).remove_tag(item.email):
                    return False
                attempt.removes_queued += 1
            return True

        def apply_plain(produced: PlainBatch) -> bool:
            """A batch of plain upserts; ``False`` once the pipeline takes no more."""
            emails = produced.batch.emails
            tally.add_plain_batch(emails, in_ledger=produced.in_ledger, tag=produced.then_tag)
            tagged = frozenset(compress(emails, produced.then_tag))
            recorder.expect_batch(produced.batch, produced.intent, then_tag=tagged)
            if not main.upsert_batch(produced.batch, then_tag=tagged):
                return False  # stopped: the batch stays unreached, pending
            attempt.items_seen += len(emails)
            attempt.upserts_queued += len(emails)
            attempt.then_tag_queued += len(tagged)
            return True

        produced_work = produce_work(
            staged, export=export, process_min_work=settings.producer_min_work
        )
        with closing(produced_work) as work:
            for produced in work:
                if stop.is_set():
                    break
                if isinstance(produced, PlainBatch):
                    if not apply_plain(produced):
                        break
                elif not all(
                    not stop.is_set() and apply_other(record) for record in produced.records
                ):
                    break
        samples: list[Leaver] = []
        if not attempt.stop.is_set():
            for leaver in staged.leavers():
                if attempt.stop.is_set():
                    break
                if len(samples) < FAILURE_SAMPLES:
                    samples.append(leaver)
                if not pipeline_for(leaver.tag).remove_tag(leaver.email):
                    break
                attempt.leavers_seen += 1
                attempt.removes_queued += 1
        tally.add_leavers(samples)
        attempt.changed()
        # The export's own pipeline last: old tags are removed while it drains.
        for tag, pipeline in list(attempt.pipelines.items()):
            if tag != export.tag:
                pipeline.finish()
        main.finish()
        attempt.stopped = attempt.stop.is_set()
