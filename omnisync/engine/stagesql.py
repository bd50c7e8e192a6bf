"""SQL pieces of staging that spare a first run its Python calls (see ``engine.staging``)."""

from __future__ import annotations

import sqlite3


def ledger_has_entries(connection: sqlite3.Connection, export: str) -> bool:
    """Whether the export has delivered anything yet (read in the diff's transaction)."""
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM ledger.ledger_entries WHERE export = ?)", (export,)
    ).fetchone()
    return bool(row[0])


def email_sql(column: str) -> str:
    """SQL for ``omnisync_email(column)`` that leaves the common case to SQLite.

    For ASCII text (one byte per character and no NUL, which ``length``
    stops at), :func:`omnisync.mapping.normalise_email` is ``lower(trim(x,
    <the ASCII characters str.strip removes>))``, empty becoming NULL:
    Python's ``lower`` changes only ``A``-``Z`` there, as SQLite's does.
    Anything else calls the function. (A ``GLOB`` for printable ASCII cost
    more than the rest of the expression together: ~0.7 s a million rows.)
    """
    return (
        f"CASE WHEN typeof({column}) = 'text' "
        f"AND length({column}) = length(CAST({column} AS BLOB)) "
        f"THEN nullif(lower(trim({column}, {_ASCII_WHITESPACE})), '') "
        f"ELSE omnisync_email({column}) END"
    )


#: The ASCII characters ``str.strip()`` removes (``str.isspace``), as SQL.
_ASCII_WHITESPACE = "char({})".format(
    ", ".join(str(code) for code in range(128) if chr(code).isspace())
)
