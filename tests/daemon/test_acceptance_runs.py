"""Acceptance: reloads around runs in flight, and on-demand runs through the daemon."""

from __future__ import annotations

from omnisync.emulator.faults import Faults
from tests.daemon.harness import make_source, replace_file
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import ExportYaml


def trigger(daemon, export: str) -> str:
    answer = daemon.http.post(
        f"/exports/{export}/run", headers={"Authorization": f"Bearer {daemon.token()}"}
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def finished(daemon, run_id: str) -> dict:
    return wait_until(
        lambda: (run := daemon.http.get(f"/runs/{run_id}").json())["state"] == "finished" and run,
        timeout=90,
        message=f"run {run_id} to finish",
    )


def test_a_reload_never_interrupts_an_unchanged_export_and_stops_a_removed_one(setup):
    make_source(setup.base.source_path, 1200)
    # Batches that take two seconds each keep both runs in flight well past the reload.
    setup.emulator.set_faults(Faults(latency=0.01))
    setup.emulator.configure(batch_delay=2.0)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    config_file = config_dir / "omnisync.yaml"
    steady = ExportYaml("steady", schedule=None)
    doomed = ExportYaml("doomed", schedule=None, segment="some", tag="doomed-tag")
    other = ExportYaml("other", schedule="every: 1h", segment="some", tag="other-tag")
    config_file.write_text(setup.render(steady, doomed, other))
    daemon = setup.daemon(config_dir).start()
    try:
        steady_run = trigger(daemon, "steady")
        doomed_run = trigger(daemon, "doomed")
        daemon.wait_status(
            lambda s: (
                s["exports"]["steady"]["state"] == "running"
                and s["exports"]["doomed"]["state"] == "running"
            ),
            message="both runs under way",
        )
        wait_until(
            lambda: sum(r.endpoint == "POST /batches" for r in setup.emulator.request_log()) >= 2,
            message="batches flowing",
        )
        # Edit another export and remove `doomed`; `steady` is untouched.
        changed_other = ExportYaml("other", schedule="every: 2h", segment="some", tag="renamed")
        replace_file(config_file, setup.render(steady, changed_other))
        reloaded = daemon.wait_status(lambda s: "doomed" not in s["exports"], message="the reload")
        assert reloaded["exports"]["other"]["schedule"] == "every 7200s"

        stopped = finished(daemon, doomed_run)
        assert stopped["stop_reason"] == "removed"
        assert stopped["status"] == "partial"
        assert stopped["counts"]["pending"] > 0

        kept = finished(daemon, steady_run)
        assert kept["stop_reason"] is None
        assert kept["status"] == "succeeded"
        assert kept["counts"]["upserted"] == 1200
        assert setup.emulator.contact_count() == 1200
    finally:
        assert daemon.stop() == 0
