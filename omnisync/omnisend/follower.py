"""Following the batches a delivery pipeline created until Omnisend is done with them.

:class:`BatchFollower` is the poller of :class:`~omnisync.omnisend.pipeline.DeliveryPipeline`:
it holds the batches in flight (at most ``max_batches_in_flight``: creators
take a place with :meth:`BatchFollower.reserve` before creating one), polls
them every ``poll_interval`` clock seconds (one listing call a round for all
of them), and reports each outcome to the listener: every acknowledgement of
a round in one call first, then per batch its failures, its leftovers, and
the accepted e-mails to tag (handed to ``tag_accepted``). Once the run is
stopped, batches still in flight are followed for ``stop_grace`` clock
seconds, then reported abandoned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.masking import mask_email
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.crew import TICK, Crew
from omnisync.omnisend.delivery import DeliveryListener
from omnisync.omnisend.errors import ApiError, OmnisendError
from omnisync.omnisend.model import BatchOutcome

logger = logging.getLogger("omnisync.omnisend")

#: Polling rounds in a row that may fail (after the client's retries) before the
#: pipeline aborts.
MAX_FAILED_POLLS = 3


@dataclass(frozen=True)
class _InFlight:
    emails: tuple[str, ...]
    then_tag: frozenset[str]


class BatchFollower:
    """The batches in flight of one pipeline, and the thread body that follows them."""

    def __init__(
        self,
        client: OmnisendClient,
        *,
        listener: DeliveryListener,
        crew: Crew,
        stop: threading.Event,
        clock: Clock,
        tag_accepted: Callable[[tuple[str, ...]], object],
        max_batches_in_flight: int,
        poll_interval: float,
        stop_grace: float,
    ) -> None:
        self._client = client
        self._listener = listener
        self._crew = crew
        self._stop = stop
        self._clock = clock
        self._tag_accepted = tag_accepted
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        self._slots = threading.BoundedSemaphore(max_batches_in_flight)
        self._in_flight: dict[str, _InFlight] = {}
        self._in_flight_lock = threading.Lock()
        self._in_flight_changed = threading.Event()
        self._creating_done = threading.Event()

    def reserve(self) -> bool:
        """Wait for a place for one more batch in flight; ``False`` if aborted meanwhile."""
        return self._crew.acquire(self._slots)

    def unreserve(self) -> None:
        """Give back a place taken with :meth:`reserve` whose batch was never created."""
        self._slots.release()

    def track(self, batch_id: str, emails: tuple[str, ...], then_tag: frozenset[str]) -> None:
        """Follow a created batch (in the place :meth:`reserve` took for it)."""
        with self._in_flight_lock:
            self._in_flight[batch_id] = _InFlight(emails=emails, then_tag=then_tag)
        self._in_flight_changed.set()

    def creating_done(self) -> None:
        """No batch will be tracked any more: :meth:`run` returns once none is in flight."""
        self._creating_done.set()
        self._in_flight_changed.set()

    def run(self) -> None:
        """The poller thread's body."""
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
                    failed_polls >= MAX_FAILED_POLLS
                ):
                    self._crew.fail(error)
                    return
                logger.warning("polling batches failed, will retry: %s", error)
                continue
            failed_polls = 0
            self._settle(outcomes)

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
            self._listener.upserts_acknowledged(acknowledged)
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
            self._listener.upserts_failed(outcome.batch_id, outcome.failed)
        if leftovers:
            self._crew.count("abandoned", len(leftovers))
            logger.warning(
                "batch %s %s with %d contact(s) unprocessed; they stay pending",
                outcome.batch_id,
                outcome.status,
                len(leftovers),
                extra={"event": "omnisend.batch_leftovers", "batch_id": outcome.batch_id},
            )
            self._listener.batch_abandoned(outcome.batch_id, leftovers)
        then_tag = item.then_tag
        to_tag = (
            accepted
            if len(then_tag) == len(accepted) and then_tag.issuperset(accepted)
            else tuple(email for email in accepted if email in then_tag)
        )
        if to_tag and not self._stop.is_set():
            self._tag_accepted(to_tag)

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
            self._listener.batch_abandoned(batch_id, item.emails)
