"""SQLite segment sources: the database opened read-only, the segment a query run in it.

Staging wraps the query (``... FROM (<query>)``) so that SQLite computes
e-mail keys and fingerprints as it reads; this module opens the database,
finds the query's columns and turns SQLite's errors into :class:`SourceError`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from omnisync.config.rules import SqlDialect, select_problem, sql_pieces
from omnisync.sources.errors import SourceError


def readonly_uri(path: Path) -> str:
    """A ``file:`` URI opening ``path`` read-only (characters such as ``?`` escaped)."""
    return f"{path.resolve().as_uri()}?mode=ro"


def quote_identifier(name: str) -> str:
    """``name`` as a SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def open_readonly(path: Path, *, segment: str, source: str) -> sqlite3.Connection:
    """Open the SQLite database at ``path`` read-only, or raise :class:`SourceError`.

    The connection is in autocommit mode (transactions are explicit) and may
    be used from another thread than the one that opened it, one at a time.
    """
    if not path.exists():
        raise SourceError(f"database file not found: {path}", segment=segment, source=source)
    if not path.is_file():  # a FIFO or a device would hang or never end
        what = "a directory, not a file" if path.is_dir() else "not a regular file"
        raise SourceError(f"database path is {what}: {path}", segment=segment, source=source)
    try:
        connection = sqlite3.connect(
            readonly_uri(path), uri=True, isolation_level=None, check_same_thread=False
        )
        # Reading the schema is what reveals a file that is not a database.
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        # A writer holding the file past sqlite3's 5 s wait is no sign of a bad file.
        busy = getattr(error, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
        cause = (
            f"cannot read {path}: {error} by a writer"
            if busy
            else f"cannot open {path} as a SQLite database: {error}"
        )
        raise SourceError(cause, segment=segment, source=source) from error
    return connection


def subquery(query: str, *, dialect: SqlDialect) -> str:
    """The segment query ready to sit inside ``FROM ( ... )``, its text read as ``dialect``
    reads it (:func:`~omnisync.config.rules.sql_pieces`).

    Statement terminators at the end (``;``, even followed by comments) are
    dropped; the newlines keep a trailing ``--`` comment from swallowing the
    closing parenthesis. A second statement is left in place, so that the
    database refuses it as a syntax error. Whether the query may sit there at all is
    :func:`~omnisync.config.rules.select_problem`'s to say, before.
    """
    end = 0  # just past the last significant piece
    for kind, start, stop in sql_pieces(query, dialect=dialect):
        if kind != "noise" and query[start:stop] != ";":
            end = stop
    return "\n" + query[:end] + "\n"


def translate_error(error: sqlite3.Error, *, segment: str, source: str) -> SourceError:
    """A :class:`SourceError` naming what went wrong in a segment query."""
    message = str(error)
    if message.startswith("no such table"):
        cause = f"missing table: the query failed with '{message}'"
    elif message.startswith("no such column"):
        cause = f"missing column: the query failed with '{message}'"
    elif "syntax error" in message or "incomplete input" in message:
        cause = f"bad query: '{message}' (a segment query must be exactly one SELECT statement)"
    else:
        cause = f"the query failed: {message}"
    return SourceError(cause, segment=segment, source=source)


def result_columns(
    connection: sqlite3.Connection, query: str, *, segment: str, source: str
) -> tuple[str, ...]:
    """The column names ``query`` returns, without running it to completion. A query
    :func:`~omnisync.config.rules.select_problem` refuses (one that would close the
    parenthesis around it, say) is a :class:`SourceError` before SQLite sees it."""
    problem = select_problem(query, dialect="sqlite")
    if problem is not None:
        cause = f"bad query: {problem} (a segment query must be exactly one SELECT statement)"
        raise SourceError(cause, segment=segment, source=source)
    try:
        text = subquery(query, dialect="sqlite")
        cursor = connection.execute(f"SELECT * FROM ({text}) LIMIT 0")
    except sqlite3.Error as error:
        raise translate_error(error, segment=segment, source=source) from error
    return tuple(description[0] for description in cursor.description or ())


@dataclass(frozen=True)
class SqliteReader:
    """A SQLite segment: staging runs ``query`` inside the database at ``path``."""

    path: Path
    query: str
    segment: str
    source: str
