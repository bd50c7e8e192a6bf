"""The daemon's files in the state directory: private whatever the umask, trusted only
when nobody else could have written them; and the configured control token.

Real daemon processes and the real CLI; ``status`` after a test's first real CLI process
through the entry point in this process (:func:`status_here`).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.cli import run_cli, run_cli_here
from tests.daemon.attackers import LimitedDaemon
from tests.daemon.harness import API_KEY
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import API_KEY_VARIABLE, ExportYaml

TOKEN_VARIABLE = "OMNISYNC_TEST_CONTROL_TOKEN"
CONTROL_TOKEN = "configured-control-token-0123456789abcdef"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write_config(setup, *exports: ExportYaml, token: bool = False):
    config_dir = setup.root / "conf"
    config_dir.mkdir(exist_ok=True)
    text = setup.render(*exports)
    if token:
        listen = "  control: {listen: '127.0.0.1:0'}"
        assert listen in text
        text = text.replace(
            listen, f"  control: {{listen: '127.0.0.1:0', token: {{env: {TOKEN_VARIABLE}}}}}"
        )
    (config_dir / "omnisync.yaml").write_text(text)
    return config_dir


def daemon_for(setup, config_dir, **options) -> LimitedDaemon:
    return LimitedDaemon(
        config_path=config_dir,
        state_dir=setup.state_dir,
        log_path=setup.root / "daemon.log",
        **options,
    )


def cli(*arguments: str, **extra_env: str):
    return run_cli(*arguments, extra_env={API_KEY_VARIABLE: API_KEY, **extra_env}, timeout=120)


def status_here(config_dir):
    """``omnisync status`` (read-only) through its entry point in this process."""
    return run_cli_here(
        "status", "--config", str(config_dir), extra_env={API_KEY_VARIABLE: API_KEY}
    )


def test_state_files_are_private_under_umask_000_in_an_existing_0755_directory(setup):
    setup.state_dir.mkdir(mode=0o755)
    os.chmod(setup.state_dir, 0o755)
    config_dir = write_config(setup, ExportYaml("vip", schedule=None))
    daemon = daemon_for(setup, config_dir, umask=0).start()
    try:
        answer = daemon.http.post(
            "/exports/vip/run", headers={"Authorization": f"Bearer {daemon.token()}"}
        )
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["id"]
        wait_until(
            lambda: daemon.http.get(f"/runs/{run_id}").json()["state"] == "finished",
            timeout=90,
            message="the run to finish",
        )
        assert mode(setup.state_dir) == 0o700
        assert mode(setup.state_dir / "daemon.json") == 0o600
        assert mode(setup.state_dir / "control.token") == 0o600
        assert mode(setup.state_dir / "locks") == 0o700
        assert mode(setup.state_dir / "locks" / "vip.lock") == 0o600
        # The ledger holds every customer e-mail: it and its WAL files too.
        ledger = setup.state_dir / "omnisync.sqlite3"
        companions = [ledger.with_name(ledger.name + suffix) for suffix in ("-wal", "-shm")]
        assert ledger.is_file() and any(path.exists() for path in companions)
        for path in (ledger, *companions):
            if path.exists():
                assert mode(path) == 0o600, path
    finally:
        assert daemon.stop() == 0


@pytest.fixture
def running(setup):
    """A daemon with a generated token, and its config directory."""
    config_dir = write_config(setup, ExportYaml("vip", schedule=None))
    daemon = daemon_for(setup, config_dir).start()
    yield daemon, config_dir
    daemon.stop()


@pytest.mark.parametrize("name", ["daemon.json", "control.token"])
def test_the_cli_refuses_a_state_file_others_can_write(setup, running, name):
    daemon, config_dir = running
    path = setup.state_dir / name
    os.chmod(path, 0o666)
    result = cli("export", "run", "vip", "--config", str(config_dir))
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(path) in result.stderr and "writable by group and others" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused, not run directly behind the daemon's back.
    assert daemon.status()["exports"]["vip"]["last_run"] is None
    if name == "daemon.json":
        status = status_here(config_dir)
        assert status.returncode != 0
        assert str(path) in status.stderr and "writable by" in status.stderr
    os.chmod(path, 0o600)
    trusted = cli("export", "run", "vip", "--config", str(config_dir))
    assert trusted.returncode == 0, trusted.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_the_cli_refuses_a_daemon_json_of_another_user(setup, running):
    daemon, config_dir = running
    path = setup.state_dir / "daemon.json"
    os.chown(path, 54321, 54321)
    result = cli("status", "--config", str(config_dir))
    assert result.returncode != 0
    assert str(path) in result.stderr and "belongs to user id 54321" in result.stderr
    run = cli("export", "run", "vip", "--config", str(config_dir))
    assert run.returncode == 1
    assert str(path) in run.stderr
    assert daemon.status()["exports"]["vip"]["last_run"] is None


def test_a_configured_token_replaces_the_generated_file_and_the_401_names_it(setup):
    config_dir = write_config(setup, ExportYaml("vip", schedule=None), token=True)
    setup.state_dir.mkdir()
    stale = setup.state_dir / "control.token"
    stale.write_text("an-old-generated-token-from-before\n")
    daemon = daemon_for(setup, config_dir, extra_env={TOKEN_VARIABLE: CONTROL_TOKEN}).start()
    try:
        assert not stale.exists()
        refused = daemon.http.post("/exports/vip/run", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert f"env:{TOKEN_VARIABLE}" in error and "/control.token" not in error
        # The CLI with a wrong value of the variable hears the same.
        wrong = cli("export", "run", "vip", "--config", str(config_dir), **{TOKEN_VARIABLE: "x"})
        assert wrong.returncode == 1
        assert f"env:{TOKEN_VARIABLE}" in wrong.stderr
        right = cli(
            "export", "run", "vip", "--config", str(config_dir), **{TOKEN_VARIABLE: CONTROL_TOKEN}
        )
        assert right.returncode == 0, right.stderr
        assert "the daemon (pid" in right.stderr
    finally:
        assert daemon.stop() == 0


def test_with_the_token_variable_unset_and_no_daemon_export_run_runs_directly(setup):
    config_dir = write_config(setup, ExportYaml("vip", schedule=None), token=True)
    environment = {key: value for key, value in os.environ.items() if key != TOKEN_VARIABLE}
    result = run_cli(
        "export",
        "run",
        "vip",
        "--config",
        str(config_dir),
        "--format",
        "json",
        env={**environment, API_KEY_VARIABLE: API_KEY},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert not (setup.state_dir / "daemon.json").exists()
