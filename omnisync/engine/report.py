"""The plan of an export run: what it would send, counted, with masked samples.

:class:`PlanTally` turns a staged export's counts plus the mapping outcome of
each work item into a :class:`PlanReport`. ``omnisync plan`` uses it through
:func:`build_plan_report`; the runner feeds the same tally as it maps items
for sending, and takes each item's actions from :meth:`PlanTally.add`, so a
plan and the run that follows agree count for count.

Reports hold masked e-mails only, and never a secret. Rendering lives in
:mod:`omnisync.engine.plan_render`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from omnisync.config.model import Config, OnLeave
from omnisync.engine.guards import hold_reasons
from omnisync.engine.results import Tallied, tallied
from omnisync.engine.staged import StagedExport
from omnisync.engine.staging import SAMPLE_SIZE, ledger_path_for, stage_export
from omnisync.mapping import MISSING_EMAIL, InvalidRow, MappingOutcome, MappingPlan
from omnisync.masking import mask_email
from omnisync.planning import ItemActions, Leaver, StageCounts, WorkItem, item_actions
from omnisync.state import LedgerStore

#: Actions sampled in a report, in display order.
SAMPLED_ACTIONS: tuple[str, ...] = ("new", "changed", "tag", "untag")


@dataclass(frozen=True)
class ReasonCount:
    """How many rows share one reason, with a few masked examples (or row numbers)."""

    reason: str
    count: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanReport(Tallied):
    """What one export run would do: the :class:`Tallied` numbers, with reasons and samples.

    ``invalid_reasons`` says why rows are invalid, by reason; ``warnings``
    what is sent with less than the source had (a consent status left out,
    control characters removed); ``with_consent`` the new contacts that
    carry a channel status. ``counts`` are the staging counts the numbers
    were derived from. ``state_found`` is false when the export's state store
    does not exist: every member then counts as to create, an upper bound.
    ``held`` says which change guards the run would trip (it would send
    nothing, see :mod:`omnisync.engine.guards`).
    """

    export: str = ""
    segment: str = ""
    source: str = ""
    connection: str = ""
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

    @property
    def exceeds_max_profiles(self) -> bool:
        """Whether the run would stop before sending: more members than ``max_profiles``."""
        return self.max_profiles is not None and self.counts.members > self.max_profiles

    @property
    def changes_nothing(self) -> bool:
        return not (self.upserts or self.to_tag or self.to_untag)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON: every field, plus the derived totals."""
        data = asdict(self)
        data["samples"] = {action: list(emails) for action, emails in self.samples.items()}
        data["upserts"] = self.upserts
        data["exceeds_max_profiles"] = self.exceeds_max_profiles
        return data


class _Reasons:
    """Counts and up to :data:`SAMPLE_SIZE` examples per reason, in first-seen order."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._examples: dict[str, list[str]] = {}

    def note(self, reason: str, email: str) -> None:
        """Count one row for ``reason``; ``email`` is masked if kept as an example."""
        self._counts[reason] = self._counts.get(reason, 0) + 1
        examples = self._examples.setdefault(reason, [])
        if len(examples) < SAMPLE_SIZE:
            examples.append(mask_email(email))

    def put(self, reason: str, count: int, examples: Iterable[str]) -> None:
        """Record ``count`` rows for ``reason`` at once (``examples`` already safe to show)."""
        self._counts[reason] = count
        self._examples[reason] = list(examples)[:SAMPLE_SIZE]

    def summaries(self) -> tuple[ReasonCount, ...]:
        """Most frequent first; ties by reason."""
        ordered = sorted(self._counts.items(), key=lambda pair: (-pair[1], pair[0]))
        return tuple(
            ReasonCount(reason, count, tuple(self._examples[reason])) for reason, count in ordered
        )


class PlanTally:
    """Accumulates the mapping outcomes of one staged export's work items.

    Call :meth:`add` once per work item (in any order), :meth:`add_leavers`
    with (at least the first few) leavers for samples, then :meth:`report`.
    Not thread-safe.
    """

    def __init__(self, staged: StagedExport) -> None:
        self._export = staged.export
        self._counts = staged.counts
        self._duplicates_sample = staged.duplicates_sample
        self._source = staged.source_name
        self._with_consent = 0
        #: Work items found invalid: new ones, changed ones, those that needed the tag.
        self.invalid_new = 0
        self.invalid_changed = 0
        self.invalid_tag = 0
        self._invalid = _Reasons()
        self._warnings = _Reasons()
        self._samples: dict[str, list[str]] = {action: [] for action in SAMPLED_ACTIONS}
        if staged.counts.missing_email:
            # No e-mail to mask: the examples are row numbers in the segment.
            rows = (f"row {row}" for row in staged.missing_email_rows)
            self._invalid.put(MISSING_EMAIL, staged.counts.missing_email, rows)

    def add(self, item: WorkItem, outcome: MappingOutcome | None) -> ItemActions:
        """Count ``item``; ``outcome`` is its mapping, ``None`` when it needs none.

        Returns what to send for it (:func:`omnisync.planning.item_actions`).
        """
        invalid = False
        if outcome is not None:
            result = outcome.result
            if isinstance(result, InvalidRow):
                invalid = True
                if item.in_ledger:
                    self.invalid_changed += 1
                else:
                    self.invalid_new += 1
                self.invalid_tag += item.needs_tag
                for reason in result.reasons:
                    self._invalid.note(reason, item.email)
            else:
                if result.consent is not None:
                    self._with_consent += 1
                # Warnings are about what is sent: an invalid row sends nothing.
                for warning in outcome.warnings:
                    self._warnings.note(warning, item.email)
        actions = item_actions(item, valid=not invalid)
        if actions.upsert:
            self._sample("changed" if item.in_ledger else "new", item.email)
        if actions.tag:
            self._sample("tag", item.email)
        return actions

    def tallied(self) -> Tallied:
        """The numbers so far (final once every work item was added)."""
        return tallied(
            self._counts,
            invalid_new=self.invalid_new,
            invalid_changed=self.invalid_changed,
            invalid_tag=self.invalid_tag,
        )

    def add_leavers(self, leavers: Iterable[Leaver]) -> None:
        """Take samples of leavers (their count comes from the staging counts)."""
        for leaver in leavers:
            if len(self._samples["untag"]) >= SAMPLE_SIZE:
                return
            self._sample("untag", leaver.email)

    def report(self, *, state_found: bool = True) -> PlanReport:
        counts = self._counts
        export = self._export
        return PlanReport(
            **asdict(self.tallied()),
            export=export.name,
            segment=export.segment,
            source=self._source,
            connection=export.connection,
            tag_name=export.tag,
            on_leave=export.on_leave,
            counts=counts,
            state_found=state_found,
            held=hold_reasons(export.guards, counts),
            invalid_reasons=self._invalid.summaries(),
            warnings=self._warnings.summaries(),
            with_consent=self._with_consent,
            duplicates_sample=self._duplicates_sample,
            samples={action: tuple(emails) for action, emails in self._samples.items()},
            max_profiles=export.max_profiles,
        )

    def _sample(self, action: str, email: str) -> None:
        sample = self._samples[action]
        if len(sample) < SAMPLE_SIZE:
            sample.append(mask_email(email))


def build_plan_report(
    staged: StagedExport,
    *,
    now: datetime | None = None,
    state_found: bool = True,
) -> PlanReport:
    """Map every work item that needs an upsert and count what the run would do.

    ``now`` (aware) is passed to the mapping, so consent times in the future
    are reported as the run would treat them. ``state_found``: whether the
    export's state store exists (see :class:`PlanReport`).
    """
    tally = PlanTally(staged)
    plan = MappingPlan(staged.export, staged.columns)
    for item in staged.work():
        tally.add(item, plan.map_work(item, now=now))
    tally.add_leavers(staged.leavers())
    return tally.report(state_found=state_found)


def plan_export(
    config: Config,
    export_name: str,
    *,
    ledger_path: Path | None = None,
    store: LedgerStore | None = None,
    now: datetime | None = None,
) -> PlanReport:
    """Stage, diff and map export ``export_name``: what a run would do now.

    The ledger is ``store``'s when given (an open store: SQLite or
    PostgreSQL), else the SQLite file ``ledger_path``, by default the
    config's; not both (see :func:`~omnisync.engine.staging.stage_export`).
    Changes nothing and sends nothing (the ledger is only read; the API key is
    never resolved). Raises what :func:`~omnisync.engine.staging.stage_export`
    raises. Without a state store every member counts as to create (an upper
    bound), and the report says so (``state_found``).
    """
    if store is None and ledger_path is None:
        ledger_path = ledger_path_for(config)
    # An open store exists, even before its first run.
    state_found = store is not None or (ledger_path is not None and ledger_path.is_file())
    with stage_export(config, export_name, ledger_path=ledger_path, store=store) as staged:
        return build_plan_report(staged, now=now, state_found=state_found)
