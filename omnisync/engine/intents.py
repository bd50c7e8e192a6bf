"""Closing the window between sending a batch and learning its id.

Omnisend only names a batch in its answer. A process killed after the
request but before recording the answer would leave a batch Omnisend has
and the ledger knows nothing about. So, just before the request, the batch's
items are recorded as an *intent*; once the id is known they become in flight
under it (:class:`IntentRecordingClient`, the client as the delivery
pipeline sees it). An intent found by the next run means "maybe sent": those
contacts are sent again, except for a consent record Omnisend already holds
(:func:`without_repeated_consent`) — the one part of a contact write that is
not idempotent, since Omnisend keeps every consent record it is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from omnisync.contact import ContactWrite
from omnisync.engine.recorder import LedgerRecorder
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.model import BatchOutcome
from omnisync.omnisend.payloads import EncodedBatch


class IntentRecordingClient:
    """The client as the delivery pipeline sees it, recording intent around batch creation.

    ``create_batch`` records the batch's items as in flight under a
    provisional id *before* the request and moves them under Omnisend's id
    after it, so no batch can exist at Omnisend without a trace in the
    ledger. Everything else is the wrapped client's.

    The pipeline only reports a batch once it exists (``batch_created``),
    so the record before the request is made here, as a
    :class:`~omnisync.omnisend.delivery.DeliveryClient` wrapper.
    """

    def __init__(self, client: OmnisendClient, recorder: LedgerRecorder) -> None:
        self._client = client
        self._recorder = recorder

    def create_batch(
        self,
        writes: Sequence[ContactWrite] | EncodedBatch,
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> str:
        token = self._recorder.intend(writes)
        try:
            batch_id = self._client.create_batch(writes, cancelled=cancelled)
        except BaseException as error:
            self._recorder.not_created(token, error)
            raise
        self._recorder.created(token, batch_id)
        return batch_id

    def poll_batches(self, pending: Mapping[str, Collection[str]]) -> list[BatchOutcome]:
        return self._client.poll_batches(pending)

    def add_tag(self, tag: str, emails: Sequence[str]) -> None:
        self._client.add_tag(tag, emails)

    def remove_tag(self, tag: str, emails: Sequence[str]) -> None:
        self._client.remove_tag(tag, emails)


def without_repeated_consent(
    write: ContactWrite, contact: Mapping[str, Any] | None
) -> ContactWrite:
    """``write`` without its consent when ``contact`` (Omnisend's) already holds that record.

    For a contact a killed run may already have sent: Omnisend keeps every
    consent record it receives, so sending the same one again would leave a
    duplicate. The status goes with it (it was set together, with the same
    time). Without such a record, ``write`` is returned unchanged.
    """
    consent = write.consent
    if consent is None or contact is None:
        return write
    records = contact.get("consents")
    if not isinstance(records, list):
        return write
    wanted = _instant(consent.changed_at)
    for record in records:
        if (
            isinstance(record, Mapping)
            and record.get("channel", "email") == "email"
            and _instant(record.get("createdAt")) == wanted
            and record.get("source") == consent.source
        ):
            return replace(write, consent=None)
    return write


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
