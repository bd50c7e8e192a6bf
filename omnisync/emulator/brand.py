"""One brand: its contacts, batches and rate-limit windows, behind one lock.

All keys of a brand share it. Every method takes the brand's lock itself and
holds it across no I/O. Time is the shared clock's modelled wall time; faults
(``failing_emails``, ``stop_after_errors``) are the shared injector's.

Rate limits are sliding 60-second windows: every request counts against
``requests_per_minute``, a tags call against ``tags_per_minute`` too, and a
request is admitted only when every window it needs has room. A refused
(429) request is **not** counted: Omnisend's rule is not published, and this
reading lets a client that waits ``retryAfter`` in.

A batch is answered at once (201) and processed later by the worker:
``pending`` -> ``inProgress`` (each item applied as POST /contacts would, a
failed one counted in ``finishedCount`` and ``errorsCount``) -> ``finished``,
or ``stopped`` once more than half of the items (or ``stop_after_errors``, if
fewer) have failed, the rest never processed. A done batch keeps its request
compressed and one result byte per item; a success item's ``response`` is the
contact *as it is now* (Omnisend's snapshot rule is not published), a failed
one's the 400 problem it got. A batch is forgotten ``batch_retention`` seconds
after its creation (Omnisend: about 7 days).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from omnisync.clock import Clock
from omnisync.emulator.contacts import ContactBook, ContactRecord, email_of, format_time
from omnisync.emulator.faults import FaultInjector
from omnisync.emulator.validation import (
    ApiProblem,
    FieldError,
    check_merged_properties,
    validate_contact,
    validation_problem,
)

logger = logging.getLogger("omnisync.emulator")

FAILING_EMAIL_MESSAGE = "This email address was refused (emulator fault: failing_emails)"
WINDOW_SECONDS = 60.0
#: Per-item result codes kept in :attr:`Batch.results`.
NOT_PROCESSED, UPDATED, CREATED, FAILED = 0, 1, 2, 3
_RESPONSE_CODES = {UPDATED: 200, CREATED: 201}
#: zlib's ``wbits`` for a raw deflate stream (no header or checksum).
_RAW_DEFLATE = -15


@dataclass(slots=True, eq=False)
class Batch:
    """One batch of one brand, made from a validated envelope; ``results`` holds one result
    code per item (``NOT_PROCESSED`` until it is applied)."""

    id: str
    endpoint: str
    method: str
    origin: str
    #: The parsed items until the batch is done; then ``None`` and ``packed`` holds them.
    items: list[Any] | None
    created: float
    results: bytearray = field(init=False)
    packed: bytes | None = None
    started: float | None = None
    ended: float | None = None
    status: str = "pending"
    #: The problem document of each failed item, by index.
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = bytearray(len(self.items or ()))

    def end(self, status: str, at: float) -> None:
        """Finish or stop the batch, keeping its items compressed."""
        self.status, self.ended = status, at
        self.packed = zlib.compress(orjson.dumps(self.items), 1, _RAW_DEFLATE)
        self.items = None

    def request_items(self) -> list[Any]:
        """The items exactly as sent."""
        if self.items is not None:
            return self.items
        return cast(list[Any], orjson.loads(zlib.decompress(self.packed or b"", _RAW_DEFLATE)))


def render_batch(batch: Batch) -> dict[str, Any]:
    """The Batch summary (GET /batches/{id} and the list)."""
    body: dict[str, Any] = {
        "batchID": batch.id,
        "createdAt": format_time(batch.created),
        "endpoint": batch.endpoint,
        "method": batch.method,
        "origin": batch.origin,
        "status": batch.status,
        "totalCount": len(batch.results),
        "finishedCount": len(batch.results) - batch.results.count(NOT_PROCESSED),
        "errorsCount": len(batch.errors),
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


class Brand:
    """Contacts, batches and rate-limit windows of one brand."""

    def __init__(
        self,
        name: str,
        *,
        index: int,
        clock: Clock,
        injector: FaultInjector,
        limits: tuple[int, int],
    ) -> None:
        """``limits``: requests per minute, and tags calls per minute."""
        self.name = name
        self.lock = threading.Lock()
        self._prefix = f"{index:08x}"
        self._clock = clock
        self._injector = injector
        self._limits = limits
        self._batch_ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.book = ContactBook(id_prefix=self._prefix)
            self.batches: dict[str, Batch] = {}
            # Per limit, the times of the requests it counted in the last minute.
            self._windows = tuple((limit, deque[float]()) for limit in self._limits)

    def now(self) -> float:
        """The modelled wall time, in seconds since the epoch."""
        return self._clock.wall().timestamp()

    def admit(self, *, is_tags: bool) -> int | None:
        """Count one request and return ``None``, or refuse it with its ``retryAfter``: the
        wait until every window it needs has room, in whole seconds (at least 1)."""
        now = self._clock.now()
        windows = self._windows if is_tags else self._windows[:1]
        with self.lock:
            wait = 0.0
            for limit, events in windows:
                while events and events[0] <= now - WINDOW_SECONDS:
                    events.popleft()
                if len(events) >= limit:
                    wait = max(wait, events[-limit] + WINDOW_SECONDS - now)
            if wait > 0.0:
                return max(1, math.ceil(wait))
            for _, events in windows:
                events.append(now)
        return None

    def _problems(self, body: Any, record: ContactRecord | None = None) -> list[FieldError]:
        """Validation errors of a contact body (a POST, or a PATCH of ``record``), the
        injected ``failing_emails`` refusal included, and of the custom properties the
        contact would then hold. Under the lock."""
        errors = validate_contact(body, creating=record is None)
        failing = self._injector.faults.failing_emails
        identifiers = body.get("identifiers") if isinstance(body, dict) else None
        for index, identifier in enumerate(
            identifiers if failing and isinstance(identifiers, list) else ()
        ):
            email = identifier.get("id") if isinstance(identifier, dict) else None
            if isinstance(email, str) and email in failing:
                errors.append(FieldError(f"identifiers[{index}].id", FAILING_EMAIL_MESSAGE))
        record = record or self.book.by_email.get(email_of(body) or "")
        if record is not None and record.custom_properties:
            check_merged_properties(record.custom_properties, body, errors)
        return errors

    def write_contact(
        self, body: Any, record: ContactRecord | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST /contacts (201 or 200), or PATCH the known ``record`` (200): the status and the
        ContactResponse; raises a 400, or a 409 for a PATCH naming another e-mail."""
        with self.lock:
            errors = self._problems(body, record)
            failing = self._injector.faults.failing_emails
            if not errors and record is not None and record.email in failing:
                errors.append(FieldError("email", FAILING_EMAIL_MESSAGE))
            if errors:
                raise validation_problem(errors)
            if record is None:
                status, record = self.book.upsert(body, at=self.now())
                return status, self.book.render(record)
            if email_of(body) not in (None, record.email):
                raise ApiProblem(409, "the email identifier of a contact cannot be changed here")
            self.book.apply(record, body, at=self.now(), created=False)
            return 200, self.book.render(record)

    def find(self, *, email: str | None = None, contact_id: str = "") -> ContactRecord | None:
        with self.lock:
            return (
                self.book.by_email.get(email) if email is not None else self.book.by_id(contact_id)
            )

    def render(self, records: Iterable[ContactRecord]) -> list[dict[str, Any]]:
        with self.lock:
            return [self.book.render(record) for record in records]

    def contacts(self) -> list[ContactRecord]:
        """A snapshot of all records, oldest first."""
        with self.lock:
            return [record for record in self.book.records if record is not None]

    def change_tags(self, body: Mapping[str, Any], *, remove: bool) -> int:
        """Apply a validated tags call body; returns how many contacts changed."""
        with self.lock:
            return self.book.change_tags(body, remove=remove, at=self.now())

    def stored_emails(self, emails: Iterable[str | None]) -> tuple[str, ...]:
        """``emails`` (``None`` skipped) as the very strings the store holds, where it holds them:
        the request log keeps these and a tag call looks contacts up by them, so sharing the
        stored strings keeps a million-contact log small."""
        # Without the lock: a dict lookup is atomic; losing a race costs one duplicate string.
        find = self.book.by_email.get
        return tuple(
            email if (record := find(email)) is None else record.email
            for email in emails
            if email is not None
        )

    def new_batch(self, body: dict[str, Any]) -> Batch:
        """Store a validated POST /batches envelope as a pending batch."""
        with self.lock:
            batch_id = f"{self._prefix}b{next(self._batch_ids):015x}"
            origin = body.get("origin") or "api"
            batch = Batch(
                batch_id, body["endpoint"], body["method"], origin, body["items"], self.now()
            )
            self.batches[batch_id] = batch
            return batch

    def start_batch(self, batch: Batch) -> None:
        """Apply a pending batch's items one by one until it stops (module docstring), under
        the lock for the whole batch: a reader sees it before or after."""
        limit = len(batch.results) // 2 + 1
        limit = min(limit, self._injector.faults.stop_after_errors or limit)
        with self.lock:
            if batch.status != "pending":
                return
            batch.status, batch.started = "inProgress", self.now()
            for index, item in enumerate(batch.items or ()):
                batch.results[index] = self._apply_item(batch, index, item, at=batch.started)
                if len(batch.errors) >= limit:
                    batch.end("stopped", batch.started)
                    return

    def _apply_item(self, batch: Batch, index: int, item: Any, *, at: float) -> int:
        """Apply one item: its result code; a failed item's problem goes to ``batch.errors``."""
        try:
            errors = self._problems(item)
            if not errors:
                return CREATED if self.book.upsert(item, at=at)[0] == 201 else UPDATED
            batch.errors[index] = validation_problem(errors).document()
        except Exception:  # a bug must fail one item, not the batch or the worker
            logger.exception("emulator batch item failed", extra={"event": "emulator_error"})
            batch.errors[index] = ApiProblem(500, "Item processing failed").document()
        return FAILED

    def finish_batch(self, batch: Batch) -> None:
        with self.lock:
            if batch.status == "inProgress":
                batch.end("finished", self.now())

    def forget_batches(self, retention: float) -> None:
        """Forget the batches created ``retention`` seconds ago or more, as Omnisend forgets
        a batch after about 7 days: its id answers 404 and it is listed no more."""
        cutoff = self.now() - retention
        with self.lock:
            # Kept in creation order: the expired ones come first.
            expired = itertools.takewhile(lambda b: b.created <= cutoff, self.batches.values())
            for batch_id in [batch.id for batch in expired]:
                del self.batches[batch_id]

    def batch_json(self, batch_id: str, *, items: bool) -> dict[str, Any]:
        """The batch's summary, with ``responses`` and ``errors`` when ``items``; raises a 404."""
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                raise ApiProblem(404, f"Batch {batch_id} not found")
            return render_batch_items(batch, self.book) if items else render_batch(batch)

    def batch_summaries(self) -> list[dict[str, Any]]:
        """Every batch's summary, newest first."""
        with self.lock:
            return [render_batch(batch) for batch in reversed(self.batches.values())]
