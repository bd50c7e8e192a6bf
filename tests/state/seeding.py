"""Seeding a store's ledger in tests through the path runs take."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime

from omnisync.inflight import InflightItem
from omnisync.state import LedgerStore

_batches = itertools.count(1)


def deliver(
    store: LedgerStore,
    export: str,
    entries: Iterable[tuple[str, int, str | None]],
    *,
    now: datetime,
) -> None:
    """Record ``(email, fingerprint, tag)`` entries as delivered: a batch's intent,
    its creation and its acknowledgement, then each tag's call accepted."""
    entries = list(entries)
    batch = f"seed-{next(_batches)}"
    sent = [InflightItem(email, fingerprint, False) for email, fingerprint, _ in entries]
    store.record_intent(export, batch, sent, now=now)
    store.record_created(export, batch, batch, now=now)
    store.acknowledge_batches(export, [(batch, None)], now=now)
    for tag in {tag for _, _, tag in entries if tag is not None}:
        store.mark_tagged(export, tag, [email for email, _, on in entries if on == tag], now=now)


def forget(store: LedgerStore, export: str, *, brand: str, now: datetime) -> None:
    """Forget the export's ledger, intents and in-flight batches, as moving it to
    another brand does, and leave it recorded as delivering to ``brand``."""
    for moved_to in ("a brand of no connection", brand):
        store.retarget(export, moved_to, now=now)
