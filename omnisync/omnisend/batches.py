"""Reading Omnisend's batch documents into outcomes (pure: parsed JSON in, model out).

``GET /batches`` and ``GET /batches/{id}`` give a batch's summary (status and
counts); ``GET /batches/{id}/items`` gives per-item ``responses[]`` and
``errors[]``. Each item's ``request`` is the contact body that was sent, whose
e-mail identifier says whom the item is about.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from omnisync.omnisend.errors import field_problems
from omnisync.omnisend.model import BatchOutcome, ItemFailure

#: Statuses after which a batch changes no more.
DONE_STATUSES = frozenset({"finished", "stopped"})


@dataclass(frozen=True)
class BatchSummary:
    """One batch as a listing shows it. ``missing``: Omnisend answered 404 for it."""

    batch_id: str
    status: str
    total_count: int | None = None
    finished_count: int | None = None
    errors_count: int | None = None
    missing: bool = False

    @classmethod
    def missing_batch(cls, batch_id: str) -> BatchSummary:
        return cls(batch_id=batch_id, status="stopped", missing=True)

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def clean(self) -> bool:
        """Finished with no item in error: every item was accepted, no need to read them."""
        return (
            self.status == "finished"
            and not self.missing
            and self.errors_count == 0
            and (self.total_count is None or self.finished_count in (None, self.total_count))
        )


def parse_listing(data: Mapping[str, Any]) -> list[BatchSummary]:
    """The summaries in a ``ListBatchesResponse`` (entries without an id are skipped)."""
    batches = data.get("batches")
    if not isinstance(batches, list):
        return []
    summaries = []
    for entry in batches:
        if not isinstance(entry, Mapping):
            continue
        batch_id = entry.get("batchID")
        if not isinstance(batch_id, str) or not batch_id:
            continue
        status = entry.get("status")
        summaries.append(
            BatchSummary(
                batch_id=batch_id,
                status=status if isinstance(status, str) else "",
                total_count=_count(entry.get("totalCount")),
                finished_count=_count(entry.get("finishedCount")),
                errors_count=_count(entry.get("errorsCount")),
            )
        )
    return summaries


def outcome_from_items(
    summary: BatchSummary, items: Mapping[str, Any], emails: Collection[str]
) -> BatchOutcome:
    """The outcome of a done batch from its items document.

    Only the e-mails sent in the batch (``emails``) are considered: accepted
    are those with a 2xx item response, failed those with an error item;
    e-mails in neither (a stopped batch's unprocessed items) are in neither
    set. An e-mail with both a failure and a success counts as failed.
    """
    sent = set(emails)
    failures: dict[str, ItemFailure] = {}
    accepted: set[str] = set()
    for key in ("responses", "errors"):
        entries = items.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            email = item_email(entry)
            if email is None or email not in sent:
                continue
            code = _count(entry.get("responseCode"))
            if key == "responses" and code is not None and 200 <= code < 300:
                accepted.add(email)
            else:
                failures[email] = _failure(email, code, entry.get("response"))
    accepted -= failures.keys()
    return BatchOutcome(
        batch_id=summary.batch_id,
        status="stopped" if summary.status == "stopped" else "finished",
        accepted=frozenset(accepted),
        failed=tuple(failures[email] for email in sorted(failures)),
    )


def item_email(entry: Mapping[str, Any]) -> str | None:
    """The e-mail identifier of a batch item's ``request`` body (or of its contact response)."""
    for body in (entry.get("request"), entry.get("response")):
        if not isinstance(body, Mapping):
            continue
        identifiers = body.get("identifiers")
        if isinstance(identifiers, list):
            for identifier in identifiers:
                if (
                    isinstance(identifier, Mapping)
                    and identifier.get("type") == "email"
                    and isinstance(identifier.get("id"), str)
                ):
                    return str(identifier["id"])
        email = body.get("email")
        if isinstance(email, str):
            return email
    return None


def _failure(email: str, code: int | None, response: object) -> ItemFailure:
    problem: Mapping[str, Any] = response if isinstance(response, Mapping) else {}
    title = problem.get("title")
    detail = problem.get("detail")
    text = (
        title
        if isinstance(title, str) and title
        else detail
        if isinstance(detail, str) and detail
        else f"status {code}"
    )
    return ItemFailure(
        email=email,
        response_code=code if code is not None else 0,
        title=text,
        problems=field_problems(problem),
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
