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
