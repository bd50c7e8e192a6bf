"""The apply phase of an export run: upserts in batches, then tags, keeping both limits busy.

The caller's thread packs writes into batches for a bounded queue (:meth:`upsert`
blocks while it is full); :data:`CREATOR_THREADS` threads create them, at most
``max_batches_in_flight`` not yet done; one poller follows those every
``poll_interval`` clock seconds and reports each round; :data:`TAGGER_THREADS`
threads send tags calls of up to 250 e-mails. A contact upserted with
``then_tag=True`` is tagged only once its batch acknowledged it (Omnisend ignores
tags for e-mails it does not know yet).

Stopping (``stop`` set): no new batch or tags call starts; created batches are
followed for up to ``stop_grace`` clock seconds, then reported ``batch_abandoned``;
work not yet sent is not reported (the engine leaves it pending). A 401, 403 or 410
(``error.aborts_run``), or any failure to create a batch, aborts the pipeline: the
error is raised from the next call or from :meth:`finish`; except a batch with consent
records that may have been created (sent once: see ``OmnisendClient.create_batch``),
which is reported and left, until :data:`MAX_UNCERTAIN_BATCHES` in a row. Per-item 400s
and failed tags calls are reported, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.masking import mask_email
from omnisync.omnisend.batches import BatchOutcome
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.crew import TICK, Crew
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.listener import DeliveryListener
from omnisync.omnisend.payloads import MAX_TAG_EMAILS, BatchPacker, EncodedBatch

logger = logging.getLogger("omnisync.omnisend")

#: Packed batches waiting for a creator thread.
BATCH_QUEUE_SIZE = 4
#: Tag changes (e-mails) waiting for a tagger thread before adding more blocks.
MAX_TAG_BACKLOG = 100_000
CREATOR_THREADS = 3
TAGGER_THREADS = 2
#: Polling rounds in a row that may fail (after the client's retries) before the
#: pipeline aborts.
MAX_FAILED_POLLS = 3
#: Batches with consent records in a row whose creation may or may not have happened
#: (sent once: see OmnisendClient.create_batch) before the run gives up, as a request
#: gives up after its attempts.
MAX_UNCERTAIN_BATCHES = 8

TagAction = Literal["add", "remove"]


@dataclass(frozen=True)
class _Batch:
    writes: EncodedBatch
    then_tag: frozenset[str]  # those to tag once Omnisend accepted them


class DeliveryPipeline:
    """Delivers one export's upserts and tag changes to ``tag``. Threads start at
    construction; always end with :meth:`finish`, or use the pipeline as a context
    manager, which aborts it if the block raised."""

    def __init__(
        self,
        client: OmnisendClient,
        tag: str,
        *,
        listener: DeliveryListener,
        stop: threading.Event,
        clock: Clock,
        max_batches_in_flight: int = 20,
        poll_interval: float = 2.0,
        stop_grace: float = 120.0,
    ) -> None:
        if not tag or max_batches_in_flight < 1:
            raise ValueError("a pipeline needs a tag and at least one batch in flight")
        self.tag = tag
        self._client = client
        self._listener = listener
        self._stop = stop
        self._clock = clock
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        self._packer = BatchPacker()
        self._packing_then_tag: set[str] = set()
        self._batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=BATCH_QUEUE_SIZE)
        # Tag changes not yet cut into calls; the poller adds to them too.
        self._tag_lock = threading.Lock()
        self._pending_tags: dict[TagAction, list[str]] = {"add": [], "remove": []}
        self._tag_calls: queue.Queue[tuple[TagAction, tuple[str, ...]] | None] = queue.Queue(
            maxsize=MAX_TAG_BACKLOG // MAX_TAG_EMAILS
        )
        self._crew = Crew(name=f"delivery for tag {tag!r}")
        # Places for batches in flight: a creator takes one before it creates a batch.
        self._places = threading.BoundedSemaphore(max_batches_in_flight)
        self._in_flight: dict[str, _Batch] = {}
        self._in_flight_lock = threading.Lock()
        self._uncertain_in_a_row = 0  # under _in_flight_lock
        self._creating_done = threading.Event()  # set: no batch will be created any more
        self._finished = False
        self._creators = [
            self._crew.start(self._create_loop, f"omnisync-batches-{index}")
            for index in range(CREATOR_THREADS)
        ]
        self._poller = self._crew.start(self._poll_loop, "omnisync-poller")
        self._taggers = [
            self._crew.start(self._tag_loop, f"omnisync-tags-{index}")
            for index in range(TAGGER_THREADS)
        ]

    def upsert(self, write: ContactWrite, *, then_tag: bool = False) -> bool:
        """Queue an upsert (and, once Omnisend accepted it, the tag); ``False`` once stopped.

        Raises the pipeline's fatal error, and ``InvalidContactWrite`` / ``ItemTooLarge``
        for a write that can never be sent. Like :meth:`finish`, one thread only."""
        self._crew.raise_if_aborted()
        if self._stop.is_set():
            return False
        full = self._packer.pack(write)
        if then_tag:
            self._packing_then_tag.add(write.email)
        if full is not None:
            self._send_batch(full)
        return True

    def add_tag(self, email: str) -> bool:
        """Queue adding the tag to an existing contact. ``False`` once stopped."""
        return self._queue_tag("add", (email,))

    def remove_tag(self, email: str) -> bool:
        """Queue removing the tag from a contact. ``False`` once stopped."""
        return self._queue_tag("remove", (email,))

    def finish(self) -> None:
        """Send what is still packed and wait for every outcome and tags call; raises the
        fatal error if the pipeline was aborted."""
        if self._finished:
            raise RuntimeError("finish() was already called")
        self._finished = True
        last = self._packer.flush_packed()
        if last is not None and not self._crew.aborted.is_set():
            self._send_batch(last)
        for _ in self._creators:
            self._crew.put(self._batches, None, force=True)
        for thread in self._creators:
            thread.join()
        self._creating_done.set()
        self._poller.join()
        self._queue_tag("add", (), internal=True, final=True)
        for _ in self._taggers:
            self._crew.put(self._tag_calls, None, force=True)
        for thread in self._taggers:
            thread.join()
        self._report_unsent_removals()
        if self._crew.fatal is not None:
            raise self._crew.fatal

    def __enter__(self) -> DeliveryPipeline:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None and not self._finished:
            self._crew.aborted.set()  # stop at once, without waiting for outcomes
            for thread in (*self._creators, self._poller, *self._taggers):
                thread.join()
            self._report_unsent_removals()

    def _report_unsent_removals(self) -> None:
        """Tell the listener of the removals an abort left queued or not yet cut into calls
        (the tagger threads have ended: nothing else takes from them now)."""
        unsent: list[str] = []
        with contextlib.suppress(queue.Empty):
            while True:
                call = self._tag_calls.get_nowait()
                if call is not None and call[0] == "remove":
                    unsent.extend(call[1])
        with self._tag_lock:
            unsent.extend(self._pending_tags["remove"])
            self._pending_tags["remove"] = []
        if unsent:
            self._listener.removals_not_sent(self.tag, tuple(unsent))

    def _create_loop(self) -> None:
        while True:
            batch = self._crew.get(self._batches)
            if batch is None:
                return
            if self._stopping() or not self._crew.acquire(self._places):
                continue  # not sent: the engine keeps these contacts pending
            emails = batch.writes.emails
            provisional_id = self._listener.batch_sending(emails)
            try:
                # Stop is asked again once the request has its rate-limit slot:
                # the wait can be long, and a stopped run creates no new batch.
                batch_id = self._client.create_batch(batch.writes, cancelled=self._stopping)
            except OmnisendError as error:
                self._places.release()
                self._listener.batch_not_created(provisional_id, error)
                if isinstance(error, RequestCancelled):
                    continue  # not sent: the engine keeps these contacts pending
                if batch.writes.carries_consent and self._uncertain(error):
                    continue  # maybe created: its contacts wait for the next run's look
                self._crew.fail(error)
                continue
            self._listener.batch_created(provisional_id, batch_id, emails)
            with self._in_flight_lock:
                self._uncertain_in_a_row = 0
                self._in_flight[batch_id] = batch

    def _uncertain(self, error: OmnisendError) -> bool:
        """Whether a batch with consent records, sent once, failed in a way that may have
        created it, and not yet :data:`MAX_UNCERTAIN_BATCHES` times in a row: the run goes
        on without it, after the retry policy's backoff (the failure is logged and its
        contacts stay pending)."""
        if not error.maybe_processed:
            return False
        with self._in_flight_lock:
            self._uncertain_in_a_row += 1
            in_a_row = self._uncertain_in_a_row
        if in_a_row >= MAX_UNCERTAIN_BATCHES:
            return False
        logger.warning(
            "a batch with consent records may or may not have been created (%s); its"
            " contacts are left for the next run, which looks them up first",
            error,
            extra={"event": "omnisend.batch_uncertain", "tag": self.tag},
        )
        # As a request backs off between attempts: a short outage is waited out.
        self._clock.sleep(self._client.transient_backoff(in_a_row))
        return True

    def _poll_loop(self) -> None:
        failed_polls = 0
        stop_deadline: float | None = None
        while not self._crew.aborted.is_set():
            done = self._creating_done.is_set()  # before the look: no batch added after it
            if not self._in_flight:
                if done:
                    return
                self._crew.aborted.wait(TICK)
                continue
            if self._stop.is_set():
                now = self._clock.now()
                stop_deadline = now + self._stop_grace if stop_deadline is None else stop_deadline
                if now >= stop_deadline:
                    self._abandon_in_flight()
                    continue
            self._clock.sleep(self._poll_interval)
            # Taken after the sleep, so that batches created meanwhile are
            # asked about too instead of waiting a whole extra round.
            with self._in_flight_lock:
                pending = {
                    batch_id: item.writes.emails for batch_id, item in self._in_flight.items()
                }
            try:
                outcomes = self._client.poll_batches(pending)
            except OmnisendError as error:
                failed_polls += 1
                if (isinstance(error, ApiError) and error.aborts_run) or (
                    failed_polls >= MAX_FAILED_POLLS
                ):
                    self._crew.fail(error)
                    return
                logger.warning("polling batches failed, will retry: %s", error)
                continue
            failed_polls = 0
            self._report_round(outcomes)

    def _report_round(self, outcomes: Sequence[BatchOutcome]) -> None:
        # Every acknowledgement first, in one listener call: the ledger records
        # them in one transaction.
        settled: list[tuple[BatchOutcome, _Batch, tuple[str, ...], tuple[str, ...]]] = []
        for outcome in outcomes:  # of batches in flight, which only this thread removes
            with self._in_flight_lock:
                batch = self._in_flight.pop(outcome.batch_id)
            self._places.release()
            settled.append((outcome, batch, *outcome.sort_out(batch.writes.emails)))
        acknowledged = tuple((o.batch_id, accepted) for o, _, accepted, _ in settled if accepted)
        if acknowledged:
            self._listener.upserts_acknowledged(acknowledged)
        for outcome, batch, accepted, leftovers in settled:
            for failure in outcome.failed:
                logger.warning(
                    "Omnisend refused the contact %s in batch %s (%d %s)%s",
                    mask_email(failure.email),
                    outcome.batch_id,
                    failure.response_code,
                    failure.title,
                    "".join(
                        f"; {problem.field}: {problem.message}" for problem in failure.problems
                    ),
                    extra={"event": "omnisend.item_failed", "batch_id": outcome.batch_id},
                )
            if outcome.failed:
                self._listener.upserts_failed(outcome.batch_id, outcome.failed)
            if leftovers:
                logger.warning(
                    "batch %s %s with %d contact(s) unprocessed; they stay pending",
                    outcome.batch_id,
                    outcome.status,
                    len(leftovers),
                    extra={"event": "omnisend.batch_leftovers", "batch_id": outcome.batch_id},
                )
                self._listener.batch_abandoned(outcome.batch_id, leftovers)
            to_tag = tuple(email for email in accepted if email in batch.then_tag)
            if to_tag and not self._stop.is_set():
                self._queue_tag("add", to_tag, internal=True)

    def _abandon_in_flight(self) -> None:
        with self._in_flight_lock:
            items, self._in_flight = self._in_flight, {}
        for batch_id, item in items.items():
            self._places.release()
            emails = item.writes.emails
            logger.warning(
                "stopping: batch %s still not done after %.0f s; its %d contact(s) stay pending",
                batch_id,
                self._stop_grace,
                len(emails),
                extra={"event": "omnisend.batch_abandoned", "batch_id": batch_id},
            )
            self._listener.batch_abandoned(batch_id, emails)

    def _tag_loop(self) -> None:
        while True:
            call = self._crew.get(self._tag_calls)
            if call is None:
                return
            action, emails = call
            if self._stopping():
                # Not started: the engine keeps these changes pending.
                if action == "remove":
                    self._listener.removals_not_sent(self.tag, emails)
                continue
            adding = action == "add"
            try:
                (self._client.add_tag if adding else self._client.remove_tag)(self.tag, emails)
            except OmnisendError as error:
                if isinstance(error, ApiError) and error.aborts_run:
                    self._crew.fail(error)
                    continue
                logger.warning(
                    "tags call (%s %r, %d contacts) failed: %s",
                    action,
                    self.tag,
                    len(emails),
                    error,
                    extra={"event": "omnisend.tag_call_failed", "tag": self.tag},
                )
                self._listener.tag_call_failed(self.tag, emails, error)
                continue
            listener = self._listener
            (listener.tags_added if adding else listener.tags_removed)(self.tag, emails)

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._crew.aborted.is_set()

    def _send_batch(self, writes: EncodedBatch) -> None:
        then_tag = frozenset(self._packing_then_tag.intersection(writes.emails))
        self._packing_then_tag -= then_tag
        self._crew.put(self._batches, _Batch(writes=writes, then_tag=then_tag))

    def _queue_tag(
        self,
        action: TagAction,
        emails: tuple[str, ...],
        *,
        internal: bool = False,
        final: bool = False,
    ) -> bool:
        """Add tag changes and queue the calls now full (``final``: every call left)."""
        if not internal:
            self._crew.raise_if_aborted()
            if self._stop.is_set():
                return False
        calls = []
        with self._tag_lock:
            self._pending_tags[action].extend(emails)
            for pending_action, pending in self._pending_tags.items():
                while len(pending) >= MAX_TAG_EMAILS or (final and pending):
                    calls.append((pending_action, tuple(pending[:MAX_TAG_EMAILS])))
                    del pending[:MAX_TAG_EMAILS]
        for call in calls:
            self._crew.put(self._tag_calls, call)
        return True
