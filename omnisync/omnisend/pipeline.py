"""The apply phase of an export run: upserts in batches, then tags, keeping both limits busy.

The caller's thread packs writes into batches for a bounded queue (:meth:`upsert`
blocks while it is full); :data:`CREATOR_THREADS` threads create them, at most
``max_batches_in_flight`` not yet done; one poller follows those every
``poll_interval`` clock seconds and reports each round
(:class:`~omnisync.omnisend.follower.BatchFollower`); :data:`TAGGER_THREADS`
threads send tags calls of up to 250 e-mails. A contact upserted with
``then_tag=True`` is tagged only once its batch acknowledged it (Omnisend ignores
tags for e-mails it does not know yet).

Stopping (``stop`` set): no new batch or tags call starts; created batches are
followed for up to ``stop_grace`` clock seconds, then reported ``batch_abandoned``;
work not yet sent is not reported (the engine leaves it pending). A batch still not
done ``batch_timeout`` clock seconds after its creation is abandoned too, stop or not.
A 401, 403 or 410 (``error.aborts_run``), or any failure to create a batch, aborts the
pipeline: the error is raised from the next call or from :meth:`finish`; except a batch
with consent records that may have been created (sent once: see
``OmnisendClient.create_batch``), which is reported and left, until
:data:`MAX_UNCERTAIN_BATCHES` in a row. Per-item 400s and failed tags calls are
reported, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Literal

from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.crew import Crew
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.follower import BATCH_TIMEOUT, BatchFollower
from omnisync.omnisend.listener import DeliveryListener, TagCallsWatcher
from omnisync.omnisend.payloads import MAX_TAG_EMAILS, BatchPacker, EncodedBatch

logger = logging.getLogger("omnisync.omnisend")

#: Packed batches waiting for a creator thread.
BATCH_QUEUE_SIZE = 4
#: Tag changes (e-mails) waiting for a tagger thread before adding more blocks.
MAX_TAG_BACKLOG = 100_000
CREATOR_THREADS = 3
TAGGER_THREADS = 2
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
        batch_timeout: float = BATCH_TIMEOUT,
    ) -> None:
        if not tag or max_batches_in_flight < 1:
            raise ValueError("a pipeline needs a tag and at least one batch in flight")
        self.tag = tag
        self._client = client
        self._listener = listener
        # Told of each tags call before it leaves, if it cares (the engine's recorder does).
        self._watcher = listener if isinstance(listener, TagCallsWatcher) else None
        self._clock = clock
        self._packer = BatchPacker()
        self._packing_then_tag: set[str] = set()
        self._batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=BATCH_QUEUE_SIZE)
        # Tag changes not yet cut into calls; the poller adds to them too.
        self._tag_lock = threading.Lock()
        self._pending_tags: dict[TagAction, list[str]] = {"add": [], "remove": []}
        self._tag_calls: queue.Queue[tuple[TagAction, tuple[str, ...]] | None] = queue.Queue(
            maxsize=MAX_TAG_BACKLOG // MAX_TAG_EMAILS
        )
        self._crew = Crew(name=f"delivery for tag {tag!r}", stop=stop)
        self._follower = BatchFollower(
            client,
            listener=listener,
            crew=self._crew,
            clock=clock,
            places=max_batches_in_flight,
            poll_interval=poll_interval,
            stop_grace=stop_grace,
            batch_timeout=batch_timeout,
            tag_accepted=lambda emails: self._queue_tag("add", emails, internal=True),
        )
        self._uncertain_lock = threading.Lock()
        self._uncertain_in_a_row = 0  # under _uncertain_lock
        self._finished = False
        self._creators = [
            self._crew.start(self._create_loop, f"omnisync-batches-{index}")
            for index in range(CREATOR_THREADS)
        ]
        self._poller = self._crew.start(self._follower.run, "omnisync-poller")
        self._taggers = [
            self._crew.start(self._tag_loop, f"omnisync-tags-{index}")
            for index in range(TAGGER_THREADS)
        ]

    def upsert(self, write: ContactWrite, *, then_tag: bool = False) -> bool:
        """Queue an upsert (and, once Omnisend accepted it, the tag); ``False`` once stopped.

        Raises the pipeline's fatal error, and ``InvalidContactWrite`` / ``ItemTooLarge``
        for a write that can never be sent. Like :meth:`finish`, one thread only."""
        self._crew.raise_if_aborted()
        if self._crew.stop.is_set():
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
        self._follower.creating_done.set()
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
            if self._crew.stopping() or not self._follower.take_place():
                continue  # not sent: the engine keeps these contacts pending
            provisional_id = self._listener.batch_sending(batch.writes.emails)
            if self._follower.create(
                batch.writes, batch.then_tag, provisional_id, uncertain=self._uncertain
            ):
                with self._uncertain_lock:
                    self._uncertain_in_a_row = 0

    def _uncertain(self, error: OmnisendError) -> bool:
        """Whether the run goes on without a batch with consent records, sent once, that
        failed in a way that may have created it: not yet :data:`MAX_UNCERTAIN_BATCHES` times
        in a row; then after the retry policy's backoff (the failure is logged and its
        contacts stay pending)."""
        with self._uncertain_lock:
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

    def _tag_loop(self) -> None:
        while True:
            call = self._crew.get(self._tag_calls)
            if call is None:
                return
            action, emails = call
            if self._crew.stopping():
                # Not started: the engine keeps these changes pending.
                if action == "remove":
                    self._listener.removals_not_sent(self.tag, emails)
                continue
            adding = action == "add"
            if self._watcher is not None:
                # Before it leaves: killed or unanswered after Omnisend applied it, the
                # run leaves these contacts' tag in doubt, never recorded wrong.
                self._watcher.tags_sending(self.tag, emails, adding=adding)
            try:
                send = self._client.add_tag if adding else self._client.remove_tag
                send(self.tag, emails, cancelled=self._crew.stopping)
            except OmnisendError as error:
                if isinstance(error, RequestCancelled):
                    # A stop while it waited for its slot: never sent (in doubt, harmless).
                    if not adding:
                        self._listener.removals_not_sent(self.tag, emails)
                    continue
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
            if self._crew.stop.is_set():
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
