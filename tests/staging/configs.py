"""Building configs and ledgers for engine-read tests, without the YAML loader.

Configs are built from the model's dataclasses so that each test states only
what it is about; the ledger is a real SQLite file with the seam's exact DDL
(docs/ARCHITECTURE.md, "Export engine"), written the way the state store
writes it (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from omnisync.config.model import (
    Config,
    Connection,
    Consent,
    CsvOptions,
    DaemonSettings,
    Export,
    FieldMapping,
    OnLeave,
    SecretRef,
    Segment,
    Source,
    SourceKind,
    User,
)

LEDGER_DDL = (
    "CREATE TABLE ledger_entries(export TEXT NOT NULL, email TEXT NOT NULL, "
    "fingerprint INTEGER NOT NULL, tag TEXT, updated_at TEXT NOT NULL, "
    "PRIMARY KEY (export, email)) WITHOUT ROWID"
)

CUSTOMER_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "address",
    "city",
    "state",
    "postal_code",
    "country",
    "loyalty_tier",
    "lifetime_value",
    "email_status",
    "email_status_changed_at",
)


def full_mapping() -> FieldMapping:
    return FieldMapping(
        email="email",
        first_name="first_name",
        last_name="last_name",
        address="address",
        city="city",
        state="state",
        postal_code="postal_code",
        country="country",
        custom_properties={"loyalty_tier": "loyalty_tier", "lifetime_value": "lifetime_value"},
    )


def make_export(
    *,
    name: str = "vip",
    segment: str = "vip",
    mapping: FieldMapping | None = None,
    tag: str = "vip",
    on_leave: OnLeave = "untag",
    consent: Consent | None = None,
    send_welcome_message: bool = False,
    max_profiles: int | None = None,
) -> Export:
    return Export(
        name=name,
        segment=segment,
        connection="main",
        owner="olena",
        mapping=mapping or FieldMapping(email="email"),
        tag=tag,
        on_leave=on_leave,
        consent=consent,
        send_welcome_message=send_welcome_message,
        max_profiles=max_profiles,
    )


def make_config(
    *,
    source_path: Path,
    kind: SourceKind = "sqlite",
    query: str | None = "SELECT * FROM customers",
    exports: Sequence[Export] | None = None,
    state_dir: Path,
    csv: CsvOptions | None = None,
) -> Config:
    """One source ``cdp``, one segment ``vip`` and the given exports (default: one ``vip``)."""
    exports = list(exports) if exports is not None else [make_export()]
    segment_names = {export.segment for export in exports} | {"vip"}
    return Config(
        version=1,
        users={"olena": User(name="olena", role="admin")},
        sources={
            "cdp": Source(name="cdp", kind=kind, path=str(source_path), csv=csv or CsvOptions())
        },
        segments={
            name: Segment(name=name, source="cdp", query=query if kind == "sqlite" else None)
            for name in segment_names
        },
        connections={
            "main": Connection(
                name="main",
                display_name="Main",
                api_key=SecretRef(kind="env", name="OMNISEND_API_KEY"),
                data_transfer_accepted=True,
            )
        },
        schedules={},
        exports={export.name: export for export in exports},
        daemon=DaemonSettings(state_dir=str(state_dir)),
    )


def with_export(config: Config, export: Export) -> Config:
    return replace(config, exports={**config.exports, export.name: export})


def write_customers(
    path: Path,
    rows: Iterable[Mapping[str, object]],
    *,
    columns: Sequence[str] = CUSTOMER_COLUMNS,
    table: str = "customers",
) -> None:
    """(Re)create ``table`` in the SQLite file ``path`` holding ``rows``."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        declared = ", ".join(
            f"{column} INTEGER PRIMARY KEY" if column == "id" else column for column in columns
        )
        connection.execute(f"CREATE TABLE {table} ({declared})")
        placeholders = ", ".join("?" for _ in columns)
        connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
            ([row.get(column) for column in columns] for row in rows),
        )
        connection.commit()
    finally:
        connection.close()


def write_ledger(
    path: Path, entries: Iterable[tuple[str, str, int, str | None]], *, create: bool = True
) -> None:
    """Write ``(export, email, fingerprint, tag)`` rows into a WAL ledger at ``path``."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        if create:
            connection.execute(LEDGER_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        connection.executemany(
            "INSERT OR REPLACE INTO ledger_entries VALUES (?, ?, ?, ?, '2026-01-01T00:00:00Z')",
            entries,
        )
        connection.commit()
    finally:
        connection.close()


def consent_export(**overrides: object) -> Export:
    return make_export(
        mapping=full_mapping(),
        consent=Consent(status_column="email_status", changed_at_column="email_status_changed_at"),
        **overrides,  # type: ignore[arg-type]
    )
