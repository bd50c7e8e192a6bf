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

from omnisync.state.store import StateSchemaTooNew

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
    # 3: in-flight batches packed like intents, one row per batch (a batch's
    # items are recorded, created and settled together: a few row writes per
    # batch instead of hundreds). Rows of a killed run are carried over;
    # inflight_batches becomes a view of the old one-row-per-item shape.
    """
    CREATE TABLE IF NOT EXISTS inflight_packed (
        export TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        items TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (export, batch_id)
    ) WITHOUT ROWID;

    INSERT INTO inflight_packed (export, batch_id, items, created_at)
    SELECT export, batch_id, json_group_array(json_array(email, fingerprint, then_tag)),
        min(created_at)
    FROM (SELECT * FROM inflight_batches ORDER BY export, batch_id, email)
    GROUP BY export, batch_id;

    DROP TABLE inflight_batches;

    CREATE VIEW inflight_batches (export, batch_id, email, fingerprint, then_tag, created_at) AS
    SELECT p.export, p.batch_id, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),
        json_extract(j.value, '$[2]'), p.created_at
    FROM inflight_packed AS p, json_each(p.items) AS j;
    """,
    # 4: a run may be `held` by a change guard (nothing sent). SQLite cannot
    # alter a CHECK constraint: the table is copied into the new shape.
    """
    CREATE TABLE runs_4 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        export TEXT NOT NULL,
        trigger TEXT NOT NULL,
        config_revision TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL CHECK (
            status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'held')
        ),
        counts TEXT NOT NULL DEFAULT '{}',
        error TEXT
    );
    INSERT INTO runs_4 (id, export, trigger, config_revision, started_at, ended_at, status,
        counts, error)
    SELECT id, export, trigger, config_revision, started_at, ended_at, status, counts, error
    FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_4 RENAME TO runs;
    CREATE INDEX IF NOT EXISTS runs_by_export ON runs (export, id);
    """,
    # 5: the brand each export's ledger describes (its connection's base URL
    # and key reference): an export moved to another brand starts afresh.
    """
    CREATE TABLE IF NOT EXISTS export_brands (
        export TEXT PRIMARY KEY,
        brand TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 6: which replica ran each run (``daemon.replica_id`` or ``hostname:pid``;
    # runs on a SQLite store leave it empty).
    """
    ALTER TABLE runs ADD COLUMN replica TEXT;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def refuse_newer_schema(location: str | object, version: int, *, instead: str) -> None:
    """Raise :class:`StateSchemaTooNew` when ``version`` is newer than this code knows.

    ``instead`` says where else the user may point omnisync (``daemon.state_dir
    at another directory``): the rest of the message is the same for every store.
    """
    if version > SCHEMA_VERSION:
        raise StateSchemaTooNew(
            f"state database {location} has schema version {version}, newer than this "
            f"omnisync understands ({SCHEMA_VERSION}); it was left untouched. Upgrade "
            f"omnisync, or point {instead}."
        )
