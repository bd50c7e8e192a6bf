"""``omnisync_export_scheduled``: what lets an alert leave disabled and on-demand exports alone."""

from __future__ import annotations

from omnisync.config.model import Schedule
from omnisync.daemon.metrics import DaemonMetrics
from tests.daemon.builders import config, export

HOURLY = Schedule(name=None, every_seconds=3600, every_text="1h")


def scheduled(metrics: DaemonMetrics) -> dict[str, float]:
    """export → its ``omnisync_export_scheduled`` value, for every series it has."""
    prefix = "omnisync_export_scheduled{export="
    return {
        line.removeprefix(prefix).split("}")[0].strip('"'): float(line.rpartition(" ")[2])
        for line in metrics.render().decode().splitlines()
        if line.startswith(prefix)
    }


def test_only_an_enabled_export_with_a_schedule_is_scheduled_and_reloads_keep_it_in_step() -> None:
    metrics = DaemonMetrics()
    metrics.config_applied(
        config(
            export("hourly", schedule=HOURLY),
            export("adhoc"),
            export("paused", schedule=HOURLY, enabled=False),
        ),
        last_run=lambda name: None,
    )
    assert scheduled(metrics) == {"hourly": 1, "adhoc": 0, "paused": 0}
    # A reload disables "hourly", schedules "adhoc", enables "paused" and adds "new".
    metrics.config_applied(
        config(
            export("hourly", schedule=HOURLY, enabled=False),
            export("adhoc", schedule=HOURLY),
            export("paused", schedule=HOURLY),
            export("new"),
            revision="r2",
        ),
        last_run=lambda name: None,
    )
    assert scheduled(metrics) == {"hourly": 0, "adhoc": 1, "paused": 1, "new": 0}
    # One that leaves the config loses the series; its schedule going leaves it at 0.
    metrics.config_applied(
        config(export("adhoc"), export("paused", schedule=HOURLY), revision="r3"),
        last_run=lambda name: None,
    )
    assert scheduled(metrics) == {"adhoc": 0, "paused": 1}
