"""Durations as written in a config."""

from __future__ import annotations

import pytest

from omnisync.config.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (15, 15.0),
        (0.5, 0.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("0s", 0.0),
    ],
)
def test_parse(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["15", "15 minutes", "-5s", "1h30m", True, None, [], float("inf"), -1]
)
def test_parse_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
