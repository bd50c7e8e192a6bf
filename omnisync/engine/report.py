"""The plan of an export run: what it would send, counted, with masked samples.

The runner feeds the same :class:`PlanTally` as it maps items for sending, so
a plan and the run that follows agree count for count. Reports hold masked
e-mails only, and never a secret.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from itertools import islice

from omnisync.config.model import Config, OnLeave
from omnisync.contact import ContactWrite
from omnisync.engine.guards import hold_reasons
from omnisync.engine.results import SAMPLE_SIZE, ReasonCount, Tallied
from omnisync.engine.staging import StagedExport, stage_export
from omnisync.mapping import MISSING_EMAIL, InvalidRow, MappingOutcome, MappingPlan
from omnisync.masking import mask_email
from omnisync.omnisend.payloads import oversize_reason
from omnisync.planning import ItemActions, Leaver, StageCounts, WorkItem, item_actions
from omnisync.state import LedgerStore, state_path
from omnisync.state.sqlite import count_in_flight


@dataclass(frozen=True)
class PlanReport(Tallied):
    """What one export run would do: the :class:`Tallied` numbers, with reasons and samples.

    ``warnings`` say what is sent with less than the source had;
    ``with_consent`` counts the new contacts that carry a channel status;
    ``counts`` are the staging counts the numbers come from. ``state_found``
    is false without a state store (every member counts as to create, an upper
    bound). ``held``: the change guards the run would trip.
    """

    export: str = ""
    segment: str = ""
    source: str = ""
    connection: str = ""
    connection_display_name: str = ""
    tag_name: str = ""
    on_leave: OnLeave = "untag"
    counts: StageCounts = field(default_factory=StageCounts)
    invalid_reasons: tuple[ReasonCount, ...] = ()
    warnings: tuple[ReasonCount, ...] = ()
    with_consent: int = 0
    duplicates_sample: tuple[str, ...] = ()
    samples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_profiles: int | None = None
    state_found: bool = True
    held: tuple[str, ...] = ()
    in_flight: int = 0

    @property
    def exceeds_max_profiles(self) -> bool:
        """Whether the run would stop before sending: more valid members than ``max_profiles``."""
        return self.max_profiles is not None and self.members > self.max_profiles

    @property
    def changes_nothing(self) -> bool:
        return not (self.upserts or self.to_tag or self.to_untag)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON: every field, plus the derived totals."""
        data = asdict(self)
        data["upserts"] = self.upserts
        data["exceeds_max_profiles"] = self.exceeds_max_profiles
        return data


class _Reasons:
    """Counts and up to :data:`SAMPLE_SIZE` examples per reason."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def note(self, reason: str, email: str) -> None:
        self.counts[reason] += 1
        _keep(self.examples.setdefault(reason, []), email)

    def summaries(self) -> tuple[ReasonCount, ...]:
        """Most frequent first; ties by reason."""
        ordered = sorted(self.counts.items(), key=lambda pair: (-pair[1], pair[0]))
        return tuple(
            ReasonCount(reason, count, tuple(self.examples[reason])) for reason, count in ordered
        )


def _keep(sample: list[str], email: str) -> None:
    # Masked only when kept: every row of a run passes here, few are kept.
    if len(sample) < SAMPLE_SIZE:
        sample.append(mask_email(email))


def sendable(result: ContactWrite | InvalidRow) -> ContactWrite | InvalidRow:
    """A mapped row as plan, run and explain all count it: a contact too large for any
    batch is invalid (Omnisend could never be sent it)."""
    if isinstance(result, ContactWrite) and (reason := oversize_reason(result)):
        return InvalidRow(mask_email(result.email), (reason,))
    return result


class PlanTally:
    """Accumulates the mapping outcomes of one staged export's work items.

    Call :meth:`add` once per work item (in any order), :meth:`add_leavers`
    with (at least the first few) leavers for samples, then :meth:`report`.
    Not thread-safe.
    """

    def __init__(self, staged: StagedExport) -> None:
        self.staged = staged
        self._with_consent = 0
        # Work items found invalid: new ones, changed ones, those that needed the tag.
        self._invalid_new = self._invalid_changed = self._invalid_tag = 0
        self._invalid = _Reasons()
        self._warnings = _Reasons()
        self._samples: dict[str, list[str]] = {"new": [], "changed": [], "tag": [], "untag": []}
        if staged.counts.missing_email:
            # No e-mail to mask: the examples are row numbers in the segment.
            self._invalid.counts[MISSING_EMAIL] = staged.counts.missing_email
            self._invalid.examples[MISSING_EMAIL] = [f"row {n}" for n in staged.missing_email_rows]

    def add(self, item: WorkItem, outcome: MappingOutcome | None) -> ItemActions:
        """Count ``item`` (``outcome``: its mapping, ``None`` when it needs none) and
        return what to send for it (:func:`omnisync.planning.item_actions`)."""
        invalid = False
        if outcome is not None:
            result = sendable(outcome.result)
            if isinstance(result, InvalidRow):
                invalid = True
                self._invalid_changed += item.in_ledger
                self._invalid_new += not item.in_ledger
                self._invalid_tag += item.needs_tag
                for reason in result.reasons:
                    self._invalid.note(reason, item.email)
            else:
                self._with_consent += result.consent is not None
                # Warnings are about what is sent: an invalid row sends nothing.
                for warning in outcome.warnings:
                    self._warnings.note(warning, item.email)
        actions = item_actions(item, valid=not invalid)
        if actions.upsert:
            _keep(self._samples["changed" if item.in_ledger else "new"], item.email)
        if actions.tag:
            _keep(self._samples["tag"], item.email)
        return actions

    def add_all(self, *, now: datetime | None) -> None:
        """Map and add every work item, and sample the leavers: the whole plan."""
        plan = MappingPlan(self.staged.export)
        for item in self.staged.work():
            self.add(item, plan.map_work(item, now=now))
        self.add_leavers(self.staged.leavers())

    def tallied(self) -> Tallied:
        """The numbers so far (final once every work item was added)."""
        counts = self.staged.counts
        invalid_new, invalid_changed = self._invalid_new, self._invalid_changed
        return Tallied(
            rows=counts.rows,
            members=counts.members - invalid_new - invalid_changed,
            invalid=counts.missing_email + invalid_new + invalid_changed,
            duplicates=counts.duplicates,
            to_create=counts.new - invalid_new,
            to_update=counts.changed - invalid_changed,
            unchanged=counts.unchanged + counts.tag_only,
            to_tag=counts.needs_tag - self._invalid_tag,
            retag=counts.retag,
            leaving=counts.leaving + counts.kept,
            to_untag=counts.leaving,
        )

    def add_leavers(self, leavers: Iterable[Leaver]) -> None:
        """Sample leavers until the sample is full (their count comes from the staging counts)."""
        sample = self._samples["untag"]
        sample.extend(mask_email(one.email) for one in islice(leavers, SAMPLE_SIZE - len(sample)))

    def report(self, *, state_found: bool = True) -> PlanReport:
        staged = self.staged
        export = staged.export
        return PlanReport(
            **asdict(self.tallied()),
            export=export.name,
            segment=export.segment,
            source=staged.source_name,
            connection=export.connection,
            connection_display_name=staged.connection_display_name,
            tag_name=export.tag,
            on_leave=export.on_leave,
            counts=staged.counts,
            state_found=state_found,
            held=hold_reasons(export.guards, staged.counts, valid_members=self.tallied().members),
            invalid_reasons=self._invalid.summaries(),
            warnings=self._warnings.summaries(),
            with_consent=self._with_consent,
            duplicates_sample=staged.duplicates_sample,
            samples={action: tuple(emails) for action, emails in self._samples.items()},
            max_profiles=export.max_profiles,
        )


def valid_members(staged: StagedExport, *, now: datetime | None) -> int:
    """The members a run would deliver or keep, as :meth:`PlanTally.tallied` counts them,
    but counted only until :func:`hold_reasons` has enough (``max(1, min_members)``) and,
    when the segment has more e-mails than ``max_profiles``, until it is known whether
    they exceed it: unchanged members were valid when delivered; work items are mapped in
    segment order."""
    export, counts = staged.export, staged.counts
    wanted = max(1, export.guards.min_members)
    if export.max_profiles is not None and counts.members > export.max_profiles:
        wanted = max(wanted, export.max_profiles + 1)
    found = counts.members - counts.work
    plan = MappingPlan(export)
    for item in staged.work() if found < wanted else ():
        outcome = plan.map_work(item, now=now)
        found += outcome is None or not isinstance(sendable(outcome.result), InvalidRow)
        if found >= wanted:
            break
    return found


def plan_export(
    config: Config,
    export_name: str,
    *,
    store: LedgerStore | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> PlanReport:
    """Stage, diff and map export ``export_name``: what a run would do now.

    ``store`` and ``environ``: as :func:`~omnisync.engine.staging.stage_export`
    takes them, and raises what it raises; ``now`` (aware) is passed to the
    mapping. Sends and writes nothing; the API key is never resolved. Without a
    state store every member counts as to create (an upper bound; ``state_found``).
    """
    # An open store exists, even before its first run.
    state_found = store is not None or state_path(config.daemon.state_dir).is_file()
    with stage_export(config, export_name, store=store, environ=environ) as staged:
        tally = PlanTally(staged)
        tally.add_all(now=now)
        report = tally.report(state_found=state_found)
    return replace(report, in_flight=in_flight(config, export_name, store=store))


def in_flight(config: Config, export: str, *, store: LedgerStore | None) -> int:
    """Contacts in batches that a stopped or killed run sent and no run has settled (in
    flight, or intents): the next run asks Omnisend about them before it diffs, so those it
    acknowledged then count as unchanged, not as the plan counts them. Read-only: from
    ``store``, else from the state file as it is (``0`` without one, or unreadable)."""
    if store is not None:
        batches = (*store.inflight_batches(export), *store.intents(export))
        return sum(len(batch.emails) for batch in batches)
    return count_in_flight(state_path(config.daemon.state_dir), export)
