"""Store back-ends the contract suite runs against.

To add an implementation (e.g. PostgreSQL), write a class with this shape and
add it to ``BACKENDS``; every test in ``contract.py`` then runs against it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Protocol

from omnisync.state import LedgerStore, SqliteLedgerStore
from omnisync.state.migrations import MIGRATIONS


class StoreBackend(Protocol):
    name: str

    def open(self) -> LedgerStore:
        """A new store instance (its own connection) on this back-end's storage."""

    def child_open_code(self) -> str:
        """Python statements that bind ``store`` to this storage in another process."""

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
        for script in MIGRATIONS[:version]:
            for statement in script.split(";"):
                if statement.strip():
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {version}")
        connection.execute(
            "INSERT INTO ledger_entries VALUES ('vip', 'old@example.com', 7, 'vip', "
            "'2025-01-01T00:00:00.000Z')"
        )
        connection.execute(
            "INSERT INTO inflight_batches VALUES ('vip', 'batch-1', 'flying@example.com', 8, 1, "
            "'2025-01-01T00:00:00.000Z')"
        )
        connection.close()


BACKENDS = {"sqlite": SqliteBackend}
