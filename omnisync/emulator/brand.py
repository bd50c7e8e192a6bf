"""One brand's state and the operations on it (pure: time and faults are passed in).

All keys of a brand share its contacts, batches and rate limits. Every
method takes the brand's lock itself; callers never hold it across I/O.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from omnisync.emulator.batches import CREATED, FAILED, UPDATED, Batch, render_batch, stop_limit
from omnisync.emulator.contacts import ContactBook
from omnisync.emulator.problems import FieldError, problem_document, validation_problem
from omnisync.emulator.ratelimit import BrandLimits
from omnisync.emulator.records import ContactRecord, StatusChange, WelcomeMessage
from omnisync.emulator.validation import validate_contact

logger = logging.getLogger("omnisync.emulator")

FAILING_EMAIL_MESSAGE = "This email address was refused (emulator fault: failing_emails)"


def email_of(body: Any) -> str | None:
    """The e-mail identifier of a contact body, if it has one."""
    try:  # the common shape first: one e-mail identifier
        identifier = body["identifiers"][0]
        if identifier["type"] == "email" and identifier["id"].__class__ is str:
            email: str = identifier["id"]
            return email
    except (KeyError, IndexError, TypeError):
        pass
    identifiers = body.get("identifiers") if isinstance(body, dict) else None
    if isinstance(identifiers, list):  # anything else is the validator's to refuse
        for identifier in identifiers:
            if isinstance(identifier, dict) and identifier.get("type") == "email":
                value = identifier.get("id")
                return value if isinstance(value, str) else None
    return None


def contact_problems(
    body: Any, *, creating: bool, failing_emails: frozenset[str]
) -> list[FieldError]:
    """Validation errors of a contact body, plus the injected ``failing_emails`` refusal."""
    errors = validate_contact(body, creating=creating)
    identifiers = body.get("identifiers") if isinstance(body, dict) else None
    if failing_emails and isinstance(identifiers, list):
        for index, identifier in enumerate(identifiers):
            email = identifier.get("id") if isinstance(identifier, dict) else None
            if isinstance(email, str) and email in failing_emails:
                errors.append(
                    FieldError(f"identifiers[{index}].id", "invalid_format", FAILING_EMAIL_MESSAGE)
                )
    return errors


class Brand:
    """Contacts, batches and rate-limit windows of one brand."""

    def __init__(
        self,
        name: str,
        *,
        index: int,
        requests_per_minute: int,
        tags_per_minute: int,
    ) -> None:
        self.name = name
        self.lock = threading.Lock()
        self._prefix = f"{index:08x}"
        self.book = ContactBook(id_prefix=self._prefix)
        self.limits = BrandLimits(requests_per_minute, tags_per_minute)
        self.batches: dict[str, Batch] = {}
        self._batch_ids = itertools.count(1)

    def reset(self) -> None:
        with self.lock:
            self.book = ContactBook(id_prefix=self._prefix)
            self.limits = BrandLimits(self.limits.requests_per_minute, self.limits.tags_per_minute)
            self.batches = {}

    # -- contacts ------------------------------------------------------------

    def upsert_contact(
        self, body: Any, *, at: float, failing_emails: frozenset[str]
    ) -> tuple[int, dict[str, Any]]:
        """POST /contacts: 201/200 and the ContactResponse; raises a 400 ApiProblem."""
        errors = contact_problems(body, creating=True, failing_emails=failing_emails)
        if errors:
            raise validation_problem(errors)
        with self.lock:
            status, record = self.book.upsert(body, at=at)
            return status, self.book.render(record)

    def find(
        self, *, email: str | None = None, contact_id: str | None = None
    ) -> ContactRecord | None:
        with self.lock:
            if email is not None:
                return self.book.by_email.get(email)
            return self.book.by_id(contact_id or "")

    def patch_contact(
        self, record: ContactRecord, body: Any, *, at: float, failing_emails: frozenset[str]
    ) -> dict[str, Any]:
        """PATCH a known contact; raises a 400 ApiProblem, or ``ValueError`` on an e-mail clash."""
        errors = contact_problems(body, creating=False, failing_emails=failing_emails)
        if not errors and failing_emails and record.email in failing_emails:
            errors.append(FieldError("email", "invalid_format", FAILING_EMAIL_MESSAGE))
        if errors:
            raise validation_problem(errors)
        email = email_of(body)
        with self.lock:
            if email is not None and email != record.email:
                raise ValueError("the email identifier of a contact cannot be changed here")
            self.book.patch(record, body, at=at)
            return self.book.render(record)

    def render(self, record: ContactRecord) -> dict[str, Any]:
        with self.lock:
            return self.book.render(record)

    def contacts(self) -> list[ContactRecord]:
        """A snapshot of all records, oldest first."""
        with self.lock:
            return self.book.live_records()

    def change_tags(self, body: Mapping[str, Any], *, remove: bool, at: float) -> int:
        with self.lock:
            return self.book.change_tags(
                body["tags"],
                emails=body.get("emails") or (),
                contact_ids=body.get("contactIDs") or (),
                phones=body.get("phones") or (),
                remove=remove,
                at=at,
            )

    def welcome_messages(self) -> list[WelcomeMessage]:
        with self.lock:
            return list(self.book.welcome_messages)

    def status_changes(self) -> list[StatusChange]:
        with self.lock:
            return list(self.book.status_changes)

    def delete_contact(self, email: str) -> bool:
        with self.lock:
            return self.book.delete(email)

    def seed(self, email: str, *, at: float, **details: Any) -> dict[str, Any]:
        with self.lock:
            return self.book.render(self.book.seed(email, at=at, **details))

    # -- batches -------------------------------------------------------------

    def new_batch(self, body: dict[str, Any], *, raw: bytes, at: float) -> Batch:
        with self.lock:
            batch_id = f"{self._prefix}b{next(self._batch_ids):015x}"
            batch = Batch(batch_id, body, raw=raw, created=at)
            self.batches[batch_id] = batch
            return batch

    def stored_emails(self, emails: Iterable[str | None]) -> tuple[str, ...]:
        """``emails`` (``None`` skipped), as the string objects the store already holds when it can.

        The request log keeps these, and a tag call looks contacts up by them:
        sharing the stored strings keeps a million-contact log small and lets
        those lookups match keys by identity.
        """
        # Read without the lock: a dict lookup is atomic, and losing a race
        # only costs one duplicate string.
        find = self.book.by_email.get
        stored: list[str] = []
        for email in emails:
            if email is None:
                continue
            record = find(email)
            # A new contact's key will be this very string; an existing one has its own.
            stored.append(email if record is None else record.email)
        return tuple(stored)

    def start_batch(
        self,
        batch: Batch,
        *,
        at: float,
        failing_emails: frozenset[str],
        stop_after: int | None,
    ) -> None:
        """Process the items of a pending batch one by one, as POST /contacts would.

        Every item is processed and counted, a failed one included, until the
        batch stops (:func:`~omnisync.emulator.batches.stop_limit`: more than
        half of its items failed, or ``stop_after`` did). The brand's lock is
        held for the whole batch (no I/O happens in it): a reader sees the
        batch before or after.
        """
        items = batch.items or []
        limit = stop_limit(batch.total, stop_after)
        with self.lock:
            if batch.status != "pending":
                return
            batch.status = "inProgress"
            batch.started = at
            for index, item in enumerate(items):
                outcome = self._apply_item(self.book, item, failing_emails, at=at)
                if outcome is True:
                    batch.results[index] = CREATED
                elif outcome is False:
                    batch.results[index] = UPDATED
                else:
                    batch.errors[index] = outcome
                    batch.results[index] = FAILED
                    batch.errors_count += 1
                batch.finished_count += 1
                if batch.errors_count >= limit:
                    batch.status = "stopped"
                    batch.ended = at
                    batch.pack()
                    return

    @staticmethod
    def _apply_item(
        book: ContactBook, item: Any, failing_emails: frozenset[str], *, at: float
    ) -> bool | dict[str, Any]:
        """One batch item: whether it created the contact, or the problem it failed with."""
        try:
            errors = contact_problems(item, creating=True, failing_emails=failing_emails)
            if errors:
                return validation_problem(errors).document()
            return book.upsert(item, at=at)[0] == 201
        except Exception:  # a bug must fail one item, not the batch or the worker
            logger.exception("emulator batch item failed", extra={"event": "emulator_error"})
            return problem_document(500, "Item processing failed")

    def finish_batch(self, batch: Batch, *, at: float) -> None:
        with self.lock:
            if batch.status == "inProgress":
                batch.status = "finished"
                batch.ended = at
                batch.pack()

    def get_batch(self, batch_id: str) -> Batch | None:
        with self.lock:
            return self.batches.get(batch_id)

    def batch_summaries(self) -> list[dict[str, Any]]:
        """Every batch's summary, newest first."""
        with self.lock:
            return [render_batch(batch) for batch in reversed(self.batches.values())]
