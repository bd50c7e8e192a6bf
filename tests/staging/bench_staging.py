"""Benchmark (not a test): staging + diff of a large SQLite segment, time and peak memory.

    .venv/bin/python -m tests.staging.bench_staging [--rows 1000000 100000] [--keep DIR]

For each size it builds a SQLite customer database (realistic widths: names
in several scripts, addresses, countries, two custom properties and a consent
status and time), then, each in a fresh child process so that its peak RSS
is its own:

1. *first run*: stage + diff against an empty ledger (every row new), then
   record every work item in a ledger (as a run would, in bulk);
2. *no-change run*: stage + diff against that full ledger (nothing to do).

It prints seconds, rows/s and the child's peak RSS for both, and the
per-phase timings of staging, and the CPU seconds (a steadier figure than
wall time on a shared machine). Figures only: nothing is asserted.
Target for the no-change run: at least 150,000 rows/s; memory must stay far
below the segment's size and grow far slower than it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omnisync.config.model import (
    Config,
    Consent,
    DaemonSettings,
    FieldMapping,
    Segment,
    Source,
)
from tests.staging.configs import LEDGER_DDL, make_export

FIRST = ("Olena", "Taras", "Анна", "Петро", "Jonas", "Marta", "José", "Zoë", "Łukasz", "Gintarė")
LAST = ("Kovalenko", "Шевченко", "Nowak", "Müller", "García", "Smith", "Kazlauskienė", "Коваль")
CITIES = ("Київ", "Lviv", "Kraków", "Vilnius", "Berlin", "Madrid", "London", "Kaunas")
COUNTRIES = ("Ukraine", "Poland", "Lithuania", "Germany", "Spain", "United Kingdom", "Україна")


def build_source(path: Path, rows: int) -> None:
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
        "last_name TEXT, address TEXT, city TEXT, state TEXT, postal_code TEXT, country TEXT, "
        "loyalty_tier TEXT, lifetime_value REAL, email_status TEXT, "
        "email_status_changed_at TEXT)"
    )
    generator = random.Random(4)

    def customers():  # type: ignore[no-untyped-def]
        for index in range(rows):
            yield (
                index,
                f"customer{index:07d}.{generator.randrange(10_000)}@example{index % 97}.com",
                generator.choice(FIRST),
                generator.choice(LAST),
                f"{generator.randrange(1, 300)} Shevchenko St, apt {generator.randrange(1, 90)}",
                generator.choice(CITIES),
                None,
                f"{generator.randrange(100_000):05d}",
                generator.choice(COUNTRIES),
                generator.choice(("gold", "silver", "bronze")),
                round(generator.random() * 5_000, 2),
                generator.choice(("subscribed", "unsubscribed", None)),
                "2024-05-01T09:30:00Z",
            )

    connection.executemany(f"INSERT INTO customers VALUES ({', '.join('?' * 13)})", customers())
    connection.commit()
    connection.close()


def bench_config(source: Path, state_dir: Path) -> Config:
    export = make_export(
        mapping=FieldMapping(
            email="email",
            first_name="first_name",
            last_name="last_name",
            address="address",
            city="city",
            state="state",
            postal_code="postal_code",
            country="country",
            custom_properties={"loyalty_tier": "loyalty_tier", "lifetime_value": "lifetime_value"},
        ),
        consent=Consent(status_column="email_status", changed_at_column="email_status_changed_at"),
    )
    return Config(
        version=1,
        users={},
        sources={"cdp": Source(name="cdp", kind="sqlite", path=str(source))},
        segments={"vip": Segment(name="vip", source="cdp", query="SELECT * FROM customers")},
        connections={},
        schedules={},
        exports={"vip": export},
        daemon=DaemonSettings(state_dir=str(state_dir)),
    )


def child(source: Path, state_dir: Path, fill: bool) -> None:
    """Runs in the child process: stage + diff once, optionally fill the ledger; print JSON."""
    from omnisync.engine.staging import stage_export
    from omnisync.state import state_path

    config = bench_config(source, state_dir)
    started = time.perf_counter()
    cpu_started = time.process_time()
    with stage_export(config, "vip") as staged:
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        counts = staged.counts
        timings = dict(staged.timings)
        if fill:
            ledger = sqlite3.connect(state_path(config.daemon.state_dir))
            ledger.execute("PRAGMA journal_mode = WAL")
            ledger.execute(LEDGER_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
            ledger.executemany(
                "INSERT OR REPLACE INTO ledger_entries VALUES ('vip', ?, ?, 'vip', 'now')",
                ((item.email, item.fingerprint) for item in staged.work()),
            )
            ledger.commit()
            ledger.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "rows": counts.rows,
                "new": counts.new,
                "unchanged": counts.unchanged,
                "peak_rss_mb": peak,
                "timings": timings,
            }
        )
    )


def run_child(source: Path, state_dir: Path, *, fill: bool) -> dict[str, object]:
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.staging.bench_staging",
            "--child",
            str(source),
            str(state_dir),
            "--fill" if fill else "--no-fill",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="keep the databases in this directory")
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "STATE_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--fill", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), bool(args.fill))
        return

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        print(
            f"{'rows':>10} {'run':<10} {'seconds':>8} {'rows/s':>10} {'CPU s':>6} "
            f"{'peak RSS':>9}  phases (wall seconds)"
        )
        for rows in args.rows:
            source = root / f"cdp-{rows}.sqlite"
            state_dir = root / f"state-{rows}"
            if not source.exists():
                build_source(source, rows)
            for name, fill in (("first", True), ("no-change", False)):
                if fill and (state_dir / "omnisync.sqlite3").exists():
                    (state_dir / "omnisync.sqlite3").unlink()
                state_dir.mkdir(exist_ok=True)
                result = run_child(source, state_dir, fill=fill)
                seconds = float(result["seconds"])  # type: ignore[arg-type]
                timings = result["timings"]
                assert isinstance(timings, dict)
                phases = ", ".join(f"{phase} {value:.2f}" for phase, value in timings.items())
                print(
                    f"{rows:>10,} {name:<10} {seconds:>8.2f} {rows / seconds:>10,.0f} "
                    f"{result['cpu_seconds']:>6.2f} {result['peak_rss_mb']:>6} MB  {phases}"
                )


if __name__ == "__main__":
    main()
