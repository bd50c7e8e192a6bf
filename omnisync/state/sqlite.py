"""The SQLite state store: the :class:`LedgerStore` contract on one file.

``<daemon.state_dir>/omnisync.sqlite3`` by default, in WAL mode, so the export engine's diff
reads the ledger through its own read-only connection while a run writes;
``synchronous=NORMAL`` keeps each commit cheap, and a killed process loses nothing committed.
Sets of e-mails travel as one JSON parameter unpacked by ``json_each``, so a batch's worth of
work is one statement. A batch's intent and its in-flight items are one row each
(``batch_intents``, ``inflight_packed``) of :func:`~omnisync.state.store.pack_items`' JSON;
the ledger is one row per contact.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path

import orjson

from omnisync.regularfiles import open_regular_file
from omnisync.state.locks import PRIVATE_FILE_MODE, chmod_if_ours, make_private_directory
from omnisync.state.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, refuse_newer_schema
from omnisync.state.sql_store import AcceptedBatch, LedgerStore
from omnisync.state.store import StateError, format_timestamp

#: One packed item: e-mail, fingerprint, then_tag (0/1).
PackedItem = tuple[str, int, int]


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the state database of ``state_dir`` lives."""
    return Path(state_dir) / "omnisync.sqlite3"


def open_state_store(state_dir: str | os.PathLike[str]) -> SqliteLedgerStore:
    """Open (creating as needed, mode 0700) the state store under ``state_dir``."""
    directory = Path(state_dir)
    try:
        make_private_directory(directory)
    except OSError as error:
        raise StateError(
            f"cannot create state directory {directory}: {error.strerror or error}"
        ) from None
    return SqliteLedgerStore(state_path(directory))


def check_state_database(path: str | os.PathLike[str]) -> None:
    """Refuse, with the words opening the store would use, a state database at ``path``
    that cannot be used (:class:`StateError`, :class:`StateSchemaTooNew`); a missing
    ``path`` is fine. For readers that never write (``plan``): opens read-only."""
    database = Path(path)
    if not os.path.lexists(database):
        return
    _refuse_if_not_a_file(database)
    try:
        connection = _read_only(database)
    except sqlite3.Error as error:
        raise StateError(f"cannot open state database {database}: {error}") from None
    with closing(connection), _translated(database, "read"):
        _read_version(database, connection)


def count_in_flight(path: str | os.PathLike[str], export: str) -> int:
    """The contacts of ``export``'s in-flight batches and intents in the state database at
    ``path``, read without opening (migrating) it, for readers that never write (``plan``);
    ``0`` without a database, or one from before those tables."""
    try:
        with closing(_read_only(Path(path))) as connection:
            return sum(
                connection.execute(
                    f"SELECT coalesce(sum(json_array_length(items)), 0) FROM {table} "
                    "WHERE export = ?",
                    (export,),
                ).fetchone()[0]
                for table in (SqliteLedgerStore._inflight_packed, "batch_intents")
            )
    except sqlite3.Error:
        return 0


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


class SqliteLedgerStore(LedgerStore):
    """:class:`LedgerStore` on the SQLite file ``path``: migrated on open, a newer schema
    refused untouched. One connection behind a lock; the file and its WAL files are
    made owner-only (0600) whatever the directory's mode or the umask."""

    _inflight_table = _inflight_packed = "inflight_packed"
    _in_emails = "IN (SELECT value FROM json_each(?))"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.ledger_file = self.path
        self._lock = threading.Lock()
        self._closed = False
        _refuse_if_not_a_file(self.path)
        _make_private(self.path)
        try:
            # ``timeout`` is SQLite's busy timeout: a write waits out another writer.
            self._connection = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StateError(f"cannot open state database {self.path}: {error}") from None
        try:
            self._prepare()
        except BaseException:
            self._connection.close()
            raise

    def _prepare(self) -> None:
        # Read the version before anything that writes (even journal_mode writes
        # the header), so a newer database is refused byte-for-byte untouched.
        with _translated(self.path, "read"):
            version = _read_version(self.path, self._connection)
        with _translated(self.path, "configure"):
            mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(
                    f"state database {self.path}: cannot switch to WAL mode (got {mode!r}); "
                    "is it on a network file system?"
                )
            self._connection.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            with self._writing("migrate") as connection:
                # Re-read inside the write lock: another process may have migrated meanwhile.
                version = _read_version(self.path, connection)
                migrate(connection, MIGRATIONS, version)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StateError(f"state database {self.path} is closed")
            with _translated(self.path, action):
                yield self._connection

    @contextmanager
    def _writing(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._reading(action) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _write(self, action: str, sql: str, parameters: Sequence[object]) -> int:
        # A lone statement is atomic by itself: no BEGIN and COMMIT round trips, each
        # of which would give the GIL away while this connection's lock is held.
        with self._reading(action) as connection:
            return int(connection.execute(sql, parameters).rowcount)

    def close(self) -> None:
        with self._lock:  # closing a closed connection does nothing
            self._closed = True
            self._connection.close()

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        with self._writing("record a created batch") as connection:
            row = connection.execute(
                "DELETE FROM batch_intents WHERE export = ? AND token = ? RETURNING items",
                (export, token),
            ).fetchone()
            if row is None:
                return 0
            # The common case: a new batch id, its items moved as they are stored.
            inserted = connection.execute(
                "INSERT INTO inflight_packed (export, batch_id, items, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (export, batch_id) DO NOTHING "
                "RETURNING json_array_length(items)",
                (export, batch_id, row[0], format_timestamp(now)),
            ).fetchone()
            if inserted is not None:
                return int(inserted[0])
            # A batch id already in flight keeps one item per e-mail, the newer winning.
            both = (*_items(connection, export, batch_id), *orjson.loads(row[0]))
            merged = list({item[0]: item for item in both}.values())
            _put_items(connection, export, batch_id, merged)
            return len(merged)

    def _acknowledge(
        self, connection: sqlite3.Connection, export: str, batch: AcceptedBatch, stamp: str
    ) -> int:
        batch_id, emails = batch
        if emails is None:  # the whole batch (the usual case): its items as they are stored
            row = connection.execute(
                "DELETE FROM inflight_packed WHERE export = ? AND batch_id = ? RETURNING items",
                (export, batch_id),
            ).fetchone()
            packed = "[]" if row is None else row[0]
        else:
            packed = orjson.dumps(_take(connection, export, batch_id, emails)).decode()
        # One statement for the whole batch inside SQLite, not one step per item.
        return int(
            connection.execute(
                "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
                "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), NULL, ? "
                # WHERE true: SQLite reads ON after a bare FROM as a join's.
                "FROM json_each(?) WHERE true ON CONFLICT (export, email) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
                (export, stamp, packed),
            ).rowcount
        )

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        with self._writing("release in-flight contacts") as connection:
            return len(_take(connection, export, batch_id, emails))


def _take(
    connection: sqlite3.Connection, export: str, batch_id: str, emails: Collection[str] | None
) -> list[PackedItem]:
    """Remove from batch ``batch_id`` its items for ``emails`` (all for ``None``); returns them."""
    items = _items(connection, export, batch_id)
    wanted = None if emails is None else set(emails)
    kept = [] if wanted is None else [item for item in items if item[0] not in wanted]
    if len(kept) < len(items):
        _put_items(connection, export, batch_id, kept)
    return items if wanted is None else [item for item in items if item[0] in wanted]


def _items(connection: sqlite3.Connection, export: str, batch_id: str) -> list[PackedItem]:
    """The packed items in flight under ``batch_id`` (trusted as :func:`pack_items` wrote
    them: a hot path, so not converted one by one)."""
    row = connection.execute(
        "SELECT items FROM inflight_packed WHERE export = ? AND batch_id = ?", (export, batch_id)
    ).fetchone()
    items: list[PackedItem] = [] if row is None else orjson.loads(row[0])
    return items


def _put_items(
    connection: sqlite3.Connection, export: str, batch_id: str, items: list[PackedItem]
) -> None:
    """Make ``items`` all that is in flight under ``batch_id``: with none, the batch is done."""
    key = (export, batch_id)
    if items:
        connection.execute(
            "UPDATE inflight_packed SET items = ? WHERE export = ? AND batch_id = ?",
            (orjson.dumps(items).decode(), *key),
        )
    else:
        connection.execute("DELETE FROM inflight_packed WHERE export = ? AND batch_id = ?", key)


def _refuse_if_not_a_file(path: Path) -> None:
    # Not followed: whoever may write the state directory (a service's DynamicUser) could
    # point a link at any file, for a root `omnisync history` to chmod or overwrite.
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kinds = {stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}
        kind = kinds.get(stat.S_IFMT(mode), "not a regular file")
        raise StateError(f"cannot open state database {path}: it is {kind}")


def _read_version(path: Path, connection: sqlite3.Connection) -> int:
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    refuse_newer_schema(path, version, instead="daemon.state_dir at another directory")
    return version


@contextmanager
def _translated(path: Path, action: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as error:
        raise StateError(f"state database {path}: cannot {action}: {error}") from None


def _make_private(path: Path) -> None:
    """Create the database file owner-only (it holds customer e-mails), and make it
    and its WAL files so if they exist with wider modes (SQLite gives the -wal and
    -shm files the database file's mode, whatever the directory or the umask)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        flags = os.O_RDWR | os.O_CREAT if not suffix else os.O_RDONLY
        try:
            # Never through a link (O_NOFOLLOW: see _refuse_if_not_a_file).
            name = path.with_name(path.name + suffix)
            descriptor = open_regular_file(name, flags | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
        except OSError:
            continue  # absent, not a regular file: sqlite3.connect says what is wrong
        try:
            chmod_if_ours(descriptor, PRIVATE_FILE_MODE)
        finally:
            os.close(descriptor)
