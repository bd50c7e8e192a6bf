"""The state database's schema, as an ordered list of migrations.

Migration ``n`` (1-based) takes a database at ``PRAGMA user_version = n - 1``
to ``n``. Append only: a released migration is never edited, because
databases in the field already ran it. ``SCHEMA_VERSION`` is what this code
knows; a database with a higher ``user_version`` is refused, not modified.

``ledger_entries`` is also read by the export engine's diff (ATTACHed
read-only as schema ``ledger``), so its shape is a fixed seam
(docs/ARCHITECTURE.md, "Export engine").
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: ledger, in-flight batches, run history.
    """
    CREATE TABLE IF NOT EXISTS ledger_entries (
        export TEXT NOT NULL,
        email TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        tag TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (export, email)
    ) WITHOUT ROWID;

    CREATE TABLE IF NOT EXISTS inflight_batches (
        export TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        email TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        then_tag INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (export, batch_id, email)
    ) WITHOUT ROWID;

    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        export TEXT NOT NULL,
        trigger TEXT NOT NULL,
        config_revision TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL CHECK (
            status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted')
        ),
        counts TEXT NOT NULL DEFAULT '{}',
        error TEXT
    );

    CREATE INDEX IF NOT EXISTS runs_by_export ON runs (export, id);
    """,
    # 2: batch intents: a batch's items, recorded (as one JSON array of
    # [email, fingerprint, then_tag]) just before the batch is created.
    """
    CREATE TABLE IF NOT EXISTS batch_intents (
        export TEXT NOT NULL,
        token TEXT NOT NULL,
        items TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (export, token)
    ) WITHOUT ROWID;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
