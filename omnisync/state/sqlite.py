"""The SQLite state store: the :class:`LedgerStore` contract in SQL.

``<daemon.state_dir>/omnisync.sqlite3`` by default; the file itself (WAL,
locking, migrations, transactions) is :class:`~omnisync.state.database.SqliteDatabase`.
Sets of e-mails travel as one JSON parameter and are unpacked by SQLite
(``json_each``), so a batch's worth of work is one statement; a batch's
intent and in-flight items are one row each (:mod:`omnisync.state.packed`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import cast

import orjson

from omnisync.fingerprint import NEVER_A_FINGERPRINT
from omnisync.inflight import InflightItem
from omnisync.state import packed
from omnisync.state.database import SqliteDatabase
from omnisync.state.locks import make_private_directory
from omnisync.state.store import (
    FINAL_STATUSES,
    InflightBatch,
    LedgerEntry,
    LedgerStore,
    RunRecord,
    RunStatus,
    StateError,
    format_timestamp,
    interrupted_note,
    mask_free_text,
)

#: The state database's file name inside ``daemon.state_dir``.
STATE_FILENAME = "omnisync.sqlite3"

#: In-list of e-mails passed as one JSON parameter (one statement, any length).
_EMAILS = "(SELECT value FROM json_each(?))"


def _emails_json(emails: Collection[str]) -> str:
    """E-mails as one JSON array parameter (for ``json_each``)."""
    return orjson.dumps(list(emails)).decode()


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the state database of ``state_dir`` lives."""
    return Path(state_dir) / STATE_FILENAME


def open_state_store(state_dir: str | os.PathLike[str]) -> SqliteLedgerStore:
    """Open (creating as needed, mode 0700) the state store under ``state_dir``."""
    directory = Path(state_dir)
    try:
        make_private_directory(directory)
    except OSError as error:
        raise StateError(
            f"cannot create state directory {directory}: {error.strerror or error}"
        ) from None
    return SqliteLedgerStore(state_path(directory))


class SqliteLedgerStore(LedgerStore):
    """:class:`LedgerStore` on one SQLite file. Migrates on open; refuses a newer schema."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.ledger_file = self.path
        self._database = SqliteDatabase(self.path, busy_timeout=busy_timeout)
        self._transaction = self._database.transaction
        self._reading = self._database.reading

    @property
    def schema_version(self) -> int:
        return self._database.schema_version

    def close(self) -> None:
        self._database.close()

    def __repr__(self) -> str:
        return f"SqliteLedgerStore({self.location!r})"

    # -- ledger ---------------------------------------------------------------------

    def entry(self, export: str, email: str) -> LedgerEntry | None:
        with self._reading("read the ledger") as connection:
            row = connection.execute(
                "SELECT export, email, fingerprint, tag, updated_at FROM ledger_entries "
                "WHERE export = ? AND email = ?",
                (export, email),
            ).fetchone()
        return None if row is None else LedgerEntry(*row)

    def entries(self, export: str) -> list[LedgerEntry]:
        with self._reading("read the ledger") as connection:
            rows = connection.execute(
                "SELECT export, email, fingerprint, tag, updated_at FROM ledger_entries "
                "WHERE export = ? ORDER BY email",
                (export,),
            ).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def count_entries(self, export: str, *, tagged: bool | None = None) -> int:
        condition = {None: "", True: " AND tag IS NOT NULL", False: " AND tag IS NULL"}[tagged]
        with self._reading("read the ledger") as connection:
            row = connection.execute(
                f"SELECT count(*) FROM ledger_entries WHERE export = ?{condition}", (export,)
            ).fetchone()
        return int(row[0])

    def record_delivered(
        self, export: str, entries: Iterable[tuple[str, int, str | None]], *, now: datetime
    ) -> int:
        stamp = format_timestamp(now)
        with self._transaction("write the ledger") as connection:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR REPLACE INTO ledger_entries "
                "(export, email, fingerprint, tag, updated_at) VALUES (?, ?, ?, ?, ?)",
                ((export, email, fingerprint, tag, stamp) for email, fingerprint, tag in entries),
            )
            return connection.total_changes - before

    def forget_export(self, export: str) -> int:
        with self._transaction("forget an export") as connection:
            return _forget(connection, export)

    def retarget(self, export: str, brand: str, *, now: datetime) -> int:
        with self._transaction("record the export's brand") as connection:
            row = connection.execute(
                "SELECT brand FROM export_brands WHERE export = ?", (export,)
            ).fetchone()
            forgotten = _forget(connection, export) if row is not None and row[0] != brand else 0
            if row is None or row[0] != brand:
                connection.execute(
                    "INSERT OR REPLACE INTO export_brands (export, brand, updated_at) "
                    "VALUES (?, ?, ?)",
                    (export, brand, format_timestamp(now)),
                )
            return forgotten

    # -- in-flight batches ----------------------------------------------------------------

    def record_inflight(
        self, export: str, batch_id: str, items: Sequence[InflightItem], *, now: datetime
    ) -> None:
        text = packed.pack(items)
        with self._transaction("record an in-flight batch") as connection:
            packed.put_inflight(connection, export, batch_id, text, format_timestamp(now))

    def record_intent(
        self,
        export: str,
        token: str,
        items: Sequence[InflightItem],
        *,
        now: datetime,
    ) -> None:
        self._database.write(
            "record a batch about to be sent",
            "INSERT OR REPLACE INTO batch_intents (export, token, items, created_at) "
            "VALUES (?, ?, ?, ?)",
            (export, token, packed.pack(items), format_timestamp(now)),
        )

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        with self._transaction("record a created batch") as connection:
            return packed.create(connection, export, token, batch_id, format_timestamp(now))

    def intents(self, export: str) -> list[InflightBatch]:
        with self._reading("read batch intents") as connection:
            return packed.intents(connection, export)

    def release_intent(self, export: str, token: str) -> int:
        with self._transaction("forget a batch intent") as connection:
            return int(
                connection.execute(
                    "DELETE FROM batch_intents WHERE export = ? AND token = ?", (export, token)
                ).rowcount
            )

    def inflight_batches(self, export: str) -> list[InflightBatch]:
        with self._reading("read in-flight batches") as connection:
            return packed.inflight_batches(connection, export)

    def acknowledge_batches(
        self,
        export: str,
        batches: Sequence[tuple[str, Collection[str] | None]],
        *,
        now: datetime,
    ) -> int:
        wanted = [(batch_id, emails) for batch_id, emails in batches if emails is None or emails]
        if not wanted:
            return 0
        stamp = format_timestamp(now)
        # One commit for the round, and the ledger pages the batches share written once.
        with self._transaction("record acknowledged contacts") as connection:
            return sum(
                packed.acknowledge(connection, export, batch_id, emails, stamp)
                for batch_id, emails in wanted
            )

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        with self._transaction("release in-flight contacts") as connection:
            return packed.release(connection, export, batch_id, emails)

    def mark_tagged(self, export: str, tag: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        return self._database.write(
            "record added tags",
            "UPDATE ledger_entries SET tag = ?, updated_at = ? "
            f"WHERE export = ? AND email IN {_EMAILS}",
            (tag, format_timestamp(now), export, _emails_json(emails)),
        )

    def mark_untagged(
        self, export: str, tag: str, emails: Collection[str], *, now: datetime
    ) -> int:
        if not emails:
            return 0
        return self._database.write(
            "record removed tags",
            "UPDATE ledger_entries SET tag = NULL, updated_at = ? "
            f"WHERE export = ? AND tag = ? AND email IN {_EMAILS}",
            (format_timestamp(now), export, tag, _emails_json(emails)),
        )

    def mark_for_resend(self, export: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        return self._database.write(
            "mark contacts for re-sending",
            "UPDATE ledger_entries SET fingerprint = ?, tag = NULL, updated_at = ? "
            f"WHERE export = ? AND email IN {_EMAILS}",
            (NEVER_A_FINGERPRINT, format_timestamp(now), export, _emails_json(emails)),
        )

    # -- run history --------------------------------------------------------------------

    def start_run(
        self,
        export: str,
        *,
        trigger: str,
        config_revision: str,
        now: datetime,
        replica: str | None = None,
    ) -> RunRecord:
        stamp = format_timestamp(now)
        with self._transaction("record a run") as connection:
            connection.execute(
                "UPDATE runs SET status = 'interrupted', error = ? "
                "WHERE export = ? AND status = 'running'",
                (interrupted_note(stamp), export),
            )
            cursor = connection.execute(
                "INSERT INTO runs (export, trigger, config_revision, started_at, status, replica) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (export, trigger, config_revision, stamp, replica),
            )
            run_id = cursor.lastrowid
        assert run_id is not None
        return RunRecord(
            run_id, export, trigger, config_revision, stamp, None, "running", replica=replica
        )

    def finish_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        counts: Mapping[str, int],
        error: str | None,
        now: datetime,
    ) -> RunRecord:
        if status not in FINAL_STATUSES:
            raise ValueError(f"a finished run cannot be {status!r}")
        masked = None if error is None else mask_free_text(error)
        with self._transaction("record a run's result") as connection:
            updated = connection.execute(
                "UPDATE runs SET status = ?, counts = ?, error = ?, ended_at = ? WHERE id = ?",
                (
                    status,
                    json.dumps(dict(counts), sort_keys=True),
                    masked,
                    format_timestamp(now),
                    run_id,
                ),
            ).rowcount
            if not updated:
                raise StateError(f"state database {self.path}: no run with id {run_id}")
            row = connection.execute(f"{_RUN_COLUMNS} WHERE id = ?", (run_id,)).fetchone()
        return _run_record(row)

    def run(self, run_id: int) -> RunRecord | None:
        with self._reading("read run history") as connection:
            row = connection.execute(f"{_RUN_COLUMNS} WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run_record(row)

    def runs(self, export: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._reading("read run history") as connection:
            if export is None:
                rows = connection.execute(
                    f"{_RUN_COLUMNS} ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = connection.execute(
                    f"{_RUN_COLUMNS} WHERE export = ? ORDER BY id DESC LIMIT ?", (export, limit)
                ).fetchall()
        return [_run_record(row) for row in rows]


_RUN_COLUMNS = (
    "SELECT id, export, trigger, config_revision, started_at, ended_at, status, counts, error, "
    "replica FROM runs"
)


def _run_record(row: tuple[object, ...]) -> RunRecord:
    run_id, export, trigger, revision, started_at, ended_at, status, counts, error, replica = row
    return RunRecord(
        id=cast(int, run_id),
        export=cast(str, export),
        trigger=cast(str, trigger),
        config_revision=cast(str, revision),
        started_at=cast(str, started_at),
        ended_at=cast("str | None", ended_at),
        status=cast(RunStatus, status),
        counts=json.loads(cast(str, counts)),
        error=cast("str | None", error),
        replica=cast("str | None", replica),
    )


def _forget(connection: sqlite3.Connection, export: str) -> int:
    """Delete the export's ledger entries, intents and in-flight batches; returns entries."""
    connection.execute("DELETE FROM inflight_packed WHERE export = ?", (export,))
    connection.execute("DELETE FROM batch_intents WHERE export = ?", (export,))
    return int(
        connection.execute("DELETE FROM ledger_entries WHERE export = ?", (export,)).rowcount
    )
