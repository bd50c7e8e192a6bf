"""Several real ``omnisync daemon`` replicas sharing one real PostgreSQL state store.

Each replica is its own process with its own state directory (for its
control endpoint and token) and its own API keys: the emulator maps
``key-<brand>-<replica>`` to ``brand-<brand>``, so every request in its log
names the replica that sent it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from omnisync.emulator import Emulator
from tests.daemon.harness import DaemonProcess, make_source
from tests.daemon.runfunctions import wait_until


def replica_key(brand: int, replica: int) -> str:
    return f"key-{brand}-r{replica}"


def emulator_keys(brands: int, replicas: int) -> dict[str, str]:
    return {replica_key(b, r): f"brand-{b}" for b in range(brands) for r in range(replicas)}


@dataclass(frozen=True)
class ClusterExport:
    name: str
    brand: int
    schedule: str | None = "every: 1h"

    @property
    def every(self) -> int:
        """The interval in seconds of an ``every: Ns`` / ``every: Nh`` schedule."""
        assert self.schedule is not None and self.schedule.startswith("every: ")
        value = self.schedule.removeprefix("every: ")
        return int(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]


@dataclass
class Cluster:
    """A config for ``brands`` connections and ``exports``; replicas started on demand."""

    root: Path
    emulator: Emulator
    dsn: str
    brands: int
    exports: tuple[ClusterExport, ...]
    lease: str = "4s"
    requests_per_minute: int = 6_000
    replicas: dict[int, DaemonProcess] = field(default_factory=dict)

    def config_text(self, replica: int) -> str:
        lines = [
            "version: 1",
            "users:",
            "  olena: {role: admin}",
            "sources:",
            f"  cdp: {{kind: sqlite, path: {self.root / 'cdp.sqlite'}}}",
            "segments:",
            "  everyone: {source: cdp, query: 'SELECT email, city FROM customers'}",
            "connections:",
        ]
        for brand in range(self.brands):
            lines += [
                f"  store{brand}:",
                "    kind: omnisend",
                f"    display_name: Store {brand}",
                f"    api_key: {{env: OMNISYNC_TEST_KEY_{brand}}}",
                "    data_transfer_accepted: true",
                f"    base_url: {self.emulator.base_url}",
                # The emulator runs unthrottled; so may the tests, within reason.
                f"    rate_limit: {{requests_per_minute: {self.requests_per_minute}, "
                f"tags_per_minute: {self.requests_per_minute}}}",
            ]
        lines += [
            "daemon:",
            f"  state_dir: {self.root / f'state-{replica}'}",
            f"  state: {{kind: postgres, dsn: {{env: OMNISYNC_STATE_DSN}}, lease: {self.lease}}}",
            f"  replica_id: r{replica}",
            "  control: {listen: '127.0.0.1:0'}",
            "exports:",
        ]
        for export in self.exports:
            lines += [
                f"  {export.name}:",
                "    segment: everyone",
                f"    connection: store{export.brand}",
                "    owner: olena",
                f"    tag: {export.name}",
                "    mapping: {email: email}",
            ]
            if export.schedule is not None:
                lines.append(f"    schedule: {{{export.schedule}}}")
        return "\n".join(lines) + "\n"

    def environment(self, replica: int) -> dict[str, str]:
        return {
            "OMNISYNC_STATE_DSN": self.dsn,
            **{f"OMNISYNC_TEST_KEY_{b}": replica_key(b, replica) for b in range(self.brands)},
        }

    def start(self, replica: int, *, wait: bool = True, schema: bool = True) -> DaemonProcess:
        """Start replica ``replica``; ``wait``: until it serves, ``schema``: and until the
        shared schema exists (not while PostgreSQL is down)."""
        config = self.root / f"omnisync-{replica}.yaml"
        config.write_text(self.config_text(replica))
        process = DaemonProcess(
            config_path=config,
            state_dir=self.root / f"state-{replica}",
            log_path=self.root / f"replica-{replica}.log",
            extra_env=self.environment(replica),
        )
        self.replicas[replica] = process.start(wait=wait)
        if wait and schema:
            self.wait_for_schema()
        return process

    def wait_for_schema(self) -> None:
        """Until a replica has created the shared schema."""
        wait_until(
            lambda: self.query("SELECT to_regclass('brand_leases') IS NOT NULL")[0][0],
            timeout=30,
            interval=0.1,
            message="the replica to create the shared schema",
        )

    def stop_all(self) -> None:
        for process in self.replicas.values():
            if process.process is not None and process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)  # a stopped one hears SIGTERM
                process.stop(timeout=60)

    # -- reading the shared store ------------------------------------------------------

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, connect_timeout=5) as connection:
            return connection.execute(sql, parameters).fetchall()

    def holders(self) -> dict[str, str]:
        """brand -> replica id, of the live leases (brands named ``brand-<n>``)."""
        rows = self.query("SELECT brand, holder FROM brand_leases WHERE expires_at > now()")
        names = {
            f"{self.emulator.base_url} env:OMNISYNC_TEST_KEY_{b}": f"brand-{b}"
            for b in range(self.brands)
        }
        return {names.get(brand, brand): holder for brand, holder in rows}

    def spread(self) -> list[int]:
        """Leases held per live replica, ascending (``[1, 1, 2]``)."""
        counts = {f"r{number}": 0 for number in self.live_replicas()}
        for holder in self.holders().values():
            counts[holder] = counts.get(holder, 0) + 1
        return sorted(counts.values())

    def live_replicas(self) -> list[int]:
        return [
            number
            for number, process in self.replicas.items()
            if process.process is not None and process.process.poll() is None
        ]

    def runs(self, export: str | None = None) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT id, export, trigger, replica, started_at, ended_at, status, counts, error "
            "FROM runs WHERE %s::text IS NULL OR export = %s ORDER BY id",
            (export, export),
        )
        keys = ("id", "export", "trigger", "replica", "started_at", "ended_at", "status")
        return [
            {**dict(zip(keys, row[:7], strict=True)), "counts": row[7], "error": row[8]}
            for row in rows
        ]


@contextmanager
def cluster(
    root: Path,
    dsn: str,
    *,
    brands: int,
    replicas: int,
    exports: tuple[ClusterExport, ...],
    members: int = 50,
    batch_delay: float = 0.05,
    lease: str = "4s",
) -> Iterator[Cluster]:
    make_source(root / "cdp.sqlite", members)
    with Emulator(
        api_keys=emulator_keys(brands, replicas), rate_limits=False, batch_delay=batch_delay
    ) as emulator:
        group = Cluster(
            root=root, emulator=emulator, dsn=dsn, brands=brands, exports=exports, lease=lease
        )
        try:
            yield group
        finally:
            group.stop_all()


def postgres_binaries() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``, or ``None`` when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of this test's own (``initdb`` in a temporary directory), to stop
    and restart without disturbing the tests that share the machine's server."""

    binaries: Path
    directory: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=3"

    def _as_owner(self, *arguments: str) -> None:
        command = [str(self.binaries / arguments[0]), *arguments[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._as_owner(
            "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "server.log"),
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_owner("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")


@contextmanager
def private_postgres(port: int) -> Iterator[PrivatePostgres]:
    binaries = postgres_binaries()
    if binaries is None:
        import pytest

        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    directory = Path(tempfile.mkdtemp(prefix="omnisync-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PrivatePostgres(binaries, directory, port)
    try:
        server._as_owner(
            "initdb", "-D", str(directory / "data"), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
