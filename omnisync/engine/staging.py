"""Staging a segment and diffing it against the ledger, inside SQLite.

The segment is read once into ``temp.stage`` (normalised e-mail, fingerprint,
raw values): a SQLite source by one ``INSERT ... SELECT`` with the Python rules
registered as SQL functions, other sources by ``executemany``. The diff
(:mod:`omnisync.engine.diff`) is materialised before :func:`stage_export`
yields, so the caller's own ledger writes never disturb what it iterates.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from omnisync.config.model import Config, Export
from omnisync.emails import normalise_email
from omnisync.engine.diff import AttachedLedger, LedgerSide, run_diff
from omnisync.engine.staged import StagedExport
from omnisync.errors import OmnisyncError
from omnisync.fingerprint import Fingerprinter, fingerprint_columns
from omnisync.sources import SegmentReader, open_segment
from omnisync.sources.errors import SourceError, require_columns
from omnisync.sources.sqlite import (
    SqliteReader,
    open_readonly,
    quote_identifier,
    readonly_uri,
    result_columns,
    subquery,
    translate_error,
)
from omnisync.state import LedgerStore
from omnisync.state.sqlite import check_state_database, state_path

_LEDGER_COLUMNS = frozenset({"export", "email", "fingerprint", "tag"})


class LedgerUnreadable(OmnisyncError):
    """The state database exists but its ledger cannot be read."""


class StagingFailed(SourceError):
    """The segment could not be staged for want of scratch space (the message says where)."""

    def __init__(self, cause: str, *, segment: str, source: str) -> None:
        hint = (
            "staging tables live in temporary files: check free space and that "
            "$TMPDIR (or /tmp) and $SQLITE_TMPDIR (or /var/tmp, /tmp) are writable"
        )
        super().__init__(f"{cause} ({hint})", segment=segment, source=source)


_SCRATCH_ERROR_CODES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR}
)


#: The temporary tables' page cache in KiB: what bounds staging's memory (suits a
#: million-row segment; beyond it the tables live in their temporary files).
CACHE_KIB = 65_536


@contextmanager
def stage_export(
    config: Config,
    export_name: str,
    *,
    store: LedgerStore | None = None,
    environ: Mapping[str, str] | None = None,
    full: bool = False,
) -> Iterator[StagedExport]:
    """Stage export ``export_name``'s segment and diff it against its ledger.

    The ledger is ``store``'s when given (its SQLite file, or its PostgreSQL
    database, where the ledger's half of the diff runs), else the config's
    SQLite file; a missing file or table is an empty ledger. A source's secrets
    are resolved from ``environ`` (its ``$CREDENTIALS_DIRECTORY`` too). ``full``: a
    resync (see :func:`~omnisync.engine.diff.run_diff`). Raises
    :class:`~omnisync.sources.errors.SourceError` (the segment),
    :class:`LedgerUnreadable` (a SQLite ledger), :class:`~omnisync.state.StateError`
    (a state database a run would refuse, a PostgreSQL ledger), :class:`KeyError`
    (an unknown export). Writes nothing but temporary tables.
    """
    export = config.exports.get(export_name)
    if export is None:
        raise KeyError(f"no export named '{export_name}' in the config")
    # A store without a file is a PostgreSQL store, its schema checked when it opened.
    ledger = state_path(config.daemon.state_dir) if store is None else store.ledger_file or store
    if isinstance(ledger, Path):
        # Refuse what a run refuses (a directory, a newer schema) before reading anything.
        check_state_database(ledger)
    # Also refuses what the config cannot mean (a query on a file, no query
    # on a database, a source kind that cannot be read yet).
    reader = open_segment(config, export.segment, environ=environ)
    if isinstance(reader, SqliteReader):
        connection = open_readonly(reader.path, segment=reader.segment, source=reader.source)
    else:
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        yield _stage(
            connection,
            reader,
            export,
            ledger=ledger,
            full=full,
            brand=config.brand_of(export.name),
        )
    finally:
        connection.close()


def _stage(
    connection: sqlite3.Connection,
    reader: SegmentReader,
    export: Export,
    *,
    ledger: Path | LedgerStore,
    full: bool,
    brand: str | None,
) -> StagedExport:
    names = {"segment": reader.segment, "source": reader.source}
    columns = fingerprint_columns(export)
    fingerprinter = Fingerprinter(export)
    try:
        # Files, not memory: with a bounded page cache a million-row stage costs
        # disk, not RSS. Scratch, gone with the connection: nothing to roll back
        # to or to recover after a crash, so no journal.
        connection.execute("PRAGMA temp_store = FILE")
        connection.execute(f"PRAGMA temp.cache_size = -{CACHE_KIB}")
        connection.execute("PRAGMA temp.journal_mode = OFF")
        connection.create_function("omnisync_email", 1, normalise_email, deterministic=True)
        connection.create_function("omnisync_fingerprint", -1, fingerprinter, deterministic=True)
        connection.execute(
            "CREATE TEMP TABLE stage (seq INTEGER PRIMARY KEY, email TEXT, "
            "fingerprint INTEGER, " + ", ".join(f"c{index}" for index in range(len(columns))) + ")"
        )
    except sqlite3.Error as error:
        raise StagingFailed(f"cannot create the staging tables: {error}", **names) from error
    ledger_side: AbstractContextManager[LedgerSide | None]
    if isinstance(ledger, Path):
        ledger_side = nullcontext(
            _attach_ledger(connection, ledger, export=export.name, brand=brand)
        )
    else:
        # Imported here: psycopg is an optional dependency, needed only by this store.
        from omnisync.engine.diff_postgres import postgres_ledger

        ledger_side = postgres_ledger(ledger, connection, export=export.name, brand=brand)
    connection.execute("BEGIN")
    started = time.perf_counter()
    try:
        if isinstance(reader, SqliteReader):
            _fill_from_sqlite(connection, reader.query, columns, export, **names)
        else:
            _fill_from_rows(connection, reader.rows(columns), columns, export, fingerprinter)
    except sqlite3.Error as error:
        raise StagingFailed(f"cannot stage the segment: {error}", **names) from error
    filled = time.perf_counter() - started
    try:
        with ledger_side as diffed_side:
            outcome = run_diff(connection, export, diffed_side, full=full)
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        if _is_scratch_failure(error):
            raise StagingFailed(f"cannot diff the segment: {error}", **names) from error
        where = ledger if isinstance(ledger, Path) else ledger.location
        raise LedgerUnreadable(f"cannot read the ledger in {where}: {error}") from error
    return StagedExport(
        connection,
        export=export,
        source_name=reader.source,
        columns=columns,
        counts=outcome.counts,
        duplicates_sample=outcome.duplicates_sample,
        missing_email_rows=outcome.missing_email_rows,
        timings={"stage": filled, **outcome.timings},
    )


def _is_scratch_failure(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    # Extended codes (SQLITE_IOERR_WRITE, ...) carry the primary code in their low byte.
    return code is not None and code & 0xFF in _SCRATCH_ERROR_CODES


def _attach_ledger(
    connection: sqlite3.Connection, path: Path, *, export: str, brand: str | None
) -> LedgerSide | None:
    # None: no ledger yet (plan before the first run), or nothing in it to diff against.
    if path.is_file():
        side = AttachedLedger(connection)
        try:
            connection.execute("ATTACH DATABASE ? AS ledger", (readonly_uri(path),))
            present = {
                row[1] for row in connection.execute("PRAGMA ledger.table_info('ledger_entries')")
            }
            if present and not present >= _LEDGER_COLUMNS:
                missing = ", ".join(sorted(_LEDGER_COLUMNS - present))
                raise LedgerUnreadable(
                    f"the ledger in {path} lacks the column(s) {missing}; "
                    "is it an omnisync state database?"
                )
            # A ledger from before the export_brands table records no brand.
            brands = connection.execute(
                "SELECT count(*) FROM ledger.sqlite_master WHERE name = 'export_brands'"
            ).fetchone()[0]
            if present and side.has_entries(export, brand=brand if brands else None):
                return side
        except sqlite3.Error as error:
            raise LedgerUnreadable(f"cannot read the ledger in {path}: {error}") from error
        connection.execute("DETACH DATABASE ledger")
    return None


def _fill_from_sqlite(
    connection: sqlite3.Connection,
    query: str,
    columns: tuple[str, ...],
    export: Export,
    *,
    segment: str,
    source: str,
) -> None:
    available = result_columns(connection, query, segment=segment, source=source)
    require_columns(available, columns, case_sensitive=False, segment=segment, source=source)
    quoted = [quote_identifier(column) for column in columns]
    email = quote_identifier(export.mapping.email)
    targets = ", ".join(f"c{index}" for index in range(len(columns)))
    values = ", ".join(quoted)
    try:
        connection.execute(
            f"INSERT INTO temp.stage (email, fingerprint, {targets}) "
            f"SELECT omnisync_email({email}), omnisync_fingerprint({values}), {values} "
            f"FROM ({subquery(query)})"
        )
    except sqlite3.Error as error:
        if _is_scratch_failure(error):
            raise
        raise translate_error(error, segment=segment, source=source) from error


def _fill_from_rows(
    connection: sqlite3.Connection,
    rows: Iterator[tuple[object, ...]],
    columns: tuple[str, ...],
    export: Export,
    fingerprinter: Fingerprinter,
) -> None:
    email_index = columns.index(export.mapping.email)
    targets = ", ".join(f"c{index}" for index in range(len(columns)))
    placeholders = ", ".join("?" for _ in range(len(columns) + 2))
    connection.executemany(
        f"INSERT INTO temp.stage (email, fingerprint, {targets}) VALUES ({placeholders})",
        (
            (normalise_email(values[email_index]), fingerprinter(*values), *values)
            for values in rows
        ),
    )
