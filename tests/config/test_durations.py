"""Durations as written in a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.config.build import parse_duration
from tests.config.helpers import BASE, load_text, messages


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
def test_parse(value: float | str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["'15'", "15 minutes", "-5s", "1h30m", "true", "null", "[]", "-1"]
)
def test_what_is_not_a_duration_is_refused(tmp_path: Path, value: str) -> None:
    result = load_text(tmp_path, f"{BASE}daemon:\n  reload_debounce: {value}\n")

    assert messages(result) == [
        "daemon.reload_debounce: a duration such as 500ms, 2s or 1m, or a number of seconds"
    ]


def test_an_infinite_duration_is_refused(tmp_path: Path) -> None:
    result = load_text(tmp_path, f"{BASE}daemon:\n  reload_debounce: .inf\n")

    assert messages(result) == ["daemon.reload_debounce: must be at most 1h"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "daemon:\n  reload_debounce: |\n    2s\n",
            "daemon.reload_debounce: a duration such as 500ms, 2s or 1m, or a number of seconds",
        ),
        (
            "daemon:\n  guards:\n    max_removed: |\n      50%\n",
            "daemon.guards.max_removed: a percentage from 0% to 100%, such as 20% or 12.5%",
        ),
    ],
)
def test_a_value_written_as_a_block_with_its_final_newline_is_refused(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    # JSON Schema patterns are ECMA-262: `$` is the very end, not before a final newline
    # (Python's). check-jsonschema refuses these; `omnisync validate` must agree with it.
    result = load_text(tmp_path, f"{BASE}{yaml_text}")

    assert result.config is None
    assert messages(result) == [message]


def test_a_block_without_its_final_newline_is_read(tmp_path: Path) -> None:
    result = load_text(tmp_path, f"{BASE}daemon:\n  reload_debounce: |-\n    2s\n")

    assert messages(result) == []
    assert result.config is not None
    assert result.config.daemon.reload_debounce_seconds == 2.0
