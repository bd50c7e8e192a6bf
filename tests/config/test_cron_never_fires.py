"""A cron expression that matches no date (``0 0 30 2 *``) is an error where it is
written, for ``validate`` and for the daemon's (re)load alike, not a schedule whose next
run is "never"."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.config.cron import cron_problem
from omnisync.daemon.loading import DaemonConfigLoader, LoadFailed
from tests.config.helpers import BASE, load_text

NEVER = "it never fires (none of its days of the month occurs in any of its months)"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 0 30 2 *", NEVER),
        ("0 0 30,31 feb *", NEVER),
        ("0 0 31 4,6,9,11 *", NEVER),
        ("*/5 * 31 2-2 *", NEVER),
        ("0 0 29 2 *", None),  # leap years
        ("0 0 31 2-3 *", None),  # March 31
        ("0 0 last 2 *", None),
        ("0 0 * 2 mon", None),
        ("@yearly", None),
    ],
)
def test_an_expression_matching_no_date_never_fires(expression: str, problem: str | None) -> None:
    assert cron_problem(expression) == problem


SCHEDULED = (
    BASE
    + """\
    schedule: {cron: '0 6 30 2 *', timezone: Europe/Vilnius}
schedules:
  april-31st:
    cron: '0 0 31 4 *'
"""
)


def test_validate_reports_it_at_the_cron_of_a_named_and_an_inline_schedule(
    tmp_path: Path,
) -> None:
    path = tmp_path / "omnisync.yaml"

    result = load_text(tmp_path, SCHEDULED)

    assert [str(diagnostic) for diagnostic in result.diagnostics] == [
        f"{path}:27:16: exports.vip.schedule.cron: invalid cron expression: {NEVER}",
        f"{path}:30:5: schedules.april-31st.cron: invalid cron expression: {NEVER}",
    ]


def test_the_daemon_refuses_to_load_it_too(tmp_path: Path) -> None:
    path = tmp_path / "omnisync.yaml"
    path.write_text(SCHEDULED, encoding="utf-8")
    load = DaemonConfigLoader({"HOME": str(tmp_path), "OMNISEND_API_KEY": "a-key"})

    with pytest.raises(LoadFailed) as caught:
        load(path)

    assert caught.value.problems == (
        f"{path}:27:16: exports.vip.schedule.cron: invalid cron expression: {NEVER}",
        f"{path}:30:5: schedules.april-31st.cron: invalid cron expression: {NEVER}",
    )
