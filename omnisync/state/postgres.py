"""The PostgreSQL state store: the :class:`LedgerStore` contract on a shared database.

For several replicas sharing one state (issue 17). The connection, schema and
migrations are :class:`~omnisync.state.postgres_database.PostgresDatabase`;
this module is the contract in SQL. Sets of e-mails travel as one ``text[]``
parameter, so a batch's worth of work is one statement; in-flight batches are
one row per item (``inflight_batches``), intents one row per batch (a JSON
array, recorded in the batch's order). Text keys use the ``"C"`` collation, so
e-mails sort by code point as in the SQLite store and in Python.

There is no SQLite file to ATTACH: :attr:`ledger_file` is ``None``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import cast

from omnisync.fingerprint import NEVER_A_FINGERPRINT
from omnisync.inflight import InflightItem
from omnisync.state import packed, postgres_batches, postgres_runs
from omnisync.state.fencing import Fence, check_fence
from omnisync.state.postgres_database import PostgresConnection, PostgresDatabase
from omnisync.state.store import (
    FINAL_STATUSES,
    InflightBatch,
    LedgerEntry,
    LedgerStore,
    RunRecord,
    RunStatus,
    StateError,
    format_timestamp,
)

_ENTRY_COLUMNS = "SELECT export, email, fingerprint, tag, updated_at FROM ledger_entries"
_UPSERT_MOVED = (
    "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
    "SELECT %(export)s, email, fingerprint, NULL, %(stamp)s FROM moved "
    "ON CONFLICT (export, email) DO UPDATE SET "
    "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at"
)


class PostgresLedgerStore(LedgerStore):
    """:class:`LedgerStore` on a PostgreSQL database. Migrates on open; refuses a newer schema.

    ``dsn`` is a libpq connection string or URI; the tables live in the first
    schema of its ``search_path``. Messages name the store without its password.
    """

    ledger_file = None

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        self._database = PostgresDatabase(dsn, connect_timeout=connect_timeout)
        self.location = self._database.location
        self._transaction = self._database.transaction
        self._fence: Fence | None = None
        self._owner = True

    def fenced(self, fence: Fence) -> PostgresLedgerStore:
        """This store (same connection) whose every write first checks ``fence``.

        Each write transaction starts by share-locking the brand's lease row
        and raises :class:`LeaseLost` (writing nothing) unless ``fence.holder``
        still holds it with ``fence.token``: once another replica has taken
        the brand over, a paused or partitioned one cannot write a thing,
        however late it resumes. Closing the copy leaves the store open.
        """
        copy = object.__new__(PostgresLedgerStore)
        copy.__dict__.update(self.__dict__)
        copy._fence = fence
        copy._owner = False
        return copy

    @contextmanager
    def _writing(self, action: str) -> Iterator[PostgresConnection]:
        with self._transaction(action) as connection:
            if self._fence is not None:
                check_fence(connection, self._fence)
            yield connection

    @property
    def schema_version(self) -> int:
        return self._database.schema_version

    def close(self) -> None:
        if self._owner:
            self._database.close()

    def __repr__(self) -> str:
        return f"PostgresLedgerStore({self.location!r})"

    # -- ledger ---------------------------------------------------------------------

    def entry(self, export: str, email: str) -> LedgerEntry | None:
        with self._transaction("read the ledger") as connection:
            row = connection.execute(
                f"{_ENTRY_COLUMNS} WHERE export = %s AND email = %s", (export, email)
            ).fetchone()
        return None if row is None else _entry(row)

    def entries(self, export: str) -> list[LedgerEntry]:
        with self._transaction("read the ledger") as connection:
            rows = connection.execute(
                f'{_ENTRY_COLUMNS} WHERE export = %s ORDER BY email COLLATE "C"', (export,)
            ).fetchall()
        return [_entry(row) for row in rows]

    def count_entries(self, export: str, *, tagged: bool | None = None) -> int:
        condition = {None: "", True: " AND tag IS NOT NULL", False: " AND tag IS NULL"}[tagged]
        with self._transaction("read the ledger") as connection:
            row = connection.execute(
                f"SELECT count(*) FROM ledger_entries WHERE export = %s{condition}", (export,)
            ).fetchone()
        return 0 if row is None else int(cast(int, row[0]))

    def record_delivered(
        self, export: str, entries: Iterable[tuple[str, int, str | None]], *, now: datetime
    ) -> int:
        stamp = format_timestamp(now)
        given = 0
        latest: dict[str, tuple[int, str | None]] = {}
        for email, fingerprint, tag in entries:  # a later entry for an e-mail wins
            latest[email] = (fingerprint, tag)
            given += 1
        if not latest:
            return 0
        with self._writing("write the ledger") as connection:
            connection.execute(
                "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
                "SELECT %s, email, fingerprint, tag, %s "
                "FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS t(email, fingerprint, tag) "
                "ON CONFLICT (export, email) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "tag = excluded.tag, updated_at = excluded.updated_at",
                (
                    export,
                    stamp,
                    list(latest),
                    [fingerprint for fingerprint, _ in latest.values()],
                    [tag for _, tag in latest.values()],
                ),
            )
        return given

    def forget_export(self, export: str) -> int:
        with self._writing("forget an export") as connection:
            return _forget(connection, export)

    def retarget(self, export: str, brand: str, *, now: datetime) -> int:
        with self._writing("record the export's brand") as connection:
            row = connection.execute(
                "SELECT brand FROM export_brands WHERE export = %s FOR UPDATE", (export,)
            ).fetchone()
            if row is not None and row[0] == brand:
                return 0
            forgotten = _forget(connection, export) if row is not None else 0
            connection.execute(
                "INSERT INTO export_brands (export, brand, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (export) DO UPDATE SET brand = excluded.brand, "
                "updated_at = excluded.updated_at",
                (export, brand, format_timestamp(now)),
            )
            return forgotten

    # -- in-flight batches ----------------------------------------------------------------

    def record_inflight(
        self, export: str, batch_id: str, items: Sequence[InflightItem], *, now: datetime
    ) -> None:
        unique = {item.email: item for item in items}  # a later item for an e-mail wins
        if unique:
            with self._writing("record an in-flight batch") as connection:
                postgres_batches.record_inflight(
                    connection, export, batch_id, list(unique.values()), now=now
                )

    def record_intent(
        self,
        export: str,
        token: str,
        items: Sequence[InflightItem],
        *,
        now: datetime,
    ) -> None:
        text = packed.pack(items)
        with self._writing("record a batch about to be sent") as connection:
            connection.execute(
                "INSERT INTO batch_intents (export, token, items, created_at) "
                "VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT (export, token) DO UPDATE SET "
                "items = excluded.items, created_at = excluded.created_at",
                (export, token, text, format_timestamp(now)),
            )

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        with self._writing("record a created batch") as connection:
            return postgres_batches.record_created(connection, export, token, batch_id, now=now)

    def intents(self, export: str) -> list[InflightBatch]:
        with self._transaction("read batch intents") as connection:
            rows = connection.execute(
                "SELECT token, created_at, items::text FROM batch_intents WHERE export = %s "
                'ORDER BY created_at, token COLLATE "C"',
                (export,),
            ).fetchall()
        # Intents keep their items in the order they were recorded (the batch's order).
        return [
            InflightBatch(str(token), str(created_at), packed.unpack_items(str(items)))
            for token, created_at, items in rows
        ]

    def release_intent(self, export: str, token: str) -> int:
        with self._writing("forget a batch intent") as connection:
            cursor = connection.execute(
                "DELETE FROM batch_intents WHERE export = %s AND token = %s", (export, token)
            )
            return max(cursor.rowcount, 0)

    def inflight_batches(self, export: str) -> list[InflightBatch]:
        with self._transaction("read in-flight batches") as connection:
            return postgres_batches.inflight_batches(connection, export)

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
        written = 0
        with self._writing("record acknowledged contacts") as connection:
            for batch_id, emails in wanted:
                listed = "" if emails is None else " AND email = ANY(%(emails)s::text[])"
                cursor = connection.execute(
                    "WITH moved AS (DELETE FROM inflight_batches "
                    f"WHERE export = %(export)s AND batch_id = %(batch)s{listed} "
                    f"RETURNING email, fingerprint) {_UPSERT_MOVED}",
                    {
                        "export": export,
                        "batch": batch_id,
                        "emails": None if emails is None else list(emails),
                        "stamp": stamp,
                    },
                )
                written += max(cursor.rowcount, 0)
        return written

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        listed = "" if emails is None else " AND email = ANY(%s::text[])"
        parameters: tuple[object, ...] = (export, batch_id)
        if emails is not None:
            parameters = (*parameters, list(emails))
        with self._writing("release in-flight contacts") as connection:
            cursor = connection.execute(
                f"DELETE FROM inflight_batches WHERE export = %s AND batch_id = %s{listed}",
                parameters,
            )
            return max(cursor.rowcount, 0)

    def mark_tagged(self, export: str, tag: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        return self._write(
            "record added tags",
            "UPDATE ledger_entries SET tag = %s, updated_at = %s "
            "WHERE export = %s AND email = ANY(%s::text[])",
            (tag, format_timestamp(now), export, list(emails)),
        )

    def mark_untagged(
        self, export: str, tag: str, emails: Collection[str], *, now: datetime
    ) -> int:
        if not emails:
            return 0
        return self._write(
            "record removed tags",
            "UPDATE ledger_entries SET tag = NULL, updated_at = %s "
            "WHERE export = %s AND tag = %s AND email = ANY(%s::text[])",
            (format_timestamp(now), export, tag, list(emails)),
        )

    def mark_for_resend(self, export: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        return self._write(
            "mark contacts for re-sending",
            "UPDATE ledger_entries SET fingerprint = %s, tag = NULL, updated_at = %s "
            "WHERE export = %s AND email = ANY(%s::text[])",
            (NEVER_A_FINGERPRINT, format_timestamp(now), export, list(emails)),
        )

    def _write(self, action: str, sql: str, parameters: Sequence[object]) -> int:
        with self._writing(action) as connection:
            return max(connection.execute(sql, parameters).rowcount, 0)

    # -- run history (SQL in postgres_runs) -------------------------------------------

    def start_run(
        self,
        export: str,
        *,
        trigger: str,
        config_revision: str,
        now: datetime,
        replica: str | None = None,
    ) -> RunRecord:
        if replica is None and self._fence is not None:
            replica = self._fence.holder
        with self._writing("record a run") as connection:
            return postgres_runs.start_run(
                connection,
                export,
                trigger=trigger,
                config_revision=config_revision,
                now=now,
                replica=replica,
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
        with self._writing("record a run's result") as connection:
            record = postgres_runs.finish_run(
                connection, run_id, status=status, counts=counts, error=error, now=now
            )
        if record is None:
            raise StateError(f"state database {self.location}: no run with id {run_id}")
        return record

    def run(self, run_id: int) -> RunRecord | None:
        with self._transaction("read run history") as connection:
            return postgres_runs.run(connection, run_id)

    def runs(self, export: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction("read run history") as connection:
            return postgres_runs.runs(connection, export, limit=limit)

    # -- the export engine's diff -------------------------------------------------------

    @contextmanager
    def dedicated_connection(self, action: str) -> Iterator[PostgresConnection]:
        """A connection of its own to this store's database, for one long read.

        For the export engine's diff (:mod:`omnisync.engine.diff_postgres`),
        which holds a snapshot for seconds without holding up the store's
        other calls. Autocommit (open ``connection.transaction()`` on it);
        closed when the block ends. Errors are :class:`StateError`, without
        the password (:meth:`PostgresDatabase.dedicated_connection`).
        """
        with self._database.dedicated_connection(action) as connection:
            yield connection


def _entry(row: tuple[object, ...]) -> LedgerEntry:
    export, email, fingerprint, tag, updated_at = row
    return LedgerEntry(
        cast(str, export),
        cast(str, email),
        cast(int, fingerprint),
        cast("str | None", tag),
        cast(str, updated_at),
    )


def _forget(connection: PostgresConnection, export: str) -> int:
    """Delete the export's ledger entries, intents and in-flight batches; returns entries."""
    connection.execute("DELETE FROM inflight_batches WHERE export = %s", (export,))
    connection.execute("DELETE FROM batch_intents WHERE export = %s", (export,))
    cursor = connection.execute("DELETE FROM ledger_entries WHERE export = %s", (export,))
    return max(cursor.rowcount, 0)
