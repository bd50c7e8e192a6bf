"""Batch records and their rendering (pure: no I/O).

A batch is answered at once (201) and processed later by the worker:
``pending`` -> ``inProgress`` (items applied one by one, exactly like
POST /contacts; an item that fails is counted and the next one goes on) ->
``finished``, or ``stopped`` for too many errors (``docs/omnisend.md``): once
more than half of its items have failed (:func:`stop_limit`), or once
``stop_after_errors`` have when that fault is injected, and the rest are
never processed. ``finishedCount`` counts the items processed, failed ones
included; ``errorsCount`` the failed ones.

Memory for a million contacts stays small: once processed, a batch keeps its
request body zlib-compressed and one result byte per item; ``GET
/batches/{id}/items`` re-reads the items from it. A success item's
``response`` is the contact *as it is now* (Omnisend's exact snapshot rule is
not published); a failed item's ``response`` is the 400 problem it got.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

from omnisync.emulator.values import format_time

#: Per-item result codes kept in :attr:`Batch.results`.
NOT_PROCESSED, UPDATED, CREATED, FAILED = 0, 1, 2, 3
_RESPONSE_CODES = {UPDATED: 200, CREATED: 201}
#: Statuses after which a batch never changes.
_DONE = frozenset({"finished", "stopped"})
#: zlib's ``wbits`` for a raw deflate stream with a 32 KiB window.
_RAW_DEFLATE = -15


def stop_limit(total: int, stop_after_errors: int | None) -> int:
    """How many failed items stop a batch of ``total``: more than half, or the injected fault's."""
    more_than_half = total // 2 + 1
    if stop_after_errors is None:
        return more_than_half
    return min(more_than_half, stop_after_errors)


class Batch:
    """One batch of one brand."""

    __slots__ = (
        "created",
        "emails",
        "ended",
        "endpoint",
        "errors",
        "errors_count",
        "finished_count",
        "id",
        "items",
        "method",
        "origin",
        "packed",
        "raw",
        "results",
        "started",
        "status",
        "summary",
        "total",
    )

    def __init__(
        self,
        batch_id: str,
        body: dict[str, Any],
        *,
        raw: bytes,
        created: float,
    ) -> None:
        """``body`` is the validated envelope; ``raw`` the request bytes it was parsed from."""
        self.id = batch_id
        self.endpoint: str = body["endpoint"]
        self.method: str = body["method"]
        self.origin: str = body.get("origin") or "api"
        self.items: list[Any] | None = body["items"]
        self.total = len(body["items"])
        self.created = created
        self.started: float | None = None
        self.ended: float | None = None
        self.status = "pending"
        self.finished_count = 0
        self.errors_count = 0
        self.results = bytearray(self.total)
        self.errors: dict[int, dict[str, Any]] = {}
        self.raw: bytes | None = raw
        self.packed: bytes | None = None
        #: The rendered summary, kept once the batch is finished or stopped (it cannot change).
        self.summary: dict[str, Any] | None = None

    def pack(self) -> None:
        """Drop the parsed items, keeping the request compressed for GET .../items."""
        if self.raw is not None:
            # Raw deflate (no zlib header or checksum): the fastest zlib has.
            self.packed = zlib.compress(self.raw, 1, _RAW_DEFLATE)
            self.raw = None
        self.items = None

    def request_items(self) -> list[Any]:
        """The items exactly as sent."""
        if self.items is not None:
            return self.items
        if self.packed is None:
            return []
        items: list[Any] = json.loads(zlib.decompress(self.packed, _RAW_DEFLATE))["items"]
        return items

    def item_id(self, index: int) -> str:
        # The batch counter part of the id (unique within the brand) plus the index.
        return f"{self.id[8:]}{index:08x}"


def render_batch(batch: Batch) -> dict[str, Any]:
    """The Batch summary (GET /batches/{id} and the list); a new dict each call.

    A listing renders up to 250 summaries, each with three formatted times;
    a batch that is done is rendered once.
    """
    if batch.summary is not None:
        return dict(batch.summary)
    body: dict[str, Any] = {
        "batchID": batch.id,
        "createdAt": format_time(batch.created),
        "endpoint": batch.endpoint,
        "method": batch.method,
        "origin": batch.origin,
        "status": batch.status,
        "totalCount": batch.total,
        "finishedCount": batch.finished_count,
        "errorsCount": batch.errors_count,
    }
    if batch.started is not None:
        body["startedAt"] = format_time(batch.started)
    if batch.ended is not None:
        body["endedAt"] = format_time(batch.ended)
    if batch.status in _DONE:
        batch.summary = dict(body)
    return body


def render_batch_items(
    batch: Batch, contact_now: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """GET /batches/{id}/items: the summary plus ``responses[]`` and ``errors[]``.

    ``contact_now(item)`` renders the stored contact a success item wrote (``{}`` if gone).
    """
    body = render_batch(batch)
    responses: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    items = batch.request_items()
    for index, result in enumerate(batch.results):
        if result == NOT_PROCESSED:
            continue
        item = items[index]
        entry: dict[str, Any] = {"itemID": batch.item_id(index), "request": item}
        if result == FAILED:
            problem = batch.errors[index]
            entry.update(responseCode=problem["status"], response=problem, status="failed")
            errors.append(entry)
            continue
        entry.update(
            responseCode=_RESPONSE_CODES[result], response=contact_now(item), status="finished"
        )
        responses.append(entry)
    body["responses"] = responses
    body["errors"] = errors
    return body
