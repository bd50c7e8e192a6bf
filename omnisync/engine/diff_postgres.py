"""The ledger side of a diff against a PostgreSQL state store, run inside PostgreSQL.

The segment is staged in SQLite as for any store (:mod:`omnisync.engine.staging`:
one rule per field, the same Python functions); only the ledger's half of the
diff (:class:`~omnisync.engine.diff.LedgerSide`, the same SQL as against a
SQLite ledger) moves to where the ledger lives, so a million entries never
cross the network. In one ``REPEATABLE READ`` transaction on a connection of
its own (:meth:`~omnisync.state.postgres.PostgresLedgerStore.dedicated_connection`):

1. the members (``seq``, e-mail, fingerprint: the first row of each e-mail)
   are copied into a temporary table (binary ``COPY``, dropped at commit) and
   analysed, so that the planner knows a million rows from a hundred;
2. the ledger's statements run there; the rows of the work and of the
   leavers stream back (``COPY TO``) into SQLite's temporary tables.

Whatever :func:`postgres_ledger` yields reads that one snapshot, so the
ledger a run diffs against is the ledger at one instant, as with SQLite.
At a million unchanged members this costs about 1.3 times the SQLite diff
(``bench/postgres_bench.py``): the copy is most of the difference.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import IsolationLevel

from omnisync.engine.diff import FILLED_COLUMNS, DiffTerms, LedgerSide
from omnisync.state import LedgerStore, StateError
from omnisync.state.postgres import PostgresLedgerStore
from omnisync.state.postgres_database import PostgresConnection

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
    store: LedgerStore, *, export: str, brand: str | None, fetch_size: int
) -> Iterator[PostgresLedger | None]:
    """The ledger side of ``store``'s ledger for ``export``, valid inside the block.

    Opens one ``REPEATABLE READ`` transaction on a dedicated connection; it
    ends with the block (having written nothing but a temporary table) and
    the connection is closed. Yields ``None``, without copying anything, for
    a ledger with nothing to diff against
    (:meth:`~omnisync.engine.diff.LedgerSide.has_entries`).
    ``fetch_size`` is how many rows travel between the databases at a time.
    Raises :class:`~omnisync.state.StateError` (no password in it) when the
    store cannot be read, or is not a PostgreSQL store.
    """
    if not isinstance(store, PostgresLedgerStore):
        raise StateError(
            f"the state store {store.location} cannot be diffed against: "
            "it is neither a SQLite file nor a PostgreSQL database"
        )
    with store.dedicated_connection("diff the segment against the ledger") as connection:
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
            side = PostgresLedger(connection, fetch_size=fetch_size)
            # Nothing to compare with (a first run): every member is new, and
            # copying a million of them over would only say so slowly.
            yield side if side.has_entries(export, brand=brand) else None


class PostgresLedger(LedgerSide):
    """A :class:`~omnisync.engine.diff.LedgerSide` run inside PostgreSQL.

    ``connection`` must be inside the transaction whose snapshot every call
    reads (:func:`postgres_ledger` opens it). The members are copied there by
    :meth:`fill_work`, which therefore comes first; what the diff reads back
    into the staging tables travels as a binary ``COPY``.
    """

    _entries = "ledger_entries"
    _brands = "export_brands"

    def __init__(self, connection: PostgresConnection, *, fetch_size: int) -> None:
        super().__init__()
        self._connection = connection
        self._fetch_size = fetch_size

    def _members(self, terms: DiffTerms) -> tuple[str, str]:
        # Only the members were copied; SQLite's anti-join for the leavers reads
        # every staged row, but the rest lack only later copies (a member has
        # their e-mail) and NUL e-mails (no entry can): the same leavers.
        return f"{_MEMBERS} AS s", "TRUE"

    def _fetch(self, sql: str, parameters: Mapping[str, object]) -> Sequence[Any]:
        row = self._connection.execute(_in_postgres(sql), parameters).fetchone()
        assert row is not None  # an aggregate always has its row
        return row

    def _insert(
        self,
        connection: sqlite3.Connection,
        table: str,
        select: str,
        parameters: Mapping[str, object],
    ) -> None:
        columns = FILLED_COLUMNS[table]
        placeholders = ", ".join("?" for _ in columns.split(", "))
        with self._connection.cursor().copy(
            f"COPY ({_in_postgres(select)}) TO STDOUT (FORMAT BINARY)", parameters
        ) as copy:
            copy.set_types(_FILLED_TYPES[table])
            connection.executemany(
                f"INSERT INTO temp.{table} ({columns}) VALUES ({placeholders})", copy.rows()
            )

    def fill_work(self, connection: sqlite3.Connection, terms: DiffTerms) -> None:
        started = time.perf_counter()
        unstorable = self._copy_members(connection, terms.members)
        loaded = time.perf_counter()
        super().fill_work(connection, terms)
        # PostgreSQL text cannot hold a NUL, so neither can its ledger: a member
        # whose e-mail holds one is new, as the SQLite ledger would say.
        connection.executemany(
            f"INSERT INTO temp.work ({FILLED_COLUMNS['work']}) VALUES (?, 0, NULL, 1, 1)",
            ((seq,) for seq in unstorable),
        )
        self.timings["postgres copy members"] = loaded - started
        self.timings["postgres work"] = time.perf_counter() - loaded

    def _copy_members(self, connection: sqlite3.Connection, members: str) -> list[int]:
        """Copy the members into :data:`_MEMBERS` and ``ANALYZE`` it.

        Returns the ``seq`` of the members left out: those whose e-mail holds
        a NUL, which PostgreSQL text cannot hold.
        """
        self._connection.execute(
            f'CREATE TEMP TABLE {_MEMBERS} (seq BIGINT, email TEXT COLLATE "C", '
            "fingerprint BIGINT) ON COMMIT DROP"
        )
        staged = connection.execute(
            f"SELECT s.seq, s.email, s.fingerprint FROM temp.stage AS s WHERE {members}"
        )
        unstorable: list[int] = []
        try:
            with self._connection.cursor().copy(
                f"COPY {_MEMBERS} (seq, email, fingerprint) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", "int8"])
                write_row = copy.write_row
                while rows := staged.fetchmany(self._fetch_size):
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
    """``sql`` (``:name`` parameters) in psycopg's ``%(name)s`` style."""
    return re.sub(r":(\w+)", r"%(\1)s", sql)
