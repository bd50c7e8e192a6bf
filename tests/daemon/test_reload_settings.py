"""A reload that changes a ``daemon`` setting only a restart applies says so."""

from __future__ import annotations

from tests.daemon.harness import replace_file
from tests.daemon.yamlconfig import ExportYaml


def test_a_changed_log_format_says_it_needs_a_restart(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    config = config_dir / "omnisync.yaml"
    text = setup.render(ExportYaml("a"))
    assert "  log_format: json\n" in text
    config.write_text(text)
    daemon = setup.daemon(config_dir).start()
    try:
        before = daemon.status()["config"]["revision"]
        replace_file(config, text.replace("  log_format: json\n", "  log_format: text\n"))
        daemon.wait_status(
            lambda s: s["config"]["revision"] != before, message="the reload of log_format"
        )
    finally:
        assert daemon.stop() == 0
    warned = [event for event in daemon.log_events() if event.get("event") == "restart_needed"]
    assert [event["fields"]["setting"] for event in warned] == ["daemon.log_format"]
    assert "daemon.log_format changed to text" in warned[0]["message"]
