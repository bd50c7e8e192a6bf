"""Run history in a PostgreSQL state store: the SQL of ``start_run``, ``finish_run``,
``run`` and ``runs``, each on a connection inside the caller's transaction
(:class:`~omnisync.state.postgres.PostgresLedgerStore` opens it, fenced or not)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import cast

from psycopg.types.json import Jsonb

from omnisync.state.postgres_database import PostgresConnection
from omnisync.state.store import (
    RunRecord,
    RunStatus,
    format_timestamp,
    interrupted_note,
    mask_free_text,
)

_COLUMNS = (
    "SELECT id, export, trigger, config_revision, started_at, ended_at, status, counts, error, "
    "replica FROM runs"
)


def start_run(
    connection: PostgresConnection,
    export: str,
    *,
    trigger: str,
    config_revision: str,
    now: datetime,
    replica: str | None,
) -> RunRecord:
    """Record a run as ``running``; runs of ``export`` still ``running`` become ``interrupted``."""
    stamp = format_timestamp(now)
    connection.execute(
        "UPDATE runs SET status = 'interrupted', error = %s "
        "WHERE export = %s AND status = 'running'",
        (interrupted_note(stamp), export),
    )
    row = connection.execute(
        "INSERT INTO runs (export, trigger, config_revision, started_at, status, replica) "
        "VALUES (%s, %s, %s, %s, 'running', %s) RETURNING id",
        (export, trigger, config_revision, stamp, replica),
    ).fetchone()
    assert row is not None
    return RunRecord(
        int(cast(int, row[0])),
        export,
        trigger,
        config_revision,
        stamp,
        None,
        "running",
        replica=replica,
    )


def finish_run(
    connection: PostgresConnection,
    run_id: int,
    *,
    status: RunStatus,
    counts: Mapping[str, int],
    error: str | None,
    now: datetime,
) -> RunRecord | None:
    """Close a run (``error`` masked); ``None`` when there is no such run."""
    masked = None if error is None else mask_free_text(error)
    row = connection.execute(
        "UPDATE runs SET status = %s, counts = %s, error = %s, ended_at = %s "
        "WHERE id = %s RETURNING id, export, trigger, config_revision, started_at, "
        "ended_at, status, counts, error, replica",
        (status, Jsonb(dict(counts)), masked, format_timestamp(now), run_id),
    ).fetchone()
    return None if row is None else _record(row)


def run(connection: PostgresConnection, run_id: int) -> RunRecord | None:
    row = connection.execute(f"{_COLUMNS} WHERE id = %s", (run_id,)).fetchone()
    return None if row is None else _record(row)


def runs(connection: PostgresConnection, export: str | None, *, limit: int) -> list[RunRecord]:
    if export is None:
        rows = connection.execute(f"{_COLUMNS} ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    else:
        rows = connection.execute(
            f"{_COLUMNS} WHERE export = %s ORDER BY id DESC LIMIT %s", (export, limit)
        ).fetchall()
    return [_record(row) for row in rows]


def _record(row: tuple[object, ...]) -> RunRecord:
    run_id, export, trigger, revision, started_at, ended_at, status, counts, error, replica = row
    return RunRecord(
        id=int(cast(int, run_id)),
        export=cast(str, export),
        trigger=cast(str, trigger),
        config_revision=cast(str, revision),
        started_at=cast(str, started_at),
        ended_at=cast("str | None", ended_at),
        status=cast(RunStatus, status),
        counts=dict(cast("Mapping[str, int]", counts)),
        error=cast("str | None", error),
        replica=cast("str | None", replica),
    )
