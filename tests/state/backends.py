"""Store back-ends the contract suite runs against.

To add an implementation (e.g. PostgreSQL), write a class with this shape and
add it to ``BACKENDS``; every test in ``contract.py`` then runs against it.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import os
import sqlite3
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import pytest

from omnisync.state import LedgerStore, SqliteLedgerStore
from omnisync.state.migrations import MIGRATIONS, POSTGRES_MIGRATIONS, migrate
from tests.conftest import require_postgres


class StoreBackend(Protocol):
    name: str

    def open(self) -> LedgerStore:
        """A new store instance (its own connection) on this back-end's storage."""

    def child_open_code(self) -> str:
        """Python statements that bind ``store`` to this storage in another process."""

    def schema_version(self) -> int:
        """The schema version the storage records (read past the store)."""

    def force_schema_version(self, version: int) -> None:
        """Mark the storage as written by a schema ``version`` (bypassing the store)."""

    def snapshot(self) -> str:
        """A digest of everything stored, raw, to prove a refusal modified nothing."""

    def create_legacy_ledger(self) -> None:
        """Storage at schema version 0 holding a ledger table made with the seam's DDL."""

    def create_at_version(self, version: int) -> None:
        """Storage at schema ``version`` (its migrations only), with a ledger entry
        ``old@example.com`` and an in-flight ``flying@example.com`` for export ``vip``."""


class SqliteBackend:
    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "omnisync.sqlite3"

    def open(self) -> LedgerStore:
        return SqliteLedgerStore(self.path)

    def child_open_code(self) -> str:
        return (
            "from omnisync.state import SqliteLedgerStore\n"
            f"store = SqliteLedgerStore({str(self.path)!r})\n"
        )

    def schema_version(self) -> int:
        with closing(sqlite3.connect(self.path)) as connection:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])

    def force_schema_version(self, version: int) -> None:
        connection = sqlite3.connect(self.path)
        connection.execute(f"PRAGMA user_version = {version}")
        connection.commit()
        connection.close()

    def snapshot(self) -> str:
        digest = hashlib.sha256()
        for suffix in ("", "-wal", "-shm", "-journal"):
            candidate = self.path.with_name(self.path.name + suffix)
            digest.update(suffix.encode())
            digest.update(candidate.read_bytes() if candidate.exists() else b"<absent>")
        return digest.hexdigest()

    def create_legacy_ledger(self) -> None:
        # Exactly the DDL of docs/ARCHITECTURE.md's "The ledger seam", as other tests write it.
        connection = sqlite3.connect(self.path)
        connection.execute(
            "CREATE TABLE ledger_entries(export TEXT NOT NULL, email TEXT NOT NULL, "
            "fingerprint INTEGER NOT NULL, tag TEXT, updated_at TEXT NOT NULL, "
            "PRIMARY KEY (export, email)) WITHOUT ROWID"
        )
        connection.execute(
            "INSERT INTO ledger_entries VALUES ('vip', 'old@example.com', 7, 'vip', "
            "'2025-01-01T00:00:00.000Z')"
        )
        connection.commit()
        connection.close()

    def create_at_version(self, version: int) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        migrate(connection, MIGRATIONS[:version], 0)
        connection.execute(f"PRAGMA user_version = {version}")
        connection.execute(
            "INSERT INTO ledger_entries VALUES ('vip', 'old@example.com', 7, 'vip', "
            "'2025-01-01T00:00:00.000Z')"
        )
        if version >= 3:  # in flight packed, a row per batch (inflight_batches is a view)
            connection.execute(
                "INSERT INTO inflight_packed VALUES ('vip', 'batch-1', "
                "'[[\"flying@example.com\", 8, 1]]', '2025-01-01T00:00:00.000Z')"
            )
        else:
            connection.execute(
                "INSERT INTO inflight_batches VALUES ('vip', 'batch-1', 'flying@example.com', "
                "8, 1, '2025-01-01T00:00:00.000Z')"
            )
        connection.close()


@cache
def _postgres_database() -> str:
    """The DSN of a database for this test process (dropped when it exits).

    Skips, or fails, as the ``postgres_admin_dsn`` fixture does (``require_postgres``).
    """
    admin_dsn = require_postgres()
    import psycopg
    from psycopg import conninfo

    name = f"omnisync_contract_{os.getpid()}"
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        pytest.fail(
            f"PostgreSQL is reachable but not usable ({admin_dsn}): {error}\n"
            "Start it with scripts/services (or point $OMNISYNC_TEST_POSTGRES_DSN at a "
            "server), or set OMNISYNC_SKIP_POSTGRES=1 to skip these tests.",
            pytrace=False,
        )

    def drop() -> None:
        try:
            with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.Error:
            pass

    atexit.register(drop)
    return conninfo.make_conninfo(admin_dsn, dbname=name)


_schemas = itertools.count(1)


class PostgresBackend:
    """A fresh schema per test (the store's ``search_path``), in a database per test process."""

    name = "postgres"

    def __init__(self, directory: Path) -> None:
        from psycopg import conninfo

        database = _postgres_database()
        self.schema = f"contract_{next(_schemas)}"
        self.dsn = conninfo.make_conninfo(database, options=f"-c search_path={self.schema}")
        with self._connect() as connection:
            connection.execute(f"CREATE SCHEMA {self.schema}")

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)

    def open(self) -> LedgerStore:
        from omnisync.state.postgres import PostgresLedgerStore

        return PostgresLedgerStore(self.dsn)

    def child_open_code(self) -> str:
        return (
            "from omnisync.state.postgres import PostgresLedgerStore\n"
            f"store = PostgresLedgerStore({self.dsn!r})\n"
        )

    def schema_version(self) -> int:
        with self._connect() as connection:
            return int(connection.execute("SELECT version FROM schema_version").fetchone()[0])

    def force_schema_version(self, version: int) -> None:
        with self._connect() as connection:
            connection.execute("UPDATE schema_version SET version = %s", (version,))

    def snapshot(self) -> str:
        digest = hashlib.sha256()
        with self._connect() as connection:
            tables = connection.execute(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_schema = %s ORDER BY table_name",
                (self.schema,),
            ).fetchall()
            for table, kind in tables:
                digest.update(f"{table}:{kind}\n".encode())
                rows = connection.execute(
                    f'SELECT t::text FROM "{table}" AS t ORDER BY 1'
                ).fetchall()
                for (row,) in rows:
                    digest.update(f"{row}\n".encode())
        return digest.hexdigest()

    def create_legacy_ledger(self) -> None:
        # The seam's DDL (docs/ARCHITECTURE.md, "The ledger seam") in PostgreSQL's types.
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE ledger_entries(export TEXT NOT NULL, email TEXT NOT NULL, "
                "fingerprint BIGINT NOT NULL, tag TEXT, updated_at TEXT NOT NULL, "
                "PRIMARY KEY (export, email))"
            )
            connection.execute(
                "INSERT INTO ledger_entries VALUES ('vip', 'old@example.com', 7, 'vip', "
                "'2025-01-01T00:00:00.000Z')"
            )

    def create_at_version(self, version: int) -> None:
        with self._connect() as connection, connection.transaction():
            connection.execute(
                "CREATE TABLE schema_version (id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id), "
                "version INTEGER NOT NULL)"
            )
            migrate(connection, POSTGRES_MIGRATIONS[:version], 0)
            connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            connection.execute(
                "INSERT INTO ledger_entries VALUES ('vip', 'old@example.com', 7, 'vip', "
                "'2025-01-01T00:00:00.000Z')"
            )
            connection.execute(
                "INSERT INTO inflight_batches VALUES ('vip', 'batch-1', 'flying@example.com', "
                "8, true, '2025-01-01T00:00:00.000Z')"
            )


BACKENDS = {"sqlite": SqliteBackend, "postgres": PostgresBackend}
