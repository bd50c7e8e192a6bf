"""`omnisync status` on a shared store: the replicas table says moments as the status does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from omnisync.cli.status import relative_time, render_replicas

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _replica(name: str, *, seen: timedelta, live: bool) -> dict[str, object]:
    return {
        "id": name,
        "live": live,
        "last_seen": (NOW - seen).isoformat(),
        "started_at": (NOW - timedelta(days=2)).isoformat(),
        "version": "1.0",
        "config_revision": "git:0123abc",
        "leases": ["shop"] if live else [],
        "running": ["vip"] if live else [],
    }


def test_last_seen_reads_like_the_rest_of_status():
    document = {
        "replicas": [
            _replica("replica-a", seen=timedelta(seconds=4), live=True),
            _replica("replica-b", seen=timedelta(days=340, hours=5), live=False),
            _replica("replica-c", seen=timedelta(seconds=-2), live=True),  # a clock ahead
        ],
        "holders": {"vip": "replica-a", "newsletter": None},
    }
    console = Console(record=True, width=120, color_system=None)
    render_replicas(document, console, now=NOW)
    text = console.export_text()
    assert "replica-a" in text and "4s ago" in text and "shop" in text
    assert "replica-b (gone)" in text and "340d 5h ago" in text
    assert "in 2s" not in text and "now" in text
    assert "export vip: held by replica-a" in text
    assert "export newsletter: no holder" in text


def test_relative_times():
    assert relative_time(None, NOW) == "-"
    assert relative_time(NOW.isoformat(), NOW) == "now"
    assert relative_time((NOW + timedelta(minutes=14)).isoformat(), NOW) == "in 14m"
    assert relative_time((NOW - timedelta(hours=3, minutes=5)).isoformat(), NOW) == "3h 05m ago"
