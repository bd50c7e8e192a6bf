"""Acceptance: the daemon holds a scheduled run whose source came back empty, and recovers."""

from __future__ import annotations

import sqlite3

import pytest

from tests.daemon.harness import make_source
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import ExportYaml

WRITES = {"POST /batches", "POST /contacts/tags", "DELETE /contacts/tags"}


def runs(daemon) -> list[dict]:
    return [
        event["fields"]
        for event in daemon.log_events()
        if event.get("event") == "run_finished" and event.get("fields", {}).get("export") == "vip"
    ]


def writes_since(emulator, sequence: int) -> list:
    return [
        record
        for record in emulator.request_log()
        if record.sequence > sequence and record.endpoint in WRITES
    ]


@pytest.mark.long(17)
def test_an_emptied_source_is_held_every_tick_until_it_recovers(setup):
    make_source(setup.base.source_path, 10_000)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("vip", schedule="every: 2s")))
    daemon = setup.daemon(config_dir).start()
    try:
        wait_until(
            lambda: any(run["status"] == "succeeded" for run in runs(daemon)),
            timeout=90,
            message="a first scheduled run",
        )
        assert setup.emulator.contact_count() == 10_000
        with sqlite3.connect(setup.base.source_path) as database:
            database.execute("DELETE FROM customers")  # a failed ETL load
        database.close()
        mark = setup.emulator.request_log()[-1].sequence
        held = daemon.wait_status(
            lambda s: s["exports"]["vip"]["state"] == "held", message="the hold", timeout=60
        )
        assert "would untag 10,000 of 10,000 members (100%)" in held["exports"]["vip"]["held"]
        assert daemon.metric('omnisync_export_held{export="vip"}') == 1.0
        # Held again on the next tick, and never a request that writes.
        seen = len(runs(daemon))
        wait_until(lambda: len(runs(daemon)) > seen, timeout=30, message="the next tick")
        assert runs(daemon)[-1]["status"] == "held"
        assert writes_since(setup.emulator, mark) == []
        assert all(contact["tags"] == ["vip"] for contact in setup.emulator.contacts())
        # The source recovers with one real change: the hold clears by itself.
        make_source(setup.base.source_path, 10_001)
        daemon.wait_status(
            lambda s: s["exports"]["vip"]["state"] != "held", message="the hold to clear"
        )
        wait_until(
            lambda: daemon.metric('omnisync_export_held{export="vip"}') == 0.0,
            timeout=30,
            message="the held metric to clear",
        )
        sent = [email for record in writes_since(setup.emulator, mark) for email in record.emails]
        assert sorted(set(sent)) == ["customer010000@example.com"]
    finally:
        assert daemon.stop() == 0
    log = daemon.log_text()
    assert "customer000001@example.com" not in log
