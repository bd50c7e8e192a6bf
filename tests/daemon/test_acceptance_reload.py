"""Acceptance: a real daemon process follows edits of its config, however they are saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.daemon.harness import replace_file
from tests.daemon.yamlconfig import ExportYaml

HOURLY = "every: 1h"


def events(daemon, name):
    return [event for event in daemon.log_events() if event.get("event") == name]


def test_add_retime_remove_by_rename_saves(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    config_file = config_dir / "omnisync.yaml"
    config_file.write_text(setup.render(ExportYaml("a", schedule=HOURLY)))
    daemon = setup.daemon(config_dir).start()
    try:
        first = daemon.status()
        assert set(first["exports"]) == {"a"}
        assert first["exports"]["a"]["state"] == "idle"
        assert first["exports"]["a"]["next_run"] is not None

        kyiv = "cron: '0 3 * * *', timezone: Europe/Kyiv"
        replace_file(
            config_file,
            setup.render(ExportYaml("a", schedule=HOURLY), ExportYaml("b", schedule=kyiv)),
        )
        added = daemon.wait_status(lambda s: "b" in s["exports"], message="b scheduled")
        assert added["config"]["revision"] != first["config"]["revision"]
        scheduled_at = datetime.fromisoformat(added["exports"]["b"]["next_run"])
        assert (scheduled_at.hour, scheduled_at.minute) == (3, 0)
        assert scheduled_at.utcoffset().total_seconds() in (7200, 10800)  # Kyiv, winter or summer
        assert [event["fields"]["export"] for event in events(daemon, "export_scheduled")] == [
            "a",
            "b",
        ]

        retimed_cron = "cron: '30 4 * * *', timezone: Europe/Kyiv"
        replace_file(
            config_file,
            setup.render(ExportYaml("a", schedule=HOURLY), ExportYaml("b", schedule=retimed_cron)),
        )
        retimed = daemon.wait_status(
            lambda s: s["exports"]["b"]["next_run"] != added["exports"]["b"]["next_run"],
            message="b re-timed",
        )
        moment = datetime.fromisoformat(retimed["exports"]["b"]["next_run"])
        assert (moment.hour, moment.minute) == (4, 30)
        assert retimed["exports"]["a"]["next_run"] == added["exports"]["a"]["next_run"]  # untouched

        shown = run_status(config_dir, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        assert (
            json.loads(shown.stdout)["exports"]["b"]["next_run"]
            == retimed["exports"]["b"]["next_run"]
        )
        table = run_status(config_dir)
        assert table.returncode == 0, table.stderr
        assert "cron '30 4 * * *' (Europe/Kyiv)" in table.stdout
        assert "last reload: ok" in table.stdout

        replace_file(config_file, setup.render(ExportYaml("b", schedule=retimed_cron)))
        removed = daemon.wait_status(lambda s: "a" not in s["exports"], message="a unscheduled")
        assert set(removed["exports"]) == {"b"}
        assert [event["fields"]["export"] for event in events(daemon, "export_unscheduled")] == [
            "a"
        ]
        # One save, one reload: the temporary file and the rename are one change.
        assert len(events(daemon, "config_reloaded")) == 3
    finally:
        assert daemon.stop() == 0
    assert not (setup.state_dir / "daemon.json").exists()
    gone = run_status(config_dir)
    assert gone.returncode == 1
    assert "no daemon is running" in gone.stderr


def run_status(config_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnisync", "status", "--config", str(config_dir), *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
        check=False,
    )


def test_configmap_symlink_swap_reloads(setup):
    """The layout Kubernetes gives a mounted ConfigMap, and the way it updates it."""
    config_dir = setup.root / "configmap"
    first = config_dir / "..2026_01_01_00_00_00.000000001"
    first.mkdir(parents=True)
    (first / "omnisync.yaml").write_text(setup.render(ExportYaml("a", schedule=HOURLY)))
    (config_dir / "..data").symlink_to(first.name)
    (config_dir / "omnisync.yaml").symlink_to("..data/omnisync.yaml")
    daemon = setup.daemon(config_dir).start()
    try:
        before = daemon.status()
        assert set(before["exports"]) == {"a"}
        second = config_dir / "..2026_01_01_00_05_00.000000002"
        second.mkdir()
        (second / "omnisync.yaml").write_text(
            setup.render(ExportYaml("a", schedule=HOURLY), ExportYaml("b", schedule=HOURLY))
        )
        (config_dir / "..data_tmp").symlink_to(second.name)
        os.replace(config_dir / "..data_tmp", config_dir / "..data")
        after = daemon.wait_status(lambda s: "b" in s["exports"], message="the swap to be seen")
        assert after["config"]["revision"] != before["config"]["revision"]
    finally:
        assert daemon.stop() == 0


def git(directory: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.com", *arguments],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_git_checkout_of_another_revision_reloads(setup):
    repository = setup.root / "repo"
    repository.mkdir()
    git(repository, "init", "-q", "-b", "main")
    (repository / "exports-a.yaml").write_text(setup.render(ExportYaml("a", schedule=HOURLY)))
    git(repository, "add", ".")
    git(repository, "commit", "-q", "-m", "a")
    first = git(repository, "rev-parse", "--short", "HEAD")
    # The second revision changes two files at once: one reload, not two.
    (repository / "exports-a.yaml").write_text(setup.render(ExportYaml("a", schedule="every: 2h")))
    (repository / "exports-b.yaml").write_text(
        "version: 1\nexports:\n  b: {segment: some, connection: main, owner: olena,"
        " mapping: {email: email}, schedule: {every: 1h}}\n"
    )
    git(repository, "add", ".")
    git(repository, "commit", "-q", "-m", "b")
    second = git(repository, "rev-parse", "--short", "HEAD")
    daemon = setup.daemon(repository).start()
    try:
        status = daemon.status()
        assert status["config"]["revision"].startswith("git:")
        assert set(status["exports"]) == {"a", "b"}
        git(repository, "checkout", "-q", first)
        back = daemon.wait_status(
            lambda s: "b" not in s["exports"], message="checkout of the first revision"
        )
        assert back["config"]["revision"] == f"git:{first}"
        assert back["exports"]["a"]["schedule"] == "every 1h"  # as the config writes it
        git(repository, "checkout", "-q", "main")
        forward = daemon.wait_status(lambda s: "b" in s["exports"], message="checkout of main")
        assert forward["config"]["revision"] == f"git:{second}"
        reloaded = [e for e in daemon.log_events() if e.get("event") == "config_reloaded"]
        assert len(reloaded) == 2
    finally:
        assert daemon.stop() == 0


def test_broken_edits_keep_the_old_config_until_fixed(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    config_file = config_dir / "omnisync.yaml"
    good = setup.render(ExportYaml("a", schedule=HOURLY))
    config_file.write_text(good)
    daemon = setup.daemon(config_dir).start()
    try:
        revision = daemon.status()["config"]["revision"]
        assert daemon.metric("omnisync_config_reload_success") == 1.0

        config_file.write_text(good.replace("exports:\n", "exports:\n  [broken\n"))
        failed = daemon.wait_status(
            lambda s: not s["last_reload"]["ok"], message="the failed reload"
        )
        assert failed["config"]["revision"] == revision
        # The rejected revision is named: in /status, its reload history, the log and status.
        rejected = failed["last_reload"]["revision"]
        assert rejected and rejected.startswith("sha256:") and rejected != revision
        assert [r["revision"] for r in failed["reloads"]] == [revision, rejected]
        assert set(failed["exports"]) == {"a"}
        problem = failed["last_reload"]["problems"][0]
        assert problem.startswith(f"{config_file}:")
        line = int(problem.split(":")[1])
        assert line > 1
        assert daemon.metric("omnisync_config_reload_success") == 0.0
        logged = [
            e["message"] for e in daemon.log_events() if e.get("event") == "config_reload_failed"
        ]
        assert any(f"{config_file}:{line}:" in message for message in logged)
        assert all(f"revision {rejected} failed" in message for message in logged)
        # The broken config still names its state dir: status finds the daemon from it.
        found = run_status(config_dir)
        assert found.returncode == 0 and "does not load" in found.stderr, found.stderr
        assert f"last reload of revision {rejected}: FAILED" in found.stdout
        shown = run_status(config_dir, "--state-dir", str(setup.state_dir))
        assert f"last reload of revision {rejected}: FAILED" in shown.stdout
        assert f"  {problem}\n" in shown.stdout

        # Valid YAML, valid schema, but an owner nobody defined: a rule, not a parse error.
        config_file.write_text(good.replace("owner: olena", "owner: nobody"))
        rule = daemon.wait_status(
            lambda s: any("exports.a.owner" in p for p in s["last_reload"]["problems"]),
            message="the rule failure",
        )
        assert not rule["last_reload"]["ok"]
        assert rule["config"]["revision"] == revision
        owner_line = good.splitlines().index("    owner: olena") + 1
        assert any(
            p.startswith(f"{config_file}:{owner_line}:") for p in rule["last_reload"]["problems"]
        )
        assert daemon.metric("omnisync_config_reload_success") == 0.0

        config_file.write_text(
            setup.render(ExportYaml("a", schedule=HOURLY), ExportYaml("c", schedule=None))
        )
        fixed = daemon.wait_status(lambda s: s["last_reload"]["ok"], message="the fix")
        assert fixed["last_reload"]["error"] is None
        assert set(fixed["exports"]) == {"a", "c"}
        assert fixed["exports"]["c"]["state"] == "on-demand"
        assert daemon.metric("omnisync_config_reload_success") == 1.0
        assert daemon.process.poll() is None
    finally:
        assert daemon.stop() == 0


def test_a_commit_that_changes_no_file_updates_the_revision(setup):
    repository = setup.root / "repo"
    repository.mkdir()
    git(repository, "init", "-q", "-b", "main")
    config_file = repository / "omnisync.yaml"
    config_file.write_text(setup.render(ExportYaml("a", schedule=HOURLY)))
    git(repository, "add", ".")
    git(repository, "commit", "-q", "-m", "a")
    first = git(repository, "rev-parse", "--short", "HEAD")
    config_file.write_text(setup.render(ExportYaml("a", schedule="every: 2h")))
    daemon = setup.daemon(repository).start()
    try:
        assert daemon.status()["config"]["revision"] == f"git:{first}+dirty"
        git(repository, "commit", "-q", "-am", "every 2h")  # the loaded bytes, committed
        second = git(repository, "rev-parse", "--short", "HEAD")
        committed = daemon.wait_status(
            lambda s: s["config"]["revision"] == f"git:{second}", message="the commit's revision"
        )
        assert committed["exports"]["a"]["schedule"] == "every 2h"
    finally:
        assert daemon.stop() == 0
