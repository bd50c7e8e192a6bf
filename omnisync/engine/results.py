"""What an export run reports: counts, result, failures and the progress protocol. Plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Literal, Protocol

from omnisync.masking import mask_emails_in

#: How many masked examples a plan or a run keeps per sample.
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class ExportFailure:
    """An export that could not be planned or explained, and why (a message safe to print)."""

    export: str
    message: str

    def __post_init__(self) -> None:
        # Printed in every format; an address that reached an error is masked, as in history.
        object.__setattr__(self, "message", mask_emails_in(self.message))


@dataclass(frozen=True)
class FailureSample:
    """One failed item or call (refused, or never answered in time), for the run summary:
    what (masked) and the reason."""

    subject: str
    reason: str


@dataclass(frozen=True)
class ReasonCount:
    """How many rows share one reason, with a few masked examples (or row numbers)."""

    reason: str
    count: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tallied:
    """The numbers of a plan or a run, in the one vocabulary every output uses.

    ``rows`` = ``members`` + ``invalid`` (never sent: no e-mail, or a row that
    does not map) + ``duplicates`` (a later row of an e-mail already seen);
    ``members`` = ``to_create`` (not delivered yet) + ``to_update`` (changed
    since delivered) + ``unchanged``. ``to_tag`` members get the export's tag
    (``retag`` of them also lose an old one, after a tag rename); ``leaving``
    tagged contacts left the segment, ``to_untag`` of them lose the tag (all
    with ``on_leave: untag``, none with ``keep``).
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


RunOutcome = Literal["succeeded", "partial", "failed", "held"]
Phase = Literal["checking", "settling", "staging", "applying", "finished"]


@dataclass(frozen=True)
class RunCounts(Tallied):
    """The numbers of one run (what history stores, :meth:`as_dict`, and the metrics).

    The :class:`Tallied` numbers (final once the run has read all its work),
    then delivery's: ``upserted`` (acknowledged), ``upsert_failed`` (refused),
    ``tagged``, ``untagged``, ``tag_failed``; ``settled``: upserts of a killed
    run found acknowledged at the start; ``batches`` created; ``requests`` sent
    on the connection during the run (by every export sharing it),
    ``rate_limited`` 429s met; ``pending``: operations left for the next run,
    failures included.
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
    """How one run ended: ``succeeded`` (everything planned was acknowledged),
    ``partial`` (operations failed or were not done: the next run retries them),
    ``held`` (a change guard) or ``failed`` (the run could not proceed); ``error``
    says why. ``run_id``: the history record's, ``None`` only when even history
    could not be written.
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
    full: bool = False
    invalid_reasons: tuple[ReasonCount, ...] = ()
    warnings: tuple[ReasonCount, ...] = ()
    duplicates_sample: tuple[str, ...] = ()
    failure_samples: tuple[FailureSample, ...] = ()


class RunProgress(Protocol):
    """Receives a run's progress; called from several threads, never at the same
    time for one run. Implementations must be cheap."""

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        """The run entered ``phase``; ``counts`` are the numbers so far."""

    def counts_updated(self, counts: RunCounts) -> None:
        """Some count changed (at most once a batch or tags call)."""
