"""PostgreSQL segment sources: the segment query runs inside PostgreSQL, streamed.

Only the columns an export reads leave the server (``SELECT "col", ... FROM
(<query>) AS segment``), through a server-side cursor, in a READ ONLY
transaction (PostgreSQL itself refuses a query that would write) with a
statement timeout. Values become what the other sources yield: booleans
``"true"``/``"false"``, ``numeric`` its exact decimal text, timestamps ISO 8601
(``timestamptz`` in UTC), JSON and arrays compact JSON text, anything else its
text. psycopg (``omnisync[postgres]``) is imported only when a source is read.
The DSN and any password in it never appear in an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING

from omnisync.config.postgres import CONNECTION_DEFAULTS
from omnisync.config.rules import select_problem
from omnisync.masking import redact
from omnisync.sources.errors import SourceError, require_columns
from omnisync.sources.files import storable
from omnisync.sources.sqlite import quote_identifier, subquery

if TYPE_CHECKING:
    import psycopg
    from psycopg.abc import AdaptContext, Buffer, Loader
    from psycopg.rows import TupleRow

INSTALL_HINT = (
    "reading a PostgreSQL source needs psycopg, which the plain install lacks: "
    "install omnisync[postgres] (pip install 'omnisync[postgres]')"
)

#: Added to the connection unless the DSN sets them: a dead host fails in seconds, a
#: silent one in about 25 s, and DBAs can tell omnisync's sessions apart.
_CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    **CONNECTION_DEFAULTS,
}
_PLAIN_VALUE_TYPES = (type(None), str, int, float, bytes)


def canonical(value: object) -> object:
    """``value`` as a scalar like the other sources yield (see the module docstring)."""
    if type(value) in _PLAIN_VALUE_TYPES:
        return value
    if isinstance(value, bool | list | dict):
        return storable(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, never exponent notation
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo is not None else value).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _load_out_of_range_times_as_text(connection: psycopg.Connection[TupleRow]) -> None:
    """Dates, times and intervals Python cannot hold (``infinity``, BC, after 9999,
    ``24:00:00``, more than 999,999,999 days) arrive as PostgreSQL's text, like any other
    value the mapping may refuse for its one row, where psycopg's loaders fail the segment."""
    from psycopg.pq import Format

    for name in ("date", "timestamp", "timestamptz", "time", "timetz", "interval"):
        oid = connection.adapters.types[name].oid
        strict = connection.adapters.get_loader(oid, Format.TEXT)
        if strict is not None:
            connection.adapters.register_loader(oid, _lenient(strict))


def _lenient(strict: type[Loader]) -> type[Loader]:
    """A loader that loads as ``strict`` does, or gives the value's text where it cannot."""
    import psycopg

    class Lenient(psycopg.adapt.Loader):
        def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
            super().__init__(oid, context)
            self._strict_load = strict(oid, context).load

        def load(self, data: Buffer) -> object:
            try:
                return self._strict_load(data)
            except psycopg.DataError:
                return bytes(data).decode()

    return Lenient


@dataclass(frozen=True)
class PostgresReader:
    """Streams a PostgreSQL segment's rows as tuples, read-only, one connection per
    :meth:`rows`. ``dsn`` is a secret, never shown (not even in ``repr``);
    ``statement_timeout`` (seconds) bounds each statement, each fetch of ``itersize`` rows too.
    """

    dsn: str = field(repr=False)
    query: str = field(repr=False)
    _: KW_ONLY
    segment: str
    source: str
    statement_timeout: float = field(default=900.0, repr=False)
    itersize: int = field(default=5_000, repr=False)

    def _error(self, cause: str) -> SourceError:
        return SourceError(redact(cause, self.dsn), segment=self.segment, source=self.source)

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
        """Yield each row's values of ``columns`` (matched regardless of case), in order."""
        with closing(self._connect()) as connection:
            names = self._resolve(self._result_columns(connection), columns)
            selected = ", ".join(quote_identifier(name) for name in names)
            import psycopg  # present: _connect imported it

            _load_out_of_range_times_as_text(connection)
            try:
                with connection.cursor(name="omnisync_segment") as cursor:
                    cursor.itersize = self.itersize
                    cursor.execute(f"SELECT {selected} FROM ({self._subquery()}) AS segment")
                    for row in cursor:
                        yield tuple(map(canonical, row))
            except psycopg.Error as error:
                raise self._query_error(error) from error

    def _subquery(self) -> str:
        """The query ready to sit inside ``FROM ( ... )``, read as PostgreSQL reads it."""
        return subquery(self.query, dialect="postgres")

    def _connect(self) -> psycopg.Connection[TupleRow]:
        """A connection in a READ ONLY transaction with the statement timeout set."""
        problem = select_problem(self.query, dialect="postgres")
        if problem is not None:
            raise self._error(f"bad query: {problem}")
        try:
            import psycopg
        except ImportError:
            raise self._error(INSTALL_HINT) from None
        try:
            given = psycopg.conninfo.conninfo_to_dict(self.dsn)
            defaults = {key: value for key, value in _CONNECT_DEFAULTS.items() if key not in given}
            conninfo = psycopg.conninfo.make_conninfo(self.dsn, **defaults)
        except psycopg.Error as error:
            # libpq quotes the offending part, which may hold the password.
            raise self._error(f"the connection string (DSN) is malformed: {error}") from None
        try:
            connection: psycopg.Connection[TupleRow] = psycopg.connect(conninfo)
        except psycopg.Error as error:
            # ``from None``: the original error may quote the DSN.
            raise self._error(f"cannot connect to PostgreSQL: {error}") from None
        try:
            connection.read_only = True
            milliseconds = f"{max(1, round(self.statement_timeout * 1000))}ms"
            # Local to the (read-only) transaction the first statement opens.
            # Standard strings: the query is read as validate's scanner reads it (with
            # backslash escapes, `'\'` could hide a parenthesis that closes the wrapper).
            connection.execute(
                "SELECT set_config('statement_timeout', %s, true), "
                "set_config('standard_conforming_strings', 'on', true)",
                (milliseconds,),
            )
        except psycopg.Error as error:
            connection.close()
            raise self._error(f"cannot start a read-only transaction: {error}") from None
        return connection

    def _result_columns(self, connection: psycopg.Connection[TupleRow]) -> tuple[str, ...]:
        import psycopg

        prefix = "SELECT * FROM ("
        try:
            cursor = connection.execute(f"{prefix}{self._subquery()}) AS segment LIMIT 0")
        except psycopg.Error as error:
            raise self._query_error(error, prefix=prefix) from error
        return tuple(column.name for column in cursor.description or ())

    def _resolve(self, available: Sequence[str], wanted: Sequence[str]) -> list[str]:
        """The result column each of ``wanted`` reads: the same name, else the one differing
        only in case (PostgreSQL folds unquoted names to lower case; configs need not)."""
        require_columns(
            available, wanted, case_sensitive=False, segment=self.segment, source=self.source
        )
        resolved = []
        for column in wanted:
            candidates = (
                [column]
                if column in available
                else [name for name in available if name.casefold() == column.casefold()]
            )
            if len(candidates) > 1:
                listed = ", ".join(f"'{name}'" for name in candidates)
                raise self._error(f"column '{column}' is ambiguous: the segment has {listed}")
            resolved.append(candidates[0])
        return resolved

    def _query_error(self, error: psycopg.Error, *, prefix: str = "") -> SourceError:
        """What went wrong in the segment query; ``prefix``: what preceded the query's text
        in the statement sent (to place PostgreSQL's error position in the query)."""
        from psycopg import errors

        primary = error.diag.message_primary or str(error)
        if not error.diag.statement_position:
            # Not placed in the query's text, so raised on the rows: what it quotes after a
            # colon or in double quotes (`invalid input syntax for type bigint: "…"`,
            # `invalid value "…" for "Mon"`, `unrecognized configuration parameter "…"`)
            # may be a row's value, an e-mail address or any other personal data.
            head, colon, _ = primary.partition(":")
            shown = re.sub(r'"[^"]*"', '"…"', head) + (": …" if colon else "")
            if shown != primary:
                primary = f"{shown} (a value of a row, not shown)"
        quoted = f"'{primary}'{self._location(error, prefix)}"
        if error.diag.message_hint:
            quoted += f" (hint: {error.diag.message_hint})"
        if isinstance(error, errors.UndefinedTable):
            cause = f"missing table: the query failed with {quoted}"
        elif isinstance(error, errors.UndefinedColumn):
            cause = f"missing column: the query failed with {quoted}"
        elif isinstance(error, errors.SyntaxError | errors.FeatureNotSupported):
            cause = f"bad query: {quoted}; a segment query must be exactly one SELECT statement"
        elif isinstance(error, errors.ReadOnlySqlTransaction):
            cause = (
                f"the query tries to write ({quoted}): segments are read in a read-only "
                "transaction, so a segment query may only read"
            )
        elif isinstance(error, errors.QueryCanceled):
            cause = f"the query was cancelled ({quoted}; the limit is {self.statement_timeout:g} s)"
        elif isinstance(error, errors.InsufficientPrivilege):
            cause = f"permission denied: {quoted} (grant the DSN's user SELECT on it)"
        elif isinstance(error, errors.OperationalError):
            cause = f"lost the connection to PostgreSQL: {quoted}"
        else:
            cause = f"the query failed: {quoted}"
        return self._error(cause)

    def _location(self, error: psycopg.Error, prefix: str) -> str:
        """Where in the segment query ``error`` points, as words, or ``""``."""
        position = error.diag.statement_position
        if not prefix or not position or not position.isdigit():
            return ""
        text = self._subquery()[1:-1]  # without the newlines around it
        index = int(position) - 1 - len(prefix) - 1  # from 1-based, past the newline
        if not 0 <= index < len(text):
            return " at the end of the query"  # e.g. at the closing parenthesis around it
        line = text.count("\n", 0, index) + 1
        column = index - text.rfind("\n", 0, index)
        return f" at line {line}, column {column} of the query"
