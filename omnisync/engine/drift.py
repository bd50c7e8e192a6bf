"""Drift: does Omnisend still hold what the ledger says an export delivered?

:func:`check_drift` reads back a sample of an export's ledger entries (or all),
one paced ``GET /contacts?email=`` each, and finds:

- ``missing``: a member (in the segment, or tagged in the ledger) has no contact;
- ``tag_missing``: the ledger says the contact carries a tag of this export
  (not in doubt: the next run sends such a tag's call again anyway),
  Omnisend's contact lacks it;
- ``tag_on_non_member``: with ``on_leave: untag``, a contact no longer in the
  segment and recorded as untagged carries the export's tag;
- ``fields``: for a member whose source row is what was delivered (same
  fingerprint), a field of the body a run would send differs (never the consent).

A contact ``unsubscribed`` in Omnisend is listed as information only: never
drift, never "fixed". Contacts in a batch in flight or an intent are skipped.
:func:`repair_drift` marks the findings so that the next run mends exactly
those contacts (re-sent and re-tagged, never a consent status; a tag on a
non-member is recorded as on, so the next run untags it). The renderers mask
every e-mail (reports are pasted into tickets) and show field names, never values.

Costs and limits: the segment is staged once (as ``plan`` does) and the ledger
is read whole to draw the sample; each checked contact is one request in the
brand's window (400 a minute by default), so ``--all`` on 100,000 members takes
over four hours. A tags call is applied asynchronously: a check right after a
run may see a tag not yet applied (``tag_missing`` that the next check clears).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from omnisync.config.model import Config, Export
from omnisync.contact import ContactWrite
from omnisync.engine.clients import ClientPool
from omnisync.engine.plan_render import json_text, markdown_cell
from omnisync.engine.staging import StagedMember, stage_export
from omnisync.mapping import MappingPlan
from omnisync.masking import mask_email
from omnisync.omnisend.payloads import contact_body
from omnisync.state import LedgerEntry, LedgerStore
from omnisync.state.locks import ExportLock

Problem = Literal["missing", "tag_missing", "tag_on_non_member", "fields"]

#: Each problem as reports word it, in the order they list them.
PROBLEM_WORDS: dict[Problem, str] = {
    "missing": "contact missing in Omnisend",
    "tag_missing": "tag missing",
    "tag_on_non_member": "tag on a non-member",
    "fields": "fields differ",
}


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


def check_drift(
    config: Config,
    export_name: str,
    *,
    store: LedgerStore,
    clients: ClientPool,
    sample: int | None,
    seed: int | None = None,
) -> DriftReport:
    """Read back ``sample`` of ``export_name``'s delivered contacts (``None``: all).

    The sample is drawn with ``random.Random(seed)``: the same seed over the
    same ledger checks the same contacts. Raises what
    :func:`~omnisync.engine.staging.stage_export` raises, ``SecretUnavailable``
    for an unreadable API key, :class:`~omnisync.omnisend.errors.OmnisendError`
    when Omnisend cannot be read, and :class:`KeyError` for an unknown export.
    """
    export = config.exports[export_name]
    entries = store.entries(export_name)
    pending = {
        email
        for batch in (*store.inflight_batches(export_name), *store.intents(export_name))
        for email in batch.emails
    }
    candidates = [entry for entry in entries if entry.email not in pending]
    chosen = candidates
    if sample is not None and sample < len(candidates):
        chosen = random.Random(seed).sample(candidates, sample)
    chosen.sort(key=lambda entry: entry.email)
    with stage_export(config, export.name, store=store, environ=clients.environ) as staged:
        members = staged.members_of([entry.email for entry in chosen])
        plan = MappingPlan(export)
    client = clients.client_for(config.connections[export.connection])
    findings: list[DriftFinding] = []
    unsubscribed: list[str] = []
    for entry in chosen:
        member = members.get(entry.email)
        body = None
        if member is not None and member.fingerprint == entry.fingerprint:
            # What was delivered is what the source says now: its mapped body.
            outcome = plan.map_row(member.row, in_ledger=True)
            if isinstance(outcome.result, ContactWrite):
                body = contact_body(outcome.result)
        contact = client.get_contact(entry.email)
        finding = _compare(export, entry, member, body, contact)
        if finding is not None:
            findings.append(finding)
        if contact is not None and _email_status(contact) == "unsubscribed":
            unsubscribed.append(entry.email)
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


def _compare(
    export: Export,
    entry: LedgerEntry,
    member: StagedMember | None,
    body: Mapping[str, Any] | None,
    contact: Mapping[str, Any] | None,
) -> DriftFinding | None:
    if contact is None:
        if member is not None or entry.tag is not None:
            return DriftFinding(entry.email, ("missing",), tag=entry.tag)
        return None  # a leaver, untagged, deleted in Omnisend: nothing of ours is lost
    problems: list[Problem] = []
    tags = contact.get("tags") or ()
    if entry.tag is not None and not entry.tag_in_doubt and entry.tag not in tags:
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
        # With a countryCode, Omnisend keeps the name of that code's country, not the text
        # sent ("España" is kept as "Spain"): the code is what can drift.
        if name == "identifiers" or (name == "country" and "countryCode" in body):
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


def _email_status(contact: Mapping[str, Any]) -> str | None:
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
    # Only the fields in question: the ledger's tag stays (during a rename, the old one,
    # which the next run must still remove).
    fields_only = {f.email for f in report.findings if f.problems == ("fields",)}
    untag = [f.email for f in report.findings if f.problems == ("tag_on_non_member",)]
    with ExportLock(state_dir, report.export):
        marked = store.mark_for_resend(
            report.export, [email for email in resend if email not in fields_only], now=now
        ) + store.mark_for_resend(report.export, sorted(fields_only), now=now, keep_tag=True)
        tagged = store.mark_tagged(report.export, report.tag, untag, now=now)
    return replace(report, marked_for_resend=marked, marked_tagged=tagged, repaired=True)


def _scope(report: DriftReport) -> str:
    if report.sample is None or report.checked < report.sample:
        what = f"all {report.checked} delivered contacts"
    else:
        seeded = f", seed {report.seed}" if report.seed is not None else ""
        what = f"a sample of {report.checked} of {report.delivered} delivered contacts{seeded}"
    skipped = report.skipped_in_flight
    if skipped:
        what += f" ({skipped} skipped: in a batch still in flight)"
    return what


def _describe(finding: DriftFinding) -> str:
    parts = []
    for problem in finding.problems:
        words = PROBLEM_WORDS[problem]
        if problem in ("tag_missing", "tag_on_non_member") and finding.tag:
            words += f" ({finding.tag!r})"
        if problem == "fields":
            words += f": {', '.join(finding.fields)}"
        parts.append(words)
    return "; ".join(parts)


def _repair_line(report: DriftReport) -> str | None:
    if report.repaired:
        return (
            f"repair: {report.marked_for_resend} marked to be re-sent and re-tagged, "
            f"{report.marked_tagged} to be untagged, by the next run"
        )
    if report.drifted:
        return "run `omnisync drift EXPORT --repair` to have the next run mend these"
    return None


def render_text(report: DriftReport) -> str:
    lines = [f"export {report.export} (tag {report.tag!r}): checked {_scope(report)}"]
    if not report.drifted:
        lines.append("  no drift: Omnisend holds what the ledger says was delivered")
    else:
        counts = ", ".join(
            f"{report.count(problem)} {PROBLEM_WORDS[problem]}"
            for problem in PROBLEM_WORDS
            if report.count(problem)
        )
        lines.append(f"  drift in {len(report.findings)} contact(s): {counts}")
        lines.extend(
            f"    {mask_email(finding.email)}: {_describe(finding)}" for finding in report.findings
        )
    if report.unsubscribed:
        lines.append(
            f"  unsubscribed in Omnisend (information, never changed): {len(report.unsubscribed)}"
        )
        lines.extend(f"    {mask_email(email)}" for email in report.unsubscribed)
    repair = _repair_line(report)
    if repair:
        lines.append(f"  {repair}")
    return "\n".join(lines) + "\n"


def render_json(report: DriftReport) -> str:
    document = {
        "export": report.export,
        "tag": report.tag,
        "drift": report.drifted,
        "delivered": report.delivered,
        "checked": report.checked,
        "skipped_in_flight": report.skipped_in_flight,
        "sample": report.sample,
        "seed": report.seed,
        "counts": {problem: report.count(problem) for problem in PROBLEM_WORDS},
        "findings": [
            {
                "email": mask_email(finding.email),
                "problems": list(finding.problems),
                "fields": list(finding.fields),
            }
            for finding in report.findings
        ],
        "unsubscribed": [mask_email(email) for email in report.unsubscribed],
        "repair": {
            "done": report.repaired,
            "marked_for_resend": report.marked_for_resend,
            "marked_for_untag": report.marked_tagged,
        },
    }
    return json_text(document)


def render_markdown(report: DriftReport) -> str:
    verdict = "drift found" if report.drifted else "no drift"
    lines = [
        f"### omnisync drift: `{report.export}` — {verdict}",
        "",
        f"Checked {_scope(report)}; tag `{report.tag}`.",
        "",
    ]
    if report.drifted:
        lines += ["| contact | problem |", "|---|---|"]
        for finding in report.findings:
            contact = markdown_cell(mask_email(finding.email))
            lines.append(f"| `{contact}` | {markdown_cell(_describe(finding))} |")
        lines.append("")
    if report.unsubscribed:
        lines.append(
            f"{len(report.unsubscribed)} contact(s) unsubscribed in Omnisend "
            "(information, never changed)."
        )
        lines.append("")
    repair = _repair_line(report)
    if repair:
        lines += [repair[0].upper() + repair[1:] + ".", ""]
    return "\n".join(lines)
