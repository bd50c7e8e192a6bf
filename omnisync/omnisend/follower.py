"""Following a delivery pipeline's batches from their creation until Omnisend is done.

One thread (:meth:`BatchFollower.run`) polls the batches in flight every
``poll_interval`` clock seconds and reports each round: every acknowledgement in one
listener call, then each batch's refused items and unprocessed leftovers. The leftovers
of a batch Omnisend stopped (too many refusals) are sent again in a batch of their own,
in its place, one stopped batch a round (:meth:`BatchFollower._resend`), else the same
refusals would stop them every run; only while the stopped batch processed some of its
items, so that each resend is smaller than the batch before it and a run cannot loop. A batch is
*abandoned* (``batch_abandoned``) once a stop's ``stop_grace`` ran out, or
``batch_timeout`` clock seconds after its creation, stop or not: a batch Omnisend never
finishes must not hold the run for ever. The engine keeps an abandoned batch in flight,
and the next run asks Omnisend about it before sending its contacts again.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.masking import mask_email
from omnisync.omnisend.batches import BatchOutcome
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.crew import TICK, Crew
from omnisync.omnisend.errors import ApiError, OmnisendError, RequestCancelled
from omnisync.omnisend.listener import DeliveryListener
from omnisync.omnisend.payloads import EncodedBatch

logger = logging.getLogger("omnisync.omnisend")

#: Polling rounds in a row that may fail (after the client's retries) before the
#: pipeline aborts.
MAX_FAILED_POLLS = 3
#: Clock seconds a batch is followed after its creation before it is abandoned: as long
#: as the engine waits for the batches a killed run left (``runner.SETTLE_TIMEOUT``).
BATCH_TIMEOUT = 300.0


@dataclass(frozen=True)
class _Followed:
    writes: EncodedBatch  # kept to send a stopped batch's leftovers again
    then_tag: frozenset[str]  # those to tag once Omnisend accepted them
    created_at: float  # clock seconds

    @property
    def emails(self) -> tuple[str, ...]:
        return self.writes.emails


class BatchFollower:
    """The batches one pipeline created and Omnisend has not finished: at most ``places``
    at once (a creator takes a place before it creates a batch). Thread-safe.
    ``tag_accepted`` gets the accepted e-mails to tag (none once the crew's ``stop`` is set)."""

    def __init__(
        self,
        client: OmnisendClient,
        *,
        listener: DeliveryListener,
        crew: Crew,
        clock: Clock,
        places: int,
        poll_interval: float,
        stop_grace: float,
        batch_timeout: float,
        tag_accepted: Callable[[tuple[str, ...]], object],
    ) -> None:
        self._client = client
        self._listener = listener
        self._crew = crew
        self._clock = clock
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        self._batch_timeout = batch_timeout
        self._tag_accepted = tag_accepted
        self._places = threading.BoundedSemaphore(places)
        self._in_flight: dict[str, _Followed] = {}
        # Stopped batches whose leftovers are to be sent again, each holding its place:
        # one a round, so that waiting for a rate-limit slot never holds up polling long.
        self._resends: deque[tuple[str, _Followed, tuple[str, ...]]] = deque()
        self._lock = threading.Lock()
        #: Set once no batch will be created any more: :meth:`run` ends when none is left.
        self.creating_done = threading.Event()

    def take_place(self) -> bool:
        """Wait for a place for one more batch; ``False`` once the pipeline aborted."""
        return self._crew.acquire(self._places)

    def create(
        self,
        writes: EncodedBatch,
        then_tag: frozenset[str],
        provisional_id: str,
        *,
        uncertain: Callable[[OmnisendError], bool],
    ) -> bool:
        """Create the batch announced as ``provisional_id``, in the place taken for it, and
        follow it; ``False`` when it was not created (its place given back). A failure
        aborts the pipeline, except a stop (``RequestCancelled``: not sent) and a batch
        with consent records that may have been created, for which ``uncertain(error)`` is
        true (reported and left)."""
        try:
            # Stop is asked again once the request has its rate-limit slot:
            # the wait can be long, and a stopped run creates no new batch.
            batch_id = self._client.create_batch(writes, cancelled=self._crew.stopping)
        except OmnisendError as error:
            self._places.release()
            self._listener.batch_not_created(provisional_id, error)
            maybe_created = writes.carries_consent and error.maybe_processed
            if not isinstance(error, RequestCancelled) and not (maybe_created and uncertain(error)):
                self._crew.fail(error)
            return False
        self._listener.batch_created(provisional_id, batch_id, writes.emails)
        with self._lock:
            self._in_flight[batch_id] = _Followed(writes, then_tag, self._clock.now())
        return True

    def run(self) -> None:
        """Poll and report until creating is done and no batch is left, or an abort."""
        failed_polls = 0
        stop_deadline: float | None = None
        while not self._crew.aborted.is_set():
            done = self.creating_done.is_set()  # before the look: no batch added after it
            if not self._in_flight:
                if self._resends:
                    self._resend_one()
                    continue
                if done:
                    return
                self._crew.aborted.wait(TICK)
                continue
            if self._crew.stop.is_set():
                now = self._clock.now()
                stop_deadline = now + self._stop_grace if stop_deadline is None else stop_deadline
                if now >= stop_deadline:
                    self._abandon()
                    continue
            self._clock.sleep(self._poll_interval)
            # Taken after the sleep, so that batches created meanwhile are
            # asked about too instead of waiting a whole extra round.
            with self._lock:
                pending = {batch_id: item.emails for batch_id, item in self._in_flight.items()}
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
            self._resend_one()
            # Asked one last time above: one Omnisend never finishes would hold the run.
            self._abandon(older_than=self._batch_timeout)

    def _report_round(self, outcomes: Sequence[BatchOutcome]) -> None:
        # Every acknowledgement first, in one listener call: the ledger records
        # them in one transaction.
        # resend: a stopped batch whose leftovers are sent again, in its place.
        settled: list[tuple[BatchOutcome, _Followed, tuple[str, ...], tuple[str, ...], bool]] = []
        for outcome in outcomes:  # of batches in flight, which only this thread removes
            with self._lock:
                batch = self._in_flight.pop(outcome.batch_id)
            accepted, leftovers = outcome.sort_out(batch.emails)
            resend = (
                outcome.status == "stopped"
                and not outcome.forgotten
                and 0 < len(leftovers) < len(batch.emails)  # it processed some: progress
                and not self._crew.stopping()
            )
            if not resend:
                self._places.release()
            settled.append((outcome, batch, accepted, leftovers, resend))
        acknowledged = tuple((o.batch_id, accepted) for o, _, accepted, _, _ in settled if accepted)
        if acknowledged:
            self._listener.upserts_acknowledged(acknowledged)
        for outcome, batch, accepted, leftovers, resend in settled:
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
            if resend:
                # Sent by the caller after the round: creating a batch may wait for the
                # rate limits, the round's reports need not.
                self._resends.append((outcome.batch_id, batch, leftovers))
            elif leftovers:
                self._leave(outcome.batch_id, outcome.status, leftovers)
            to_tag = tuple(email for email in accepted if email in batch.then_tag)
            if to_tag and not self._crew.stop.is_set():
                self._tag_accepted(to_tag)

    def _leave(
        self, batch_id: str, status: str, leftovers: tuple[str, ...], *, prefix: str = ""
    ) -> None:
        """Report a batch's unprocessed ``leftovers``: they stay pending."""
        logger.warning(
            "%sbatch %s %s with %d contact(s) unprocessed; they stay pending",
            prefix,
            batch_id,
            status,
            len(leftovers),
            extra={"event": "omnisend.batch_leftovers", "batch_id": batch_id},
        )
        self._listener.batch_abandoned(batch_id, leftovers)

    def _resend_one(self) -> None:
        """Send the next stopped batch's leftovers again; once stopping, none: each stays
        pending, its place given back."""
        while self._resends and self._crew.stopping():
            stopped_id, _, leftovers = self._resends.popleft()
            self._places.release()
            self._leave(stopped_id, "stopped", leftovers, prefix="stopping: ")
        if self._resends:
            self._resend(*self._resends.popleft())

    def _resend(self, stopped_id: str, batch: _Followed, leftovers: tuple[str, ...]) -> None:
        """Create a batch of a stopped batch's ``leftovers`` alone, in its place, by the
        path of any batch (``batch_resending`` records their intent before the request may
        leave), and follow it. A failure is handled as the pipeline's creators handle it."""
        logger.warning(
            "batch %s stopped with %d contact(s) unprocessed; sending them again on their own",
            stopped_id,
            len(leftovers),
            extra={"event": "omnisend.batch_leftovers_resent", "batch_id": stopped_id},
        )
        items = dict(zip(batch.emails, batch.writes.items, strict=True))
        # Any consent record of the stopped batch counts: sent once, as it was.
        writes = EncodedBatch(
            leftovers, b"\n".join(items[email] for email in leftovers), batch.writes.carries_consent
        )

        def uncertain(error: OmnisendError) -> bool:
            logger.warning(
                "the leftovers of batch %s carry consent records and may or may not have"
                " been sent again (%s); the next run looks them up first",
                stopped_id,
                error,
                extra={"event": "omnisend.batch_uncertain", "batch_id": stopped_id},
            )
            return True

        provisional_id = self._listener.batch_resending(stopped_id, leftovers)
        then_tag = batch.then_tag.intersection(leftovers)
        self.create(writes, then_tag, provisional_id, uncertain=uncertain)

    def _abandon(self, *, older_than: float | None = None) -> None:
        """Abandon every batch in flight (a stop's grace ran out), or only those created
        ``older_than`` clock seconds ago or more."""
        now = self._clock.now()
        with self._lock:
            abandoned = {
                batch_id: item
                for batch_id, item in self._in_flight.items()
                if older_than is None or now - item.created_at >= older_than
            }
            for batch_id in abandoned:
                del self._in_flight[batch_id]
        for batch_id, item in abandoned.items():
            self._places.release()
            if older_than is None:
                logger.warning(
                    "stopping: batch %s still not done after %.0f s; its %d contact(s) stay "
                    "pending",
                    batch_id,
                    self._stop_grace,
                    len(item.emails),
                    extra={"event": "omnisend.batch_abandoned", "batch_id": batch_id},
                )
                self._listener.batch_abandoned(batch_id, item.emails)
                continue
            reason = (
                f"still not done {now - item.created_at:.0f} s after its creation; no longer"
                f" followed, its {len(item.emails)} contact(s) stay pending until a later run"
                " learns its outcome"
            )
            logger.warning(
                "batch %s %s",
                batch_id,
                reason,
                extra={"event": "omnisend.batch_timed_out", "batch_id": batch_id},
            )
            self._listener.batch_abandoned(batch_id, item.emails, reason=reason)
