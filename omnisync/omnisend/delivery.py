"""What the delivery pipeline reports: its listener and summary, and the grouping of
tag changes into calls.

Split from :mod:`omnisync.omnisend.pipeline` (which re-exports the public names)
so that a listener can be written against these contracts alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from omnisync.omnisend.errors import OmnisendError
from omnisync.omnisend.model import ItemFailure
from omnisync.omnisend.payloads import MAX_TAG_EMAILS

TagAction = Literal["add", "remove"]


class DeliveryListener(Protocol):
    """Receives what Omnisend confirmed, failed or never processed.

    Calls come from the pipeline's threads, possibly several at once: a
    listener must be thread-safe. For one batch they come in order
    (``batch_sending``, ``batch_created`` or ``batch_not_created``, then its
    outcome), and the tag of an upserted contact
    is reported only after its upsert was acknowledged. E-mails are the
    normalised addresses the engine passed in. A listener that raises aborts
    the pipeline with that exception.
    """

    def batch_sending(self, emails: tuple[str, ...]) -> str:
        """A batch of these upserts is about to be sent: return a provisional id for it.

        Called, and returned from, before the request may leave, so that a batch
        Omnisend may hold always has a trace (the engine records an intent here).
        """

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        """Omnisend returned the id of the batch sent under ``provisional_id``."""

    def batch_not_created(self, provisional_id: str, error: OmnisendError) -> None:
        """Creating the batch failed with ``error`` (or was cancelled by a stop, with
        :class:`~omnisync.omnisend.errors.RequestCancelled`: nothing was sent)."""

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """Omnisend accepted these upserts: ``(batch_id, emails)`` per batch, all those of
        one poll round at once (a batch's failures and leftovers are reported after)."""

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        """Omnisend refused these upserts (per-item 4xx, with its field problems)."""

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...]) -> None:
        """These upserts were not processed (a stopped batch's leftovers), or their batch
        was still not done when a stop's grace ran out: they stay pending."""

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        """Omnisend accepted adding ``tag`` to these contacts."""

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        """Omnisend accepted removing ``tag`` from these contacts."""

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: OmnisendError) -> None:
        """A tags call for these e-mails failed after retries; nothing changed for them."""


@dataclass(frozen=True)
class DeliverySummary:
    """Counts of one pipeline's work, in contacts (e-mails) unless named otherwise."""

    batches_created: int
    acknowledged: int
    failed: int
    abandoned: int
    tags_added: int
    tags_removed: int
    tag_failures: int
    tag_calls: int
    stopped: bool


@dataclass(frozen=True)
class TagGroup:
    """One tags call's worth of work: add or remove the pipeline's tag for these e-mails."""

    action: TagAction
    emails: tuple[str, ...]


class TagGrouper:
    """Collects tag changes and cuts them into calls of up to 250 e-mails. Thread-safe."""

    def __init__(self) -> None:
        self.size = MAX_TAG_EMAILS
        self._pending: dict[TagAction, list[str]] = {"add": [], "remove": []}
        self._lock = threading.Lock()

    def add(self, action: TagAction, emails: Sequence[str]) -> list[TagGroup]:
        """Queue ``emails`` for ``action``; return the groups that are now full."""
        with self._lock:
            self._pending[action].extend(emails)
            return self._cut(final=False)

    def drain(self) -> list[TagGroup]:
        """Every remaining change, the last group of each action possibly partial."""
        with self._lock:
            return self._cut(final=True)

    def _cut(self, *, final: bool) -> list[TagGroup]:
        groups = []
        for action, pending in self._pending.items():
            while len(pending) >= self.size or (final and pending):
                groups.append(TagGroup(action=action, emails=tuple(pending[: self.size])))
                del pending[: self.size]
        return groups
