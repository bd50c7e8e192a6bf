"""The daemon's main loop in-process, with the real loader and an observable run function.

The real-process acceptance tests (``test_acceptance_*``) drive the same code
through ``python -m omnisync daemon``; these cover the same paths faster and
look inside (the run function sees every config snapshot).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from omnisync.clock import SystemClock
from omnisync.config.loader import try_load_config
from omnisync.daemon.loading import DaemonConfigLoader
from omnisync.daemon.notify import Notifier
from omnisync.daemon.remote import RemoteRunFailed, as_run_result, run_through_daemon
from omnisync.daemon.service import Daemon
from omnisync.logs import Redactor
from tests.daemon.runfunctions import GatedRuns, wait_until
from tests.daemon.yamlconfig import API_KEY_VARIABLE, ConfigYaml, ExportYaml


def replace_file(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def make_daemon(tmp_path, loader, *, engine, **options) -> Daemon:
    """A daemon on ``tmp_path/conf`` (state in ``tmp_path/state``), loaded by ``loader``."""
    config_dir = tmp_path / "conf"
    return Daemon(
        loader(config_dir),
        config_path=config_dir,
        state_dir=tmp_path / "state",
        control_listen="127.0.0.1:0",
        loader=loader,
        engine=engine,
        clock=SystemClock(),
        notifier=Notifier(None),
        **options,
    )


@pytest.fixture
def running(tmp_path):
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (tmp_path / "state").mkdir(mode=0o700)
    base = ConfigYaml(state_dir=tmp_path / "state", source_path=tmp_path / "cdp.sqlite")
    config_file = config_dir / "omnisync.yaml"
    config_file.write_text(
        ConfigYaml(
            **{**base.__dict__, "exports": (ExportYaml("a", schedule="every: 1h"),)}
        ).render()
    )
    loader = DaemonConfigLoader({API_KEY_VARIABLE: "test-key-123"})
    runs = GatedRuns(batches=2)
    runs.release.set()
    daemon = make_daemon(tmp_path, loader, engine=runs)
    daemon.start()
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    client = httpx.Client(base_url=f"http://{daemon.control_address}", timeout=5)
    yield daemon, client, config_file, base, runs
    daemon.request_stop()
    thread.join(timeout=30)
    client.close()


def status(client):
    return client.get("/status").json()


def test_reload_add_remove_break_fix(running):
    daemon, client, config_file, base, _runs = running
    first = status(client)
    assert set(first["exports"]) == {"a"}
    assert first["exports"]["a"]["state"] == "idle"
    assert first["exports"]["a"]["next_run"] is not None

    def write(*exports):
        replace_file(config_file, ConfigYaml(**{**base.__dict__, "exports": exports}).render())

    write(ExportYaml("a", schedule="every: 1h"), ExportYaml("b", schedule="cron: '0 0 1 1 *'"))
    wait_until(lambda: "b" in status(client)["exports"], message="b added")
    assert status(client)["exports"]["b"]["next_run"][4:] == "-01-01T00:00:00+00:00"

    config_file.write_text("version: 1\nexports: [\n")  # broken YAML, written in place
    wait_until(lambda: status(client)["last_reload"]["ok"] is False, message="failed reload")
    broken = status(client)
    assert set(broken["exports"]) == {"a", "b"}  # still the last good config
    assert broken["last_reload"]["problems"][0].startswith(f"{config_file}:")
    assert "omnisync_config_reload_success 0.0" in client.get("/metrics").text

    write(ExportYaml("b", schedule="cron: '0 0 1 1 *'"))
    wait_until(lambda: set(status(client)["exports"]) == {"b"}, message="a removed")
    assert status(client)["last_reload"]["ok"] is True
    assert "omnisync_config_reload_success 1.0" in client.get("/metrics").text
    assert daemon.supervisor.scheduler.scheduled().keys() == {"b"}


def test_trigger_runs_with_the_current_config_and_needs_the_token(running, tmp_path):
    daemon, client, _, _, runs = running
    token = (tmp_path / "state" / "control.token").read_text().strip()
    assert client.post("/exports/a/run").status_code == 401
    answer = client.post("/exports/a/run", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 202
    run_id = answer.json()["id"]
    done = wait_until(
        lambda: (run := client.get(f"/runs/{run_id}").json())["state"] == "finished" and run,
        message="run end",
    )
    assert done["status"] == "succeeded"
    assert runs.started == [("a", "daemon-trigger", daemon.config().revision)]
    assert (
        client.post("/exports/zzz/run", headers={"Authorization": f"Bearer {token}"}).status_code
        == 404
    )
    assert 'omnisync_runs_total{export="a",outcome="succeeded"} 1.0' in client.get("/metrics").text


def test_secrets_are_resolved_again_on_every_reload(tmp_path):
    key_file = tmp_path / "omnisend-api-key"
    key_file.write_text("first-key-value-123\n")
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (tmp_path / "state").mkdir(mode=0o700)
    config = ConfigYaml(
        state_dir=tmp_path / "state",
        source_path=tmp_path / "cdp.sqlite",
        api_key=f"{{file: {key_file}}}",
        exports=(ExportYaml("a"),),
    )
    config_file = config_dir / "omnisync.yaml"
    config_file.write_text(config.render())
    loader = DaemonConfigLoader({})
    redactor = Redactor()
    daemon = make_daemon(tmp_path, loader, engine=GatedRuns(), redactor=redactor)
    daemon.start()
    try:
        assert redactor.scrub("key first-key-value-123") == "key [REDACTED]"
        key_file.unlink()
        assert daemon.reload(source="test") is False
        (problem,) = daemon.status()["last_reload"]["problems"]
        assert problem.startswith(f"{config_file}:")
        assert "connections.main.api_key" in problem and str(key_file) in problem
        key_file.write_text("second-key-value-456\n")
        assert daemon.reload(source="test") is True
        assert redactor.scrub("key second-key-value-456") == "key [REDACTED]"
    finally:
        daemon.shutdown()


def test_run_through_daemon_waits_behind_a_running_run_then_starts_its_own(running, tmp_path):
    daemon, client, _, _, runs = running
    runs.release.clear()
    token = (tmp_path / "state" / "control.token").read_text().strip()
    first = client.post("/exports/a/run", headers={"Authorization": f"Bearer {token}"}).json()
    wait_until(
        lambda: client.get(f"/runs/{first['id']}").json()["history_id"] == "h1",
        message="the first run to be recorded",
    )
    notices: list[str] = []
    outcome: dict[str, object] = {}
    phases: list[tuple[str, int]] = []

    class Recording:
        def phase_started(self, phase, counts):
            phases.append((phase, counts.upserted))

        def counts_updated(self, counts):
            pass

    def call() -> None:
        outcome["remote"] = run_through_daemon(
            daemon.config(), "a", notice=notices.append, progress=Recording()
        )

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: notices, message="the caller to notice the running run")
    # Runs are named by their history id, never by the daemon's internal one.
    assert notices[0].startswith("export a is already running in the daemon (run h1, ")
    assert first["id"] not in notices[0]
    runs.release.set()
    caller.join(timeout=30)
    remote = outcome["remote"]
    assert remote["id"] != first["id"]
    assert notices[1:] == [f"the daemon (pid {os.getpid()}) is running export a: run h2"]
    # The waited-for run's progress, then this run's: each reaches "finished".
    assert phases[:2] == [("applying", 0), ("finished", 20)], phases
    assert phases[-1] == ("finished", 20) and [p for p, _ in phases].count("finished") == 2
    assert [trigger for _, trigger, _ in runs.started] == ["daemon-trigger", "daemon-trigger"]
    result = as_run_result(remote, "a")
    assert (result.status, result.counts.upserted, result.counts.invalid) == ("succeeded", 20, 1)
    with pytest.raises(RemoteRunFailed, match="no export named 'zzz'"):
        run_through_daemon(daemon.config(), "zzz")


def test_run_through_daemon_without_a_daemon_is_none(tmp_path):
    lonely = ConfigYaml(state_dir=tmp_path / "nowhere", source_path=tmp_path / "x.sqlite")
    config_file = tmp_path / "omnisync.yaml"
    config_file.write_text(lonely.render())
    loaded = DaemonConfigLoader({API_KEY_VARIABLE: "k" * 12})(config_file)
    assert run_through_daemon(loaded.config, "a") is None


def test_a_loader_that_raises_fails_the_reload_and_the_daemon_runs_on(tmp_path):
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (tmp_path / "state").mkdir(mode=0o700)
    (config_dir / "omnisync.yaml").write_text(
        ConfigYaml(
            state_dir=tmp_path / "state",
            source_path=tmp_path / "cdp.sqlite",
            exports=(ExportYaml("a", schedule="every: 1h"),),
        ).render()
    )
    failing = threading.Event()

    def load(path, *, environ):
        if failing.is_set():
            raise ValueError("a bug in loading")
        return try_load_config(path, environ=environ)

    loader = DaemonConfigLoader({API_KEY_VARIABLE: "test-key-123"}, load=load)
    daemon = make_daemon(tmp_path, loader, engine=GatedRuns())
    daemon.start()
    try:
        failing.set()
        assert daemon.reload(source="test") is False
        last = daemon.status()["last_reload"]
        assert (
            last["ok"] is False
            and "internal error (ValueError at test_service.py" in last["problems"][0]
        )
        assert set(daemon.status()["exports"]) == {"a"}  # the last good config runs on
        failing.clear()
        assert daemon.reload(source="test") is True
    finally:
        daemon.shutdown()
