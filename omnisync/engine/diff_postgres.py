"""The ledger side of a diff against a PostgreSQL state store, run inside PostgreSQL.

The segment is staged in SQLite as for any store (:mod:`omnisync.engine.staging`:
one rule per field, the same Python functions); only the ledger's half of the
diff (:class:`~omnisync.engine.diff.LedgerSide`) moves to where the ledger
lives, so a million entries never cross the network. In one ``REPEATABLE
READ`` transaction on a connection of its own
(:meth:`~omnisync.state.postgres.PostgresLedgerStore.dedicated_connection`):

1. the members (``seq``, e-mail, fingerprint: the first row of each e-mail)
   are copied into a temporary table (binary ``COPY``, dropped at commit) and
   analysed, so that the planner knows a million rows from a hundred;
2. the work is one set-based join against ``ledger_entries``, its rows
   streamed back (``COPY TO``) into SQLite's ``temp.work``; the counts, the
   resync count and the leavers are one statement each, as in SQLite.

Whatever :func:`postgres_ledger` yields reads that one snapshot, so the
ledger a run diffs against is the ledger at one instant, as with SQLite.
At a million unchanged members this costs about 1.3 times the SQLite diff
(``bench/postgres_bench.py``): the copy is most of the difference.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from psycopg import IsolationLevel

from omnisync.engine.diff import WORK_COLUMNS, DiffTerms, EmptyLedger, LedgerSide
from omnisync.state import LedgerStore, StateError
from omnisync.state.postgres import PostgresLedgerStore
from omnisync.state.postgres_database import PostgresConnection

#: How long the diff's transaction may wait on SQLite between two statements.
_IDLE_LIMIT = "10min"

#: The temporary table the members are copied into (gone when the transaction ends).
_MEMBERS = "omnisync_staged_members"

_WORK_SQL = (
    "COPY (SELECT s.seq, l.email IS NOT NULL, "
    "CASE WHEN %(full)s AND l.tag = %(tag)s THEN NULL ELSE l.tag END, "
    "%(full)s OR l.email IS NULL OR l.fingerprint <> s.fingerprint, "
    "%(full)s OR l.tag IS DISTINCT FROM %(tag)s "
    f"FROM {_MEMBERS} AS s "
    "LEFT JOIN ledger_entries AS l ON l.export = %(export)s AND l.email = s.email "
    "WHERE %(full)s OR l.email IS NULL OR l.fingerprint <> s.fingerprint "
    "OR l.tag IS DISTINCT FROM %(tag)s ORDER BY s.seq) TO STDOUT (FORMAT BINARY)"
)


@contextmanager
def postgres_ledger(
    store: LedgerStore, *, export: str, brand: str | None, fetch_size: int
) -> Iterator[LedgerSide]:
    """The ledger side of ``store``'s ledger for ``export``, valid inside the block.

    Opens one ``REPEATABLE READ`` transaction on a dedicated connection; it
    ends with the block (having written nothing but a temporary table) and
    the connection is closed. A ledger that records ``export`` as delivering
    to a brand other than ``brand`` is an empty ledger (a run forgets it
    before it stages: ``LedgerStore.retarget``), as is one without an entry of
    ``export``: both are answered without copying anything.
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
            if _moved_brand(connection, export=export, brand=brand) or not _has_entries(
                connection, export=export
            ):
                # Nothing to compare with (a first run): every member is new,
                # and copying a million of them over would only say so slowly.
                yield EmptyLedger()
            else:
                yield PostgresLedger(connection, fetch_size=fetch_size)


class PostgresLedger:
    """A :class:`~omnisync.engine.diff.LedgerSide` computed inside PostgreSQL.

    ``connection`` must be inside the transaction whose snapshot every call
    reads (:func:`postgres_ledger` opens it); the members are copied there by
    :meth:`fill_work`, which therefore comes first.
    """

    def __init__(self, connection: PostgresConnection, *, fetch_size: int) -> None:
        self._connection = connection
        self._fetch_size = fetch_size
        self._timings: dict[str, float] = {}

    @property
    def timings(self) -> Mapping[str, float]:
        return self._timings

    def fill_work(self, connection: sqlite3.Connection, terms: DiffTerms) -> None:
        started = time.perf_counter()
        unstorable = self._copy_members(connection, terms.members)
        loaded = time.perf_counter()
        insert = f"INSERT INTO temp.work ({WORK_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
        parameters = {"export": terms.export, "tag": terms.tag, "full": terms.full}
        with self._connection.cursor().copy(_WORK_SQL, parameters) as copy:
            copy.set_types(["int8", "bool", "text", "bool", "bool"])
            connection.executemany(insert, copy.rows())
        # PostgreSQL text cannot hold a NUL, so neither can its ledger: a member
        # whose e-mail holds one is new, as the SQLite ledger would say.
        connection.executemany(insert, ((seq, 0, None, 1, 1) for seq in unstorable))
        self._timings["postgres copy members"] = loaded - started
        self._timings["postgres work"] = time.perf_counter() - loaded

    def totals(self, connection: sqlite3.Connection, terms: DiffTerms) -> tuple[int, int]:
        row = self._connection.execute(
            "SELECT count(*), count(tag) FROM ledger_entries WHERE export = %s", (terms.export,)
        ).fetchone()
        assert row is not None  # an aggregate always has its row
        return _integer(row[0]), _integer(row[1])

    def members_tagged(self, connection: sqlite3.Connection, terms: DiffTerms) -> int:
        row = self._connection.execute(
            f"SELECT count(*) FROM {_MEMBERS} AS s JOIN ledger_entries AS l "
            "ON l.export = %s AND l.email = s.email AND l.tag = %s",
            (terms.export, terms.tag),
        ).fetchone()
        assert row is not None
        return _integer(row[0])

    def fill_leavers(self, connection: sqlite3.Connection, terms: DiffTerms) -> None:
        # SQLite's anti-join reads every staged row; the members lack only later
        # copies (a member has their e-mail) and NUL e-mails (no entry can):
        # the same leavers.
        cursor = self._connection.cursor()
        with cursor.copy(
            "COPY (SELECT l.email, l.tag FROM ledger_entries AS l "
            "WHERE l.export = %s AND l.tag IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {_MEMBERS} AS s WHERE s.email = l.email)) "
            "TO STDOUT (FORMAT BINARY)",
            (terms.export,),
        ) as copy:
            copy.set_types(["text", "text"])
            connection.executemany(
                "INSERT INTO temp.leavers (email, tag) VALUES (?, ?)", copy.rows()
            )

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


def _moved_brand(connection: PostgresConnection, *, export: str, brand: str | None) -> bool:
    """Whether the ledger records ``export`` as delivering to another brand than ``brand``."""
    if brand is None:
        return False
    row = connection.execute(
        "SELECT brand FROM export_brands WHERE export = %s", (export,)
    ).fetchone()
    return row is not None and row[0] != brand


def _has_entries(connection: PostgresConnection, *, export: str) -> bool:
    """Whether the ledger holds any entry of ``export`` (one probe of its primary key)."""
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM ledger_entries WHERE export = %s)", (export,)
    ).fetchone()
    return row is not None and bool(row[0])


def _integer(value: object) -> int:
    if not isinstance(value, int):
        raise StateError(f"the ledger returned {value!r} where a count was expected")
    return value
