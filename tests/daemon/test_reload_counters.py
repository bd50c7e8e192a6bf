"""``omnisync_config_reloads_total`` has both results from the start: ``increase()``
over a series that appears at 1 never counts that first failure."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from omnisync.daemon.metrics import DaemonMetrics
from tests.daemon.builders import config, export

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_both_reload_results_exist_before_either_happens() -> None:
    metrics = DaemonMetrics()
    text = metrics.render().decode()
    assert 'omnisync_config_reloads_total{result="success"} 0.0' in text
    assert 'omnisync_config_reloads_total{result="failure"} 0.0' in text
    metrics.reloaded(ok=True, at=AT)
    metrics.reloaded(ok=False, at=AT)
    text = metrics.render().decode()
    assert 'omnisync_config_reloads_total{result="success"} 1.0' in text
    assert 'omnisync_config_reloads_total{result="failure"} 1.0' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_finds_nothing_to_say_about_a_fresh_daemons_metrics() -> None:
    metrics = DaemonMetrics()
    metrics.config_applied(config(export("a")), last_run=lambda name: None)
    metrics.reloaded(ok=True, at=AT)
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=metrics.render().decode(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""
