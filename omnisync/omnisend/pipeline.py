"""The apply phase of an export run: upserts in batches, then tags, keeping both limits busy.

:class:`DeliveryPipeline` takes contact writes and tag changes one at a time
from the engine and delivers them through one :class:`OmnisendClient`:

- the caller's thread packs writes into batches (≤ 100 items, ≤ 1 MB) and
  hands full batches to a bounded queue — when it is full, :meth:`upsert`
  blocks (backpressure);
- *creator* threads (three by default: each waits on its request's answer for
  much of its time, and a third kept a million-contact run's creation from
  being the stage the others wait on) create batches, at most
  ``max_batches_in_flight`` not yet done at a time;
- one *poller* thread follows the batches in flight (one listing call a round
  for all of them) and reports each outcome;
- *tagger* threads send tags calls of up to 250 e-mails. A contact upserted
  with ``then_tag=True`` is tagged only after its batch acknowledged it
  (Omnisend silently ignores tags for e-mails it does not know yet), and only
  if it was accepted; tag-only work goes straight to the tag queue.

So batch creation (general limit, 400/min) and tag calls (tags limit, 60/min)
flow at the same time, each paced by the brand's shared limiter.

Events reach the :class:`DeliveryListener` from the pipeline's threads, possibly
several at once (a listener is thread-safe); the events of one batch come in
order, and a contact's tag is reported only after its upsert was.

Stopping (``stop`` set): no new batch is created and no new tags call is
started (calls already under way finish); batches already created are
followed for up to ``stop_grace`` clock seconds and their outcomes reported;
those still not done then are reported with ``batch_abandoned``. Writes and
tag changes not yet sent are simply not reported: the engine leaves them
pending for the next run.

A 401, 403 or 410 (``error.aborts_run``), or any failure to create a batch,
aborts the whole pipeline: the error is raised from the next :meth:`upsert`,
:meth:`add_tag`, :meth:`remove_tag` or from :meth:`finish`. Per-item 400s
are reported through ``upserts_failed`` and never abort; a failed tags call
is reported through ``tag_call_failed``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from omnisync.clock import Clock
from omnisync.masking import mask_email
from omnisync.omnisend.crew import TICK, Crew
from omnisync.omnisend.delivery import (
    DeliveryClient,
    DeliveryListener,
    DeliverySummary,
    TagAction,
    TagGroup,
    TagGrouper,
)
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.model import BatchOutcome, ContactWrite
from omnisync.omnisend.payloads import BatchPacker, EncodedBatch

__all__ = ["DeliveryClient", "DeliveryListener", "DeliveryPipeline", "DeliverySummary"]

logger = logging.getLogger("omnisync.omnisend")


@dataclass(frozen=True)
class _Batch:
    writes: EncodedBatch
    then_tag: frozenset[str]


@dataclass(frozen=True)
class _InFlight:
    emails: tuple[str, ...]
    then_tag: frozenset[str]


class DeliveryPipeline:
    """Delivers one export's upserts and tag changes (see the module docstring).

    Threads start at construction; always end with :meth:`finish` (or use the
    pipeline as a context manager, which aborts it if the block raised).
    """

    def __init__(
        self,
        client: DeliveryClient,
        tag: str,
        *,
        listener: DeliveryListener,
        stop: threading.Event,
        clock: Clock,
        max_batches_in_flight: int = 20,
        poll_interval: float = 2.0,
        stop_grace: float = 120.0,
        batch_queue_size: int = 4,
        max_tag_backlog: int = 100_000,
        creator_threads: int = 3,
        tagger_threads: int = 2,
        max_failed_polls: int = 3,
    ) -> None:
        if not tag:
            raise ValueError("the pipeline's tag must not be empty")
        if max_batches_in_flight < 1 or creator_threads < 1 or tagger_threads < 1:
            raise ValueError("max_batches_in_flight and thread counts must be at least 1")
        self.tag = tag
        self._client = client
        self._listener = listener
        self._stop = stop
        self._clock = clock
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        self._max_failed_polls = max_failed_polls
        self._packer = BatchPacker()
        self._packing_then_tag: set[str] = set()
        self._pack_lock = threading.Lock()
        self._batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=batch_queue_size)
        self._slots = threading.BoundedSemaphore(max_batches_in_flight)
        self._in_flight: dict[str, _InFlight] = {}
        self._in_flight_lock = threading.Lock()
        self._in_flight_changed = threading.Event()
        self._grouper = TagGrouper()
        self._tag_groups: queue.Queue[TagGroup | None] = queue.Queue(
            maxsize=max(1, max_tag_backlog // self._grouper.size)
        )
        self._crew = Crew(
            name=f"delivery for tag {tag!r}",
            counters=tuple(
                field.name for field in fields(DeliverySummary) if field.name != "stopped"
            ),
        )
        self._crew.on_abort = self._in_flight_changed.set
        self._creating_done = threading.Event()
        self._finished = False
        self._creators = [
            self._crew.start(self._create_loop, f"omnisync-batches-{index}")
            for index in range(creator_threads)
        ]
        self._poller = self._crew.start(self._poll_loop, "omnisync-poller")
        self._taggers = [
            self._crew.start(self._tag_loop, f"omnisync-tags-{index}")
            for index in range(tagger_threads)
        ]

    # -- the engine's side -------------------------------------------------

    def upsert(self, write: ContactWrite, *, then_tag: bool = False) -> bool:
        """Queue an upsert (and, after Omnisend accepts it, the pipeline's tag).

        Blocks while the batch queue is full. Returns ``False`` without
        queueing once ``stop`` is set. Raises the pipeline's fatal error, and
        :class:`~omnisync.omnisend.errors.InvalidContactWrite` /
        :class:`~omnisync.omnisend.errors.ItemTooLarge` for a write that can
        never be sent.
        """
        self._crew.raise_if_aborted()
        if self._stop.is_set():
            return False
        with self._pack_lock:
            full = self._packer.pack(write)
            batch = self._take_batch(full) if full is not None else None
            if then_tag:
                self._packing_then_tag.add(write.email)
        if batch is not None:
            self._crew.put(self._batches, batch)
        return True

    def upsert_batch(self, batch: EncodedBatch, *, then_tag: frozenset[str] = frozenset()) -> bool:
        """Queue a whole batch packed elsewhere (within Omnisend's limits), tagging
        ``then_tag`` of its e-mails once Omnisend accepts them.

        Blocks while the batch queue is full; ``False`` without queueing once
        ``stop`` is set. Raises the pipeline's fatal error.
        """
        self._crew.raise_if_aborted()
        if self._stop.is_set():
            return False
        self._crew.put(self._batches, _Batch(writes=batch, then_tag=then_tag))
        return True

    def add_tag(self, email: str) -> bool:
        """Queue adding the tag to an existing contact. ``False`` once stopped."""
        return self._queue_tag("add", (email,))

    def remove_tag(self, email: str) -> bool:
        """Queue removing the tag from a contact. ``False`` once stopped."""
        return self._queue_tag("remove", (email,))

    def resume_batch(self, batch_id: str, emails: Iterable[str], *, then_tag: bool = False) -> None:
        """Follow a batch an earlier, killed run created, as if this pipeline had created it."""
        self._crew.raise_if_aborted()
        members = tuple(emails)
        if not self._crew.acquire(self._slots):
            self._crew.raise_if_aborted()
            return
        self._track(batch_id, members, frozenset(members) if then_tag else frozenset())

    def finish(self) -> DeliverySummary:
        """Send what is still packed, wait for every outcome and tags call, and summarise.

        Raises the fatal error if the pipeline was aborted.
        """
        if self._finished:
            raise RuntimeError("finish() was already called")
        self._finished = True
        if not self._crew.aborted.is_set():
            with self._pack_lock:
                last = self._packer.flush_packed()
                batch = self._take_batch(last) if last is not None else None
            if batch is not None:
                self._crew.put(self._batches, batch)
        for _ in self._creators:
            self._crew.put(self._batches, None, force=True)
        for thread in self._creators:
            thread.join()
        self._creating_done.set()
        self._in_flight_changed.set()
        self._poller.join()
        for group in self._grouper.drain():
            self._crew.put(self._tag_groups, group)
        for _ in self._taggers:
            self._crew.put(self._tag_groups, None, force=True)
        for thread in self._taggers:
            thread.join()
        if self._crew.fatal is not None:
            raise self._crew.fatal
        return DeliverySummary(stopped=self._stop.is_set(), **self._crew.counts())

    def abort(self) -> None:
        """Stop at once without waiting for outcomes (for an engine that failed itself)."""
        self._crew.abort()

    def __enter__(self) -> DeliveryPipeline:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None and not self._finished:
            self.abort()
            for thread in (*self._creators, self._poller, *self._taggers):
                thread.join()

    # -- threads ----------------------------------------------------------------

    def _create_loop(self) -> None:
        while True:
            batch = self._crew.get(self._batches)
            if batch is None:
                return
            if (
                self._crew.aborted.is_set()
                or self._stop.is_set()
                or not self._crew.acquire(self._slots)
            ):
                continue  # not sent: the engine keeps these contacts pending
            emails = batch.writes.emails
            try:
                # Stop is asked again once the request has its rate-limit slot:
                # the wait can be long, and a stopped run creates no new batch.
                batch_id = self._client.create_batch(batch.writes, cancelled=self._stopping)
            except RequestCancelled:
                self._slots.release()
                continue  # not sent: the engine keeps these contacts pending
            except OmnisendError as error:
                self._slots.release()
                self._crew.fail(error)
                continue
            self._crew.count("batches_created", 1)
            self._crew.notify(self._listener.batch_created, batch_id, emails)
            self._track(batch_id, emails, batch.then_tag)

    def _poll_loop(self) -> None:
        failed_polls = 0
        stop_deadline: float | None = None
        while not self._crew.aborted.is_set():
            with self._in_flight_lock:
                idle = not self._in_flight
                self._in_flight_changed.clear()
            if idle:
                if self._creating_done.is_set():
                    return
                self._in_flight_changed.wait(TICK)
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
                pending = {batch_id: item.emails for batch_id, item in self._in_flight.items()}
            if not pending:
                continue
            try:
                outcomes = self._client.poll_batches(pending)
            except OmnisendError as error:
                failed_polls += 1
                if (isinstance(error, ApiError) and error.aborts_run) or (
                    failed_polls >= self._max_failed_polls
                ):
                    self._crew.fail(error)
                    return
                logger.warning("polling batches failed, will retry: %s", error)
                continue
            failed_polls = 0
            self._settle(outcomes)

    def _tag_loop(self) -> None:
        while True:
            group = self._crew.get(self._tag_groups)
            if group is None:
                return
            if self._crew.aborted.is_set() or self._stop.is_set():
                continue  # not started: the engine keeps these changes pending
            call = self._client.add_tag if group.action == "add" else self._client.remove_tag
            try:
                call(self.tag, group.emails)
            except OmnisendError as error:
                if isinstance(error, ApiError) and error.aborts_run:
                    self._crew.fail(error)
                    continue
                self._crew.count("tag_failures", len(group.emails))
                logger.warning(
                    "tags call (%s %r, %d contacts) failed: %s",
                    group.action,
                    self.tag,
                    len(group.emails),
                    error,
                    extra={"event": "omnisend.tag_call_failed", "tag": self.tag},
                )
                self._crew.notify(self._listener.tag_call_failed, self.tag, group.emails, error)
                continue
            self._crew.count("tag_calls", 1)
            if group.action == "add":
                self._crew.count("tags_added", len(group.emails))
                self._crew.notify(self._listener.tags_added, self.tag, group.emails)
            else:
                self._crew.count("tags_removed", len(group.emails))
                self._crew.notify(self._listener.tags_removed, self.tag, group.emails)

    # -- helpers ----------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._crew.aborted.is_set()

    def _settle(self, outcomes: Sequence[BatchOutcome]) -> None:
        """Report a poll round: every acknowledgement first, in one listener call
        (the ledger records them in one transaction), then per batch its
        failures, its leftovers and the tags of what was accepted."""
        settled: list[tuple[BatchOutcome, _InFlight, tuple[str, ...], tuple[str, ...]]] = []
        for outcome in outcomes:
            with self._in_flight_lock:
                item = self._in_flight.pop(outcome.batch_id, None)
            if item is not None:
                self._slots.release()
                settled.append((outcome, item, *outcome.sort_out(item.emails)))
        acknowledged = tuple((o.batch_id, accepted) for o, _, accepted, _ in settled if accepted)
        if acknowledged:
            self._crew.count("acknowledged", sum(len(emails) for _, emails in acknowledged))
            self._crew.notify(self._listener.upserts_acknowledged, acknowledged)
        for outcome, item, accepted, leftovers in settled:
            self._report_rest(outcome, item, accepted, leftovers)

    def _report_rest(
        self,
        outcome: BatchOutcome,
        item: _InFlight,
        accepted: tuple[str, ...],
        leftovers: tuple[str, ...],
    ) -> None:
        if outcome.failed:
            self._crew.count("failed", len(outcome.failed))
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
            self._crew.notify(self._listener.upserts_failed, outcome.batch_id, outcome.failed)
        if leftovers:
            self._crew.count("abandoned", len(leftovers))
            logger.warning(
                "batch %s %s with %d contact(s) unprocessed; they stay pending",
                outcome.batch_id,
                outcome.status,
                len(leftovers),
                extra={"event": "omnisend.batch_leftovers", "batch_id": outcome.batch_id},
            )
            self._crew.notify(self._listener.batch_abandoned, outcome.batch_id, leftovers)
        then_tag = item.then_tag
        to_tag = (
            accepted
            if len(then_tag) == len(accepted) and then_tag.issuperset(accepted)
            else tuple(email for email in accepted if email in then_tag)
        )
        if to_tag and not self._stop.is_set():
            self._queue_tag("add", to_tag, internal=True)

    def _abandon_in_flight(self) -> None:
        with self._in_flight_lock:
            items, self._in_flight = self._in_flight, {}
        for batch_id, item in items.items():
            self._slots.release()
            self._crew.count("abandoned", len(item.emails))
            logger.warning(
                "stopping: batch %s still not done after %.0f s; its %d contact(s) stay pending",
                batch_id,
                self._stop_grace,
                len(item.emails),
                extra={"event": "omnisend.batch_abandoned", "batch_id": batch_id},
            )
            self._crew.notify(self._listener.batch_abandoned, batch_id, item.emails)

    def _track(self, batch_id: str, emails: tuple[str, ...], then_tag: frozenset[str]) -> None:
        with self._in_flight_lock:
            self._in_flight[batch_id] = _InFlight(emails=emails, then_tag=then_tag)
        self._in_flight_changed.set()

    def _take_batch(self, writes: EncodedBatch) -> _Batch:
        """Wrap a packed batch with its e-mails to tag (called under the pack lock)."""
        then_tag = frozenset(self._packing_then_tag.intersection(writes.emails))
        self._packing_then_tag -= then_tag
        return _Batch(writes=writes, then_tag=then_tag)

    def _queue_tag(
        self, action: TagAction, emails: tuple[str, ...], *, internal: bool = False
    ) -> bool:
        if not internal:
            self._crew.raise_if_aborted()
            if self._stop.is_set():
                return False
        for group in self._grouper.add(action, emails):
            self._crew.put(self._tag_groups, group)
        return True
