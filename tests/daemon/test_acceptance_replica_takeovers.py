"""Acceptance: what the replica that takes a brand over does with the runs it inherits, and
what ``omnisync export run`` says when the replica running its request dies (real daemons,
real PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from omnisync.emulator import Emulator
from tests.conftest import fresh_database
from tests.daemon.cluster import Cluster, ClusterExport, cluster, emulator_keys, replica_key
from tests.daemon.harness import make_source
from tests.daemon.runfunctions import wait_until


def _events(process, name: str) -> list[dict]:
    return [event for event in process.log_events() if event.get("event") == name]


@pytest.mark.long(50)
def test_a_failed_run_is_retried_by_the_replica_that_takes_its_brand(tmp_path, postgres_admin_dsn):
    # r0's key to brand-0 is refused (401): its runs of e0 fail, its runs of e1 succeed.
    keys = emulator_keys(2, 2)
    del keys[replica_key(0, 0)]
    exports = (ClusterExport("e0", 0, "every: 24h"), ClusterExport("e1", 1, "every: 24h"))
    make_source(tmp_path / "cdp.sqlite", 50)
    with (
        fresh_database(postgres_admin_dsn) as dsn,
        Emulator(api_keys=keys, rate_limits=False, batch_delay=0.05) as emulator,
    ):
        group = Cluster(root=tmp_path, emulator=emulator, dsn=dsn, brands=2, exports=exports)
        try:
            first = group.start(0)
            wait_until(
                lambda: (
                    {(run["export"], run["status"]) for run in group.runs()}
                    == {("e0", "failed"), ("e1", "succeeded")}
                ),
                timeout=30,
                interval=0.2,
                message="r0's first runs: e0 refused, e1 delivered",
            )
            assert _events(first, "run_retry_scheduled")
            # A second replica joins: r0 gives it brand-0 (its first idle brand), whose
            # failed run r0 would have retried 30 s after it failed.
            group.start(1)
            wait_until(
                lambda: group.holders() == {"brand-0": "r1", "brand-1": "r0"},
                timeout=30,
                interval=0.2,
                message="r1 to take brand-0",
            )
            # The taker retries it, by the retry policy (not at once), with its own key.
            wait_until(
                lambda: any(
                    run["replica"] == "r1" and run["status"] == "succeeded"
                    for run in group.runs("e0")
                ),
                timeout=60,
                interval=0.5,
                message="r1 to retry e0's failed run",
            )
            assert [
                (run["replica"], run["trigger"], run["status"]) for run in group.runs("e0")
            ] == [
                ("r0", "schedule", "failed"),
                ("r1", "retry", "succeeded"),
            ]
            # r0's own retry, due meanwhile, is dropped, and says so once.
            [dropped] = wait_until(
                lambda: _events(first, "run_retry_dropped"),
                timeout=30,
                interval=0.3,
                message="r0 to drop its retry of e0",
            )
            assert dropped["fields"]["export"] == "e0"
            assert "does not hold its brand now" in dropped["message"]
        finally:
            group.stop_all()


MEMBERS = 6_000


@pytest.mark.long(40)
def test_a_request_whose_replica_dies_ends_the_command_and_the_taker_resumes_the_run(
    tmp_path, postgres_admin_dsn
):
    with (
        fresh_database(postgres_admin_dsn) as dsn,
        cluster(
            tmp_path,
            dsn,
            brands=1,
            replicas=2,
            exports=(ClusterExport("vip", 0, None),),  # on demand only
            members=MEMBERS,
            batch_delay=0.3,
        ) as group,
    ):
        first = group.start(0)
        wait_until(lambda: group.holders() == {"brand-0": "r0"}, timeout=30, interval=0.2)
        group.start(1)
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "omnisync",
                "export",
                "run",
                "vip",
                "--config",
                str(tmp_path / "omnisync-0.yaml"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **group.environment(0)},
        )
        try:
            wait_until(
                lambda: group.query("SELECT count(*) FROM ledger_entries")[0][0] >= 1_500,
                timeout=60,
                interval=0.1,
                message="r0's run of the request to deliver 1,500 members",
            )
            first.kill()
            group.emulator.configure(batch_delay=0.02)  # the rest may go fast
            try:
                _, stderr = command.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("the command still waits for the dead replica's answer")
        finally:
            if command.poll() is None:
                command.kill()
                command.communicate()
        assert command.returncode == 1, stderr
        assert "replica r0 is gone (its heartbeat expired) while running vip" in stderr, stderr
        assert "may have partly happened" in stderr and "resumes it from the ledger" in stderr
        # ... which it does: r1 takes the brand and resumes the on-demand run.
        wait_until(
            lambda: any(
                run["replica"] == "r1" and run["status"] == "succeeded" for run in group.runs()
            ),
            timeout=60,
            interval=0.5,
            message="r1 to resume the dead replica's run",
        )
        runs = group.runs()
        assert [(run["replica"], run["trigger"], run["status"]) for run in runs] == [
            ("r0", "cli request", "interrupted"),
            ("r1", "catch-up", "succeeded"),
        ]
        assert group.query("SELECT count(*), count(tag) FROM ledger_entries") == [
            (MEMBERS, MEMBERS)
        ]
