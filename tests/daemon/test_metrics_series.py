"""The daemon's metrics: an export's series live exactly as long as the export."""

from __future__ import annotations

from datetime import UTC, datetime

from omnisync.daemon.metrics import DaemonMetrics
from tests.daemon.builders import config, export


def test_a_removed_export_loses_the_series_of_every_outcome_its_runs_had() -> None:
    metrics = DaemonMetrics()
    metrics.config_applied(config(export("a"), export("b")), last_run=lambda name: None)
    # Outcomes beyond the pre-created ones: a refused run (its API key) and a skipped one.
    for outcome in ("refused", "skipped", "succeeded"):
        metrics.run_started("a")
        metrics.run_finished(
            "a", outcome=outcome, counts={}, duration_seconds=1.0, ended_at=datetime.now(UTC)
        )
    assert 'omnisync_runs_total{export="a",outcome="refused"} 1.0' in metrics.render().decode()
    metrics.config_applied(config(export("b"), revision="r2"), last_run=lambda name: None)
    text = metrics.render().decode()
    assert 'export="a"' not in text
    assert 'omnisync_runs_total{export="b",outcome="succeeded"} 0.0' in text


def test_a_run_that_ends_after_its_export_was_removed_brings_no_series_back() -> None:
    metrics = DaemonMetrics()
    metrics.config_applied(config(export("a"), export("b")), last_run=lambda name: None)
    metrics.run_started("a")
    # A reload removes "a" while it runs; the run, asked to stop, ends afterwards.
    metrics.config_applied(config(export("b"), revision="r2"), last_run=lambda name: None)
    metrics.run_finished(
        "a",
        outcome="partial",
        counts={"upserted": 5},
        duration_seconds=1.0,
        ended_at=datetime.now(UTC),
    )
    assert 'export="a"' not in metrics.render().decode()
