"""One brand: its contacts, batches and rate-limit windows, behind one lock.

All keys of a brand share it. Every method takes the brand's lock itself and
holds it across no I/O. Time is the shared clock's modelled wall time; faults
(``failing_emails``, ``stop_after_errors``) are the shared injector's.

Rate limits are sliding 60-second windows: every request counts against
``requests_per_minute``, a tags call against ``tags_per_minute`` too, and a
request is admitted only when every window it needs has room. A refused
(429) request is **not** counted: Omnisend's rule is not published, and this
reading lets a client that waits ``retryAfter`` in.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from omnisync.clock import Clock
from omnisync.emulator.batches import (
    CREATED,
    FAILED,
    UPDATED,
    Batch,
    render_batch,
    render_batch_items,
)
from omnisync.emulator.contacts import ContactBook, ContactRecord, email_of
from omnisync.emulator.faults import FaultInjector
from omnisync.emulator.problems import ApiProblem, FieldError, validation_problem
from omnisync.emulator.validation import validate_contact

logger = logging.getLogger("omnisync.emulator")

FAILING_EMAIL_MESSAGE = "This email address was refused (emulator fault: failing_emails)"
WINDOW_SECONDS = 60.0


class Brand:
    """Contacts, batches and rate-limit windows of one brand."""

    def __init__(
        self,
        name: str,
        *,
        index: int,
        clock: Clock,
        injector: FaultInjector,
        requests_per_minute: int,
        tags_per_minute: int,
    ) -> None:
        self.name = name
        self.lock = threading.Lock()
        self._prefix = f"{index:08x}"
        self._clock = clock
        self._injector = injector
        self._limits = (requests_per_minute, tags_per_minute)
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

    # -- contacts ------------------------------------------------------------

    def _problems(self, body: Any, *, creating: bool) -> list[FieldError]:
        """Validation errors of a contact body, plus the injected ``failing_emails`` refusal."""
        errors = validate_contact(body, creating=creating)
        failing = self._injector.faults.failing_emails
        identifiers = body.get("identifiers") if isinstance(body, dict) else None
        for index, identifier in enumerate(
            identifiers if failing and isinstance(identifiers, list) else ()
        ):
            email = identifier.get("id") if isinstance(identifier, dict) else None
            if isinstance(email, str) and email in failing:
                errors.append(FieldError(f"identifiers[{index}].id", FAILING_EMAIL_MESSAGE))
        return errors

    def upsert_contact(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /contacts: 201 or 200 and the ContactResponse; raises a 400 ApiProblem."""
        errors = self._problems(body, creating=True)
        if errors:
            raise validation_problem(errors)
        with self.lock:
            status, record = self.book.upsert(body, at=self.now())
            return status, self.book.render(record)

    def patch_contact(self, record: ContactRecord, body: Any) -> dict[str, Any]:
        """PATCH a known contact: its ContactResponse; raises a 400, or a 409 for another e-mail."""
        errors = self._problems(body, creating=False)
        if not errors and record.email in self._injector.faults.failing_emails:
            errors.append(FieldError("email", FAILING_EMAIL_MESSAGE))
        if errors:
            raise validation_problem(errors)
        email = email_of(body)
        with self.lock:
            if email is not None and email != record.email:
                raise ApiProblem(409, "the email identifier of a contact cannot be changed here")
            self.book.apply(record, body, at=self.now(), created=False)
            return self.book.render(record)

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
        """``emails`` (``None`` skipped) as the very strings the store holds, where it holds them.

        The request log keeps these, and a tag call looks contacts up by them:
        sharing the stored strings keeps a million-contact log small.
        """
        # Without the lock: a dict lookup is atomic; losing a race costs one duplicate string.
        find = self.book.by_email.get
        return tuple(
            email if (record := find(email)) is None else record.email
            for email in emails
            if email is not None
        )

    # -- batches -------------------------------------------------------------

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
        """Apply the items of a pending batch one by one, as POST /contacts would.

        Every item is counted, a failed one too, until more than half of them (or
        ``stop_after_errors``, if fewer) failed: then the batch stops. The lock is held
        for the whole batch: a reader sees it before or after.
        """
        limit = batch.total // 2 + 1
        limit = min(limit, self._injector.faults.stop_after_errors or limit)
        with self.lock:
            if batch.status != "pending":
                return
            batch.status, batch.started = "inProgress", self.now()
            for index, item in enumerate(batch.items or ()):
                outcome = self._apply_item(item, at=batch.started)
                if isinstance(outcome, dict):
                    batch.errors[index] = outcome
                    batch.errors_count += 1
                    batch.results[index] = FAILED
                else:
                    batch.results[index] = CREATED if outcome else UPDATED
                batch.finished_count += 1
                if batch.errors_count >= limit:
                    batch.end("stopped", batch.started)
                    return

    def _apply_item(self, item: Any, *, at: float) -> bool | dict[str, Any]:
        """One batch item: whether it created the contact, or the problem it failed with."""
        try:
            errors = self._problems(item, creating=True)
            if errors:
                return validation_problem(errors).document()
            return self.book.upsert(item, at=at)[0] == 201
        except Exception:  # a bug must fail one item, not the batch or the worker
            logger.exception("emulator batch item failed", extra={"event": "emulator_error"})
            return ApiProblem(500, "Item processing failed").document()

    def finish_batch(self, batch: Batch) -> None:
        with self.lock:
            if batch.status == "inProgress":
                batch.end("finished", self.now())

    def batch_json(self, batch_id: str, *, items: bool) -> dict[str, Any] | None:
        """The batch's summary, with its ``responses`` and ``errors`` when ``items``;
        ``None`` for an unknown id."""
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            return render_batch_items(batch, self.book) if items else render_batch(batch)

    def batch_summaries(self) -> list[dict[str, Any]]:
        """Every batch's summary, newest first."""
        with self.lock:
            return [render_batch(batch) for batch in reversed(self.batches.values())]
