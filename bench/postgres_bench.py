"""Benchmark: a no-change diff against a SQLite and a PostgreSQL state store.

Not a test (never run by the suite): it prints figures. For N members it

1. builds a SQLite segment of N customers inside SQLite (a recursive CTE);
2. stages it once against an empty ledger to learn the fingerprints a run
   records, and fills two ledgers that already hold every member, tagged:
   a SQLite state store and a PostgreSQL
   one in a scratch database ``omnisync_bench`` on ``--dsn`` (created here,
   dropped at the end; filled with ``COPY``, then ``VACUUM ANALYZE`` as
   autovacuum leaves a real ledger);
3. times a no-change diff against each, ``--repeat`` times: ``stage_export``
   plus iterating the work (empty: nothing changed), as a run's staging is;
4. prints the best seconds and profiles/s of each, the ratio, and the
   phases of the best PostgreSQL run.

Target (issue 17): the PostgreSQL diff within 3x of the SQLite one.

    .venv/bin/python bench/postgres_bench.py                        # 1,000,000 members
    .venv/bin/python bench/postgres_bench.py --members 100000 --repeat 5
    .venv/bin/python bench/postgres_bench.py --dsn 'host=db.example user=bench'
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import psycopg
from psycopg import conninfo

from omnisync.config.loader import load_config
from omnisync.config.model import Config
from omnisync.engine.staging import stage_export
from omnisync.state import LedgerStore, open_state_store
from omnisync.state.postgres import PostgresLedgerStore

SCRATCH_DATABASE = "omnisync_bench"
EXPORT = "bench"

# The same segment and config as the export benchmark's (bench/export_bench.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bench import CONFIG, build_segment  # noqa: E402


def fill_ledgers(
    config: Config, empty_state: Path, sqlite_store: LedgerStore, postgres_dsn: str
) -> None:
    """Record every member as delivered and tagged, in both stores' ledger tables."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    tag = config.exports[EXPORT].tag
    assert sqlite_store.ledger_file is not None
    with (
        stage_export(
            replace(config, daemon=replace(config.daemon, state_dir=str(empty_state))), EXPORT
        ) as staged,
        psycopg.connect(postgres_dsn, autocommit=True) as connection,
        closing(sqlite3.connect(sqlite_store.ledger_file)) as ledger,
    ):
        with connection.cursor().copy(
            "COPY ledger_entries (export, email, fingerprint, tag, updated_at) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "int8", "text", "text"])
            for records in staged.work_records():
                rows = [(EXPORT, cast(str, r[0]), cast(int, r[1]), tag, stamp) for r in records]
                for row in rows:
                    copy.write_row(row)
                ledger.executemany(
                    "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
        ledger.commit()
        connection.execute("VACUUM ANALYZE ledger_entries")


def no_change_diff(config: Config, store: LedgerStore) -> tuple[float, Mapping[str, float]]:
    """Seconds of one no-change diff (staging + the empty work), and its phases."""
    started = time.perf_counter()
    with stage_export(config, EXPORT, store=store) as staged:
        work = sum(1 for _ in staged.work())
        timings = dict(staged.timings)
    elapsed = time.perf_counter() - started
    if work:
        raise SystemExit(f"a no-change diff found {work:,} work items: the ledgers are wrong")
    return elapsed, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="segment size")
    parser.add_argument(
        "--dsn",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="a PostgreSQL server where the scratch database may be created",
    )
    parser.add_argument("--repeat", type=int, default=3, help="diffs per store; best is shown")
    args = parser.parse_args()
    scratch = conninfo.make_conninfo(args.dsn, dbname=SCRATCH_DATABASE)
    print(
        f"omnisync no-change diff benchmark: {args.members:,} members, SQLite vs PostgreSQL"
        f" (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)",
        flush=True,
    )
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE}")
        admin.execute(f"CREATE DATABASE {SCRATCH_DATABASE}")
    try:
        with tempfile.TemporaryDirectory(prefix="omnisync-bench-") as directory:
            root = Path(directory)
            started = time.perf_counter()
            build_segment(root / "cdp.sqlite", args.members)
            config_path = root / "omnisync.yaml"
            config_path.write_text(
                CONFIG.format(
                    database=root / "cdp.sqlite",
                    state_dir=root / "state",
                    base_url="http://127.0.0.1:9/api",  # nothing is sent: a diff only
                    key_variable="OMNISYNC_BENCH_API_KEY",
                ),
                encoding="utf-8",
            )
            config = load_config(config_path, environ={})
            with (
                open_state_store(root / "state") as sqlite_store,
                PostgresLedgerStore(scratch) as postgres_store,
            ):
                fill_ledgers(config, root / "none", sqlite_store, scratch)
                print(f"segment and ledgers built in {time.perf_counter() - started:.1f} s")
                best: dict[str, tuple[float, Mapping[str, float]]] = {}
                for _ in range(args.repeat):
                    for name, store in (("SQLite", sqlite_store), ("PostgreSQL", postgres_store)):
                        measured = no_change_diff(config, store)
                        print(f"  {name:<10} {measured[0]:6.2f} s", flush=True)
                        if name not in best or measured[0] < best[name][0]:
                            best[name] = measured
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
    print(f"\nno-change diff of {args.members:,} members (best of {args.repeat}):")
    for name, (seconds, _) in best.items():
        print(f"  {name:<10} {seconds:6.2f} s  {args.members / seconds:>11,.0f} profiles/s")
    ratio = best["PostgreSQL"][0] / best["SQLite"][0]
    print(f"  PostgreSQL / SQLite: {ratio:.2f}x (target: within 3x)")
    for name, (_, timings) in best.items():
        phases = ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in timings.items())
        print(f"  {name} phases (s): {phases}")


if __name__ == "__main__":
    main()
