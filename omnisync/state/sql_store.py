"""The part of the :class:`LedgerStore` contract both stores say in the same SQL.

:class:`SqlLedgerStore` writes that SQL once, in SQLite's ``?`` style; a
store supplies its connection (reads, write transactions, one-statement
writes) and the few words its dialect says otherwise. A batch's items are
one JSON array (:func:`pack_items`) in both; what differs in substance (how
in-flight items are written and settled, how the ledger is bulk-written)
stays in :mod:`omnisync.state.sqlite` and :mod:`omnisync.state.postgres`.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

import orjson

from omnisync.fingerprint import NEVER_A_FINGERPRINT
from omnisync.inflight import InflightItem
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

_ENTRY_COLUMNS = "SELECT export, email, fingerprint, tag, updated_at FROM ledger_entries"
_RUN_COLUMNS = (
    "id, export, trigger, config_revision, started_at, ended_at, status, counts, error, replica"
)


def pack_items(items: Iterable[InflightItem]) -> str:
    """A batch's items as both stores keep them: the JSON text of ``[[email, fingerprint,
    then_tag], ...]`` (``then_tag`` 0 or 1), one item per e-mail, a later item winning."""
    unique = {item.email: (item.email, item.fingerprint, int(item.then_tag)) for item in items}
    return orjson.dumps(list(unique.values())).decode()


def unpack_items(text: str) -> tuple[InflightItem, ...]:
    """The items of :func:`pack_items`' text, in their order."""
    return tuple(
        InflightItem(email, fingerprint, bool(then_tag))
        for email, fingerprint, then_tag in orjson.loads(text)
    )


class Cursor(Protocol):
    """What the shared SQL reads back from a statement (sqlite3's and psycopg's cursors)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A connection the shared SQL runs on (sqlite3's and psycopg's)."""

    def execute(self, query: str, params: Sequence[Any], /) -> Cursor: ...


ConnectionT = TypeVar("ConnectionT", bound=Connection)


class SqlLedgerStore(LedgerStore, Generic[ConnectionT]):
    """The SQL the SQLite and PostgreSQL stores share; see the module docstring."""

    #: The table holding the in-flight batches an export's forgetting clears.
    _inflight_table: str
    #: The in-flight batches as rows of ``(export, batch_id, created_at, items)``,
    #: ``items`` as :func:`pack_items` writes them: a table, or a subquery.
    _inflight_packed: str
    #: ``IN`` over one parameter carrying a set of e-mails (see :meth:`_emails_parameter`).
    _in_emails: str
    #: Appended to an ``ORDER BY`` of a text key so it sorts by code point.
    _by_code_point: str = ""
    #: Appended to the ``SELECT`` of a row the transaction then rewrites.
    _for_update: str = ""
    #: Who a run started without naming its replica is recorded as run by (a
    #: fenced store: the lease holder whose writes it carries).
    _default_replica: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _sql(self, text: str) -> str:
        """``text`` (``?`` placeholders) in this store's placeholder style."""
        return text

    @abstractmethod
    def _emails_parameter(self, emails: Collection[str]) -> object:
        """A set of e-mails as the one parameter :attr:`_in_emails` takes."""

    @abstractmethod
    def _reading(self, action: str) -> AbstractContextManager[ConnectionT]:
        """The connection, for reads (``action`` names them in errors)."""

    @abstractmethod
    def _writing(self, action: str) -> AbstractContextManager[ConnectionT]:
        """One write transaction (``action`` names it in errors); rolled back on any error."""

    def _write(self, action: str, sql: str, parameters: Sequence[object]) -> int:
        """One writing statement as its own transaction; returns the rows it changed."""
        with self._writing(action) as connection:
            return max(connection.execute(self._sql(sql), parameters).rowcount, 0)

    @abstractmethod
    def _acknowledge(
        self,
        connection: ConnectionT,
        export: str,
        batch_id: str,
        emails: Collection[str] | None,
        stamp: str,
    ) -> int:
        """:meth:`acknowledge` of one batch inside the caller's transaction."""

    # -- ledger ---------------------------------------------------------------------

    def entry(self, export: str, email: str) -> LedgerEntry | None:
        with self._reading("read the ledger") as connection:
            row = connection.execute(
                self._sql(f"{_ENTRY_COLUMNS} WHERE export = ? AND email = ?"), (export, email)
            ).fetchone()
        return None if row is None else LedgerEntry(*row)

    def entries(self, export: str) -> list[LedgerEntry]:
        with self._reading("read the ledger") as connection:
            rows = connection.execute(
                self._sql(f"{_ENTRY_COLUMNS} WHERE export = ? ORDER BY email{self._by_code_point}"),
                (export,),
            ).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def count_entries(self, export: str, *, tagged: bool | None = None) -> int:
        condition = {None: "", True: " AND tag IS NOT NULL", False: " AND tag IS NULL"}[tagged]
        with self._reading("read the ledger") as connection:
            row = connection.execute(
                self._sql(f"SELECT count(*) FROM ledger_entries WHERE export = ?{condition}"),
                (export,),
            ).fetchone()
        return int(row[0])

    def forget_export(self, export: str) -> int:
        with self._writing("forget an export") as connection:
            return self._forget(connection, export)

    def retarget(self, export: str, brand: str, *, now: datetime) -> int:
        with self._writing("record the export's brand") as connection:
            row = connection.execute(
                self._sql(f"SELECT brand FROM export_brands WHERE export = ?{self._for_update}"),
                (export,),
            ).fetchone()
            if row is not None and row[0] == brand:
                return 0
            forgotten = self._forget(connection, export) if row is not None else 0
            connection.execute(
                self._sql(
                    "INSERT INTO export_brands (export, brand, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (export) DO UPDATE SET brand = excluded.brand, "
                    "updated_at = excluded.updated_at"
                ),
                (export, brand, format_timestamp(now)),
            )
            return forgotten

    def _forget(self, connection: ConnectionT, export: str) -> int:
        """Delete the export's ledger entries, intents and in-flight batches; returns entries."""
        for table in (self._inflight_table, "batch_intents"):
            connection.execute(self._sql(f"DELETE FROM {table} WHERE export = ?"), (export,))
        cursor = connection.execute(
            self._sql("DELETE FROM ledger_entries WHERE export = ?"), (export,)
        )
        return max(cursor.rowcount, 0)

    # -- in-flight batches ----------------------------------------------------------------

    def record_intent(
        self,
        export: str,
        token: str,
        items: Sequence[InflightItem],
        *,
        now: datetime,
    ) -> None:
        self._write(
            "record a batch about to be sent",
            "INSERT INTO batch_intents (export, token, items, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (export, token) DO UPDATE SET "
            "items = excluded.items, created_at = excluded.created_at",
            (export, token, pack_items(items), format_timestamp(now)),
        )

    def intents(self, export: str) -> list[InflightBatch]:
        # Intents keep their items in the order they were recorded (the batch's order).
        return self._packed_batches(
            "batch_intents", "token", export, action="read batch intents", by_email=False
        )

    def inflight_batches(self, export: str) -> list[InflightBatch]:
        return self._packed_batches(
            self._inflight_packed,
            "batch_id",
            export,
            action="read in-flight batches",
            by_email=True,
        )

    def _packed_batches(
        self, packed: str, key: str, export: str, *, action: str, by_email: bool
    ) -> list[InflightBatch]:
        """The export's batches in ``packed`` (keyed by ``key``), oldest first; their
        items sorted by e-mail when ``by_email``, else in the order recorded."""
        with self._reading(action) as connection:
            rows = connection.execute(
                self._sql(
                    f"SELECT {key}, created_at, CAST(items AS TEXT) FROM {packed} "
                    f"WHERE export = ? ORDER BY created_at, {key}{self._by_code_point}"
                ),
                (export,),
            ).fetchall()
        batches = [(name, created_at, unpack_items(items)) for name, created_at, items in rows]
        return [
            InflightBatch(name, created_at, tuple(sorted(items)) if by_email else items)
            for name, created_at, items in batches
        ]

    def release_intent(self, export: str, token: str) -> int:
        return self._write(
            "forget a batch intent",
            "DELETE FROM batch_intents WHERE export = ? AND token = ?",
            (export, token),
        )

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
        with self._writing("record acknowledged contacts") as connection:
            return sum(
                self._acknowledge(connection, export, batch_id, emails, stamp)
                for batch_id, emails in wanted
            )

    def mark_tagged(self, export: str, tag: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        return self._write(
            "record added tags",
            f"UPDATE ledger_entries SET tag = ?, updated_at = ? "
            f"WHERE export = ? AND email {self._in_emails}",
            (tag, format_timestamp(now), export, self._emails_parameter(emails)),
        )

    def mark_untagged(
        self, export: str, tag: str, emails: Collection[str], *, now: datetime
    ) -> int:
        if not emails:
            return 0
        return self._write(
            "record removed tags",
            "UPDATE ledger_entries SET tag = NULL, updated_at = ? "
            f"WHERE export = ? AND tag = ? AND email {self._in_emails}",
            (format_timestamp(now), export, tag, self._emails_parameter(emails)),
        )

    def mark_for_resend(self, export: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        return self._write(
            "mark contacts for re-sending",
            "UPDATE ledger_entries SET fingerprint = ?, tag = NULL, updated_at = ? "
            f"WHERE export = ? AND email {self._in_emails}",
            (NEVER_A_FINGERPRINT, format_timestamp(now), export, self._emails_parameter(emails)),
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
        replica = replica if replica is not None else self._default_replica
        with self._writing("record a run") as connection:
            connection.execute(
                self._sql(
                    "UPDATE runs SET status = 'interrupted', error = ? "
                    "WHERE export = ? AND status = 'running'"
                ),
                (interrupted_note(stamp), export),
            )
            row = connection.execute(
                self._sql(
                    "INSERT INTO runs (export, trigger, config_revision, started_at, status, "
                    "replica) VALUES (?, ?, ?, ?, 'running', ?) RETURNING id"
                ),
                (export, trigger, config_revision, stamp, replica),
            ).fetchone()
        return RunRecord(
            int(row[0]), export, trigger, config_revision, stamp, None, "running", replica=replica
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
        with self._writing("record a run's result") as connection:
            row = connection.execute(
                self._sql(
                    "UPDATE runs SET status = ?, counts = ?, error = ?, ended_at = ? "
                    f"WHERE id = ? RETURNING {_RUN_COLUMNS}"
                ),
                (
                    status,
                    json.dumps(dict(counts), sort_keys=True),
                    masked,
                    format_timestamp(now),
                    run_id,
                ),
            ).fetchone()
        if row is None:
            raise StateError(f"state database {self.location}: no run with id {run_id}")
        return _run_record(row)

    def run(self, run_id: int) -> RunRecord | None:
        with self._reading("read run history") as connection:
            row = connection.execute(
                self._sql(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?"), (run_id,)
            ).fetchone()
        return None if row is None else _run_record(row)

    def runs(self, export: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where, parameters = (
            ("", (limit,)) if export is None else ("WHERE export = ? ", (export, limit))
        )
        with self._reading("read run history") as connection:
            rows = connection.execute(
                self._sql(f"SELECT {_RUN_COLUMNS} FROM runs {where}ORDER BY id DESC LIMIT ?"),
                parameters,
            ).fetchall()
        return [_run_record(row) for row in rows]


def _run_record(row: Sequence[Any]) -> RunRecord:
    """A ``runs`` row as a record; ``counts`` is JSON text in SQLite, a dict from PostgreSQL."""
    run_id, export, trigger, revision, started_at, ended_at, status, counts, error, replica = row
    return RunRecord(
        id=int(run_id),
        export=export,
        trigger=trigger,
        config_revision=revision,
        started_at=started_at,
        ended_at=ended_at,
        status=cast(RunStatus, status),
        counts=json.loads(counts) if isinstance(counts, str) else dict(counts),
        error=error,
        replica=replica,
    )
