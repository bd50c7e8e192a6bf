"""Batch records and their rendering (pure: no I/O).

A batch is answered at once (201) and processed later by the worker:
``pending`` -> ``inProgress`` (each item applied as POST /contacts would, a
failed one counted in ``finishedCount`` and ``errorsCount``) -> ``finished``,
or ``stopped`` once more than half of the items (or ``stop_after_errors``, if
fewer) have failed, the rest never processed. A done batch keeps its request
compressed and one result byte per item; a success item's ``response`` is the
contact *as it is now* (Omnisend's snapshot rule is not published), a failed
one's the 400 problem it got.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from omnisync.emulator.contacts import ContactBook, email_of
from omnisync.emulator.values import format_time

#: Per-item result codes kept in :attr:`Batch.results`.
NOT_PROCESSED, UPDATED, CREATED, FAILED = 0, 1, 2, 3
_RESPONSE_CODES = {UPDATED: 200, CREATED: 201}
#: zlib's ``wbits`` for a raw deflate stream (no header or checksum).
_RAW_DEFLATE = -15


@dataclass(slots=True, eq=False)
class Batch:
    """One batch of one brand, made from a validated envelope and the bytes it was parsed from."""

    id: str
    endpoint: str
    method: str
    origin: str
    #: The parsed items until the batch is done; then ``None`` and ``packed`` holds them.
    items: list[Any] | None
    created: float
    total: int = field(init=False)
    results: bytearray = field(init=False)
    packed: bytes | None = None
    started: float | None = None
    ended: float | None = None
    status: str = "pending"
    finished_count: int = 0
    errors_count: int = 0
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.total = len(self.items or ())
        self.results = bytearray(self.total)

    def end(self, status: str, at: float) -> None:
        """Finish or stop the batch, keeping its items compressed."""
        self.status, self.ended = status, at
        self.packed = zlib.compress(orjson.dumps(self.items), 1, _RAW_DEFLATE)
        self.items = None

    def request_items(self) -> list[Any]:
        """The items exactly as sent."""
        if self.items is not None:
            return self.items
        items: list[Any] = orjson.loads(zlib.decompress(self.packed or b"", _RAW_DEFLATE))
        return items


def render_batch(batch: Batch) -> dict[str, Any]:
    """The Batch summary (GET /batches/{id} and the list)."""
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
    return body


def render_batch_items(batch: Batch, book: ContactBook) -> dict[str, Any]:
    """GET /batches/{id}/items: the summary plus ``responses[]`` and ``errors[]``; a success
    item's ``response`` is its contact in ``book`` now (``{}`` if gone)."""
    body = render_batch(batch)
    body["responses"], body["errors"] = [], []
    items = batch.request_items()
    for index, result in enumerate(batch.results):
        if result == NOT_PROCESSED:
            continue
        # The item id: the batch counter part of the batch id (unique in the brand), the index.
        entry: dict[str, Any] = {"itemID": f"{batch.id[8:]}{index:08x}", "request": items[index]}
        if result == FAILED:
            problem = batch.errors[index]
            entry.update(responseCode=problem["status"], response=problem, status="failed")
            body["errors"].append(entry)
        else:
            record = book.by_email.get(email_of(items[index]) or "")
            response = {} if record is None else book.render(record)
            entry.update(responseCode=_RESPONSE_CODES[result], response=response, status="finished")
            body["responses"].append(entry)
    return body
