"""The PostgreSQL state store, shared by replicas: its database and the rest of its SQL.

:class:`PostgresDatabase` (one connection behind a lock, the schema, the errors) serves the
store and the lease board; its tables live in the first schema of the ``search_path``.
Messages name it by :func:`describe_dsn`, never by the DSN (its password). Sets of e-mails
travel as one parameter (a ``text[]``, or JSON text), so a batch's worth of work is one
statement; in-flight batches are one row per item (read back packed per batch, as SQLite
keeps them), intents one row per batch.
"""

from __future__ import annotations

import copy
import select
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

import psycopg
from psycopg import conninfo

from omnisync.config.postgres import CONNECTION_DEFAULTS
from omnisync.masking import redact
from omnisync.state.migrations import (
    POSTGRES_MIGRATIONS,
    SCHEMA_VERSION,
    migrate,
    refuse_newer_schema,
)
from omnisync.state.sql_store import AcceptedBatch, LedgerStore
from omnisync.state.store import Fence, LeaseLost, StateError, format_timestamp

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    version INTEGER NOT NULL
)"""

#: The connection type the store's functions take.
PostgresConnection = psycopg.Connection[tuple[object, ...]]

#: Connection keywords that are safe to show (no password, no key file passphrase).
_SHOWN = ("host", "hostaddr", "port", "dbname", "user")

#: How long the server lets one of our sessions sit idle inside a transaction.
IDLE_IN_TRANSACTION_SECONDS = 2

#: A connection idle this long is checked with a round trip before it is handed out, for a
#: reset nobody announced (a NAT's idle drop, a failover's new host). Back-to-back
#: transactions (a run's) go unchecked; the checks cost at most a round trip a second.
IDLE_CHECK_SECONDS = 1.0

#: Arbitrary, fixed: the advisory lock that serialises migrations in one database.
_MIGRATION_LOCK = 0x6F6D6E6973796E63  # "omnisync"


def describe_dsn(dsn: str) -> str:
    """A secret-free description of ``dsn`` for messages (no password, whatever its form)."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "PostgreSQL (a DSN that cannot be parsed)"
    shown = " ".join(f"{key}={parts[key]}" for key in _SHOWN if parts.get(key))
    return f"PostgreSQL {shown}" if shown else "PostgreSQL (default connection)"


class PostgresDatabase:
    """The state schema in the database at ``dsn``, opened (and migrated) at construction.
    One connection (autocommit: each :meth:`transaction` is one ``BEGIN`` … ``COMMIT``) behind
    a lock; one the server spoke on (to end it) or idle ``idle_check_seconds`` is checked first
    and one found broken replaced, so a reset between transactions fails none. A newer schema
    is refused before anything is written; an older one is migrated under an advisory lock, so
    replicas opening at once migrate it once."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: int = 10,
        idle_check_seconds: float = IDLE_CHECK_SECONDS,
    ) -> None:
        self.location = describe_dsn(dsn)
        self._given_dsn = dsn
        try:
            parts = conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            raise StateError(f"cannot open state database {self.location}") from None
        parts = {**CONNECTION_DEFAULTS, "connect_timeout": connect_timeout, **parts}
        self._dsn = conninfo.make_conninfo("", **parts)
        self._idle_check_seconds = idle_check_seconds
        self._lock = threading.Lock()
        self._closed = False
        self._connection = self._connect()
        self._used_at = time.monotonic()
        try:
            # Read the version before anything writes, so a newer schema is refused untouched.
            with self._translate("read"), self._connection.transaction():
                version = self._read_version(self._connection)
            if version < SCHEMA_VERSION:
                self._migrate()
        except BaseException:
            self._connection.close()
            raise

    def _connect(self) -> PostgresConnection:
        try:
            connection = psycopg.connect(self._dsn, autocommit=True)
            # A transaction left open by a paused process (SIGSTOP, a stalled VM) would
            # hold its locks, the lease row's among them, and keep a takeover waiting:
            # the server ends such a session instead (ours never wait mid-transaction).
            connection.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{IDLE_IN_TRANSACTION_SECONDS}s",),
            )
            return connection
        except psycopg.Error as error:
            cause = redact(str(error), self._given_dsn)
            raise StateError(f"cannot open state database {self.location}: {cause}") from None

    def _read_version(self, connection: PostgresConnection) -> int:
        version = 0
        row = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if row is not None and row[0]:
            row = connection.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else int(str(row[0]))
        refuse_newer_schema(self.location, version, instead="the state DSN at another database")
        return version

    def _migrate(self) -> None:
        with self.transaction("migrate") as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            # Re-read under the lock: another process may have migrated meanwhile.
            version = self._read_version(connection)
            if version >= SCHEMA_VERSION:
                return
            connection.execute(_VERSION_TABLE)
            migrate(connection, POSTGRES_MIGRATIONS, version)
            connection.execute(
                "INSERT INTO schema_version (version) VALUES (%s) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as error:
            cause = redact(str(error), self._given_dsn)
            raise StateError(f"state database {self.location}: cannot {action}: {cause}") from None

    @contextmanager
    def transaction(self, action: str) -> Iterator[PostgresConnection]:
        """One transaction (``action`` names it in errors); rolled back on any error."""
        with self._lock:
            if self._closed:
                raise StateError(f"state database {self.location} is closed")
            connection = self._live_connection()
            try:
                with self._translate(action), connection.transaction():
                    yield connection
            finally:
                self._used_at = time.monotonic()

    def _live_connection(self) -> PostgresConnection:
        # psycopg learns that a connection broke only from a statement that failed. A server
        # that ended the session (a restart, a terminated backend) said so on the socket, which
        # is otherwise silent between our transactions: then, or after a pause, ask.
        connection = self._connection
        idle = time.monotonic() - self._used_at
        if not connection.closed and (idle >= self._idle_check_seconds or _readable(connection)):
            try:
                connection.execute("SELECT 1")
            except psycopg.Error:
                connection.close()  # whatever failed, a new connection is the remedy
        if connection.closed:  # broken ones too
            connection.close()
            self._connection = connection = self._connect()
        return connection

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:  # closing a closed connection does nothing
            self._closed = True
            self._connection.close()

    @contextmanager
    def dedicated_connection(self, action: str) -> Iterator[PostgresConnection]:
        """A connection of its own (autocommit, closed when the block ends) for one long
        read that must not hold up the shared one, such as the export engine's diff.
        Psycopg errors, connecting included, are :class:`StateError` naming ``action``."""
        if self._closed:
            raise StateError(f"state database {self.location} is closed")
        connection = self._connect()
        try:
            with self._translate(action):
                yield connection
        finally:
            connection.close()


class PostgresLedgerStore(LedgerStore):
    """:class:`LedgerStore` on the database at ``dsn`` (a libpq string or URI), opened as
    :class:`PostgresDatabase` opens it. No SQLite file to ATTACH: ``ledger_file`` is ``None``."""

    ledger_file = None
    _inflight_table = "inflight_batches"
    _inflight_packed = (
        "(SELECT export, batch_id, min(created_at) AS created_at, "
        "jsonb_agg(jsonb_build_array(email, fingerprint, then_tag::int)) AS items "
        "FROM inflight_batches GROUP BY export, batch_id) AS inflight_packed"
    )
    _in_emails = "IN (SELECT jsonb_array_elements_text(?::jsonb))"
    _by_code_point = ' COLLATE "C"'
    _for_update = " FOR UPDATE"

    def __init__(self, dsn: str) -> None:
        self.database = PostgresDatabase(dsn)  # the engine's diff takes a connection of its own
        self.location = self.database.location
        self._fence: Fence | None = None

    def fenced(self, fence: Fence) -> PostgresLedgerStore:
        """This store (same connection) whose every write first checks ``fence``: it raises
        :class:`LeaseLost` (writing nothing) unless ``fence.holder`` still holds the brand's
        lease with ``fence.token``, so once another replica took the brand over, a paused or
        partitioned one cannot write a thing, however late it resumes. Closing the copy
        leaves the store open."""
        fenced = copy.copy(self)
        fenced._fence = fence
        fenced._replica = fence.holder
        return fenced

    def _reading(self, action: str) -> AbstractContextManager[PostgresConnection]:
        return self.database.transaction(action)

    @contextmanager
    def _writing(self, action: str) -> Iterator[PostgresConnection]:
        with self.database.transaction(action) as connection:
            if self._fence is not None:
                _check_fence(connection, self._fence)
            yield connection

    def _sql(self, text: str) -> str:
        # The shared statements hold no literal ``?`` or ``%``: a plain replace is exact.
        return text.replace("?", "%s")

    def close(self) -> None:
        if self._fence is None:  # a fenced copy shares the store's connection
            self.database.close()

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        return self._write(
            "record a created batch",
            "WITH intent AS (DELETE FROM batch_intents WHERE export = ? AND token = ? "
            "RETURNING export, items) INSERT INTO inflight_batches "
            "(export, batch_id, email, fingerprint, then_tag, created_at) "
            "SELECT export, ?, item->>0, (item->>1)::bigint, (item->>2)::int <> 0, ? "
            "FROM intent, jsonb_array_elements(intent.items) AS item "
            "ON CONFLICT (export, batch_id, email) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, then_tag = excluded.then_tag",
            (export, token, batch_id, format_timestamp(now)),
        )

    def _acknowledge(
        self, connection: PostgresConnection, export: str, batch: AcceptedBatch, stamp: str
    ) -> int:
        batch_id, emails = batch
        among, listed = ("", ()) if emails is None else self._among(emails)
        cursor = connection.execute(
            self._sql(
                "WITH moved AS (DELETE FROM inflight_batches WHERE export = ? AND batch_id = ?"
                + among
                + " RETURNING export, email, fingerprint) "
                "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
                "SELECT export, email, fingerprint, NULL, ? FROM moved "
                "ON CONFLICT (export, email) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at"
            ),
            (export, batch_id, *listed, stamp),
        )
        return max(cursor.rowcount, 0)

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        among, listed = ("", ()) if emails is None else self._among(emails)
        return self._write(
            "release in-flight contacts",
            "DELETE FROM inflight_batches WHERE export = ? AND batch_id = ?" + among,
            (export, batch_id, *listed),
        )


def _readable(connection: PostgresConnection) -> bool:
    poller = select.poll()
    poller.register(connection.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


def _check_fence(connection: PostgresConnection, fence: Fence) -> None:
    # Share-locking the lease row makes a takeover (which updates it) wait for this
    # write to commit; a write after a takeover finds another token.
    row = connection.execute(
        "SELECT holder, token FROM brand_leases WHERE brand = %s FOR SHARE", (fence.brand,)
    ).fetchone()
    if row is None or row[0] != fence.holder or int(str(row[1])) != fence.token:
        now_held = "nobody" if row is None else f"{row[0]} (token {row[1]})"
        raise LeaseLost(
            f"replica {fence.holder} no longer holds brand {fence.brand} "
            f"(its token {fence.token}; now held by {now_held}): write refused"
        )
