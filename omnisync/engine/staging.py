"""Staging a segment and diffing it against the ledger, inside SQLite.

:func:`stage_export` reads an export's segment once, streaming, into a
temporary SQLite table (``stage``): per row its normalised e-mail, its
fingerprint and the raw values of the columns the export reads. For a SQLite
source this is one ``INSERT INTO temp.stage SELECT ... FROM (<segment
query>)`` run by SQLite over the source database (opened read-only as
``main``), with :func:`omnisync.mapping.normalise_email` and
:class:`omnisync.fingerprint.Fingerprinter` registered as SQL functions (the
same Python functions every other path uses: one rule, one implementation);
no row becomes a Python object. File and PostgreSQL sources are streamed into
the same table with ``executemany``.

The diff (:mod:`omnisync.engine.diff`) reads the ledger where it lives: a
SQLite store's file ATTACHed read-only as schema ``ledger``, a PostgreSQL
store's database. It runs in one read transaction (one snapshot of the
ledger) and is materialised (tables ``work`` and ``leavers``) before
:func:`stage_export` yields, so ledger writes made while the caller sends
never disturb what it iterates.

Temporary tables live in SQLite's temporary files (``temp_store = FILE``)
with a bounded page cache, so memory stays flat however large the segment;
SQLite removes them when the connection closes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from omnisync.config.model import Config, Export
from omnisync.engine.diff import AttachedLedger, LedgerSide, run_diff
from omnisync.engine.staged import StagedExport
from omnisync.errors import OmnisyncError
from omnisync.fingerprint import Fingerprinter, fingerprint_columns
from omnisync.mapping import normalise_email
from omnisync.sources import SegmentReader, open_segment
from omnisync.sources.columns import require_columns
from omnisync.sources.errors import SourceError
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
from omnisync.state.database import check_state_database
from omnisync.state.sqlite import state_path

_LEDGER_COLUMNS = frozenset({"export", "email", "fingerprint", "tag"})


class LedgerUnreadable(OmnisyncError):
    """The state database exists but its ledger cannot be read."""


class StagingFailed(SourceError):
    """The segment could not be staged for a reason outside it: scratch space.

    A :class:`SourceError`, so callers that handle unreadable segments handle
    this too; the message says where SQLite keeps its temporary tables.
    """

    def __init__(self, cause: str, *, segment: str, source: str) -> None:
        super().__init__(f"{cause} ({_SCRATCH_HINT})", segment=segment, source=source)


_SCRATCH_HINT = (
    "staging tables live in temporary files: check free space and that "
    "$TMPDIR (or /tmp) and $SQLITE_TMPDIR (or /var/tmp, /tmp) are writable"
)
_SCRATCH_ERROR_CODES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR}
)


#: The temporary tables' page cache in KiB: what bounds staging's memory (suits a
#: million-row segment; beyond it the tables live in their temporary files).
CACHE_KIB = 65_536
#: How many masked examples a plan or a run keeps per sample.
SAMPLE_SIZE = 5
#: How many rows :meth:`StagedExport.work` fetches at a time (and, for a PostgreSQL
#: ledger, how many travel between the databases at a time).
FETCH_SIZE = 2_000


def ledger_path_for(config: Config) -> Path:
    """Where the ledger of ``config`` lives: the state store under ``daemon.state_dir``."""
    return state_path(config.daemon.state_dir)


@contextmanager
def stage_export(
    config: Config,
    export_name: str,
    *,
    ledger_path: Path | None = None,
    store: LedgerStore | None = None,
    environ: Mapping[str, str] | None = None,
    credentials_directory: str | None = None,
    full: bool = False,
) -> Iterator[StagedExport]:
    """Stage export ``export_name``'s segment and diff it against its ledger.

    The ledger is ``store``'s when a store is given: its SQLite file (exactly
    as ``ledger_path=store.ledger_file``) or, for a store without one (the
    PostgreSQL store), its database, where the ledger's half of the diff runs
    (:mod:`omnisync.engine.diff_postgres`) with the same results. Otherwise
    it is the SQLite file ``ledger_path``, by default :func:`ledger_path_for`
    ``(config)``; a file or ``ledger_entries`` table that does not exist yet
    is an empty ledger. Giving both is a :class:`ValueError`.
    Reads the segment once. Raises :class:`~omnisync.sources.errors.SourceError`
    (nothing sent, nothing written) when the segment cannot be read,
    :class:`LedgerUnreadable` when a SQLite ledger cannot, and :class:`KeyError`
    for an export name not in ``config``; :class:`~omnisync.state.StateError`
    (or :class:`~omnisync.state.StateSchemaTooNew`) for a state database a run
    would refuse, and for a PostgreSQL ledger that cannot be read. Nothing is
    written anywhere but temporary tables, which vanish when the block ends
    (or, in PostgreSQL, when the diff's transaction does). A PostgreSQL
    source's DSN is resolved from ``environ`` and ``credentials_directory``
    (see :func:`~omnisync.sources.open_segment`). ``full``: a resync, every
    member is work (see :func:`~omnisync.engine.diff.run_diff`).
    """
    export = config.exports.get(export_name)
    if export is None:
        raise KeyError(f"no export named '{export_name}' in the config")
    if store is not None and ledger_path is not None:
        raise ValueError("stage_export takes a ledger_path or a store, not both")
    ledger: Path | LedgerStore
    if store is not None and store.ledger_file is None:
        # Opening the store already refused a newer schema; it is migrated.
        ledger = store
    else:
        path = store.ledger_file if store is not None else ledger_path
        ledger = path if path is not None else ledger_path_for(config)
        # Refuse what a run refuses (a ledger that is a directory, a newer
        # schema), with its words, before reading anything.
        check_state_database(ledger)
    # Also refuses what the config cannot mean (a query on a file, no query
    # on a database, a source kind that cannot be read yet).
    reader = open_segment(
        config, export.segment, environ=environ, credentials_directory=credentials_directory
    )
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
    fingerprinter = Fingerprinter.for_export(export)
    try:
        _prepare(connection, fingerprinter)
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

        ledger_side = postgres_ledger(
            ledger, export=export.name, brand=brand, fetch_size=FETCH_SIZE
        )
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
            outcome = run_diff(
                connection,
                export=export.name,
                tag=export.tag,
                on_leave=export.on_leave,
                full=full,
                sample_size=SAMPLE_SIZE,
                ledger=diffed_side,
            )
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
        fetch_size=FETCH_SIZE,
        timings={"stage": filled, **outcome.timings},
    )


def _is_scratch_failure(error: sqlite3.Error) -> bool:
    """Whether ``error`` is about writing the temporary file (full, unwritable)."""
    code = getattr(error, "sqlite_errorcode", None)
    # Extended codes (SQLITE_IOERR_WRITE, ...) carry the primary code in their low byte.
    return code is not None and code & 0xFF in _SCRATCH_ERROR_CODES


def _prepare(connection: sqlite3.Connection, fingerprinter: Fingerprinter) -> None:
    # Files, not memory: with a bounded page cache a million-row stage costs
    # disk, not RSS. Scratch, gone with the connection: nothing to roll back
    # to or to recover after a crash, so no journal.
    connection.execute("PRAGMA temp_store = FILE")
    connection.execute(f"PRAGMA temp.cache_size = -{CACHE_KIB}")
    connection.execute("PRAGMA temp.journal_mode = OFF")
    connection.create_function("omnisync_email", 1, normalise_email, deterministic=True)
    connection.create_function("omnisync_fingerprint", -1, fingerprinter, deterministic=True)


def _attach_ledger(
    connection: sqlite3.Connection, path: Path, *, export: str, brand: str | None
) -> LedgerSide | None:
    """ATTACH the ledger as ``ledger`` and return its side of the diff; ``None``
    when there is no ledger yet, or nothing in it to diff against
    (:meth:`~omnisync.engine.diff.LedgerSide.has_entries`)."""
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
    # No state database yet (plan before the first run): an empty ledger.
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
    """Stage the segment with one ``INSERT ... SELECT`` run inside SQLite."""
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

    def staged() -> Iterator[tuple[object, ...]]:
        for values in rows:
            yield (normalise_email(values[email_index]), fingerprinter(*values), *values)

    connection.executemany(
        f"INSERT INTO temp.stage (email, fingerprint, {targets}) VALUES ({placeholders})",
        staged(),
    )
