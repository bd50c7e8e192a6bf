"""The apply phase of an export run: upserts in batches, then tags, keeping both limits busy.

:class:`DeliveryPipeline` takes contact writes and tag changes one at a time
from the engine and delivers them through one :class:`OmnisendClient`:

- the caller's thread packs writes into batches (≤ 100 items, ≤ 1 MB) and
  hands full batches to a bounded queue — when it is full, :meth:`upsert`
  blocks (backpressure);
- *creator* threads (three by default: each waits on its request's answer for
  much of its time) create batches, at most ``max_batches_in_flight`` not yet
  done at a time;
- one *poller* thread follows the batches in flight (one listing call a round
  for all of them) and reports each outcome
  (:class:`~omnisync.omnisend.follower.BatchFollower`);
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
from dataclasses import dataclass, fields

from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.crew import Crew
from omnisync.omnisend.delivery import (
    DeliveryListener,
    DeliverySummary,
    TagAction,
    TagGroup,
    TagGrouper,
)
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.follower import BatchFollower
from omnisync.omnisend.payloads import BatchPacker, EncodedBatch

__all__ = ["DeliveryListener", "DeliveryPipeline", "DeliverySummary"]

logger = logging.getLogger("omnisync.omnisend")

#: Packed batches waiting for a creator thread; when full, :meth:`DeliveryPipeline.upsert`
#: blocks.
BATCH_QUEUE_SIZE = 4
#: Tag changes (e-mails) waiting for a tagger thread before adding more blocks.
MAX_TAG_BACKLOG = 100_000
TAGGER_THREADS = 2


@dataclass(frozen=True)
class _Batch:
    writes: EncodedBatch
    then_tag: frozenset[str]


class DeliveryPipeline:
    """Delivers one export's upserts and tag changes (see the module docstring).

    Threads start at construction; always end with :meth:`finish` (or use the
    pipeline as a context manager, which aborts it if the block raised).
    """

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
        creator_threads: int = 3,
    ) -> None:
        if not tag:
            raise ValueError("the pipeline's tag must not be empty")
        if max_batches_in_flight < 1 or creator_threads < 1:
            raise ValueError("max_batches_in_flight and creator_threads must be at least 1")
        self.tag = tag
        self._client = client
        self._listener = listener
        self._stop = stop
        self._clock = clock
        self._packer = BatchPacker()
        self._packing_then_tag: set[str] = set()
        self._pack_lock = threading.Lock()
        self._batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=BATCH_QUEUE_SIZE)
        self._grouper = TagGrouper()
        self._tag_groups: queue.Queue[TagGroup | None] = queue.Queue(
            maxsize=MAX_TAG_BACKLOG // self._grouper.size
        )
        self._crew = Crew(
            name=f"delivery for tag {tag!r}",
            counters=tuple(
                field.name for field in fields(DeliverySummary) if field.name != "stopped"
            ),
        )
        self._follower = BatchFollower(
            client,
            listener=listener,
            crew=self._crew,
            stop=stop,
            clock=clock,
            tag_accepted=lambda emails: self._queue_tag("add", emails, internal=True),
            max_batches_in_flight=max_batches_in_flight,
            poll_interval=poll_interval,
            stop_grace=stop_grace,
        )
        self._finished = False
        self._creators = [
            self._crew.start(self._create_loop, f"omnisync-batches-{index}")
            for index in range(creator_threads)
        ]
        self._poller = self._crew.start(self._follower.run, "omnisync-poller")
        self._taggers = [
            self._crew.start(self._tag_loop, f"omnisync-tags-{index}")
            for index in range(TAGGER_THREADS)
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

    def add_tag(self, email: str) -> bool:
        """Queue adding the tag to an existing contact. ``False`` once stopped."""
        return self._queue_tag("add", (email,))

    def remove_tag(self, email: str) -> bool:
        """Queue removing the tag from a contact. ``False`` once stopped."""
        return self._queue_tag("remove", (email,))

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
        self._follower.creating_done()
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
            if self._crew.aborted.is_set() or self._stop.is_set() or not self._follower.reserve():
                continue  # not sent: the engine keeps these contacts pending
            emails = batch.writes.emails
            provisional_id = self._listener.batch_sending(emails)
            try:
                # Stop is asked again once the request has its rate-limit slot:
                # the wait can be long, and a stopped run creates no new batch.
                batch_id = self._client.create_batch(batch.writes, cancelled=self._stopping)
            except OmnisendError as error:
                self._follower.unreserve()
                self._listener.batch_not_created(provisional_id, error)
                if not isinstance(error, RequestCancelled):
                    self._crew.fail(error)
                continue  # cancelled: not sent, the engine keeps these contacts pending
            self._crew.count("batches_created", 1)
            self._listener.batch_created(provisional_id, batch_id, emails)
            self._follower.track(batch_id, emails, batch.then_tag)

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
                self._listener.tag_call_failed(self.tag, group.emails, error)
                continue
            self._crew.count("tag_calls", 1)
            if group.action == "add":
                self._crew.count("tags_added", len(group.emails))
                self._listener.tags_added(self.tag, group.emails)
            else:
                self._crew.count("tags_removed", len(group.emails))
                self._listener.tags_removed(self.tag, group.emails)

    # -- helpers ----------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._crew.aborted.is_set()

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
