"""A reload that failed only for want of a secret is tried again by itself: a secret file
that appears later (a Kubernetes Secret or systemd credential mounted late, a file put
back) makes no config event to wake a reload, and the daemon kept saying FAILED."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.harness import DaemonProcess, make_source, replace_file
from tests.daemon.yamlconfig import ConfigYaml, ExportYaml


def test_a_secret_file_put_back_is_picked_up_without_a_config_edit(tmp_path: Path) -> None:
    key_file = tmp_path / "omnisend-api-key"
    key_file.write_text("first-key-value-123\n")
    make_source(tmp_path / "cdp.sqlite", 3)
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    text = ConfigYaml(
        state_dir=tmp_path / "state",
        source_path=tmp_path / "cdp.sqlite",
        api_key=f"{{file: {key_file}}}",
        exports=(ExportYaml("a"),),
    ).render()
    config_file = config_dir / "omnisync.yaml"
    config_file.write_text(text)
    daemon = DaemonProcess(
        config_path=config_dir, state_dir=tmp_path / "state", log_path=tmp_path / "daemon.log"
    ).start()
    try:
        key_file.unlink()
        replace_file(config_file, text + "# an edit\n")
        failed = daemon.wait_status(
            lambda status: status["last_reload"]["ok"] is False, message="the failed reload"
        )
        assert "connections.main.api_key" in " ".join(failed["last_reload"]["problems"])
        key_file.write_text("second-key-value-456\n")
        recovered = daemon.wait_status(
            lambda status: status["last_reload"]["ok"] is True,
            message="a reload by itself once the secret is back",
            timeout=60,
        )
        assert recovered["last_reload"]["source"] == "secret retry"
        assert recovered["config"]["revision"] == failed["last_reload"]["revision"]
    finally:
        assert daemon.stop() == 0
