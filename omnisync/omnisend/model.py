"""Plain data exchanged between the export engine and the Omnisend client.

Pure: no I/O. A :class:`ContactWrite` is what one export wants Omnisend to
hold for one person; :func:`omnisync.omnisend.payloads.contact_body` turns it
into the request body, and is the single place the safety rules of
DESIGN.md are enforced (no tags, no welcome message unless asked, a channel
status only when the caller supplies one, with the caller's timestamp).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

API_VERSION = "2026-03-15"

ChannelStatus = Literal["subscribed", "unsubscribed", "nonSubscribed"]


@dataclass(frozen=True)
class EmailConsent:
    """An e-mail channel status and when the person gave it, from the source.

    ``changed_at`` is an RFC 3339 timestamp recorded by the source, never the
    time of sending: Omnisend lets the newer status win, so a later
    unsubscribe in Omnisend must always be newer than what we send.
    """

    status: ChannelStatus
    changed_at: str
    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ContactWrite:
    """One contact as an export wants it in Omnisend.

    ``fields`` holds Omnisend field names (``firstName``, ``lastName``,
    ``address``, ``city``, ``state``, ``postalCode``, ``country``,
    ``countryCode``) with non-empty string values. ``email`` is already
    normalised (trimmed, lower-cased, validated).
    """

    email: str
    fields: Mapping[str, str] = field(default_factory=dict)
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    consent: EmailConsent | None = None
    send_welcome_message: bool = False


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
        if not self.failed and self.accepted.issuperset(sent):
            return sent, ()  # the common case needs no sorting out
        failed = {failure.email for failure in self.failed}
        accepted = tuple(email for email in sent if email in self.accepted)
        leftovers = tuple(
            email for email in sent if email not in self.accepted and email not in failed
        )
        return accepted, leftovers
