"""The control token follows a reloaded config: removed, a generated one takes its place.

A real daemon process, real file edits and the real CLI.
"""

from __future__ import annotations

from tests.daemon.harness import replace_file
from tests.daemon.test_state_files import (
    CONTROL_TOKEN,
    TOKEN_VARIABLE,
    cli,
    daemon_for,
    write_config,
)
from tests.daemon.yamlconfig import ExportYaml


def test_a_reload_that_removes_the_configured_token_brings_back_a_generated_one(setup):
    config_dir = write_config(setup, ExportYaml("vip", schedule=None), token=True)
    daemon = daemon_for(setup, config_dir, extra_env={TOKEN_VARIABLE: CONTROL_TOKEN}).start()
    try:
        token_file = setup.state_dir / "control.token"
        assert not token_file.exists()
        before = daemon.status()["config"]["revision"]
        config = config_dir / "omnisync.yaml"
        replace_file(config, setup.render(ExportYaml("vip", schedule=None)))  # no token
        daemon.wait_status(
            lambda status: status["config"]["revision"] != before, message="the reload"
        )
        assert token_file.exists()
        # The CLI reads the generated file and runs through the daemon.
        run = cli("export", "run", "vip", "--config", str(config_dir))
        assert run.returncode == 0, run.stderr
        assert "the daemon (pid" in run.stderr
        refused = daemon.http.post(
            "/exports/vip/run", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}
        )
        assert refused.status_code == 401
        assert "control.token" in refused.json()["error"]
    finally:
        assert daemon.stop() == 0


def test_a_reload_that_cannot_write_control_token_keeps_the_daemon_and_its_token(setup):
    # A state directory where control.token cannot be written (here a directory takes
    # its name): the reload still applies the config, the daemon keeps serving with the
    # token it had, and the log says which file failed, why, and what that means.
    config_dir = write_config(setup, ExportYaml("vip", schedule=None), token=True)
    daemon = daemon_for(setup, config_dir, extra_env={TOKEN_VARIABLE: CONTROL_TOKEN}).start()
    try:
        token_file = setup.state_dir / "control.token"
        token_file.mkdir()
        before = daemon.status()["config"]["revision"]
        replace_file(config_dir / "omnisync.yaml", setup.render(ExportYaml("vip", schedule=None)))
        status = daemon.wait_status(
            lambda status: status["config"]["revision"] != before, message="the reload"
        )
        assert status["last_reload"]["ok"] is True
        assert daemon.process is not None and daemon.process.poll() is None
        # The endpoint still takes the token it had.
        answer = daemon.http.post(
            "/exports/vip/run", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}
        )
        assert answer.status_code == 202, answer.text
        failures = [
            event
            for event in daemon.log_events()
            if event.get("event") == "control_token_write_failed"
        ]
        assert len(failures) == 1, daemon.log_text()
        message = failures[0]["message"]
        assert failures[0]["level"] == "error"
        assert str(token_file) in message and "Is a directory" in message
        assert "keeps the control token it had" in message
        assert CONTROL_TOKEN not in daemon.log_text()
    finally:
        assert daemon.stop() == 0


def test_a_reload_that_cannot_remove_control_token_keeps_the_daemon_and_takes_the_token(setup):
    # The other way round: a reload that configures a token removes the generated file;
    # when that fails, the new token is still taken and the daemon keeps serving.
    config_dir = write_config(setup, ExportYaml("vip", schedule=None))
    daemon = daemon_for(setup, config_dir, extra_env={TOKEN_VARIABLE: CONTROL_TOKEN}).start()
    try:
        token_file = setup.state_dir / "control.token"
        generated = daemon.token()
        token_file.unlink()
        token_file.mkdir()
        before = daemon.status()["config"]["revision"]
        write_config(setup, ExportYaml("vip", schedule=None), token=True)
        status = daemon.wait_status(
            lambda status: status["config"]["revision"] != before, message="the reload"
        )
        assert status["last_reload"]["ok"] is True
        assert daemon.process is not None and daemon.process.poll() is None
        headers = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
        assert daemon.http.post("/exports/vip/run", headers=headers).status_code == 202
        refused = daemon.http.post(
            "/exports/vip/run", headers={"Authorization": f"Bearer {generated}"}
        )
        assert refused.status_code == 401
        failures = [
            event
            for event in daemon.log_events()
            if event.get("event") == "control_token_remove_failed"
        ]
        assert len(failures) == 1, daemon.log_text()
        assert str(token_file) in failures[0]["message"]
        assert CONTROL_TOKEN not in daemon.log_text() and generated not in daemon.log_text()
    finally:
        assert daemon.stop() == 0
