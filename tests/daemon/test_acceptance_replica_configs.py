"""Acceptance: replicas whose configs disagree on an export's brand never move it back and
forth (real daemons, real PostgreSQL).

Moving an export to another brand forgets its ledger, so its next run sends every member
again, consent record included. A replica whose reload failed or is late would move it back
at its next run, and so on at every run: the move is held until every live replica runs the
same config revision, then made once.
"""

from __future__ import annotations

import socket
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnisync.emulator import Emulator
from tests.cli import run_cli
from tests.conftest import fresh_database
from tests.daemon.cluster import Cluster, ClusterExport, emulator_keys
from tests.daemon.harness import DaemonProcess, replace_file
from tests.daemon.runfunctions import wait_until

MEMBERS = 50


def make_consent_source(path: Path, count: int) -> None:
    """Customers with an e-mail status, so each first delivery carries a consent record."""
    with sqlite3.connect(path) as database:
        database.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, city TEXT, "
            "email_status TEXT, email_status_changed_at TEXT)"
        )
        database.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            (
                (
                    number,
                    f"customer{number:06d}@example.com",
                    "Kyiv",
                    "subscribed",
                    "2025-01-01T00:00:00Z",
                )
                for number in range(count)
            ),
        )
    database.close()


@dataclass
class OneConfigCluster(Cluster):
    """Replicas whose config files are the same bytes (one config revision): each file in a
    directory of its own, its state directory relative to it, its replica id the default
    (``hostname:pid``); the export maps consent."""

    def config_text(self, replica: int) -> str:
        text = super().config_text(0)
        for line in (f"  state_dir: {self.root / 'state-0'}\n", "  replica_id: r0\n"):
            assert line in text
        text = text.replace(f"  state_dir: {self.root / 'state-0'}\n", "  state_dir: state\n")
        text = text.replace("  replica_id: r0\n", "")
        text = text.replace(
            "SELECT email, city FROM customers",
            "SELECT email, city, email_status, email_status_changed_at FROM customers",
        )
        return text.replace(
            "    mapping: {email: email}\n",
            "    mapping: {email: email}\n"
            "    consent: {status_column: email_status, "
            "changed_at_column: email_status_changed_at, source: shop}\n",
        )

    def config_path(self, replica: int) -> Path:
        return self.root / f"r{replica}" / "omnisync.yaml"

    def start(self, replica: int, *, wait: bool = True, schema: bool = True) -> DaemonProcess:
        path = self.config_path(replica)
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.config_text(replica))
        process = DaemonProcess(
            config_path=path,
            state_dir=path.parent / "state",
            log_path=self.root / f"replica-{replica}.log",
            extra_env=self.environment(replica),
        )
        self.replicas[replica] = process.start()
        self.wait_for_schema()
        return process

    def replica_id(self, replica: int) -> str:
        process = self.replicas[replica].process
        assert process is not None
        return f"{socket.gethostname()}:{process.pid}"

    def revisions(self) -> dict[str, str]:
        return dict(self.query("SELECT id, config_revision FROM replicas WHERE expires_at > now()"))

    def consents(self, brand: str) -> Counter[int]:
        """How many contacts of ``brand`` carry how many consent records."""
        return Counter(len(contact.get("consents") or []) for contact in self.contacts(brand))

    def contacts(self, brand: str) -> list[dict]:
        assert self.emulator.drain()
        return self.emulator.contacts(brand=brand)

    def moves(self) -> int:
        return sum(
            process.log_text().count('"event": "engine.export_moved_brand"')
            for process in self.replicas.values()
        )


def _runs_after(group: OneConfigCluster, first_id: int) -> list[dict]:
    return [run for run in group.runs("vip") if run["id"] > first_id]


@pytest.mark.long(70)
def test_an_export_moved_in_one_replicas_config_waits_until_every_replica_agrees(
    tmp_path, postgres_admin_dsn
):
    make_consent_source(tmp_path / "cdp.sqlite", MEMBERS)
    with (
        fresh_database(postgres_admin_dsn) as dsn,
        Emulator(api_keys=emulator_keys(2, 2), rate_limits=False, batch_delay=0.05) as emulator,
    ):
        group = OneConfigCluster(
            root=tmp_path,
            emulator=emulator,
            dsn=dsn,
            brands=2,
            exports=(ClusterExport("vip", 0, "every: 5s"),),
        )
        try:
            group.start(0)
            group.start(1)
            wait_until(
                lambda: any(run["status"] == "succeeded" for run in group.runs("vip")),
                timeout=30,
                interval=0.3,
                message="vip's first run, to brand-0",
            )
            holder = group.holders()["brand-0"]
            keeper = next(number for number in (0, 1) if group.replica_id(number) == holder)
            mover = 1 - keeper
            keeper_id, mover_id = group.replica_id(keeper), group.replica_id(mover)
            same = group.revisions()[keeper_id]
            assert group.revisions()[mover_id] == same

            # vip moves to brand-1 in one replica's config only (the other's reload is late).
            moved = group.config_text(mover).replace("connection: store0", "connection: store1")
            replace_file(group.config_path(mover), moved)
            wait_until(
                lambda: group.revisions().get(mover_id, same) != same,
                timeout=30,
                interval=0.2,
                message="the moved replica to report its new config revision",
            )
            revision = group.revisions()[mover_id]
            before = max(run["id"] for run in group.runs())

            def both_ran() -> bool:
                ran = Counter(run["replica"] for run in _runs_after(group, before))
                return ran[mover_id] >= 2 and ran[keeper_id] >= 1

            wait_until(both_ran, timeout=90, interval=0.5, message="both replicas to run vip")
            runs = _runs_after(group, before)
            # The moved replica's runs are held, naming the replica that disagrees; the
            # other runs vip to brand-0 as before.
            for run in runs:
                if run["replica"] == mover_id:
                    assert run["status"] == "held", run
                    assert (
                        f"replica {keeper_id} ({same}) runs another config revision"
                        in (run["error"])
                    ), run
                    assert f"({mover_id}: {revision})" in run["error"], run
                else:  # its latest may still be under way on a loaded machine
                    assert run["status"] in ("succeeded", "running"), run
            assert group.contacts("brand-1") == []
            assert group.consents("brand-0") == {1: MEMBERS}
            assert group.moves() == 0

            # Its status says so while its held run is vip's latest (the other replica's
            # next run, a few seconds later, ends that).
            def shown_held() -> bool:
                status = group.replicas[mover].status()["exports"]["vip"]
                return status["state"] == "held" and keeper_id in (status["held"] or "")

            wait_until(shown_held, timeout=60, interval=0.2, message="the mover to show held")

            # The late replica's config catches up: one revision again, and vip moves once.
            replace_file(group.config_path(keeper), moved)
            wait_until(
                lambda: set(group.revisions().values()) == {revision},
                timeout=30,
                interval=0.2,
                message="both replicas to run the same config revision",
            )
            agreed = max(run["id"] for run in group.runs())
            wait_until(
                lambda: (
                    sum(run["status"] == "succeeded" for run in _runs_after(group, agreed)) >= 3
                ),
                timeout=60,
                interval=0.5,
                message="vip to run three times with the agreed config",
            )
            assert group.moves() == 1
            assert group.consents("brand-1") == {1: MEMBERS}
            assert group.consents("brand-0") == {1: MEMBERS}
            [(brand,)] = group.query("SELECT brand FROM export_brands WHERE export = 'vip'")
            assert brand.endswith("env:OMNISYNC_TEST_KEY_1"), brand
        finally:
            group.stop_all()


@pytest.mark.long(40)
def test_a_direct_export_run_that_moves_an_export_waits_for_the_live_replicas(
    tmp_path, postgres_admin_dsn
):
    """``export run`` with a config that moves an export to a brand no replica holds runs it
    itself, under that brand's lease: it too holds the move while a live replica runs
    another config revision (whose next run would move the export back)."""
    make_consent_source(tmp_path / "cdp.sqlite", MEMBERS)
    with (
        fresh_database(postgres_admin_dsn) as dsn,
        Emulator(api_keys=emulator_keys(2, 1), rate_limits=False, batch_delay=0.05) as emulator,
    ):
        group = OneConfigCluster(
            root=tmp_path,
            emulator=emulator,
            dsn=dsn,
            brands=2,
            exports=(ClusterExport("vip", 0, "every: 1h"),),
        )
        try:
            group.start(0)
            wait_until(
                lambda: any(run["status"] == "succeeded" for run in group.runs("vip")),
                timeout=30,
                interval=0.3,
                message="vip's first run, to brand-0",
            )
            replica_id = group.replica_id(0)
            [revision] = group.revisions().values()
            moved = tmp_path / "moved" / "omnisync.yaml"
            moved.parent.mkdir()
            moved.write_text(
                group.config_text(0).replace("connection: store0", "connection: store1")
            )

            done = run_cli(
                "export", "run", "vip", "--config", str(moved), extra_env=group.environment(0)
            )
            assert done.returncode == 4, done.stdout + done.stderr
            said = " ".join((done.stdout + done.stderr).split())
            assert f"replica {replica_id} ({revision}) runs another config revision" in said
            assert "nothing was sent" in said
            assert group.contacts("brand-1") == []
            assert group.consents("brand-0") == {1: MEMBERS}
            [(brand,)] = group.query("SELECT brand FROM export_brands WHERE export = 'vip'")
            assert brand.endswith("env:OMNISYNC_TEST_KEY_0"), brand

            # Once the replica is gone, nobody would move it back: the command moves it.
            group.stop_all()
            done = run_cli(
                "export", "run", "vip", "--config", str(moved), extra_env=group.environment(0)
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert group.consents("brand-1") == {1: MEMBERS}
        finally:
            group.stop_all()
