"""Segment sources: reading the rows of a segment, streaming, with bounded memory.

Shells, one per kind: :mod:`~omnisync.sources.sqlite` and
:mod:`~omnisync.sources.postgres` (a query run inside the database),
:mod:`~omnisync.sources.files` (CSV and JSONL). :func:`open_segment` picks
the reader for a configured segment. Every failure is a :class:`SourceError`
naming the segment, the source and the cause, raised before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from omnisync.config.model import Config
from omnisync.config.secrets import SecretUnavailable, resolve_secret
from omnisync.sources.errors import SourceError
from omnisync.sources.files import CsvReader, JsonlReader
from omnisync.sources.postgres import PostgresReader
from omnisync.sources.sqlite import SqliteReader

#: A reader of one segment's rows; each but :class:`SqliteReader` (whose query staging runs
#: inside SQLite) yields them with ``rows(columns)``, raising :class:`SourceError`.
SegmentReader = SqliteReader | CsvReader | JsonlReader | PostgresReader


def open_segment(
    config: Config, segment_name: str, *, environ: Mapping[str, str] | None = None
) -> SegmentReader:
    """A reader for the configured segment ``segment_name``; the file is opened, or the
    database connected to, when rows are read.

    Raises :class:`SourceError` for a database source without a query, a query on a file
    source, or a PostgreSQL DSN secret that :func:`~omnisync.config.secrets.resolve_secret`
    cannot resolve from ``environ`` (default ``os.environ``); the error names the
    reference, never a value.
    """
    segment = config.segments.get(segment_name)
    if segment is None:
        raise SourceError("no such segment in the config", segment=segment_name, source="?")
    names = {"segment": segment.name, "source": segment.source}
    source = config.sources.get(segment.source)
    if source is None:
        raise SourceError("the segment's source is not in the config", **names)
    if source.kind == "postgres":
        if not segment.query:
            raise SourceError("a segment on a PostgreSQL source needs a query", **names)
        if source.dsn is None:
            raise SourceError("the source has no dsn", **names)
        try:
            dsn = resolve_secret(source.dsn, environ=environ)
        except SecretUnavailable as error:
            raise SourceError(f"cannot connect: the dsn {error}", **names) from None
        return PostgresReader(dsn, segment.query, segment=segment.name, source=source.name)
    if source.path is None:
        raise SourceError("the source has no path", **names)
    path = Path(source.path)
    if source.kind == "sqlite":
        if not segment.query:
            raise SourceError("a segment on a SQLite source needs a query", **names)
        return SqliteReader(path, segment.query, **names)
    if segment.query:
        raise SourceError(f"a {source.kind.upper()} source takes no query", **names)
    if source.kind == "csv":
        return CsvReader(
            path, encoding=source.csv.encoding, delimiter=source.csv.delimiter, **names
        )
    return JsonlReader(path, **names)
