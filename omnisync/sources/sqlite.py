"""SQLite segment sources: the database opened read-only, the segment a query in it.

A segment on a SQLite source is a SQL ``SELECT`` run *inside* SQLite. The
staging engine wraps it (``... FROM (<query>)``) so that e-mail
normalisation and fingerprints are computed by SQLite as it reads; this
module opens the database, checks the query and its columns up front, and
turns SQLite's errors into :class:`SourceError` messages that name the
segment, the source and the cause.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from omnisync.sources.columns import require_columns
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
    if path.is_dir():
        raise SourceError(
            f"database path is a directory, not a file: {path}", segment=segment, source=source
        )
    try:
        connection = sqlite3.connect(
            readonly_uri(path), uri=True, isolation_level=None, check_same_thread=False
        )
        # Reading the schema is what reveals a file that is not a database.
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        raise SourceError(
            f"cannot open {path} as a SQLite database: {error}", segment=segment, source=source
        ) from error
    return connection


def subquery(query: str) -> str:
    """The segment query ready to sit inside ``FROM ( ... )``.

    Statement terminators at the end (``;``, even followed by comments) are
    dropped; the newlines keep a trailing ``--`` comment from swallowing the
    closing parenthesis. A second statement is left in place, so that SQLite
    refuses it as a syntax error.
    """
    return "\n" + query[: _end_of_statement(query)] + "\n"


def _end_of_statement(query: str) -> int:
    """Where ``query`` ends once trailing semicolons and comments are ignored."""
    end = 0  # just past the last significant character
    index = 0
    length = len(query)
    while index < length:
        char = query[index]
        if char in "'\"`[":
            closing = "]" if char == "[" else char
            found = query.find(closing, index + 1)
            # Doubled quotes inside a literal are two adjacent literals to
            # this scanner, which ends up in the same place.
            index = length if found < 0 else found + 1
            end = index
        elif query.startswith("--", index):
            found = query.find("\n", index)
            index = length if found < 0 else found + 1
        elif query.startswith("/*", index):
            found = query.find("*/", index + 2)
            index = length if found < 0 else found + 2
        else:
            # Whitespace and semicolons are insignificant; one between two
            # statements stays in anyway, since the second one extends ``end``.
            if not char.isspace() and char != ";":
                end = index + 1
            index += 1
    return end


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
    """The column names ``query`` returns, without running it to completion."""
    try:
        cursor = connection.execute(f"SELECT * FROM ({subquery(query)}) LIMIT 0")
    except sqlite3.Error as error:
        raise translate_error(error, segment=segment, source=source) from error
    return tuple(description[0] for description in cursor.description or ())


class SqliteReader:
    """Streams a SQLite segment's rows as tuples; the general, Python-side path.

    Staging does not use this (it runs the query inside SQLite); it serves
    callers that want rows in Python, and tests.
    """

    def __init__(self, path: Path, query: str, *, segment: str, source: str) -> None:
        self.path = path
        self.query = query
        self.segment = segment
        self.source = source

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
        connection = open_readonly(self.path, segment=self.segment, source=self.source)
        try:
            available = result_columns(
                connection, self.query, segment=self.segment, source=self.source
            )
            require_columns(
                available, columns, case_sensitive=False, segment=self.segment, source=self.source
            )
            selected = ", ".join(quote_identifier(column) for column in columns)
            try:
                cursor = connection.execute(f"SELECT {selected} FROM ({subquery(self.query)})")
                while batch := cursor.fetchmany(1000):
                    yield from batch
            except sqlite3.Error as error:
                raise translate_error(error, segment=self.segment, source=self.source) from error
        finally:
            connection.close()
