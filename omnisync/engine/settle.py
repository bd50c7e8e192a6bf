"""Settling the batches a killed run left in flight, before anything new is planned.

An *intent* (a creation under way when the process died) has no id to ask
about: its e-mails are *maybe sent*, and the runner looks those contacts up
before sending a consent record again (:func:`without_repeated_consent`:
Omnisend keeps every consent record it gets). A look-up proves nothing while
Omnisend still queues a contacts batch created about when the intent was
sent: its e-mails wait (pending) until none is left. Each contact stays in its intent
until a run records it (Omnisend acknowledged its write): one that run did not
reach (held, failed, stopped, out of the segment for now) stays *maybe sent*.

A batch Omnisend has still not answered when settling gives up is *unresolved*:
it may yet be applied, consent and all, so no run sends its e-mails until it is
answered (they stay pending). One it no longer knows (404, or a record older than
it keeps batches) may have been applied before it was forgotten: it becomes an
intent again. The maybe-sent contacts delivered before are sent again, their tag as
recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.omnisend.client import OmnisendClient
from omnisync.state import InflightBatch, LedgerStore

logger = logging.getLogger("omnisync.engine")

#: Omnisend keeps batches for about 7 days; older in-flight records are unanswerable.
BATCH_RETENTION = timedelta(days=6)
#: How far Omnisend's clock (a batch's createdAt) may be from ours.
CLOCK_SKEW = timedelta(minutes=5)
#: How long after its intent a batch creation may reach Omnisend: its wait for a
#: rate-limit slot is bounded by the 429 budget (900 s).
SEND_WINDOW = timedelta(minutes=20)
#: Any batch of an intent older than this was long applied, or never will be.
QUEUE_LIMIT = timedelta(days=1)


# No repr: it holds full e-mail addresses, which must never reach a log line.
@dataclass(frozen=True, repr=False)
class Settlement:
    """What settling leaves the run: ``acknowledged`` items recorded; the ``intents`` and
    their e-mails (``maybe_sent``), each kept until the run records that contact; the
    e-mails of the batches still unanswered (``unresolved``)."""

    acknowledged: int = 0
    maybe_sent: frozenset[str] = frozenset()
    intents: tuple[InflightBatch, ...] = ()
    unresolved: frozenset[str] = frozenset()


def settle_inflight(
    store: LedgerStore,
    client: OmnisendClient,
    export: str,
    *,
    clock: Clock,
    poll_interval: float,
    timeout: float,
    stop: threading.Event | None = None,
) -> Settlement:
    """Ask Omnisend about ``export``'s in-flight batches and record the answers.

    Polls until every batch is done, ``timeout`` clock seconds have passed or
    ``stop`` is set. Batches still unknown then stay in flight (a later settle
    records their answer), unless older than Omnisend keeps batches: those, and the
    batches it answers 404 for, become intents again. Intents are read, not released.
    Raises the client's errors (e.g. an ``ApiError`` of status 401).
    """
    batches = store.inflight_batches(export)
    acknowledged = released = 0
    forgotten: list[InflightBatch] = []
    pending: dict[str, InflightBatch] = {batch.batch_id: batch for batch in batches}
    outcomes = client.wait_for_batches(
        {batch.batch_id: batch.emails for batch in batches},
        poll_interval=poll_interval,
        timeout=timeout,
        stop=stop,
    )
    for outcome in outcomes:
        batch = pending.pop(outcome.batch_id)
        if outcome.forgotten:
            forgotten.append(batch)
            continue
        accepted, _ = outcome.sort_out(batch.emails)
        acknowledged += store.acknowledge_batches(
            export, [(batch.batch_id, accepted)], now=clock.wall()
        )
        # Refused or never processed (a stopped batch): the diff sends them again.
        released += store.release(export, batch.batch_id)
    cutoff = clock.wall() - BATCH_RETENTION
    unresolved: list[InflightBatch] = []
    for batch in pending.values():
        if datetime.fromisoformat(batch.created_at) < cutoff:
            forgotten.append(batch)
        else:
            unresolved.append(batch)
    for batch in forgotten:
        # Released last: a kill in between leaves the batch in flight, forgotten again.
        store.record_intent(export, batch.batch_id, batch.items, now=clock.wall())
        released += store.release(export, batch.batch_id)
    intents = store.intents(export)
    maybe_sent = frozenset(email for intent in intents for email in intent.emails)
    queued = _queued(client, intents, now=clock.wall())
    # Those delivered before (no consent can go to them again) are sent again, whatever
    # the diff says: nobody knows which version Omnisend holds, and a source gone back to
    # the ledger's values would otherwise leave it the other for good. Recording them
    # clears them from their intent.
    store.mark_for_resend(export, maybe_sent, now=clock.wall(), keep_tag=True)
    logger.info(
        "settled %d in-flight batch(es) of %s: %d acknowledged, %d released, %d unresolved,"
        " %d maybe sent%s",
        len(batches),
        export,
        acknowledged,
        released,
        len(unresolved),
        len(maybe_sent),
        f" (waiting: {queued} batch(es) of their time not finished by Omnisend)" if queued else "",
        extra={
            "event": "engine.settled",
            "export": export,
            "acknowledged": acknowledged,
            "released": released,
            "unresolved": len(unresolved),
            "maybe_sent": len(maybe_sent),
            "queued": queued,
        },
    )
    return Settlement(
        acknowledged=acknowledged,
        maybe_sent=maybe_sent,
        intents=tuple(intents),
        unresolved=frozenset(email for batch in unresolved for email in batch.emails)
        | (maybe_sent if queued else frozenset()),
    )


def _queued(client: OmnisendClient, intents: Sequence[InflightBatch], *, now: datetime) -> int:
    """How many contacts batches Omnisend has not finished were created about when
    ``intents`` were sent: while one may be theirs, a look-up that finds no contact proves
    nothing (the batch may yet be applied, consent and all), so they wait. Not asked once
    the newest intent is older than :data:`QUEUE_LIMIT` (a busy brand's listing could
    otherwise keep them waiting for good)."""
    created = [datetime.fromisoformat(intent.created_at) for intent in intents]
    if not created or now - max(created) > QUEUE_LIMIT:
        return 0
    return client.unfinished_batches(
        created_from=min(created) - CLOCK_SKEW, created_until=max(created) + SEND_WINDOW
    )


def without_repeated_consent(
    write: ContactWrite, contact: Mapping[str, Any] | None
) -> ContactWrite:
    """``write`` without its consent (and status, set with it) when it would add a consent
    record (a ``subscribed`` status) and ``contact`` (Omnisend's) already holds an e-mail
    consent record from its source, whatever its time (the source's may have changed since
    the write that may have been sent); else ``write`` unchanged: any other status adds no
    record, and an unsubscribe newer than that record must still reach Omnisend."""
    consent = write.consent
    records = None if contact is None else contact.get("consents")
    if consent is None or consent.status != "subscribed" or not isinstance(records, list):
        return write
    repeated = any(
        isinstance(record, Mapping)
        and record.get("channel", "email") == "email"
        and record.get("source") == consent.source
        for record in records
    )
    return replace(write, consent=None) if repeated else write
