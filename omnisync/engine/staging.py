"""Staging a segment and diffing it against the ledger, inside SQLite.

The segment is read once into ``temp.omnisync_stage`` (normalised e-mail, fingerprint,
raw values): a SQLite source by one ``INSERT ... SELECT`` with the Python rules
registered as SQL functions, other sources by ``executemany``. The diff
(:mod:`omnisync.engine.diff`) is materialised before :func:`stage_export`
yields a :class:`StagedExport`, so the caller's own ledger writes never disturb
what it iterates.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import starmap
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from omnisync.config.model import Config, Export
from omnisync.emails import normalise_email
from omnisync.engine.diff import FETCH_SIZE, LedgerSide, run_diff
from omnisync.errors import OmnisyncError
from omnisync.fingerprint import Fingerprinter, fingerprint_columns
from omnisync.planning import Leaver, SourceRow, StageCounts, WorkItem, WorkRecord
from omnisync.sources import open_segment
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

_new_tuple = tuple.__new__


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


class StagedMember(NamedTuple):
    """One member as the segment holds it now: the row a run maps for that e-mail.

    ``position`` is the row's place in the segment (1 for the first row);
    ``work`` is the member's work item, ``None`` when a run has nothing to do;
    ``rows`` how many rows of the segment carry the e-mail (the first wins).
    """

    email: str
    position: int
    fingerprint: int
    row: SourceRow
    work: WorkItem | None
    rows: int


@dataclass(frozen=True)
class StagedExport:
    """A staged, diffed export: counts, samples, and streams of the work to do.

    Valid only inside :func:`stage_export`'s ``with`` block. Not thread-safe: use
    it from one thread at a time (any thread). ``timings``: seconds spent per
    phase (stage, index, duplicates, work...).
    """

    connection: sqlite3.Connection = field(repr=False)
    export: Export
    source_name: str
    columns: tuple[str, ...]
    counts: StageCounts
    duplicates_sample: tuple[str, ...]
    missing_email_rows: tuple[int, ...]
    timings: Mapping[str, float]
    connection_display_name: str = ""

    def work(self) -> Iterator[WorkItem]:
        """Members that need an upsert and/or the tag, in segment order (each pass
        reads the materialised work again)."""
        for records in self.work_records():
            yield from map(self.work_item, records)

    def work_records(self) -> Iterator[list[WorkRecord]]:
        """:meth:`work` as lists of raw records (``(email, fingerprint, in_ledger, tag_on,
        needs_upsert, needs_tag, *values)``), for a loop that wants no object per member."""
        values = ", ".join(f"s.c{index}" for index in range(len(self.columns)))
        return self._batches(
            "SELECT s.email, s.fingerprint, w.in_ledger, w.tag_on, w.needs_upsert, "
            f"w.needs_tag, {values} FROM temp.work AS w "
            "JOIN temp.omnisync_stage AS s ON s.seq = w.seq ORDER BY w.seq"
        )

    def work_item(self, record: WorkRecord) -> WorkItem:
        """The :class:`~omnisync.planning.WorkItem` of a :meth:`work_records` record."""
        # WorkItem(...) without its Python-level __new__: once per member.
        return _new_tuple(
            WorkItem,
            (
                record[0],
                record[1],
                bool(record[2]),
                record[3],
                bool(record[4]),
                bool(record[5]),
                SourceRow(self.columns, record[6:]),
            ),
        )

    def leavers(self) -> Iterator[Leaver]:
        """Ledger members who left the segment and carry a tag to remove, by e-mail
        (none with ``on_leave: keep``)."""
        for batch in self._batches("SELECT email, tag FROM temp.leavers ORDER BY email"):
            yield from starmap(Leaver, batch)

    def _batches(self, sql: str) -> Iterator[list[Any]]:
        cursor = self.connection.execute(sql)
        try:
            while batch := cursor.fetchmany(FETCH_SIZE):
                yield batch
        finally:
            cursor.close()

    def members_of(self, emails: Collection[str]) -> dict[str, StagedMember]:
        """The members among ``emails`` (normalised), each with the row a run uses
        (the first row that carries the e-mail). One indexed query, for a few e-mails."""
        wanted = orjson.dumps(sorted(set(emails))).decode()
        values = ", ".join(f"s.c{index}" for index in range(len(self.columns)))
        cursor = self.connection.execute(
            "SELECT count(*) OVER (PARTITION BY s.email), s.seq, w.seq IS NOT NULL, s.email, "
            "s.fingerprint, w.in_ledger, w.tag_on, w.needs_upsert, w.needs_tag, "
            f"{values} FROM temp.omnisync_stage AS s LEFT JOIN temp.work AS w ON w.seq = s.seq "
            "WHERE s.email IN (SELECT value FROM json_each(?)) ORDER BY s.seq",
            (wanted,),
        )
        found: dict[str, StagedMember] = {}
        for copies, seq, in_work, *record in cursor:
            # From the e-mail on, a record of :meth:`work_records`' shape.
            email, fingerprint = record[0], record[1]
            if email not in found:
                work = self.work_item(record) if in_work else None
                row = SourceRow(self.columns, tuple(record[6:]))
                found[email] = StagedMember(email, seq, fingerprint, row, work, copies)
        return found

    def leaver_tags(self, emails: Collection[str]) -> dict[str, str]:
        """The leavers among ``emails``: e-mail -> the tag a run would remove."""
        wanted = orjson.dumps(sorted(set(emails))).decode()
        return dict(
            self.connection.execute(
                "SELECT email, tag FROM temp.leavers "
                "WHERE email IN (SELECT value FROM json_each(?))",
                (wanted,),
            ).fetchall()
        )


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
    names = {"segment": reader.segment, "source": reader.source}
    columns = fingerprint_columns(export)
    targets = ", ".join(f"c{index}" for index in range(len(columns)))
    fingerprinter = Fingerprinter(export)
    brand = config.brand_of(export.name)
    if isinstance(reader, SqliteReader):
        connection = open_readonly(reader.path, **names)
    else:
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    with closing(connection):
        try:
            # Files, not memory: with a bounded page cache a million-row stage costs
            # disk, not RSS. Scratch, gone with the connection: nothing to roll back
            # to or to recover after a crash, so no journal.
            connection.execute("PRAGMA temp_store = FILE")
            connection.execute(f"PRAGMA temp.cache_size = -{CACHE_KIB}")
            connection.execute("PRAGMA temp.journal_mode = OFF")
            connection.create_function("omnisync_email", 1, normalise_email, deterministic=True)
            connection.create_function(
                "omnisync_fingerprint", -1, fingerprinter, deterministic=True
            )
            # The segment query runs on this connection, and SQLite finds a bare name
            # in temp first: a name of omnisync's own, so a source's `stage` is its own.
            connection.execute(
                "CREATE TEMP TABLE omnisync_stage (seq INTEGER PRIMARY KEY, email TEXT, "
                f"fingerprint INTEGER, {targets})"
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
                email_index = columns.index(export.mapping.email)
                placeholders = ", ".join("?" for _ in range(len(columns) + 2))
                connection.executemany(
                    f"INSERT INTO temp.omnisync_stage (email, fingerprint, {targets}) "
                    f"VALUES ({placeholders})",
                    (
                        (normalise_email(values[email_index]), fingerprinter(*values), *values)
                        for values in reader.rows(columns)
                    ),
                )
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
        yield StagedExport(
            connection,
            export=export,
            source_name=reader.source,
            columns=columns,
            counts=outcome.counts,
            duplicates_sample=outcome.duplicates_sample,
            missing_email_rows=outcome.missing_email_rows,
            timings={"stage": filled, **outcome.timings},
            connection_display_name=config.connections[export.connection].display_name,
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
        side = LedgerSide(connection)
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
            f"INSERT INTO temp.omnisync_stage (email, fingerprint, {targets}) "
            f"SELECT omnisync_email({email}), omnisync_fingerprint({values}), {values} "
            f"FROM ({subquery(query, dialect='sqlite')})"
        )
    except sqlite3.Error as error:
        if _is_scratch_failure(error):
            raise
        if str(error) == "user-defined function raised exception":
            # Python's sqlite3 cannot pass a TEXT value that is not UTF-8 to a function.
            bad = _columns_not_utf8(connection, query, columns)
            if bad:
                cause = (
                    f"column(s) {', '.join(bad)} hold text that is not UTF-8 (written in"
                    " another encoding?); fix the data, or select CAST(column AS BLOB)"
                    " to have such rows reported as invalid"
                )
                raise SourceError(cause, segment=segment, source=source) from error
        raise translate_error(error, segment=segment, source=source) from error


def _columns_not_utf8(
    connection: sqlite3.Connection, query: str, columns: tuple[str, ...]
) -> list[str]:
    def utf8(value: bytes) -> bool:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    connection.create_function("omnisync_utf8", 1, utf8, deterministic=True)
    source = subquery(query, dialect="sqlite")
    found = []
    for column in columns:
        quoted = quote_identifier(column)
        test = f"typeof({quoted}) = 'text' AND NOT omnisync_utf8(CAST({quoted} AS BLOB))"
        if connection.execute(f"SELECT 1 FROM ({source}) WHERE {test} LIMIT 1").fetchone():
            found.append(column)
    return found
