"""``omnisync status`` piped (to grep, to a file): lines whole, never wrapped at 80."""

from __future__ import annotations

import os
import re

from tests.cli import run_cli
from tests.daemon.harness import replace_file
from tests.daemon.yamlconfig import ExportYaml

#: The reload line docs/daemon.md shows, on one line.
FAILED_LINE = re.compile(
    r"last reload of revision sha256:[0-9a-f]{12}: FAILED"
    r" \(watch, \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\) — still running revision sha256:[0-9a-f]{12}"
)


def test_a_piped_status_keeps_the_failed_reload_line_whole(setup):
    config_dir = setup.root / "a-config-directory-with-a-rather-long-name-as-deployments-have"
    config_dir.mkdir()
    config = config_dir / "omnisync.yaml"
    good = setup.render(ExportYaml("newsletter_subscribers_lapsed_ninety_days"))
    config.write_text(good)
    daemon = setup.daemon(config_dir).start()
    try:
        replace_file(config, good.replace("exports:", "exports: [", 1))
        daemon.wait_status(lambda s: not s["last_reload"]["ok"], message="the failed reload")
        environment = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
        shown = run_cli("status", "--config", str(config_dir), env=environment)
    finally:
        assert daemon.stop() == 0
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(FAILED_LINE.fullmatch(line) for line in lines), shown.stdout
    assert f"config {config_dir}" in lines, shown.stdout
