"""What an export run reports: counts, result, and the progress protocol.

Plain data, no I/O. :class:`RunCounts` is also what history stores (as a
JSON object, :meth:`RunCounts.as_dict`) and what the daemon turns into
metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Literal, Protocol

from omnisync.planning import StageCounts


@dataclass(frozen=True)
class FailureSample:
    """One refused item or call, for the run summary: what (masked) and Omnisend's reason."""

    subject: str
    reason: str


@dataclass(frozen=True)
class Tallied:
    """The numbers of a plan or a run, in the one vocabulary every output uses.

    ``rows`` read = ``members`` + ``invalid`` (never sent: no e-mail, or a row
    that does not map) + ``duplicates`` (a later row for an e-mail already
    seen). Every member is exactly one of ``to_create`` (not delivered yet),
    ``to_update`` (delivered, changed since) or ``unchanged`` (its contact data
    is as delivered): ``to_create + to_update + unchanged == members``.
    Membership as a tag: ``to_tag`` members get the export's tag (of which
    ``retag`` also lose an old one, after a tag rename); ``leaving`` tagged
    contacts left the segment, and ``to_untag`` of them lose the tag (all of
    them with ``on_leave: untag``, none with ``keep``).
    """

    rows: int = 0
    members: int = 0
    invalid: int = 0
    duplicates: int = 0
    to_create: int = 0
    to_update: int = 0
    unchanged: int = 0
    to_tag: int = 0
    retag: int = 0
    leaving: int = 0
    to_untag: int = 0

    @property
    def upserts(self) -> int:
        return self.to_create + self.to_update


def tallied(
    counts: StageCounts, *, invalid_new: int = 0, invalid_changed: int = 0, invalid_tag: int = 0
) -> Tallied:
    """The vocabulary's numbers from the staging ``counts`` and the work items found
    invalid so far: new ones, changed ones, and those of them that needed the tag."""
    invalid = invalid_new + invalid_changed
    return Tallied(
        rows=counts.rows,
        members=counts.members - invalid,
        invalid=counts.missing_email + invalid,
        duplicates=counts.duplicates,
        to_create=counts.new - invalid_new,
        to_update=counts.changed - invalid_changed,
        unchanged=counts.unchanged + counts.tag_only,
        to_tag=counts.needs_tag - invalid_tag,
        retag=counts.retag,
        leaving=counts.leaving + counts.kept,
        to_untag=counts.leaving,
    )


RunOutcome = Literal["succeeded", "partial", "failed", "held"]
Phase = Literal["checking", "settling", "staging", "applying", "finished"]


@dataclass(frozen=True)
class RunCounts(Tallied):
    """The numbers of one run.

    What the run found, in the vocabulary ``plan``, history, ``/status`` and
    the metrics share (:class:`Tallied`). Invalid rows are found while the
    work is mapped, so until the run has read all its work these are what it
    knows so far.
    From delivery: ``upserted`` (acknowledged by Omnisend), ``upsert_failed``
    (refused), ``tagged``, ``untagged`` (tags calls accepted, in contacts),
    ``tag_failed``; ``settled`` — upserts of an earlier, killed run found
    acknowledged and recorded at the start of this one; ``batches`` created;
    ``requests`` sent on the connection during the run (all exports sharing
    it), ``rate_limited`` 429s met. ``pending`` counts the operations
    (upserts, tag changes) left for the next run, failures included.
    ``upserts_planned`` and ``tag_changes_planned`` grow while the work is
    read; they are final once the run has finished.
    """

    upserts_planned: int = 0
    tag_changes_planned: int = 0
    upserted: int = 0
    upsert_failed: int = 0
    tagged: int = 0
    untagged: int = 0
    tag_failed: int = 0
    settled: int = 0
    pending: int = 0
    batches: int = 0
    requests: int = 0
    rate_limited: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, int]) -> RunCounts:
        """Counts read back from history; unknown names are ignored, missing ones are 0."""
        known = {item.name for item in fields(cls)}
        return cls(**{name: int(value) for name, value in values.items() if name in known})


@dataclass(frozen=True)
class RunResult:
    """How one run ended.

    ``status``: ``succeeded`` — everything planned was acknowledged;
    ``partial`` — some operations failed or were not done (a stop, a refused
    item, a failed tags call): they stay pending and the next run retries
    them; ``failed`` — the run could not proceed (permissions, secret, source
    error, 401/403/410, ``max_profiles``, state store); ``error`` says why.
    ``run_id`` is the history record's id (``None`` only when even history
    could not be written).
    """

    export: str
    status: RunOutcome
    counts: RunCounts
    run_id: int | None = None
    trigger: str = ""
    config_revision: str = ""
    started_at: str = ""
    ended_at: str = ""
    error: str | None = None
    stopped: bool = False
    invalid_reasons: Mapping[str, int] = field(default_factory=dict)
    invalid_samples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    warnings: Mapping[str, int] = field(default_factory=dict)
    duplicates_sample: tuple[str, ...] = ()
    failure_samples: tuple[FailureSample, ...] = ()


class RunProgress(Protocol):
    """Receives a run's progress (the CLI's progress bar, the daemon's metrics).

    Called from several threads (the delivery pipeline's), never at the same
    time for one run; implementations must be cheap.
    """

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        """The run entered ``phase``; ``counts`` are the numbers so far."""

    def counts_updated(self, counts: RunCounts) -> None:
        """Some count changed (at most once a batch or tags call)."""


class NullProgress:
    """A :class:`RunProgress` that ignores everything."""

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        pass

    def counts_updated(self, counts: RunCounts) -> None:
        pass
