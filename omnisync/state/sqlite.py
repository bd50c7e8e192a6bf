"""The SQLite state store: one file, WAL mode, one connection guarded by a lock.

``<daemon.state_dir>/omnisync.sqlite3`` by default. WAL lets the export
engine's diff read the ledger (its own read-only connection) while a run
writes to it; ``synchronous=NORMAL`` keeps each batch's commit cheap while a
crash still loses at most the last commits, never consistency (WAL is
atomic). The pipeline calls back from several threads, so every use of the
single connection holds one lock; other processes wait up to the busy timeout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import cast

from omnisync.state.migrations import MIGRATIONS, SCHEMA_VERSION
from omnisync.state.store import (
    FINAL_STATUSES,
    InflightBatch,
    InflightItem,
    LedgerEntry,
    LedgerStore,
    RunRecord,
    RunStatus,
    StateError,
    StateSchemaTooNew,
    format_timestamp,
    mask_free_text,
)

#: The state database's file name inside ``daemon.state_dir``.
STATE_FILENAME = "omnisync.sqlite3"

#: In-list of e-mails passed as one JSON parameter (one statement, any length).
_EMAILS = "(SELECT value FROM json_each(?))"


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the state database of ``state_dir`` lives."""
    return Path(state_dir) / STATE_FILENAME


def open_state_store(state_dir: str | os.PathLike[str]) -> SqliteLedgerStore:
    """Open (creating as needed, mode 0700) the state store under ``state_dir``."""
    directory = Path(state_dir)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._connection = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StateError(f"cannot open state database {self.path}: {error}") from None
        try:
            self._prepare(busy_timeout)
        except BaseException:
            self._connection.close()
            raise

    # -- opening ----------------------------------------------------------------

    def _prepare(self, busy_timeout: float) -> None:
        # Read the version before anything that writes (even journal_mode writes
        # the header), so a newer database is refused byte-for-byte untouched.
        version = self._read_version()
        self._refuse_if_newer(version)
        with self._translate("configure"):
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(
                    f"state database {self.path}: cannot switch to WAL mode (got {mode!r}); "
                    "is it on a network file system?"
                )
            self._connection.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            self._migrate()

    def _read_version(self) -> int:
        with self._translate("read"):
            return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    def _refuse_if_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateSchemaTooNew(
                f"state database {self.path} has schema version {version}, newer than this "
                f"omnisync understands ({SCHEMA_VERSION}); it was left untouched. Upgrade "
                "omnisync, or point daemon.state_dir at another directory."
            )

    def _migrate(self) -> None:
        with self._transaction("migrate") as connection:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            self._refuse_if_newer(version)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[number - 1]):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._read_version()

    # -- plumbing -----------------------------------------------------------------

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise StateError(f"state database {self.path}: cannot {action}: {error}") from None

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; the lock is held throughout, rollback on any error."""
        with self._lock:
            self._check_open()
            connection = self._connection
            with self._translate(action):
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_open()
            with self._translate(action):
                yield self._connection

    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"state database {self.path} is closed")

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
            connection.execute("DELETE FROM inflight_batches WHERE export = ?", (export,))
            connection.execute("DELETE FROM batch_intents WHERE export = ?", (export,))
            return connection.execute(
                "DELETE FROM ledger_entries WHERE export = ?", (export,)
            ).rowcount

    # -- in-flight batches ----------------------------------------------------------------

    def record_inflight(
        self, export: str, batch_id: str, items: Sequence[InflightItem], *, now: datetime
    ) -> None:
        stamp = format_timestamp(now)
        with self._transaction("record an in-flight batch") as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO inflight_batches "
                "(export, batch_id, email, fingerprint, then_tag, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (export, batch_id, item.email, item.fingerprint, int(item.then_tag), stamp)
                    for item in items
                ],
            )

    def record_intent(
        self, export: str, token: str, items: Sequence[InflightItem], *, now: datetime
    ) -> None:
        listed = json.dumps([[item.email, item.fingerprint, int(item.then_tag)] for item in items])
        with self._transaction("record a batch about to be sent") as connection:
            connection.execute(
                "INSERT OR REPLACE INTO batch_intents (export, token, items, created_at) "
                "VALUES (?, ?, ?, ?)",
                (export, token, listed, format_timestamp(now)),
            )

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        with self._transaction("record a created batch") as connection:
            # The intent's items are unpacked inside SQLite: no row becomes a Python object.
            moved = connection.execute(
                "INSERT OR REPLACE INTO inflight_batches "
                "(export, batch_id, email, fingerprint, then_tag, created_at) "
                "SELECT i.export, ?, json_extract(j.value, '$[0]'), "
                "json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), ? "
                "FROM batch_intents AS i, json_each(i.items) AS j "
                "WHERE i.export = ? AND i.token = ?",
                (batch_id, format_timestamp(now), export, token),
            ).rowcount
            connection.execute(
                "DELETE FROM batch_intents WHERE export = ? AND token = ?", (export, token)
            )
            return int(moved)

    def intents(self, export: str) -> list[InflightBatch]:
        with self._reading("read batch intents") as connection:
            rows = connection.execute(
                "SELECT token, created_at, items FROM batch_intents WHERE export = ? "
                "ORDER BY created_at, token",
                (export,),
            ).fetchall()
        return [
            InflightBatch(
                token,
                created_at,
                tuple(
                    InflightItem(email, int(fingerprint), bool(then_tag))
                    for email, fingerprint, then_tag in json.loads(items)
                ),
            )
            for token, created_at, items in rows
        ]

    def release_intent(self, export: str, token: str) -> int:
        with self._transaction("forget a batch intent") as connection:
            return int(
                connection.execute(
                    "DELETE FROM batch_intents WHERE export = ? AND token = ?", (export, token)
                ).rowcount
            )

    def inflight_batches(self, export: str) -> list[InflightBatch]:
        with self._reading("read in-flight batches") as connection:
            rows = connection.execute(
                "SELECT batch_id, created_at, email, fingerprint, then_tag FROM inflight_batches "
                "WHERE export = ? ORDER BY created_at, batch_id, email",
                (export,),
            ).fetchall()
        grouped: dict[str, tuple[str, list[InflightItem]]] = {}
        for batch_id, created_at, email, fingerprint, then_tag in rows:
            _, items = grouped.setdefault(batch_id, (created_at, []))
            items.append(InflightItem(email, fingerprint, bool(then_tag)))
        return [
            InflightBatch(batch_id, created_at, tuple(items))
            for batch_id, (created_at, items) in grouped.items()
        ]

    def acknowledge(
        self, export: str, batch_id: str, emails: Collection[str], *, now: datetime
    ) -> int:
        if not emails:
            return 0
        stamp = format_timestamp(now)
        listed = json.dumps(list(emails))
        with self._transaction("record acknowledged contacts") as connection:
            written = connection.execute(
                "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
                "SELECT export, email, fingerprint, NULL, ? FROM inflight_batches "
                f"WHERE export = ? AND batch_id = ? AND email IN {_EMAILS} "
                "ON CONFLICT (export, email) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
                (stamp, export, batch_id, listed),
            ).rowcount
            connection.execute(
                "DELETE FROM inflight_batches "
                f"WHERE export = ? AND batch_id = ? AND email IN {_EMAILS}",
                (export, batch_id, listed),
            )
            return int(written)

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        with self._transaction("release in-flight contacts") as connection:
            if emails is None:
                cursor = connection.execute(
                    "DELETE FROM inflight_batches WHERE export = ? AND batch_id = ?",
                    (export, batch_id),
                )
            else:
                cursor = connection.execute(
                    "DELETE FROM inflight_batches "
                    f"WHERE export = ? AND batch_id = ? AND email IN {_EMAILS}",
                    (export, batch_id, json.dumps(list(emails))),
                )
            return int(cursor.rowcount)

    def mark_tagged(self, export: str, tag: str, emails: Collection[str], *, now: datetime) -> int:
        if not emails:
            return 0
        with self._transaction("record added tags") as connection:
            return int(
                connection.execute(
                    "UPDATE ledger_entries SET tag = ?, updated_at = ? "
                    f"WHERE export = ? AND email IN {_EMAILS}",
                    (tag, format_timestamp(now), export, json.dumps(list(emails))),
                ).rowcount
            )

    def mark_untagged(
        self, export: str, tag: str, emails: Collection[str], *, now: datetime
    ) -> int:
        if not emails:
            return 0
        with self._transaction("record removed tags") as connection:
            return int(
                connection.execute(
                    "UPDATE ledger_entries SET tag = NULL, updated_at = ? "
                    f"WHERE export = ? AND tag = ? AND email IN {_EMAILS}",
                    (format_timestamp(now), export, tag, json.dumps(list(emails))),
                ).rowcount
            )

    # -- run history --------------------------------------------------------------------

    def start_run(
        self, export: str, *, trigger: str, config_revision: str, now: datetime
    ) -> RunRecord:
        stamp = format_timestamp(now)
        with self._transaction("record a run") as connection:
            connection.execute(
                "UPDATE runs SET status = 'interrupted', error = ? "
                "WHERE export = ? AND status = 'running'",
                (
                    "the process running it stopped before recording a result "
                    f"(noticed at {stamp})",
                    export,
                ),
            )
            cursor = connection.execute(
                "INSERT INTO runs (export, trigger, config_revision, started_at, status) "
                "VALUES (?, ?, ?, ?, 'running')",
                (export, trigger, config_revision, stamp),
            )
            run_id = cursor.lastrowid
        assert run_id is not None
        return RunRecord(run_id, export, trigger, config_revision, stamp, None, "running")

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

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()

    def __repr__(self) -> str:
        return f"SqliteLedgerStore({self.location!r})"


_RUN_COLUMNS = (
    "SELECT id, export, trigger, config_revision, started_at, ended_at, status, counts, error "
    "FROM runs"
)


def _run_record(row: tuple[object, ...]) -> RunRecord:
    run_id, export, trigger, revision, started_at, ended_at, status, counts, error = row
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
    )


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction; run the statements one by one.
    for statement in script.split(";"):
        if statement.strip():
            yield statement
