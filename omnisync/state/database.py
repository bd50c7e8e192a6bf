"""The state database's shell: one SQLite file, WAL mode, one connection behind a lock.

:class:`SqliteDatabase` owns the connection: it refuses a database written
by a newer omnisync (before writing a byte), migrates an older one, and runs
every read and write under one lock, each write in its own transaction. WAL
lets the export engine's diff read the ledger through its own read-only
connection while a run writes; ``synchronous=NORMAL`` keeps each commit
cheap, and a killed process loses nothing committed (WAL commits are atomic;
only a power cut may drop the last ones, never consistency).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from omnisync.state.locks import PRIVATE_FILE_MODE, chmod_if_ours
from omnisync.state.migrations import MIGRATIONS, SCHEMA_VERSION, refuse_newer_schema
from omnisync.state.store import StateError


def check_state_database(path: str | os.PathLike[str]) -> None:
    """Refuse, as opening the store would, a state database that cannot be used.

    For readers that never write (``plan``): an existing ``path`` that is not
    a database SQLite can open raises :class:`StateError`, one written by a
    newer omnisync :class:`StateSchemaTooNew`, with the messages
    :class:`SqliteDatabase` gives. A path that does not exist is fine (no
    state yet). Opens read-only; writes nothing.
    """
    database = Path(path)
    if not os.path.lexists(database):
        return
    _refuse_if_not_a_file(database)
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise StateError(f"cannot open state database {database}: {error}") from None
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as error:
        # The words of SqliteDatabase._translate("read").
        raise StateError(f"state database {database}: cannot read: {error}") from None
    finally:
        connection.close()
    _refuse_if_newer(database, version)


def _refuse_if_not_a_file(path: Path) -> None:
    if os.path.lexists(path) and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise StateError(f"cannot open state database {path}: it is {kind}")


def _refuse_if_newer(path: Path, version: int) -> None:
    refuse_newer_schema(path, version, instead="daemon.state_dir at another directory")


def _make_private(path: Path) -> None:
    """Create the database file owner-only (it holds customer e-mails), and make it
    and its WAL files so if they exist with wider modes (SQLite gives the -wal and
    -shm files the database file's mode, whatever the directory or the umask)."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except OSError:
        return  # sqlite3.connect reports what is wrong with the path
    try:
        chmod_if_ours(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    for suffix in ("-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            chmod_if_ours(path.with_name(path.name + suffix), PRIVATE_FILE_MODE)


class SqliteDatabase:
    """The state database file, opened (and migrated) at construction. Thread-safe.

    The file and its WAL files are made owner-only (0600) whatever the
    directory's mode or the umask.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        _refuse_if_not_a_file(self.path)
        _make_private(self.path)
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

    def _prepare(self, busy_timeout: float) -> None:
        # Read the version before anything that writes (even journal_mode writes
        # the header), so a newer database is refused byte-for-byte untouched.
        version = self._read_version()
        _refuse_if_newer(self.path, version)
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

    def _migrate(self) -> None:
        with self.transaction("migrate") as connection:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            _refuse_if_newer(self.path, version)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[number - 1]):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._read_version()

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise StateError(f"state database {self.path}: cannot {action}: {error}") from None

    @contextmanager
    def transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (``action`` names it in errors); rollback on any error."""
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

    def write(self, action: str, sql: str, parameters: Sequence[object] = ()) -> int:
        """Run one writing statement as its own transaction; return the rows it changed.

        SQLite makes a lone statement atomic by itself: no BEGIN and COMMIT
        round trips, each of which would give the GIL away and wait to get it
        back while this connection's lock is held.
        """
        with self._lock:
            self._check_open()
            with self._translate(action):
                return int(self._connection.execute(sql, parameters).rowcount)

    @contextmanager
    def reading(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, for reads (each statement sees committed data)."""
        with self._lock:
            self._check_open()
            with self._translate(action):
                yield self._connection

    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"state database {self.path} is closed")

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction; run the statements one by one.
    for statement in script.split(";"):
        if statement.strip():
            yield statement
