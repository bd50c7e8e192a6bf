"""Benchmark: one export of a 100,000- and a 1,000,000-profile SQLite segment.

Not a test (never run by the suite): it prints figures. For each size it

1. builds a SQLite customer table inside SQLite (a recursive CTE, seconds);
2. starts ``omnisync emulator --no-rate-limits`` as its own process;
3. runs ``omnisync export run`` as a child process three times — the first
   run (everything new), a run after 1% of the profiles changed, and a run
   with no change — timing each and reading the child's peak RSS from
   ``os.wait4`` (the child's own, not this script's);
4. prints profiles/s, the requests the emulator answered, and peak RSS.

Targets: first run >= 10,000 profiles/s (15 times what Omnisend's limits let
any client reach: ~667 upserts/s, ~250 tagged/s per brand), no-change run >=
150,000 profiles/s (the daemon re-checks every segment on every tick), peak
RSS <= 200 MB and growing far slower than the segment. ``profiles/s`` is the
segment size over the run's wall time as the user sees it (process start to
exit); the run's own time (from its history record) is shown beside it.

    .venv/bin/python bench/export_bench.py                  # 100k and 1M
    .venv/bin/python bench/export_bench.py --sizes 100000   # one size
    .venv/bin/python bench/export_bench.py --profile /tmp/prof   # cProfile each run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnisync.cli.emulator import announced_base_url

API_KEY = "bench-key"
KEY_VARIABLE = "OMNISYNC_BENCH_API_KEY"

CONFIG = """\
version: 1
users:
  olena: {{role: admin}}
sources:
  cdp: {{kind: sqlite, path: '{database}'}}
segments:
  everyone:
    source: cdp
    query: |
      SELECT id, email, first_name, last_name, city, country, loyalty_tier, lifetime_value
      FROM customers
connections:
  bench:
    kind: omnisend
    display_name: Benchmark emulator
    api_key: {{env: {key_variable}}}
    base_url: '{base_url}'
    data_transfer_accepted: true
    # The emulator runs without limits; the client paces at the highest limits
    # the schema allows (the real 400/60 per minute would benchmark waiting).
    rate_limit: {{requests_per_minute: 100000, tags_per_minute: 50000}}
exports:
  bench:
    segment: everyone
    connection: bench
    owner: olena
    tag: bench
    mapping:
      email: email
      first_name: first_name
      last_name: last_name
      city: city
      country: country
      custom_properties:
        loyalty_tier: loyalty_tier
        lifetime_value: lifetime_value
daemon:
  state_dir: '{state_dir}'
"""

# Names and places in several scripts, picked by id inside SQLite.
FIRST_NAMES = ("Олена", "Łukasz", "Rūta", "Jürgen", "Íñigo", "Emily", "Taras", "Zoë")
LAST_NAMES = ("Коваленко", "Wójcik", "Žukauskaitė", "Müller", "Peña", "O'Connor", "Melnyk")
CITIES = ("Київ", "Kraków", "Vilnius", "München", "A Coruña", "London", "Lviv", "Austin")
COUNTRIES = ("Ukraine", "Poland", "Lithuania", "Germany", "Spain", "United Kingdom")


def _pick(values: tuple[str, ...], expression: str) -> str:
    cases = " ".join(
        f"WHEN {index} THEN '{value.replace(chr(39), chr(39) * 2)}'"
        for index, value in enumerate(values)
    )
    return f"CASE ({expression}) % {len(values)} {cases} END"


def build_segment(path: Path, size: int) -> float:
    """Create ``customers`` with ``size`` rows at ``path``; returns seconds taken."""
    started = time.perf_counter()
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
        "last_name TEXT, city TEXT, country TEXT, loyalty_tier TEXT, lifetime_value REAL)"
    )
    connection.execute(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?) "
        "INSERT INTO customers SELECT i, 'customer' || i || '@bench.example.com', "
        f"{_pick(FIRST_NAMES, 'i')}, {_pick(LAST_NAMES, 'i / 8')}, {_pick(CITIES, 'i / 3')}, "
        f"{_pick(COUNTRIES, 'i / 5')}, "
        "CASE i % 10 WHEN 0 THEN 'gold' WHEN 1 THEN 'silver' ELSE 'bronze' END, "
        "round((i * 7919) % 500000 / 100.0, 2) FROM seq",
        (size,),
    )
    connection.commit()
    connection.close()
    return time.perf_counter() - started


def change_one_percent(path: Path) -> int:
    connection = sqlite3.connect(path)
    changed = connection.execute(
        "UPDATE customers SET city = city || ' Nord' WHERE id % 100 = 0"
    ).rowcount
    connection.commit()
    connection.close()
    return changed


class EmulatorProcess:
    """``omnisync emulator`` in its own process, without rate limits."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnisync", "emulator", "--api-key", API_KEY,
             "--no-rate-limits", "--batch-delay", "0", "--request-log-limit", "1000"],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        base_url = announced_base_url(line)
        if base_url is None:
            raise SystemExit(f"the emulator did not start: {line!r}")
        self.base_url = base_url
        self.root = self.base_url.removesuffix("/api")

    def counts(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.root}/_emulator/counts", timeout=30) as response:
            return json.load(response)  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator process has used so far (from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@dataclass(frozen=True)
class Measured:
    label: str
    size: int
    wall: float
    run_seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    emulator_cpu_seconds: float
    requests: int
    by_endpoint: dict[str, int]
    status: str
    counts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.size / self.wall

    @property
    def run_rate(self) -> float:
        return self.size / self.run_seconds if self.run_seconds else float("inf")


def run_export(
    config: Path, emulator: EmulatorProcess, *, label: str, size: int, profile: Path | None
) -> Measured:
    before = emulator.counts()
    emulator_cpu = emulator.cpu_seconds()
    if profile is None:
        command = [sys.executable, "-m", "omnisync"]
    else:
        target = profile / f"{size}-{label.split(maxsplit=1)[0].strip('%')}.prof"
        command = [sys.executable, "-m", "cProfile", "-o", str(target), _omnisync_script()]
    command += ["export", "run", "bench", "--config", str(config), "--format", "json"]
    environment = {**os.environ, KEY_VARIABLE: API_KEY}
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
    )
    # wait4 returns the resource usage of this child alone (ru_maxrss in KiB on Linux).
    output_chunks = []
    assert child.stdout is not None
    output_chunks.append(child.stdout.read())
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode() if child.stderr else ""
    output = b"".join(output_chunks).decode()
    try:
        result = json.loads(output)
    except json.JSONDecodeError:
        raise SystemExit(f"the run failed ({child.returncode}):\n{output}\n{error}") from None
    after = emulator.counts()
    emulator_cpu = emulator.cpu_seconds() - emulator_cpu
    by_endpoint = {}
    for endpoint, statuses in after["by_endpoint"].items():
        done = sum(statuses.values()) - sum(before["by_endpoint"].get(endpoint, {}).values())
        if done:
            by_endpoint[endpoint] = done
    run_seconds = (
        _stamp(result["ended_at"]) - _stamp(result["started_at"]) if result["ended_at"] else 0.0
    )
    return Measured(
        label=label,
        size=size,
        wall=wall,
        run_seconds=run_seconds,
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        emulator_cpu_seconds=emulator_cpu,
        requests=after["total"] - before["total"],
        by_endpoint=by_endpoint,
        status=result["status"],
        counts=result["counts"],
    )


def _omnisync_script() -> str:
    # cProfile runs a script, not a module: the package's __main__.
    import omnisync

    return str(Path(omnisync.__file__).parent / "__main__.py")


def _stamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def bench_size(size: int, workdir: Path, profile: Path | None) -> list[Measured]:
    directory = workdir / f"size-{size}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    database = directory / "cdp.sqlite"
    built = build_segment(database, size)
    print(f"\n== {size:,} profiles (segment built in {built:.1f} s) ==", flush=True)
    emulator = EmulatorProcess()
    try:
        config = directory / "omnisync.yaml"
        config.write_text(
            CONFIG.format(
                database=database,
                key_variable=KEY_VARIABLE,
                base_url=emulator.base_url,
                state_dir=directory / "state",
            ),
            encoding="utf-8",
        )
        results = [run_export(config, emulator, label="first run", size=size, profile=profile)]
        _show(results[-1])
        changed = change_one_percent(database)
        results.append(
            run_export(
                config, emulator, label=f"1% changed ({changed:,})", size=size, profile=profile
            )
        )
        _show(results[-1])
        results.append(run_export(config, emulator, label="no change", size=size, profile=profile))
        _show(results[-1])
    finally:
        emulator.stop()
    return results


def _show(measured: Measured) -> None:
    counts = measured.counts
    endpoints = ", ".join(
        f"{name} {count:,}" for name, count in sorted(measured.by_endpoint.items())
    )
    print(
        f"{measured.label:>22}: {measured.rate:>9,.0f} profiles/s ({measured.wall:6.1f} s wall;"
        f" run {measured.run_seconds:6.1f} s = {measured.run_rate:,.0f}/s), peak RSS"
        f" {measured.peak_rss_mb:6.1f} MB, CPU {measured.cpu_seconds:.1f} s (emulator"
        f" {measured.emulator_cpu_seconds:.1f} s), {measured.requests:,} requests [{endpoints}];"
        f" {measured.status}: upserted {counts['upserted']:,}, tagged {counts['tagged']:,},"
        f" unchanged {counts['unchanged']:,}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--workdir", default=None, help="where to build (default: a temp dir)")
    parser.add_argument("--profile", default=None, help="write a cProfile file per run here")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="omnisync-bench-"))
    profile = Path(args.profile) if args.profile else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    print(f"omnisync export benchmark in {workdir} (python {sys.version.split()[0]},"
          f" {os.cpu_count()} CPUs)")  # fmt: skip
    everything = []
    for size in sizes:
        everything.extend(bench_size(size, workdir, profile))
    print("\nsummary (targets: first run >= 10,000/s, no change >= 150,000/s, RSS <= 200 MB)")
    for measured in everything:
        print(
            f"  {measured.size:>9,} {measured.label:<22} {measured.rate:>9,.0f} profiles/s"
            f"  {measured.requests:>7,} requests  {measured.peak_rss_mb:6.1f} MB"
        )
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
