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

    Text of printable ASCII (one byte per character, no NUL, all within
    space..tilde) has no whitespace but spaces and only ASCII letters, so
    SQLite's ``lower(trim(x))`` (empty becomes NULL) is exactly
    :func:`omnisync.mapping.normalise_email`; anything else calls it.
    """
    return (
        f"CASE WHEN typeof({column}) = 'text' "
        f"AND length({column}) = length(CAST({column} AS BLOB)) "
        f"AND {column} NOT GLOB '*[^ -~]*' "
        f"THEN nullif(lower(trim({column})), '') ELSE omnisync_email({column}) END"
    )
