"""The PostgreSQL state store: the :class:`LedgerStore` contract on a shared database.

For several replicas sharing one state (issue 17). The connection, schema and
migrations are :class:`~omnisync.state.postgres_database.PostgresDatabase`;
the SQL both stores share is :mod:`omnisync.state.sql_store`, this module
the rest. Sets of e-mails travel as one ``text[]`` parameter, so a batch's
worth of work is one statement; in-flight batches are one row per item
(``inflight_batches``, read back packed per batch as SQLite keeps them),
intents one row per batch (a JSON array, recorded in the batch's order).
Text keys use the ``"C"`` collation, so e-mails sort by code point as in the
SQLite store and in Python.

There is no SQLite file to ATTACH: :attr:`ledger_file` is ``None``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

from omnisync.state.fencing import Fence, check_fence
from omnisync.state.postgres_database import PostgresConnection, PostgresDatabase
from omnisync.state.sql_store import SqlLedgerStore
from omnisync.state.store import format_timestamp


class PostgresLedgerStore(SqlLedgerStore[PostgresConnection]):
    """:class:`LedgerStore` on a PostgreSQL database. Migrates on open; refuses a newer schema.

    ``dsn`` is a libpq connection string or URI; the tables live in the first
    schema of its ``search_path``. Messages name the store without its password.
    """

    ledger_file = None
    _inflight_table = "inflight_batches"
    _inflight_packed = (
        "(SELECT export, batch_id, min(created_at) AS created_at, "
        "jsonb_agg(jsonb_build_array(email, fingerprint, then_tag::int)) AS items "
        "FROM inflight_batches GROUP BY export, batch_id) AS inflight_packed"
    )
    _in_emails = "= ANY(?::text[])"
    _by_code_point = ' COLLATE "C"'
    _for_update = " FOR UPDATE"

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        self._database = PostgresDatabase(dsn, connect_timeout=connect_timeout)
        self.location = self._database.location
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
        fenced = copy.copy(self)
        fenced._fence = fence
        fenced._default_replica = fence.holder
        fenced._owner = False
        return fenced

    def _reading(self, action: str) -> AbstractContextManager[PostgresConnection]:
        return self._database.transaction(action)

    @contextmanager
    def _writing(self, action: str) -> Iterator[PostgresConnection]:
        with self._database.transaction(action) as connection:
            if self._fence is not None:
                check_fence(connection, self._fence)
            yield connection

    def _sql(self, text: str) -> str:
        # The shared statements hold no literal ``?`` or ``%``: a plain replace is exact.
        return text.replace("?", "%s")

    def _emails_parameter(self, emails: Collection[str]) -> list[str]:
        return list(emails)

    @property
    def schema_version(self) -> int:
        return self._database.schema_version

    def close(self) -> None:
        if self._owner:
            self._database.close()

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

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        with self._writing("record a created batch") as connection:
            cursor = connection.execute(
                "WITH intent AS (DELETE FROM batch_intents WHERE export = %(export)s "
                "AND token = %(token)s RETURNING items) "
                "INSERT INTO inflight_batches "
                "(export, batch_id, email, fingerprint, then_tag, created_at) "
                "SELECT %(export)s, %(batch)s, item->>0, (item->>1)::bigint, "
                "(item->>2)::int <> 0, %(stamp)s "
                "FROM intent, jsonb_array_elements(intent.items) AS item "
                "ON CONFLICT (export, batch_id, email) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, then_tag = excluded.then_tag",
                {
                    "export": export,
                    "token": token,
                    "batch": batch_id,
                    "stamp": format_timestamp(now),
                },
            )
            return max(cursor.rowcount, 0)

    def _acknowledge(
        self,
        connection: PostgresConnection,
        export: str,
        batch_id: str,
        emails: Collection[str] | None,
        stamp: str,
    ) -> int:
        listed = "" if emails is None else " AND email = ANY(%(emails)s::text[])"
        cursor = connection.execute(
            "WITH moved AS (DELETE FROM inflight_batches "
            f"WHERE export = %(export)s AND batch_id = %(batch)s{listed} "
            "RETURNING email, fingerprint) "
            "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
            "SELECT %(export)s, email, fingerprint, NULL, %(stamp)s FROM moved "
            "ON CONFLICT (export, email) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
            {
                "export": export,
                "batch": batch_id,
                "emails": None if emails is None else list(emails),
                "stamp": stamp,
            },
        )
        return max(cursor.rowcount, 0)

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
