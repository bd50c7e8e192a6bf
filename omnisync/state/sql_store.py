"""The state store's contract, :class:`LedgerStore`, and the SQL both stores share, written
once in SQLite's ``?`` style (in-flight items, which differ in substance, are in
:mod:`.sqlite` and :mod:`.postgres`).

Per export a store holds **ledger entries** (one per contact Omnisend acknowledged: the
fingerprint delivered and this export's tag on the contact, ``None`` when none, maybe on
while a tags call's answer is not recorded: ``tag_in_doubt``), **batch
intents** (a batch's items, recorded just before it is created), **in-flight batches**
(created, outcome not yet recorded: a run killed mid-way leaves them and intents for the next
run to settle) and the history of **runs**.

Every write is one transaction, so a process killed mid-write leaves the state as it was.
Every method is thread-safe and raises :class:`StateError` for a store that cannot be read or
written. Full e-mail addresses are kept only as ledger and in-flight keys, never in run
records. Timestamps are passed in (``now``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import orjson

from omnisync.fingerprint import NEVER_A_FINGERPRINT
from omnisync.inflight import InflightItem
from omnisync.masking import mask_emails_in
from omnisync.state.store import (
    InflightBatch,
    LedgerEntry,
    RunRecord,
    RunStatus,
    StateError,
    format_timestamp,
    pack_items,
    run_record,
)

_ENTRY_COLUMNS = (
    "SELECT export, email, fingerprint, tag, updated_at, tag_in_doubt FROM ledger_entries"
)
_RUN_COLUMNS = (
    "id, export, trigger, config_revision, started_at, ended_at, status, counts, error, replica"
)

#: A batch Omnisend accepted: its id and the e-mails accepted (``None``: all its items).
AcceptedBatch = tuple[str, Collection[str] | None]


class LedgerStore(ABC):
    """The state store (see the module docstring); a context manager that closes on exit.
    A connection here is sqlite3's or psycopg's: the SQL needs ``execute`` and its cursor."""

    #: Where the store lives, for messages (a file path, or a secret-free DSN description).
    location: str
    #: The SQLite file whose ``ledger_entries`` the engine's diff ATTACHes read-only, or ``None``.
    ledger_file: Path | None = None
    #: The table holding the in-flight batches an export's forgetting clears.
    _inflight_table: str
    #: The in-flight batches as rows of ``(export, batch_id, created_at, items)``,
    #: ``items`` as :func:`pack_items` writes them: a table, or a subquery.
    _inflight_packed: str
    #: ``IN`` over one parameter: a set of e-mails as the JSON text of an array.
    _in_emails: str
    #: Appended to an ``ORDER BY`` of a text key so it sorts by code point.
    _by_code_point: str = ""
    #: Appended to the ``SELECT`` of a row the transaction then rewrites.
    _for_update: str = ""
    #: Who the store's runs are recorded as run by (a fenced store: the lease holder).
    _replica: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what each store supplies ---------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources. Idempotent."""

    def _sql(self, text: str) -> str:  # ``?`` placeholders in this store's style
        return text

    @abstractmethod
    def _reading(self, action: str) -> AbstractContextManager[Any]:
        """The connection, for reads (``action`` names them in errors)."""

    @abstractmethod
    def _writing(self, action: str) -> AbstractContextManager[Any]:
        """One write transaction (``action`` names it in errors); rolled back on any error."""

    def _rows(self, action: str, sql: str, parameters: Sequence[object]) -> list[Any]:
        with self._reading(action) as connection:
            return list(connection.execute(self._sql(sql), parameters).fetchall())

    def _write(self, action: str, sql: str, parameters: Sequence[object]) -> int:
        # One statement as its own transaction; returns the rows it changed.
        with self._writing(action) as connection:
            return max(int(connection.execute(self._sql(sql), parameters).rowcount), 0)

    @abstractmethod
    def _acknowledge(self, connection: Any, export: str, batch: AcceptedBatch, stamp: str) -> int:
        """:meth:`acknowledge_batches` of one batch inside the caller's transaction."""

    # -- ledger ---------------------------------------------------------------------

    def entry(self, export: str, email: str) -> LedgerEntry | None:
        """The ledger entry of ``email`` for ``export``, or ``None``."""
        rows = self._rows(
            "read the ledger", f"{_ENTRY_COLUMNS} WHERE export = ? AND email = ?", (export, email)
        )
        return _entry(rows[0]) if rows else None

    def entries(self, export: str) -> list[LedgerEntry]:
        """Every ledger entry of ``export``, ordered by e-mail."""
        sql = f"{_ENTRY_COLUMNS} WHERE export = ? ORDER BY email{self._by_code_point}"
        return [_entry(row) for row in self._rows("read the ledger", sql, (export,))]

    def count_entries(self, export: str, *, tagged: bool = False) -> int:
        """How many contacts ``export`` has delivered (``tagged``: that carry its tag)."""
        condition = " AND tag IS NOT NULL" if tagged else ""
        sql = f"SELECT count(*) FROM ledger_entries WHERE export = ?{condition}"
        return int(self._rows("read the ledger", sql, (export,))[0][0])

    def recorded_brand(self, export: str) -> str | None:
        """The brand ``export`` last delivered to (:meth:`retarget`), ``None`` if unrecorded."""
        rows = self._rows(
            "read the export's brand", "SELECT brand FROM export_brands WHERE export = ?", (export,)
        )
        return str(rows[0][0]) if rows else None

    def retarget(self, export: str, brand: str, *, now: datetime) -> int:
        """Record that ``export`` delivers to ``brand``; returns the ledger entries forgotten.
        When the recorded brand is another one, the export's ledger, intents and in-flight
        batches are forgotten in the same transaction, so the next diff delivers every member
        to the new brand. An export with no recorded brand (new, or older) keeps its ledger."""
        with self._writing("record the export's brand") as connection:
            row = connection.execute(
                self._sql(f"SELECT brand FROM export_brands WHERE export = ?{self._for_update}"),
                (export,),
            ).fetchone()
            if row is not None and row[0] == brand:
                return 0
            forgotten = 0
            if row is not None:
                # The ledger last: ``forgotten`` counts its entries.
                for table in (self._inflight_table, "batch_intents", "ledger_entries"):
                    cursor = connection.execute(
                        self._sql(f"DELETE FROM {table} WHERE export = ?"), (export,)
                    )
                forgotten = max(int(cursor.rowcount), 0)
            connection.execute(
                self._sql(
                    "INSERT INTO export_brands (export, brand, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (export) DO UPDATE SET brand = excluded.brand, "
                    "updated_at = excluded.updated_at"
                ),
                (export, brand, format_timestamp(now)),
            )
            return forgotten

    # -- in-flight batches ----------------------------------------------------------------

    def record_intent(
        self, export: str, token: str, items: Sequence[InflightItem], *, now: datetime
    ) -> None:
        """Just before a batch is created: remember its items under the provisional ``token``
        (one item per e-mail, a later one winning). An intent left behind by a killed
        process tells the next run these contacts *may* have been sent."""
        self._write(
            "record a batch about to be sent",
            "INSERT INTO batch_intents (export, token, items, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (export, token) DO UPDATE SET "
            "items = excluded.items, created_at = excluded.created_at",
            (export, token, pack_items(items), format_timestamp(now)),
        )

    @abstractmethod
    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        """Omnisend returned ``batch_id`` for intent ``token``: in ONE transaction its items
        go in flight under ``batch_id`` and the intent is removed. A ``batch_id`` already
        in flight keeps one item per e-mail (the newer winning) and its first
        ``created_at``. Returns how many items moved."""

    def intents(self, export: str) -> list[InflightBatch]:
        """The export's intents left behind (``batch_id`` is the token), oldest first, their
        items sorted by e-mail."""
        return self._packed_batches("batch_intents", "token", export, action="read batch intents")

    def inflight_batches(self, export: str) -> list[InflightBatch]:
        """The export's unsettled batches, oldest first, their items sorted by e-mail."""
        return self._packed_batches(
            self._inflight_packed, "batch_id", export, action="read in-flight batches"
        )

    def _packed_batches(
        self, packed: str, key: str, export: str, *, action: str
    ) -> list[InflightBatch]:
        sql = (
            f"SELECT {key}, created_at, CAST(items AS TEXT) FROM {packed} "
            f"WHERE export = ? ORDER BY created_at, {key}{self._by_code_point}"
        )
        batches = []
        for name, created_at, text in self._rows(action, sql, (export,)):
            items = (
                InflightItem(email, fingerprint, bool(then_tag))
                for email, fingerprint, then_tag in orjson.loads(text)
            )
            batches.append(InflightBatch(name, created_at, tuple(sorted(items))))
        return batches

    def release_intent(self, export: str, token: str) -> int:
        """Forget an intent (the batch was refused, or its fate was dealt with)."""
        return self._write(
            "forget a batch intent",
            "DELETE FROM batch_intents WHERE export = ? AND token = ?",
            (export, token),
        )

    def acknowledge_batches(
        self, export: str, batches: Sequence[AcceptedBatch], *, now: datetime
    ) -> int:
        """Omnisend accepted these ``(batch_id, emails)`` (all of a batch's items for ``None``):
        in ONE transaction move them into the ledger with their in-flight fingerprint. An
        existing entry keeps its ``tag`` (only :meth:`mark_tagged` records tags), a new one has
        none; e-mails not in flight for that batch are ignored. Returns the entries written."""
        wanted = [(batch_id, emails) for batch_id, emails in batches if emails is None or emails]
        if not wanted:
            return 0
        stamp = format_timestamp(now)
        with self._writing("record acknowledged contacts") as connection:
            return sum(self._acknowledge(connection, export, batch, stamp) for batch in wanted)

    @abstractmethod
    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        """Forget in-flight items (the whole batch for ``None``) without recording them:
        the next run's diff sends them again. Returns how many items were removed."""

    def mark_tag_in_doubt(
        self, export: str, tag: str, emails: Collection[str], *, adding: bool, now: datetime
    ) -> int:
        """Just before a tags call ``adding`` (else removing) ``tag`` leaves: these entries
        (for a removal, those whose tag is ``tag``) *maybe* carry ``tag`` until
        :meth:`mark_tagged` or :meth:`mark_untagged` records the answer; left in doubt, the
        next diff sends the (idempotent) call again: a leaver's removal, a member's add."""
        stamp = format_timestamp(now)
        sql, parameters = (
            ("tag = ?, tag_in_doubt = TRUE, updated_at = ? WHERE export = ?", (tag, stamp, export))
            if adding
            else (
                "tag_in_doubt = TRUE, updated_at = ? WHERE export = ? AND tag = ?",
                (stamp, export, tag),
            )
        )
        return self._update_entries("record a tags call about to leave", sql, parameters, emails)

    def mark_tagged(self, export: str, tag: str, emails: Collection[str], *, now: datetime) -> int:
        """Omnisend accepted adding ``tag`` to these delivered contacts (no longer in doubt);
        returns entries updated."""
        return self._update_entries(
            "record added tags",
            "tag = ?, tag_in_doubt = FALSE, updated_at = ? WHERE export = ?",
            (tag, format_timestamp(now), export),
            emails,
        )

    def mark_untagged(
        self, export: str, tag: str, emails: Collection[str], *, now: datetime
    ) -> int:
        """Omnisend accepted removing ``tag``: entries whose tag is ``tag`` now have none, in
        no doubt (others are left alone). The entries stay, so a contact who comes back costs
        only a tag call and never gets a consent status twice."""
        return self._update_entries(
            "record removed tags",
            "tag = NULL, tag_in_doubt = FALSE, updated_at = ? WHERE export = ? AND tag = ?",
            (format_timestamp(now), export, tag),
            emails,
        )

    def mark_for_resend(
        self, export: str, emails: Collection[str], *, now: datetime, keep_tag: bool = False
    ) -> int:
        """Make the next run re-send and re-tag exactly these delivered contacts (``drift
        --repair``); returns how many entries were marked. Their entries get the fingerprint
        :data:`~omnisync.fingerprint.NEVER_A_FINGERPRINT` (the diff sees them changed) and
        no tag (``keep_tag``: the tag recorded, and its doubt, for contacts whose fields alone
        are in doubt); they stay, so no consent status is ever sent to them again. E-mails without
        an entry are ignored."""
        return self._update_entries(
            "mark contacts for re-sending",
            f"fingerprint = ?,{'' if keep_tag else ' tag = NULL, tag_in_doubt = FALSE,'} "
            "updated_at = ? WHERE export = ?",
            (NEVER_A_FINGERPRINT, format_timestamp(now), export),
            emails,
        )

    def _update_entries(
        self, action: str, sql: str, parameters: tuple[object, ...], emails: Collection[str]
    ) -> int:
        if not emails:
            return 0
        among, listed = self._among(emails)
        return self._write(
            action, f"UPDATE ledger_entries SET {sql}{among}", (*parameters, *listed)
        )

    def _among(self, emails: Collection[str]) -> tuple[str, tuple[str]]:
        """`` AND email IN …`` and its one parameter: the set of e-mails as one JSON array."""
        return f" AND email {self._in_emails}", (orjson.dumps(list(emails)).decode(),)

    # -- run history --------------------------------------------------------------------

    def start_run(
        self, export: str, *, trigger: str, config_revision: str, now: datetime
    ) -> RunRecord:
        """Record a run of ``export`` as ``running`` and return it. Runs of the export still
        ``running`` belong to a process that died (callers hold the export's run lock): they
        become ``interrupted`` in the same transaction."""
        stamp = format_timestamp(now)
        note = f"the process running it stopped before recording a result (noticed at {stamp})"
        with self._writing("record a run") as connection:
            connection.execute(
                self._sql(
                    "UPDATE runs SET status = 'interrupted', error = ? "
                    "WHERE export = ? AND status = 'running'"
                ),
                (note, export),
            )
            row = connection.execute(
                self._sql(
                    "INSERT INTO runs (export, trigger, config_revision, started_at, status, "
                    f"replica) VALUES (?, ?, ?, ?, 'running', ?) RETURNING {_RUN_COLUMNS}"
                ),
                (export, trigger, config_revision, stamp, self._replica),
            ).fetchone()
        return run_record(row)

    def finish_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        counts: Mapping[str, int],
        error: str | None,
        now: datetime,
    ) -> RunRecord:
        """Close a run with its final status, counts and error (e-mails in it masked)."""
        if error is not None:
            error = mask_emails_in(error)
        counts_text = json.dumps(dict(counts), sort_keys=True)
        with self._writing("record a run's result") as connection:
            row = connection.execute(
                self._sql(
                    "UPDATE runs SET status = ?, counts = ?, error = ?, ended_at = ? "
                    f"WHERE id = ? RETURNING {_RUN_COLUMNS}"
                ),
                (status, counts_text, error, format_timestamp(now), run_id),
            ).fetchone()
        if row is None:
            raise StateError(f"state database {self.location}: no run with id {run_id}")
        return run_record(row)

    def run(self, run_id: int) -> RunRecord | None:
        """One run by id."""
        rows = self._rows(
            "read run history", f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        )
        return run_record(rows[0]) if rows else None

    def runs(self, export: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first, of one export or of all."""
        where, parameters = (
            ("", (limit,)) if export is None else ("WHERE export = ? ", (export, limit))
        )
        sql = f"SELECT {_RUN_COLUMNS} FROM runs {where}ORDER BY id DESC LIMIT ?"
        return [run_record(row) for row in self._rows("read run history", sql, parameters)]


def _entry(row: Sequence[Any]) -> LedgerEntry:
    """A ledger entry from the columns of ``_ENTRY_COLUMNS`` (SQLite's doubt is 0 or 1)."""
    export, email, fingerprint, tag, updated_at, in_doubt = row
    return LedgerEntry(export, email, fingerprint, tag, updated_at, bool(in_doubt))
