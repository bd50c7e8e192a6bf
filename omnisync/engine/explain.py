"""Explain: everything omnisync knows about one person, per export (``omnisync explain``).

Membership and the next action come from the staging's own diff and
:func:`~omnisync.planning.item_actions`, the row's mapping from the export's
:class:`~omnisync.mapping.MappingPlan`: no rule is written twice, at the price of
staging the whole segment per export (what ``plan`` costs). Sends and writes
nothing; the API key is never resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from omnisync.config.model import Config
from omnisync.contact import ContactWrite
from omnisync.engine.report import sendable
from omnisync.engine.staging import StagedMember, stage_export
from omnisync.fingerprint import NEVER_A_FINGERPRINT
from omnisync.mapping import InvalidRow, MappingPlan
from omnisync.planning import item_actions
from omnisync.state import LedgerEntry, LedgerStore

#: How many recent runs are searched for the one that delivered an entry.
RUNS_SEARCHED = 200


@dataclass(frozen=True)
class Mapped:
    """What the mapping makes of the member's row: a contact, or the reasons it is invalid."""

    valid: bool
    fields: Mapping[str, str] = field(default_factory=dict)
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    consent: Mapping[str, str] | None = None  # status and changed_at, when a run sends one
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivered:
    """What the ledger says was last delivered."""

    current: bool  # what was delivered is what the source says now
    marked_for_resend: bool  # `drift --repair` marked it
    updated_at: str
    tag: str | None
    tag_in_doubt: bool  # a tags call's answer never recorded: the tag may or may not be on
    run_id: int | None  # the run that last wrote the entry, when history still has it


@dataclass(frozen=True)
class Pending:
    """A batch still in flight (``batch``) or an intent left by a killed run (``intent``)."""

    kind: str
    batch_id: str
    created_at: str
    then_tag: bool


@dataclass(frozen=True)
class ExportExplanation:
    """One export's view of the person. ``next_run`` lists the actions of the next run:
    ``create``, ``update``, ``tag``, ``untag TAG`` or ``nothing``; ``note`` says why."""

    export: str
    tag: str
    on_leave: str
    in_segment: bool
    position: int | None
    rows: int
    mapped: Mapped | None
    delivered: Delivered | None
    pending: tuple[Pending, ...]
    next_run: tuple[str, ...]
    note: str


def explain_email(
    config: Config,
    email: str,
    export_name: str,
    *,
    store: LedgerStore | None,
    now: datetime,
    environ: Mapping[str, str] | None = None,
) -> ExportExplanation:
    """What export ``export_name`` knows about ``email`` (already normalised).

    ``store`` is ``None`` where there is no state store yet (nothing was ever
    delivered). Raises what :func:`~omnisync.engine.staging.stage_export` raises.
    """
    export = config.exports[export_name]
    with stage_export(config, export_name, store=store, environ=environ) as staged:
        member = staged.members_of([email]).get(email)
        leaving_tag = staged.leaver_tags([email]).get(email)
        plan = MappingPlan(export)
    # A ledger of another brand (the connection moved) is one the next run forgets.
    recorded = store.recorded_brand(export_name) if store is not None else None
    moved = recorded is not None and recorded != config.brand_of(export_name)
    entry = store.entry(export_name, email) if store is not None and not moved else None
    mapped = None
    if member is not None:
        outcome = plan.map_row(member.row, in_ledger=entry is not None, now=now)
        mapped = _mapped(sendable(outcome.result), outcome.warnings)
    valid = mapped is not None and mapped.valid
    next_run, note = _next_run(member, entry, leaving_tag, valid=valid)
    return ExportExplanation(
        export=export_name,
        tag=export.tag,
        on_leave=export.on_leave,
        in_segment=member is not None,
        position=None if member is None else member.position,
        rows=0 if member is None else member.rows,
        mapped=mapped,
        delivered=_delivered(store, entry, member),
        pending=() if moved or store is None else _pending(store, export_name, email),
        next_run=next_run,
        note=note,
    )


def _mapped(result: ContactWrite | InvalidRow, warnings: Sequence[str]) -> Mapped:
    if isinstance(result, InvalidRow):
        return Mapped(valid=False, reasons=result.reasons, warnings=tuple(warnings))
    consent = None
    if result.consent is not None:
        consent = {"status": result.consent.status, "changed_at": result.consent.changed_at}
    return Mapped(
        valid=True,
        fields=dict(result.fields),
        custom_properties=dict(result.custom_properties),
        consent=consent,
        warnings=tuple(warnings),
    )


def _next_run(
    member: StagedMember | None,
    entry: LedgerEntry | None,
    leaving_tag: str | None,
    *,
    valid: bool,
) -> tuple[tuple[str, ...], str]:
    if member is None:
        if leaving_tag is not None:
            return (f"untag {leaving_tag}",), "left the segment: the tag is removed"
        if entry is not None and entry.tag is not None:
            return ("nothing",), "left the segment; keeps the tag (on_leave: keep)"
        if entry is not None:
            return ("nothing",), "not in the segment; delivered before, now untagged"
        return ("nothing",), "not in the segment, never delivered by this export"
    work = member.work
    if work is None:
        return ("nothing",), "delivered and tagged as the source says now"
    actions = item_actions(work, valid=valid)
    if work.needs_upsert and not actions.upsert:
        if work.in_ledger:
            return ("nothing",), "the row changed but is invalid: the change is never sent"
        return ("nothing",), "the row is invalid: never sent"
    planned: list[str] = []
    if actions.upsert:
        planned.append("update" if work.in_ledger else "create")
    if actions.tag:
        planned.append("tag")
    if actions.remove_old_tag is not None:
        planned.append(f"untag {actions.remove_old_tag}")
    if not work.in_ledger:
        note = "new to this export"
    elif entry is not None and entry.fingerprint == NEVER_A_FINGERPRINT:
        note = "marked by `omnisync drift --repair`: re-sent and re-tagged"
    elif work.needs_upsert:
        note = "the row changed since it was delivered"
    elif entry is not None and entry.tag_in_doubt:
        note = "delivered; a tags call's answer was lost: the tag may or may not be on"
    else:
        note = "delivered; the tag is not on yet"
    return tuple(planned), note


def _delivered(
    store: LedgerStore | None, entry: LedgerEntry | None, member: StagedMember | None
) -> Delivered | None:
    if store is None or entry is None:
        return None
    moment = entry.updated_at
    runs = store.runs(entry.export, limit=RUNS_SEARCHED)
    return Delivered(
        current=member is not None and member.fingerprint == entry.fingerprint,
        marked_for_resend=entry.fingerprint == NEVER_A_FINGERPRINT,
        updated_at=moment,
        tag=entry.tag,
        tag_in_doubt=entry.tag_in_doubt,
        # The run during which the entry was written (timestamps sort as text).
        run_id=next(
            (
                run.id
                for run in runs
                if run.started_at <= moment and (run.ended_at is None or moment <= run.ended_at)
            ),
            None,
        ),
    )


def _pending(store: LedgerStore, export: str, email: str) -> tuple[Pending, ...]:
    return tuple(
        Pending(kind, batch.batch_id, batch.created_at, item.then_tag)
        for kind, batches in (
            ("batch", store.inflight_batches(export)),
            ("intent", store.intents(export)),
        )
        for batch in batches
        for item in batch.items
        if item.email == email
    )
