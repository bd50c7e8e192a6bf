"""Following batches: one polling round, and reading batch documents into outcomes.

No I/O of its own: :func:`poll_round` gets the client's fetch function
injected; the rest turns parsed JSON into the model.

``GET /batches`` and ``GET /batches/{id}`` give a batch's summary (status and
counts); ``GET /batches/{id}/items`` gives per-item ``responses[]`` and
``errors[]``. Each item's ``request`` is the contact body that was sent, whose
e-mail identifier says whom the item is about.

The listing is read *unfiltered* (``endpoint=contacts`` only): one call shows
pending and done batches alike, newest first, so one call a round usually
covers every batch in flight — where listing ``status=finished`` and
``status=stopped`` would take two calls and could not tell a batch still
processing from one beyond the pages read.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from omnisync.omnisend.errors import NotFound, field_problems
from omnisync.omnisend.model import BatchOutcome, ItemFailure

logger = logging.getLogger("omnisync.omnisend")

#: Batches listed per ``GET /batches`` call (Omnisend's maximum).
LIST_PAGE_SIZE = 250
#: Listing pages read per polling round before asking batch by batch instead.
MAX_LIST_PAGES = 4

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


class Fetch(Protocol):
    """The client's GET: a JSON object, or a typed error (``NotFound`` for a 404)."""

    def __call__(
        self,
        path: str,
        *,
        endpoint: str,
        operation: str,
        params: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]: ...


def poll_round(fetch: Fetch, pending: Mapping[str, Collection[str]]) -> list[BatchOutcome]:
    """The outcomes of those ``pending`` batches (id -> e-mails sent) that are now done.

    Lists batches (paging only while a pending id is unseen), reads the items
    only of a batch that stopped or reports errors, and reports a batch
    Omnisend answers 404 for as ``stopped`` with nothing accepted (its
    contacts stay pending). Batches still processing are left out.
    """
    if not pending:
        return []
    summaries = find_batches(fetch, set(pending))
    outcomes: list[BatchOutcome] = []
    for batch_id, emails in pending.items():
        summary = summaries.get(batch_id)
        if summary is None or not summary.done:
            continue
        if summary.missing:
            outcomes.append(BatchOutcome(batch_id=batch_id, status="stopped", accepted=frozenset()))
        elif summary.clean:
            outcomes.append(
                BatchOutcome(batch_id=batch_id, status="finished", accepted=frozenset(emails))
            )
        else:
            items = fetch(
                f"batches/{quote(batch_id, safe='')}/items",
                endpoint="GET /batches/{batchID}/items",
                operation=f"read the items of batch {batch_id}",
            )
            outcomes.append(outcome_from_items(summary, items, emails))
    return outcomes


def find_batches(fetch: Fetch, wanted: set[str]) -> dict[str, BatchSummary]:
    """Summaries of the ``wanted`` batch ids: from the listing, else one by one."""
    found: dict[str, BatchSummary] = {}
    offset = 0
    for _ in range(MAX_LIST_PAGES):
        page = parse_listing(
            fetch(
                "batches",
                endpoint="GET /batches",
                operation="list batches",
                params={
                    "endpoint": "contacts",
                    "limit": str(LIST_PAGE_SIZE),
                    "offset": str(offset),
                },
            )
        )
        found.update((summary.batch_id, summary) for summary in page if summary.batch_id in wanted)
        if len(found) == len(wanted) or len(page) < LIST_PAGE_SIZE:
            break
        offset += len(page)
    for batch_id in sorted(wanted - set(found)):
        # Older than the pages read, or unknown: ask for it by id.
        try:
            data = fetch(
                f"batches/{quote(batch_id, safe='')}",
                endpoint="GET /batches/{batchID}",
                operation=f"read batch {batch_id}",
            )
        except NotFound:
            logger.warning(
                "batch %s is unknown to Omnisend (expired?); its contacts stay pending",
                batch_id,
                extra={"event": "omnisend.batch_missing", "batch_id": batch_id},
            )
            found[batch_id] = BatchSummary(batch_id=batch_id, status="stopped", missing=True)
            continue
        found.update((summary.batch_id, summary) for summary in parse_listing({"batches": [data]}))
    return found


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
