"""Plain data the Omnisend client returns: batch outcomes and item failures. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

API_VERSION = "2026-03-15"


@dataclass(frozen=True)
class FieldProblem:
    """One failing field as Omnisend reported it (``errors[]`` of a problem document)."""

    field: str
    code: str
    message: str


@dataclass(frozen=True)
class ItemFailure:
    """A batch item Omnisend did not accept, with its reasons."""

    email: str
    response_code: int
    title: str
    problems: tuple[FieldProblem, ...] = ()


@dataclass(frozen=True)
class BatchOutcome:
    """What Omnisend finally said about one batch.

    ``accepted`` are the e-mails Omnisend confirmed (2xx item responses);
    ``failed`` the items it refused; e-mails in neither (a ``stopped`` batch)
    were not processed and stay pending for the next run.
    """

    batch_id: str
    status: Literal["finished", "stopped"]
    accepted: frozenset[str]
    failed: tuple[ItemFailure, ...] = ()

    def sort_out(self, sent: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Of the e-mails ``sent`` in the batch, in order: those accepted, and the
        leftovers (neither accepted nor failed: not processed)."""
        failed = {failure.email for failure in self.failed}
        accepted = tuple(email for email in sent if email in self.accepted)
        leftovers = tuple(
            email for email in sent if email not in self.accepted and email not in failed
        )
        return accepted, leftovers
