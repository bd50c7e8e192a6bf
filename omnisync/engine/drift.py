"""Drift: does Omnisend still hold what the ledger says an export delivered?

:func:`check_drift` reads back, contact by contact (``GET /contacts?email=``
through the connection's shared :class:`~omnisync.omnisend.client.OmnisendClient`,
so the reads are paced by the brand's limiter with every run of this process),
a sample of an export's ledger entries, or all of them, and compares:

- ``missing``: a member (in the segment, or tagged in the ledger) has no
  contact in Omnisend;
- ``tag_missing``: the ledger says the contact carries a tag of this export,
  Omnisend's contact lacks it;
- ``tag_on_non_member``: with ``on_leave: untag``, a contact that is no
  longer in the segment and that the ledger records as untagged carries the
  export's tag in Omnisend (with ``on_leave: keep`` leavers keep it by design);
- ``fields``: for a member whose current source row is what was delivered
  (its staged fingerprint is the ledger's), a field the export maps differs
  from what that row maps to (the body :func:`~omnisync.omnisend.payloads.contact_body`
  builds, without the consent omnisync never repeats). Only fields that body
  carries are compared: an empty source value is never sent, so it cannot drift.

A contact whose e-mail channel is ``unsubscribed`` in Omnisend is listed as
information only: it is never drift and never "fixed" (omnisync never
re-subscribes anyone). Contacts in a batch still in flight (or an intent left
by a killed run) are skipped: the next run settles them first.

:func:`repair_drift` marks what was found so that the next run mends exactly
those contacts: a missing contact, a missing tag or differing fields are
marked for re-sending (``LedgerStore.mark_for_resend``: upsert and tag again,
never a consent status); a tag on a non-member is recorded as on
(``mark_tagged``), which makes the contact a leaver the next run untags.

Costs: the segment is staged once (as ``plan`` does), and each checked
contact is one request in the brand's overall window (400 a minute by
default): ``--all`` on 100,000 members takes over four hours. The ledger is
read whole to draw the sample. A tags call is applied asynchronously, so a
check right after a run may see a tag not yet applied.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from omnisync.config.model import Config, Export
from omnisync.contact import ContactWrite
from omnisync.engine.clients import ClientPool
from omnisync.engine.staged import StagedMember
from omnisync.engine.staging import stage_export
from omnisync.mapping import MappingPlan
from omnisync.omnisend.payloads import contact_body
from omnisync.state import LedgerEntry, LedgerStore
from omnisync.state.locks import ExportLock

Problem = Literal["missing", "tag_missing", "tag_on_non_member", "fields"]

#: Problems in the order reports list them.
PROBLEMS: tuple[Problem, ...] = ("missing", "tag_missing", "tag_on_non_member", "fields")

#: How many ledger entries a check reads back by default.
DEFAULT_SAMPLE = 100


@dataclass(frozen=True)
class DriftFinding:
    """One contact that drifted: its problems, and for ``fields`` which fields.

    ``email`` is the full address (the repair needs it); renderers mask it.
    """

    email: str
    problems: tuple[Problem, ...]
    fields: tuple[str, ...] = ()
    tag: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """What one check found. ``findings`` and ``unsubscribed`` are ordered by e-mail."""

    export: str
    tag: str
    delivered: int
    checked: int
    skipped_in_flight: int
    sample: int | None  # None: every entry was checked
    seed: int | None
    findings: tuple[DriftFinding, ...]
    unsubscribed: tuple[str, ...] = ()
    marked_for_resend: int = 0
    marked_tagged: int = 0
    repaired: bool = False

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    def count(self, problem: Problem) -> int:
        return sum(problem in finding.problems for finding in self.findings)


@dataclass(frozen=True)
class _Expected:
    """What the ledger and the segment say about one sampled contact."""

    entry: LedgerEntry
    member: StagedMember | None
    body: Mapping[str, Any] | None


def check_drift(
    config: Config,
    export_name: str,
    *,
    store: LedgerStore,
    clients: ClientPool,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int | None = None,
) -> DriftReport:
    """Read back ``sample`` of ``export_name``'s delivered contacts (``None``: all).

    The sample is drawn with ``random.Random(seed)``: the same seed over the
    same ledger checks the same contacts. Raises what
    :func:`~omnisync.engine.staging.stage_export` raises, ``SecretUnavailable``
    for an API key that cannot be read, and
    :class:`~omnisync.omnisend.errors.OmnisendError` when Omnisend cannot be
    read; :class:`KeyError` for an unknown export.
    """
    export = config.exports[export_name]
    connection = config.connections[export.connection]
    entries = store.entries(export_name)
    pending = _pending_emails(store, export_name)
    candidates = [entry for entry in entries if entry.email not in pending]
    if sample is not None and sample < len(candidates):
        chosen = random.Random(seed).sample(candidates, sample)
    else:
        chosen = candidates
    chosen.sort(key=lambda entry: entry.email)
    expected = _expectations(config, export, chosen, store=store, clients=clients)
    client = clients.client_for(connection)
    findings: list[DriftFinding] = []
    unsubscribed: list[str] = []
    for item in expected:
        contact = client.get_contact(item.entry.email)
        finding = compare(export, item.entry, item.member, item.body, contact)
        if finding is not None:
            findings.append(finding)
        if contact is not None and email_status(contact) == "unsubscribed":
            unsubscribed.append(item.entry.email)
    return DriftReport(
        export=export_name,
        tag=export.tag,
        delivered=len(entries),
        checked=len(chosen),
        skipped_in_flight=len(entries) - len(candidates),
        sample=sample,
        seed=seed,
        findings=tuple(findings),
        unsubscribed=tuple(unsubscribed),
    )


def _pending_emails(store: LedgerStore, export: str) -> set[str]:
    pending: set[str] = set()
    for batch in (*store.inflight_batches(export), *store.intents(export)):
        pending.update(batch.emails)
    return pending


def _expectations(
    config: Config,
    export: Export,
    chosen: Sequence[LedgerEntry],
    *,
    store: LedgerStore,
    clients: ClientPool,
) -> list[_Expected]:
    """Stage the segment once and work out, per sampled entry, what was delivered."""
    with stage_export(
        config,
        export.name,
        store=store,
        environ=clients.environ,
        credentials_directory=clients.credentials_directory,
    ) as staged:
        members = staged.members_of([entry.email for entry in chosen])
        plan = MappingPlan(export, staged.columns)
    expected: list[_Expected] = []
    for entry in chosen:
        member = members.get(entry.email)
        body = None
        if member is not None and member.fingerprint == entry.fingerprint:
            # What was delivered is what the source says now: its mapped body.
            outcome = plan.map_row(member.row, in_ledger=True)
            if isinstance(outcome.result, ContactWrite):
                body = contact_body(outcome.result)
        expected.append(_Expected(entry, member, body))
    return expected


def compare(
    export: Export,
    entry: LedgerEntry,
    member: StagedMember | None,
    body: Mapping[str, Any] | None,
    contact: Mapping[str, Any] | None,
) -> DriftFinding | None:
    """The drift of one contact, or ``None``. Pure.

    ``member`` is the contact's staged row (``None``: not in the segment),
    ``body`` what was delivered when known, ``contact`` Omnisend's contact.
    """
    if contact is None:
        if member is not None or entry.tag is not None:
            return DriftFinding(entry.email, ("missing",), tag=entry.tag)
        return None  # a leaver, untagged, deleted in Omnisend: nothing of ours is lost
    problems: list[Problem] = []
    tags = contact.get("tags") or ()
    if entry.tag is not None and entry.tag not in tags:
        problems.append("tag_missing")
    if entry.tag is None and member is None and export.on_leave == "untag" and export.tag in tags:
        problems.append("tag_on_non_member")
    differing = _differing_fields(body, contact) if body is not None else ()
    if differing:
        problems.append("fields")
    if not problems:
        return None
    return DriftFinding(entry.email, tuple(problems), differing, tag=entry.tag or export.tag)


def _differing_fields(body: Mapping[str, Any], contact: Mapping[str, Any]) -> tuple[str, ...]:
    differing: list[str] = []
    for name, value in body.items():
        if name == "identifiers":
            continue
        if name == "customProperties":
            held = contact.get("customProperties") or {}
            differing.extend(
                f"customProperties.{key}"
                for key, wanted in value.items()
                if held.get(key) != wanted
            )
        elif contact.get(name) != value:
            differing.append(name)
    return tuple(differing)


def email_status(contact: Mapping[str, Any]) -> str | None:
    """The contact's e-mail channel status as Omnisend reports it."""
    for identifier in contact.get("identifiers") or ():
        if isinstance(identifier, dict) and identifier.get("type") == "email":
            channel = (identifier.get("channels") or {}).get("email") or {}
            status = channel.get("status")
            if isinstance(status, str):
                return status
    status = contact.get("status")
    return status if isinstance(status, str) else None


def repair_drift(
    report: DriftReport, *, store: LedgerStore, state_dir: str | os.PathLike[str], now: datetime
) -> DriftReport:
    """Mark ``report``'s findings so that the next run mends exactly those contacts.

    Holds the export's run lock while writing, so a repair never interleaves
    with a run's own ledger writes: raises
    :class:`~omnisync.state.locks.ExportBusy` while a run is under way
    (nothing is marked then). Returns the report with what was marked.
    """
    resend = [f.email for f in report.findings if set(f.problems) - {"tag_on_non_member"}]
    untag = [f.email for f in report.findings if f.problems == ("tag_on_non_member",)]
    with ExportLock(state_dir, report.export):
        marked = store.mark_for_resend(report.export, resend, now=now)
        tagged = store.mark_tagged(report.export, report.tag, untag, now=now)
    return replace(report, marked_for_resend=marked, marked_tagged=tagged, repaired=True)
