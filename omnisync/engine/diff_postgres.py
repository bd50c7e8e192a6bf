"""The ledger side of a diff against a PostgreSQL state store, run inside PostgreSQL.

The segment is staged in SQLite as for any store; only the ledger's half of
the diff (the same SQL) runs where the ledger lives, so a million entries never
cross the network. In one ``REPEATABLE READ`` transaction on a connection of
its own, the members are copied into a temporary table (binary ``COPY``) and
analysed, the ledger's statements run there, and the rows of the work and the
leavers stream back into SQLite's temporary tables. At a million unchanged
members this costs about 1.3 times the SQLite diff (``bench/postgres_bench.py``).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import IsolationLevel

from omnisync.engine.diff import FETCH_SIZE, FILLED_COLUMNS, DiffTerms, LedgerSide
from omnisync.state import LedgerStore
from omnisync.state.postgres import PostgresConnection, PostgresLedgerStore

#: How long the diff's transaction may wait on SQLite between two statements.
_IDLE_LIMIT = "10min"

#: The temporary table the members are copied into (gone when the transaction ends).
_MEMBERS = "omnisync_staged_members"

#: The PostgreSQL types of the rows read back into each staging table.
_FILLED_TYPES: Mapping[str, Sequence[str]] = {
    "work": ("int8", "bool", "text", "bool", "bool"),
    "leavers": ("text", "text"),
}


@contextmanager
def postgres_ledger(
    store: LedgerStore, staging: sqlite3.Connection, *, export: str, brand: str | None
) -> Iterator[PostgresLedger | None]:
    """The ledger side of ``store``'s ledger for ``export`` and the ``staging``
    connection, read in one snapshot valid inside the block (a dedicated connection,
    closed with it); ``None``, copying nothing, for a ledger with nothing to diff
    against. Raises :class:`~omnisync.state.StateError` (no password in it) when the
    store cannot be read.
    """
    # Staging hands over only a store without a SQLite file (``ledger_file``): this one.
    assert isinstance(store, PostgresLedgerStore)
    with store.database.dedicated_connection("diff the segment against the ledger") as connection:
        connection.isolation_level = IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            # A few set-based statements: compiling them would cost more than it saves.
            connection.execute("SET LOCAL jit = off")
            # Between its statements this transaction waits on SQLite (indexing and
            # counting the stage: seconds for millions of rows), longer than the
            # store's sessions may idle in a transaction. It holds no lock a
            # takeover waits for (only ACCESS SHARE on the ledger's tables), so it
            # gets longer; a paused process still lets go of its snapshot in time.
            connection.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{_IDLE_LIMIT}'")
            side = PostgresLedger(staging, connection)
            # Nothing to compare with (a first run): every member is new, and
            # copying a million of them over would only say so slowly.
            yield side if side.has_entries(export, brand=brand) else None


class PostgresLedger(LedgerSide):
    """The ledger side run inside PostgreSQL, in the transaction :func:`postgres_ledger`
    opens; :meth:`fill_work` copies the members."""

    _entries = "ledger_entries"
    _brands = "export_brands"

    def __init__(self, staging: sqlite3.Connection, connection: PostgresConnection) -> None:
        super().__init__(staging)
        self._connection = connection

    def _members(self, terms: DiffTerms) -> tuple[str, str]:
        # Only the members were copied; SQLite's anti-join for the leavers reads
        # every staged row, but the rest lack only later copies (a member has
        # their e-mail) and NUL e-mails (no entry can): the same leavers.
        return f"{_MEMBERS} AS s", "TRUE"

    def _in_doubt(self) -> str:
        return "l.tag_in_doubt"  # the store migrated its schema when it opened

    def _fetch(self, sql: str, parameters: Mapping[str, object]) -> Sequence[Any]:
        row = self._connection.execute(_in_postgres(sql), parameters).fetchone()
        assert row is not None  # an aggregate always has its row
        return row

    def _insert(self, table: str, select: str, parameters: Mapping[str, object]) -> None:
        columns = FILLED_COLUMNS[table]
        placeholders = ", ".join("?" for _ in columns.split(", "))
        with self._connection.cursor().copy(
            f"COPY ({_in_postgres(select)}) TO STDOUT (FORMAT BINARY)", parameters
        ) as copy:
            copy.set_types(_FILLED_TYPES[table])
            self._staging.executemany(
                f"INSERT INTO temp.{table} ({columns}) VALUES ({placeholders})", copy.rows()
            )

    def fill_work(self, terms: DiffTerms) -> None:
        started = time.perf_counter()
        unstorable = self._copy_members(terms.members)
        loaded = time.perf_counter()
        super().fill_work(terms)
        # PostgreSQL text cannot hold a NUL, so neither can its ledger: a member
        # whose e-mail holds one is new, as the SQLite ledger would say.
        self._staging.executemany(
            f"INSERT INTO temp.work ({FILLED_COLUMNS['work']}) VALUES (?, 0, NULL, 1, 1)",
            ((seq,) for seq in unstorable),
        )
        self.timings["postgres copy members"] = loaded - started
        self.timings["postgres work"] = time.perf_counter() - loaded

    def _copy_members(self, members: str) -> list[int]:
        """Copy the members into :data:`_MEMBERS`; returns the ``seq`` of those left
        out, whose e-mail holds a NUL (PostgreSQL text cannot)."""
        self._connection.execute(
            f'CREATE TEMP TABLE {_MEMBERS} (seq BIGINT, email TEXT COLLATE "C", '
            "fingerprint BIGINT) ON COMMIT DROP"
        )
        staged = self._staging.execute(
            f"SELECT s.seq, s.email, s.fingerprint FROM temp.omnisync_stage AS s WHERE {members}"
        )
        unstorable: list[int] = []
        try:
            with self._connection.cursor().copy(
                f"COPY {_MEMBERS} (seq, email, fingerprint) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", "int8"])
                write_row = copy.write_row
                while rows := staged.fetchmany(FETCH_SIZE):
                    for row in rows:
                        # A test per row costs less than a scan in SQLite.
                        if "\x00" in row[1]:
                            unstorable.append(row[0])
                        else:
                            write_row(row)
        finally:
            staged.close()
        # A temporary table is never analysed by autovacuum: without this the
        # planner guesses its size and may loop over a million rows.
        self._connection.execute(f"ANALYZE {_MEMBERS}")
        return unstorable


def _in_postgres(sql: str) -> str:
    return re.sub(r":(\w+)", r"%(\1)s", sql)
