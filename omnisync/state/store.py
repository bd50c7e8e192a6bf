"""The state store's contract: the ledger, in-flight batches and run history.

One interface, :class:`LedgerStore`, so a PostgreSQL store can follow the
SQLite one and pass the same contract tests (``tests/state/contract.py``).

What a store holds, per export:

- **ledger entries** — one per contact the export has delivered (Omnisend
  acknowledged the upsert): the fingerprint of what was delivered and the tag
  this export has on that contact in Omnisend (``None`` when none);
- **batch intents** — a batch's items, recorded just before the batch is
  created (Omnisend has not answered yet, so there is no id);
- **in-flight batches** — batches Omnisend returned an id for but whose outcome
  is not yet recorded; a run killed mid-way leaves them (and intents) for the
  next run to settle;
- **runs** — the history of export runs.

Every write is one transaction: a process killed in the middle of a write
leaves the state as it was before that write. Every method is safe to call
from several threads at once. Full e-mail addresses are stored only as ledger
and in-flight keys; never in run records (``error`` is masked on the way in).
Timestamps are passed in (``now``) so callers decide what time it is.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from omnisync.errors import OmnisyncError
from omnisync.inflight import InflightItem
from omnisync.masking import mask_email

RunStatus = Literal["running", "succeeded", "partial", "failed", "interrupted", "held"]
FINAL_STATUSES: frozenset[str] = frozenset(
    {"succeeded", "partial", "failed", "interrupted", "held"}
)

#: Anything that looks like an e-mail address, for masking free text.
_EMAIL_PATTERN = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+")


class StateError(OmnisyncError):
    """The state store cannot be used; the message says which file and why."""


class StateSchemaTooNew(StateError):
    """The database was written by a newer omnisync; it is refused and left untouched."""


@dataclass(frozen=True)
class LedgerEntry:
    """One contact an export has delivered."""

    export: str
    email: str
    fingerprint: int
    tag: str | None
    updated_at: str


@dataclass(frozen=True)
class InflightBatch:
    """A batch Omnisend accepted for processing whose outcome is not yet recorded."""

    batch_id: str
    created_at: str
    items: tuple[InflightItem, ...]

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(item.email for item in self.items)


@dataclass(frozen=True)
class RunRecord:
    """One export run as history shows it. ``counts`` maps outcome names to numbers."""

    id: int
    export: str
    trigger: str
    config_revision: str
    started_at: str
    ended_at: str | None
    status: RunStatus
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    #: which replica ran it (``hostname:pid`` or ``daemon.replica_id``); ``None`` before v6
    replica: str | None = None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-01-01T00:00:00.000Z``; sorts as text."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def interrupted_note(stamp: str) -> str:
    """The error a run left ``running`` gets when the next run of its export starts."""
    return f"the process running it stopped before recording a result (noticed at {stamp})"


def mask_free_text(text: str) -> str:
    """``text`` with every e-mail-looking substring masked (for errors kept in history)."""
    return _EMAIL_PATTERN.sub(lambda match: mask_email(match.group(0)), text)


class LedgerStore(ABC):
    """The state store. Implementations: :class:`omnisync.state.sqlite.SqliteLedgerStore`,
    :class:`omnisync.state.postgres.PostgresLedgerStore` (their shared SQL:
    :class:`omnisync.state.sql_store.SqlLedgerStore`).

    Usable as a context manager (closes on exit). Methods raise
    :class:`StateError` for a store that cannot be read or written.
    """

    #: Where the store lives, for messages (a file path, or a secret-free DSN description).
    location: str

    #: The SQLite file holding ``ledger_entries`` that the export engine's diff
    #: ATTACHes read-only; ``None`` for a store that is not a SQLite file.
    ledger_file: Path | None = None

    # -- ledger ---------------------------------------------------------------

    @abstractmethod
    def entry(self, export: str, email: str) -> LedgerEntry | None:
        """The ledger entry of ``email`` for ``export``, or ``None``."""

    @abstractmethod
    def entries(self, export: str) -> list[LedgerEntry]:
        """Every ledger entry of ``export``, ordered by e-mail (for inspection and tests)."""

    @abstractmethod
    def count_entries(self, export: str, *, tagged: bool | None = None) -> int:
        """How many contacts ``export`` has delivered; ``tagged`` filters on a tag being on."""

    @abstractmethod
    def record_delivered(
        self, export: str, entries: Iterable[tuple[str, int, str | None]], *, now: datetime
    ) -> int:
        """Write ``(email, fingerprint, tag)`` entries, replacing existing ones, in ONE transaction.

        For imports and repairs; runs use :meth:`acknowledge`. Returns how many were written.
        """

    @abstractmethod
    def forget_export(self, export: str) -> int:
        """Delete the export's ledger entries, intents and in-flight batches; returns entries."""

    @abstractmethod
    def retarget(self, export: str, brand: str, *, now: datetime) -> int:
        """Record that ``export`` delivers to ``brand``; returns the ledger entries forgotten.

        In ONE transaction: when the export's recorded brand is another one,
        its ledger entries, intents and in-flight batches are forgotten (they
        describe the old brand's contacts), so the next diff delivers every
        member to the new brand. An export with no recorded brand (a new one,
        or a state store from before brands were recorded) keeps its ledger.
        """

    # -- in-flight batches ------------------------------------------------------

    @abstractmethod
    def record_intent(
        self,
        export: str,
        token: str,
        items: Sequence[InflightItem],
        *,
        now: datetime,
    ) -> None:
        """Just before a batch is created: remember its items under the provisional ``token``.

        One item per e-mail is kept, a later item for an e-mail winning.

        A process killed before :meth:`record_created` leaves the intent behind,
        so the next run knows these contacts *may* have been sent.
        """

    @abstractmethod
    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        """Omnisend returned ``batch_id`` for intent ``token``: its items become in flight.

        One transaction: the intent's items are recorded in flight under
        ``batch_id`` and the intent is removed. A ``batch_id`` already in flight
        keeps one item per e-mail (the newer winning) and its first
        ``created_at``. Returns how many items moved.
        """

    @abstractmethod
    def intents(self, export: str) -> list[InflightBatch]:
        """The export's intents left behind (``batch_id`` is the token), oldest first."""

    @abstractmethod
    def release_intent(self, export: str, token: str) -> int:
        """Forget an intent (the batch was refused, or its fate was dealt with)."""

    @abstractmethod
    def inflight_batches(self, export: str) -> list[InflightBatch]:
        """The export's unsettled batches, oldest first."""

    def acknowledge(
        self, export: str, batch_id: str, emails: Collection[str] | None, *, now: datetime
    ) -> int:
        """Omnisend accepted these items of ``batch_id``: move them into the ledger.

        In one transaction, each in-flight item of ``batch_id`` whose e-mail is in
        ``emails`` (every item of it when ``emails`` is ``None``) becomes (or
        updates) a ledger entry with the in-flight fingerprint; an existing
        entry keeps its ``tag`` (tags are recorded only by :meth:`mark_tagged`),
        a new one has none. Those in-flight items are removed. E-mails not in
        flight for that batch are ignored. Returns how many entries were written.
        """
        return self.acknowledge_batches(export, [(batch_id, emails)], now=now)

    @abstractmethod
    def acknowledge_batches(
        self,
        export: str,
        batches: Sequence[tuple[str, Collection[str] | None]],
        *,
        now: datetime,
    ) -> int:
        """:meth:`acknowledge` for several batches — ``(batch_id, emails)`` each — in ONE
        transaction (a poll round's acknowledgements). Returns the entries written."""

    @abstractmethod
    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        """Forget in-flight items without recording them (failed, or never processed).

        ``emails=None`` releases the whole batch. The contacts stay pending: the
        next run's diff sends them again. Returns how many items were removed.
        """

    @abstractmethod
    def mark_tagged(self, export: str, tag: str, emails: Collection[str], *, now: datetime) -> int:
        """Omnisend accepted adding ``tag`` to these delivered contacts; returns entries updated."""

    @abstractmethod
    def mark_untagged(
        self, export: str, tag: str, emails: Collection[str], *, now: datetime
    ) -> int:
        """Omnisend accepted removing ``tag``: entries whose tag is ``tag`` now have none.

        Entries carrying another tag (already re-tagged) are left alone. The
        entries themselves stay, so a contact who comes back costs only a tag
        call and is still known as delivered (no consent status is sent twice).
        """

    @abstractmethod
    def mark_for_resend(self, export: str, emails: Collection[str], *, now: datetime) -> int:
        """Make the next run re-send and re-tag these delivered contacts, exactly those.

        In ONE transaction, each entry of ``export`` whose e-mail is in
        ``emails`` gets the fingerprint
        :data:`~omnisync.fingerprint.NEVER_A_FINGERPRINT` (no staged row matches
        it, so the diff sees the contact as changed) and no tag (so it needs
        the export's tag again). The entries stay: the contacts are still
        known as delivered, so no consent status is ever sent to them again.
        E-mails without an entry are ignored. For ``omnisync drift --repair``;
        returns how many entries were marked.
        """

    # -- run history --------------------------------------------------------------

    @abstractmethod
    def start_run(
        self,
        export: str,
        *,
        trigger: str,
        config_revision: str,
        now: datetime,
        replica: str | None = None,
    ) -> RunRecord:
        """Record a run of ``export`` as ``running`` (by ``replica``) and return it.

        Earlier runs of the same export still ``running`` belong to a process
        that died (callers hold the export's run lock), so they become
        ``interrupted`` first, in the same transaction.
        """

    @abstractmethod
    def finish_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        counts: Mapping[str, int],
        error: str | None,
        now: datetime,
    ) -> RunRecord:
        """Close a run with its final status, counts and error (masked before it is stored)."""

    @abstractmethod
    def run(self, run_id: int) -> RunRecord | None:
        """One run by id."""

    @abstractmethod
    def runs(self, export: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first, of one export or of all."""

    # -- lifecycle ------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
