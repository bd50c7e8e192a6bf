from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omnisync.daemon.status import ReloadResult, export_state

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        ({"enabled": True, "scheduled": True, "running": True, "retrying": True}, "running"),
        ({"enabled": False, "scheduled": False, "running": True, "retrying": False}, "running"),
        ({"enabled": False, "scheduled": False, "running": False, "retrying": False}, "disabled"),
        ({"enabled": True, "scheduled": True, "running": False, "retrying": True}, "retrying"),
        ({"enabled": True, "scheduled": True, "running": False, "retrying": False}, "idle"),
        ({"enabled": True, "scheduled": False, "running": False, "retrying": False}, "on-demand"),
    ],
)
def test_export_state(flags, state):
    assert export_state(**flags) == state


def test_reload_error_summarises_many_problems():
    problems = tuple(f"x.yaml:{line}:1: exports.a: bad" for line in range(1, 9))
    failed = ReloadResult(ok=False, at=AT, source="watch", problems=problems)
    assert failed.error == "; ".join(problems[:5]) + "; and 3 more"
    document = failed.to_json()
    assert document["ok"] is False and document["problems"] == list(problems)
    assert ReloadResult(ok=True, at=AT, source="sighup", revision="git:abc").error is None
