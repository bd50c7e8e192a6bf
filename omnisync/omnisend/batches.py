"""Following batches: one polling round, and reading batch documents into outcomes.

No I/O of its own: :func:`poll_round` gets the client's GET injected. ``GET /batches``
and ``GET /batches/{id}`` give a batch's status and counts; ``GET /batches/{id}/items``
its per-item ``responses[]`` and ``errors[]``, each with the contact body sent
(``request``), whose e-mail says whom it is about.

The listing is read *unfiltered* (``endpoint=contacts`` only): one call shows pending
and done batches alike, newest first, so it usually covers every batch in flight,
where listing by status would take two calls and could not tell a batch still
processing from one beyond the pages read.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from omnisync.clock import parse_time
from omnisync.omnisend.errors import ApiError, FieldProblem, field_problems

logger = logging.getLogger("omnisync.omnisend")

#: Batches listed per ``GET /batches`` call (Omnisend's maximum).
LIST_PAGE_SIZE = 250
#: Listing pages read per polling round before asking batch by batch instead.
MAX_LIST_PAGES = 4


@dataclass(frozen=True)
class ItemFailure:
    """A batch item Omnisend did not accept, with its reasons."""

    email: str
    response_code: int
    title: str
    problems: tuple[FieldProblem, ...] = ()


@dataclass(frozen=True)
class BatchOutcome:
    """What Omnisend finally said about one batch: ``accepted`` the e-mails it confirmed
    (2xx item responses), ``failed`` the items it refused; e-mails in neither (a
    ``stopped`` batch) were not processed (the follower sends them again on their own).
    ``forgotten``: Omnisend answered 404 (it keeps batches about 7 days): ``stopped``
    with nothing known, though it may have processed any of the items."""

    batch_id: str
    status: Literal["finished", "stopped"]
    accepted: frozenset[str]
    failed: tuple[ItemFailure, ...] = ()
    forgotten: bool = False

    def sort_out(self, sent: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Of the e-mails ``sent`` in the batch, in order: those accepted, and the
        leftovers (neither accepted nor failed: not processed)."""
        failed = {failure.email for failure in self.failed}
        accepted = tuple(email for email in sent if email in self.accepted)
        leftovers = tuple(
            email for email in sent if email not in self.accepted and email not in failed
        )
        return accepted, leftovers


#: The client's GET (path, *, endpoint, operation, params=None): a JSON object, or a
#: typed error (an ``ApiError`` of status 404 for a batch it does not know).
Fetch = Callable[..., Mapping[str, Any]]


def poll_round(fetch: Fetch, pending: Mapping[str, Collection[str]]) -> list[BatchOutcome]:
    """The outcomes of those ``pending`` batches (id -> e-mails sent) that are now done.

    Reads the items only of a batch that stopped or reports errors; a batch Omnisend
    answers 404 for is ``stopped`` with nothing accepted, and ``forgotten``."""
    if not pending:
        return []
    found = find_batches(fetch, set(pending))
    outcomes: list[BatchOutcome] = []
    for batch_id, emails in pending.items():
        summary = found[batch_id]
        if summary is None:
            outcomes.append(
                BatchOutcome(batch_id, status="stopped", accepted=frozenset(), forgotten=True)
            )
            continue
        status = summary.get("status")
        if status not in ("finished", "stopped"):
            continue
        total, finished = _count(summary.get("totalCount")), _count(summary.get("finishedCount"))
        if (
            status == "finished"
            and _count(summary.get("errorsCount")) == 0
            and (total is None or finished in (None, total))
        ):
            # Every item was accepted: no need to read them.
            outcomes.append(
                BatchOutcome(batch_id=batch_id, status="finished", accepted=frozenset(emails))
            )
            continue
        items = fetch(
            f"batches/{quote(batch_id, safe='')}/items",
            endpoint="GET /batches/{batchID}/items",
            operation=f"read the items of batch {batch_id}",
        )
        outcomes.append(outcome_from_items(batch_id, status, items, emails))
    return outcomes


def find_batches(fetch: Fetch, wanted: set[str]) -> dict[str, Mapping[str, Any] | None]:
    """The ``wanted`` batches' documents (``None``: Omnisend answered 404): from the listing
    (paging only while one is unseen, at most :data:`MAX_LIST_PAGES`), else one by one."""
    found: dict[str, Mapping[str, Any] | None] = {}
    for page in _listing(fetch):
        for entry in page:
            if str(entry.get("batchID")) in wanted:
                found[str(entry["batchID"])] = entry
        if len(found) == len(wanted):
            break
    for batch_id in sorted(wanted - set(found)):
        try:
            found[batch_id] = fetch(
                f"batches/{quote(batch_id, safe='')}",
                endpoint="GET /batches/{batchID}",
                operation=f"read batch {batch_id}",
            )
        except ApiError as error:
            if error.status != 404:
                raise
            logger.warning(
                "batch %s is unknown to Omnisend (expired?); its contacts stay pending",
                batch_id,
                extra={"event": "omnisend.batch_missing", "batch_id": batch_id},
            )
            found[batch_id] = None
    return found


def unfinished_batches(fetch: Fetch, *, created_from: datetime, created_until: datetime) -> int:
    """How many contacts batches created between the two instants Omnisend has not
    finished (``pending``, ``inProgress``), from the listing; when its pages end before
    it is read through, every batch not seen counts as one (not known: not done).

    The listing's order is not documented: a page seen newest first (as Omnisend and the
    emulator list) ends the look at its first batch older than ``created_from``; a page
    in any other order is read whole, and so is the next.
    """
    unfinished = 0
    for page in _listing(fetch):
        times = [parse_time(entry.get("createdAt")) for entry in page]
        known = [moment for moment in times if moment is not None]
        newest_first = known[:1] > known[-1:] and all(map(operator.ge, known, known[1:]))
        for entry, created in zip(page, times, strict=True):
            if created is not None and created < created_from:
                if newest_first:
                    return unfinished
                continue
            if (created is None or created <= created_until) and entry.get("status") in (
                "pending",
                "inProgress",
            ):
                unfinished += 1
        if len(page) < LIST_PAGE_SIZE:
            return unfinished
    return unfinished + 1


def _listing(fetch: Fetch) -> Iterator[list[Mapping[str, Any]]]:
    """The contacts batches listing page by page, newest first, until a page is not full
    or :data:`MAX_LIST_PAGES` were read."""
    offset = 0
    for _ in range(MAX_LIST_PAGES):
        listing = fetch(
            "batches",
            endpoint="GET /batches",
            operation="list batches",
            params={"endpoint": "contacts", "limit": str(LIST_PAGE_SIZE), "offset": str(offset)},
        )
        page = listing.get("batches")
        yield (
            [entry for entry in page if isinstance(entry, Mapping)]
            if isinstance(page, list)
            else []
        )
        if not isinstance(page, list) or len(page) < LIST_PAGE_SIZE:
            return
        offset += len(page)


def outcome_from_items(
    batch_id: str, status: str, items: Mapping[str, Any], emails: Collection[str]
) -> BatchOutcome:
    """The outcome of a done batch from its items document: of the e-mails sent, accepted
    those with a 2xx item response, failed those with an error item (both: failed)."""
    sent = set(emails)
    failures: dict[str, ItemFailure] = {}
    accepted: set[str] = set()
    for key in ("responses", "errors"):
        entries = items.get(key)
        for entry in entries if isinstance(entries, list) else ():
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
        batch_id=batch_id,
        status="stopped" if status == "stopped" else "finished",
        accepted=frozenset(accepted),
        failed=tuple(failures[email] for email in sorted(failures)),
    )


def item_email(entry: Mapping[str, Any]) -> str | None:
    """The e-mail identifier of a batch item's ``request`` (the contact body as sent), else
    of its contact ``response``: the published BatchItem requires neither, and an item
    whose e-mail cannot be read is never acknowledged (it would be re-sent every run)."""
    for body in (entry.get("request"), entry.get("response")):
        if not isinstance(body, Mapping):
            continue
        identifiers = body.get("identifiers")
        for identifier in identifiers if isinstance(identifiers, list) else ():
            if isinstance(identifier, Mapping) and identifier.get("type") == "email":
                email = identifier.get("id")
                if isinstance(email, str):
                    return email
        if isinstance(body.get("email"), str):
            return str(body["email"])
    return None


def _failure(email: str, code: int | None, response: object) -> ItemFailure:
    problem: Mapping[str, Any] = response if isinstance(response, Mapping) else {}
    texts = (problem.get("title"), problem.get("detail"))
    title = next((text for text in texts if isinstance(text, str) and text), f"status {code}")
    return ItemFailure(
        email=email,
        response_code=code if code is not None else 0,
        title=title,
        problems=field_problems(problem),
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
