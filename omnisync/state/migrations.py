"""The state schema of each database, as ordered migrations, and how they are applied.

Migration ``n`` (1-based) takes a database at version ``n - 1`` to ``n``; both databases share
the numbering, so "schema version 5" means the same logical tables in either. Append only: a
released migration is never edited, because databases in the field already ran it. A database
with a version higher than ``SCHEMA_VERSION`` is refused, not modified. ``ledger_entries`` and
``export_brands`` are also read by the export engine's diff: their shape is a fixed seam
(docs/ARCHITECTURE.md, "Export engine").
"""

from __future__ import annotations

from typing import Any

from omnisync.state.store import StateSchemaTooNew

#: SQLite (the version in ``PRAGMA user_version``).
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
    # 7: a ledger tag in doubt: a tags call for it was about to leave and its
    # answer is not recorded yet (the contact may or may not hold the tag).
    """
    ALTER TABLE ledger_entries ADD COLUMN tag_in_doubt INTEGER NOT NULL DEFAULT 0;
    """,
)

#: PostgreSQL (the version in the one-row table ``schema_version``); text keys
#: collate as "C", so e-mails sort by code point as in SQLite and in Python.
POSTGRES_MIGRATIONS: tuple[str, ...] = (
    # 1: ledger, in-flight batches (one row per item), run history.
    """
    CREATE TABLE IF NOT EXISTS ledger_entries (
        export TEXT COLLATE "C" NOT NULL,
        email TEXT COLLATE "C" NOT NULL,
        fingerprint BIGINT NOT NULL,
        tag TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (export, email)
    );

    CREATE TABLE IF NOT EXISTS inflight_batches (
        export TEXT COLLATE "C" NOT NULL,
        batch_id TEXT COLLATE "C" NOT NULL,
        email TEXT COLLATE "C" NOT NULL,
        fingerprint BIGINT NOT NULL,
        then_tag BOOLEAN NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (export, batch_id, email)
    );

    CREATE TABLE IF NOT EXISTS runs (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        export TEXT COLLATE "C" NOT NULL,
        trigger TEXT NOT NULL,
        config_revision TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL CONSTRAINT runs_status_check CHECK (
            status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted')
        ),
        counts JSONB NOT NULL DEFAULT '{}',
        error TEXT
    );

    CREATE INDEX IF NOT EXISTS runs_by_export ON runs (export, id);
    """,
    # 2: batch intents, a batch's items as one JSON array of [email, fingerprint, then_tag].
    """
    CREATE TABLE IF NOT EXISTS batch_intents (
        export TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NOT NULL,
        items JSONB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (export, token)
    );
    """,
    # 3: in-flight items stay one row per item here (settling a batch is one
    # statement either way): nothing to do.
    "",
    # 4: a run may be `held` by a change guard (nothing sent).
    """
    ALTER TABLE runs DROP CONSTRAINT runs_status_check;
    ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (
        status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'held')
    );
    """,
    # 5: the brand each export's ledger describes.
    """
    CREATE TABLE IF NOT EXISTS export_brands (
        export TEXT COLLATE "C" PRIMARY KEY,
        brand TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 6: which replica ran each run; the replicas sharing this store, their
    # leases on brands (with fencing tokens), the scheduled fires claimed and
    # the on-demand runs asked for (docs/daemon.md, "Running several replicas").
    """
    ALTER TABLE runs ADD COLUMN IF NOT EXISTS replica TEXT;

    CREATE TABLE IF NOT EXISTS replicas (
        id TEXT COLLATE "C" PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        version TEXT NOT NULL,
        config_revision TEXT NOT NULL,
        running JSONB NOT NULL DEFAULT '[]'
    );

    CREATE SEQUENCE IF NOT EXISTS lease_tokens;

    CREATE TABLE IF NOT EXISTS brand_leases (
        brand TEXT COLLATE "C" PRIMARY KEY,
        holder TEXT COLLATE "C" NOT NULL,
        token BIGINT NOT NULL,
        acquired_at TIMESTAMPTZ NOT NULL,
        renewed_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );

    CREATE TABLE IF NOT EXISTS schedule_fires (
        export TEXT COLLATE "C" NOT NULL,
        fire_time TEXT NOT NULL,
        replica TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (export, fire_time)
    );

    CREATE TABLE IF NOT EXISTS run_requests (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        export TEXT COLLATE "C" NOT NULL,
        brand TEXT COLLATE "C" NOT NULL,
        trigger TEXT NOT NULL,
        requested_at TIMESTAMPTZ NOT NULL,
        claimed_by TEXT,
        claimed_at TIMESTAMPTZ,
        run_id BIGINT,
        answered_at TIMESTAMPTZ,
        answer JSONB
    );

    CREATE INDEX IF NOT EXISTS run_requests_open ON run_requests (brand)
    WHERE claimed_by IS NULL;
    """,
    # 7: a ledger tag in doubt (a tags call's answer not recorded yet).
    """
    ALTER TABLE ledger_entries ADD COLUMN IF NOT EXISTS tag_in_doubt BOOLEAN NOT NULL DEFAULT false;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
assert len(POSTGRES_MIGRATIONS) == SCHEMA_VERSION, "both databases share the numbering"


def migrate(connection: Any, migrations: tuple[str, ...], version: int) -> None:
    """Take the database of ``connection`` from ``version`` to :data:`SCHEMA_VERSION`, one
    statement at a time (``executescript`` would commit the caller's transaction)."""
    for script in migrations[version:]:
        for statement in script.split(";"):
            if statement.strip():
                connection.execute(statement)


def refuse_newer_schema(location: str | object, version: int, *, instead: str) -> None:
    """Raise :class:`StateSchemaTooNew` when ``version`` is newer than this code knows;
    ``instead`` says where else the user may point omnisync."""
    if version > SCHEMA_VERSION:
        raise StateSchemaTooNew(
            f"state database {location} has schema version {version}, newer than this "
            f"omnisync understands ({SCHEMA_VERSION}); it was left untouched. Upgrade "
            f"omnisync, or point {instead}."
        )
