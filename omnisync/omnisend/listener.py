"""What a :class:`~omnisync.omnisend.pipeline.DeliveryPipeline` reports: the listener
protocol the engine's recorder implements (writing the ledger as Omnisend answers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from omnisync.omnisend.batches import ItemFailure
from omnisync.omnisend.errors import OmnisendError


class DeliveryListener(Protocol):
    """Receives what Omnisend confirmed, failed or never processed.

    Must be thread-safe: calls come from the pipeline's threads, possibly at once. For
    one batch they come in order (``batch_sending`` or ``batch_resending``,
    ``batch_created`` or ``batch_not_created``, then its outcome); an upserted
    contact's tag is reported only after its upsert was acknowledged. A listener that
    raises aborts the pipeline.
    """

    def batch_sending(self, emails: tuple[str, ...]) -> str:
        """A batch of these upserts is about to be sent: return a provisional id for it.
        Called before the request may leave, so a batch Omnisend may hold always has a
        trace (the engine records an intent here)."""

    def batch_resending(self, stopped_id: str, emails: tuple[str, ...]) -> str:
        """Omnisend stopped batch ``stopped_id`` before processing these upserts (after
        its acknowledgements and failures were reported): they are about to be sent again
        in a batch of their own. As :meth:`batch_sending`, return a provisional id for it
        (the engine moves them from the stopped batch to an intent)."""

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        """Omnisend returned the id of the batch sent under ``provisional_id``."""

    def batch_not_created(self, provisional_id: str, error: OmnisendError) -> None:
        """Creating the batch failed with ``error`` (``RequestCancelled``: a stop, nothing sent)."""

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """Omnisend accepted these upserts: ``(batch_id, emails)`` per batch, all of one
        poll round at once (before any batch's failures and leftovers)."""

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        """Omnisend refused these upserts (per-item 4xx, with its field problems)."""

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...], *, reason: str = "") -> None:
        """These upserts were not processed (a stopped batch's leftovers), or their batch
        was still not done when a stop's grace ran out or past its deadline (then it may
        still be processed): they stay pending. ``reason``: why, for the run's summary
        (given for a batch past its deadline)."""

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        """Omnisend accepted adding ``tag`` to these contacts."""

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        """Omnisend accepted removing ``tag`` from these contacts."""

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: OmnisendError) -> None:
        """A tags call for these e-mails failed after retries; nothing changed for them."""

    def removals_not_sent(self, tag: str, emails: tuple[str, ...]) -> None:
        """Removing ``tag`` from these contacts was queued but never sent (a stop or an
        abort came first): they still have it."""


@runtime_checkable
class TagCallsWatcher(Protocol):
    """A :class:`DeliveryListener` that also records each tags call before it leaves (the
    engine's recorder, for which the contacts' tag is then in doubt until the call's answer
    is reported); the pipeline tells only a listener that implements this."""

    def tags_sending(self, tag: str, emails: tuple[str, ...], *, adding: bool) -> None:
        """A tags call ``adding`` (else removing) ``tag`` for these contacts is about to
        leave: after the last check for a stop, so a call never sent is never announced.
        Followed by ``tags_added``, ``tags_removed`` or ``tag_call_failed``, or by nothing
        when the process dies first."""
