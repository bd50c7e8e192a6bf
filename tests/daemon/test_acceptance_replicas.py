"""Acceptance: replicas sharing a PostgreSQL state store (real daemons, real PostgreSQL).

Each test starts real ``omnisync daemon`` processes against the emulator and
one PostgreSQL database, and reads the outcome from that database and from
the emulator's request log (each replica has its own API keys, so the log
says who sent what).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from omnisync.daemon.scheduler import EPOCH
from tests.cli import run_cli
from tests.conftest import fresh_database
from tests.daemon.cluster import (
    Cluster,
    ClusterExport,
    cluster,
    private_postgres,
    replica_key,
)
from tests.daemon.harness import DaemonProcess
from tests.daemon.runfunctions import wait_until

#: How long the three replicas run their schedules undisturbed ("several minutes" in
#: the issue; shorter where a quicker signal is wanted).
SOAK_SECONDS = int(os.environ.get("OMNISYNC_REPLICA_SOAK_SECONDS", "90"))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _between_fires(every: int) -> datetime:
    """A moment half an interval after the latest fire: no run starts near it."""
    now = datetime.now(UTC)
    return _grid_point(now, every) + timedelta(seconds=every / 2)


def _assert_every_fire_ran_once(group, exports, *, before: datetime) -> None:
    """Every fire claimed up to ``before`` (a moment between fires) has exactly one
    scheduled run, started after it and before the next fire plus a little."""
    fires = group.query("SELECT export, fire_time FROM schedule_fires ORDER BY 1, 2")
    runs = group.runs()
    for export in exports:
        claimed = sorted(_time(fire) for name, fire in fires if name == export.name)
        claimed = [fire for fire in claimed if fire <= before]
        started = sorted(
            _time(run["started_at"])
            for run in runs
            if run["export"] == export.name and run["trigger"] == "schedule"
        )
        started = [moment for moment in started if moment <= before]
        assert len(started) == len(claimed), (export, claimed, started)
        for fire, moment in zip(claimed, started, strict=True):
            assert fire <= moment < fire + timedelta(seconds=export.every + 2), (fire, moment)


def _grid_point(moment: datetime, seconds: int) -> datetime:
    elapsed = (moment - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=int(elapsed // seconds) * seconds)


def _assert_never_overlapping(runs: list[dict]) -> None:
    by_export: dict[str, list[dict]] = {}
    for run in runs:
        by_export.setdefault(run["export"], []).append(run)
    for export, mine in by_export.items():
        mine.sort(key=lambda run: run["started_at"])
        for earlier, later in itertools.pairwise(mine):
            if earlier["status"] == "interrupted" and earlier["ended_at"] is None:
                continue  # its process stopped mid-run; the next run closed it on starting
            assert earlier["ended_at"] is not None, (export, earlier)
            assert _time(earlier["ended_at"]) <= _time(later["started_at"]), (
                export,
                earlier,
                later,
            )


@pytest.mark.long(100)
def test_three_replicas_share_four_brands_and_run_every_fire_once(tmp_path, postgres_admin_dsn):
    exports = tuple(ClusterExport(f"e{number}", number % 4, "every: 5s") for number in range(8))
    with (
        fresh_database(postgres_admin_dsn) as dsn,
        cluster(tmp_path, dsn, brands=4, replicas=3, exports=exports) as group,
    ):
        for replica in range(3):
            group.start(replica)
        wait_until(
            lambda: group.spread() == [1, 1, 2],
            timeout=45,
            interval=0.5,
            message="the four brands to be spread 2/1/1 over the three replicas",
        )
        # Let every export run on schedule for a while (the spread holding all along),
        # then compare fires with runs.
        soak_until = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < soak_until:
            time.sleep(5)
            assert group.spread() == [1, 1, 2]
        assert sorted(group.holders()) == ["brand-0", "brand-1", "brand-2", "brand-3"]
        # Each replica's /metrics says what it holds; together, every brand once.
        held = [process.metric("omnisync_brand_leases_held") for process in group.replicas.values()]
        assert sorted(held) == [1.0, 1.0, 2.0]
        # `status` reads the replicas from the shared store, from anywhere.
        config = str(tmp_path / "omnisync-0.yaml")
        status = run_cli(
            "status", "--config", config, "--format", "json", extra_env=group.environment(0)
        )
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert sorted(replica["id"] for replica in document["replicas"] if replica["live"]) == [
            "r0",
            "r1",
            "r2",
        ]
        assert sorted(len(replica["leases"]) for replica in document["replicas"]) == [1, 1, 2]
        holders = group.holders()
        assert document["holders"] == {
            export.name: holders[f"brand-{export.brand}"] for export in exports
        }
        # An on-demand run reaches the holder of its brand and is recorded as its run. It
        # is asked for midway between fires: the holder refuses it while e0's scheduled
        # run is under way (the asker decides whether to wait), so a busy holder is asked
        # again at the next midpoint, as a user would.
        for _attempt in range(3):
            midway = _between_fires(5)
            if midway < datetime.now(UTC):
                midway += timedelta(seconds=5)
            time.sleep((midway - datetime.now(UTC)).total_seconds())
            asked = run_cli(
                "export", "run", "e0", "--config", config, extra_env=group.environment(0)
            )
            if "is already running" not in asked.stderr:
                break
        assert asked.returncode == 0, asked.stderr
        assert f"replica {holders['brand-0']} holds this export's brand" in asked.stderr
        # Fires from here on may meet the shutdown: compare those before it.
        before = _between_fires(5)
        time.sleep(max(0.0, (before - datetime.now(UTC)).total_seconds()) + 1.0)
        group.stop_all()
        runs = group.runs()
        assert runs and all(run["status"] == "succeeded" for run in runs), runs
        _assert_never_overlapping(runs)
        requested = [run for run in runs if run["trigger"] == "cli request"]
        assert [(run["export"], run["replica"]) for run in requested] == [
            ("e0", holders["brand-0"])
        ]
        _assert_every_fire_ran_once(group, exports, before=before)
        fires = group.query("SELECT export, fire_time FROM schedule_fires ORDER BY 1, 2")
        for export in exports:
            claimed = [_time(fire) for name, fire in fires if name == export.name]
            assert len(claimed) >= SOAK_SECONDS // 5 - 1, (export, claimed)
            # No fire was skipped between the first and the last.
            gaps = {later - earlier for earlier, later in itertools.pairwise(claimed)}
            assert gaps == {timedelta(seconds=5)}, (export, claimed)
        # Every run names the replica that ran it, which held the brand.
        assert {run["replica"] for run in runs} == {"r0", "r1", "r2"}


MEMBERS = 20_000


@contextmanager
def _mid_run(tmp_path, admin_dsn, *, delivered: int) -> Iterator[tuple[Cluster, DaemonProcess]]:
    """Two replicas, one brand, a 20,000-member export; r0 holds the brand and has run
    this hour's fire (taken on taking the brand) up to ``delivered`` members."""
    with (
        fresh_database(admin_dsn) as dsn,
        cluster(
            tmp_path,
            dsn,
            brands=1,
            replicas=2,
            exports=(ClusterExport("vip", 0, "every: 1h"),),
            members=MEMBERS,
            batch_delay=0.3,
        ) as group,
    ):
        first = group.start(0)
        wait_until(lambda: group.holders() == {"brand-0": "r0"}, timeout=30, interval=0.2)
        group.start(1)
        wait_until(
            lambda: group.query("SELECT count(*) FROM ledger_entries")[0][0] >= delivered,
            timeout=60,
            interval=0.1,
            message=f"the first replica's run to deliver {delivered:,} members",
        )
        yield group, first


def _finished_by(group: Cluster, replica: str) -> None:
    wait_until(
        lambda: any(
            run["replica"] == replica and run["status"] == "succeeded" for run in group.runs()
        ),
        timeout=120,
        interval=0.5,
        message=f"the run resumed by {replica} to finish",
    )


@pytest.mark.long(8)
def test_a_killed_replicas_brand_is_taken_over_and_its_run_finished(tmp_path, postgres_admin_dsn):
    with _mid_run(tmp_path, postgres_admin_dsn, delivered=3_000) as (group, first):
        first.kill()
        killed_at = time.monotonic()
        group.emulator.configure(batch_delay=0.02)  # the rest may go fast
        in_flight = group.query(
            "SELECT (SELECT count(*) FROM inflight_batches) + "
            "(SELECT coalesce(sum(jsonb_array_length(items)), 0) FROM batch_intents)"
        )[0][0]
        wait_until(
            lambda: any(run["replica"] == "r1" for run in group.runs()),
            timeout=30,
            interval=0.2,
            message="the second replica to take the brand over and resume the run",
        )
        assert time.monotonic() - killed_at < 30
        _finished_by(group, "r1")
        runs = group.runs()
        assert runs[0]["replica"] == "r0" and runs[0]["status"] == "interrupted", runs
        assert group.query("SELECT count(*), count(tag) FROM ledger_entries") == [
            (MEMBERS, MEMBERS)
        ]
        # Omnisend applies a tags call after answering it: wait for the last ones.
        assert group.emulator.drain()
        contacts = group.emulator.contacts(brand="brand-0")
        assert len(contacts) == MEMBERS
        assert all("vip" in contact["tags"] for contact in contacts)
        sent = Counter(
            email
            for record in group.emulator.request_log()
            if record.endpoint == "POST /batches"
            for email in record.emails
        )
        assert set(sent) == {contact["email"] for contact in contacts}
        resent = sum(1 for count in sent.values() if count > 1)
        assert resent <= in_flight, (resent, in_flight)


#: Longer than the wait before SIGSTOP: every sending thread is then waiting on an answer.
_HELD_ANSWER_SECONDS = 12.0


@pytest.mark.long(9)
def test_a_paused_replica_sends_and_writes_nothing_after_the_takeover(tmp_path, postgres_admin_dsn):
    with _mid_run(tmp_path, postgres_admin_dsn, delivered=2_000) as (group, paused):
        # Pause it while its requests wait on their answers. A thread stopped between its
        # last lease check and its first byte sends that one request on resuming: no
        # client-side check can be atomic with a send (docs/daemon.md). With the answers
        # held, every sending thread waits on one, outside that window, so a request
        # after the resume is one begun after it: what the lease check must refuse.
        group.emulator.set_faults(latency=_HELD_ANSWER_SECONDS)
        time.sleep(2)
        paused.signal(signal.SIGSTOP)
        stopped_at = group.emulator.clock.now()
        group.emulator.set_faults(latency=0.0)
        # Longer than the lease (4 s): the other replica takes the brand and resumes.
        wait_until(
            lambda: any(run["replica"] == "r1" for run in group.runs()),
            timeout=30,
            interval=0.2,
            message="the other replica to take over",
        )
        time.sleep(2)
        group.emulator.configure(batch_delay=0.02)  # the rest may go fast
        resumed_at = group.emulator.clock.now()
        paused.signal(signal.SIGCONT)
        _finished_by(group, "r1")
        # The resumed replica's run ends (its lease is gone: stopped, its writes refused).
        wait_until(
            lambda: any(event.get("event") == "run_finished" for event in paused.log_events()),
            timeout=60,
            interval=0.3,
            message="the resumed replica's run to end",
        )
        # A request whose head arrived after SIGCONT was begun after the resume (one whose
        # head left before SIGSTOP may have its body follow on resuming: begun before).
        late = [
            record
            for record in group.emulator.request_log()
            if record.key == replica_key(0, 0) and record.received >= resumed_at
        ]
        assert late == [], (stopped_at, resumed_at, [(r.sequence, r.endpoint, r.at) for r in late])
        first = group.runs()[0]
        # Its run was closed by the taker, never by itself after resuming (fenced).
        assert first["replica"] == "r0" and first["status"] == "interrupted", first
        assert "stopped before recording a result" in (first["error"] or "")
        assert group.query("SELECT count(*), count(tag) FROM ledger_entries") == [
            (MEMBERS, MEMBERS)
        ]
        assert "write refused" in paused.log_text()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.long(35)
def test_replicas_wait_for_postgresql_and_recover_from_its_restart(tmp_path):
    exports = (ClusterExport("e0", 0, "every: 3s"), ClusterExport("e1", 1, "every: 3s"))
    with (
        private_postgres(_free_port()) as server,
        fresh_database(server.dsn) as dsn,
        cluster(tmp_path, dsn, brands=2, replicas=2, exports=exports) as group,
    ):
        server.stop()
        # Unreachable at start: the replica starts, answers /healthz 503, sends nothing.
        replica = group.start(0, schema=False)
        time.sleep(3)
        assert replica.http.get("/healthz").status_code == 503
        assert group.emulator.request_log() == []
        server.start()
        wait_until(
            lambda: replica.http.get("/healthz").status_code == 200,
            timeout=30,
            interval=0.3,
            message="/healthz to turn ready once PostgreSQL is up",
        )
        group.start(1)
        wait_until(lambda: group.spread() == [1, 1], timeout=30, interval=0.3)
        time.sleep(7)
        server.stop()
        time.sleep(6)  # longer than the lease: runs stop, leases are lost locally
        for process in group.replicas.values():
            assert process.http.get("/healthz").status_code == 503
        server.start()
        restart = datetime.now(UTC)
        wait_until(
            lambda: all(
                process.http.get("/healthz").status_code == 200
                for process in group.replicas.values()
            ),
            timeout=30,
            interval=0.3,
        )
        wait_until(lambda: len(group.holders()) == 2, timeout=30, interval=0.3)
        time.sleep(9)
        before = _between_fires(3)
        time.sleep(max(0.0, (before - datetime.now(UTC)).total_seconds()) + 1.0)
        group.stop_all()
        runs = group.runs()
        _assert_never_overlapping(runs)
        assert all(run["status"] != "running" for run in runs), runs
        # No fire ran twice, every claimed fire has its run (none lost), before and after.
        _assert_every_fire_ran_once(group, exports, before=before)
        fires = group.query("SELECT export, fire_time FROM schedule_fires ORDER BY 1, 2")
        for export in exports:
            after = [fire for name, fire in fires if name == export.name and _time(fire) > restart]
            assert len(after) >= 2, "runs went on after the restart"


def test_a_refused_login_is_named_without_its_password_and_nothing_is_sent(
    tmp_path, postgres_admin_dsn
):
    from psycopg import conninfo

    password = "s3cret-never-shown"
    with fresh_database(postgres_admin_dsn) as dsn:
        wrong = conninfo.make_conninfo(dsn, user="omnisync_nobody", password=password)
        with cluster(
            tmp_path, wrong, brands=1, replicas=1, exports=(ClusterExport("vip", 0),)
        ) as group:
            replica = group.start(0, schema=False)
            wait_until(
                lambda: "state_store_unreachable" in replica.log_text(),
                timeout=30,
                interval=0.2,
                message="the replica to report the refused login",
            )
            assert replica.http.get("/healthz").status_code == 503
            assert group.emulator.request_log() == []
            status = run_cli(
                "status",
                "--config",
                str(tmp_path / "omnisync-0.yaml"),
                extra_env=group.environment(0),
            )
            group.stop_all()
            log = replica.log_text()
            assert "omnisync_nobody" in log and "PostgreSQL host=" in log
            # `status` still shows the running daemon, then says why the replicas are unknown.
            assert status.returncode == 0, status.stderr
            assert f"omnisync daemon pid {replica.process.pid}" in status.stdout
            assert "is not healthy" in status.stderr
            assert "cannot read the replicas" in status.stderr
            assert "omnisync_nobody" in status.stderr
            assert password not in log + status.stdout + status.stderr
