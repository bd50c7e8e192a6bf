"""A config split over several files: a section one file writes wrong (null, a list) is that
file's schema error, and the entries the other files give that section are still checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.config.loader import try_load_config
from tests.config.helpers import ENVIRON

BASE = """\
version: 1
users:
  olena: {role: admin}
sources:
  cdp: {kind: sqlite, path: ./cdp.sqlite}
connections:
  main:
    api_key: {env: OMNISEND_API_KEY}
    data_transfer_accepted: true
"""
SEGMENTS = """\
version: 1
segments:
  s1: {source: cdp, query: SELECT 1}
  s2: {source: nope, query: SELECT 1}
"""
EXPORTS = """\
version: 1
exports:
  e2: {segment: s1, connection: main, owner: olena, mapping: {email: e}, schedule: nope}
  e3: {segment: s1, connection: main, owner: olena, mapping: {email: e}, tag: s1}
"""
#: Every export commented out leaves ``exports:`` null; ``segments: []`` is a list.
EMPTIED = "version: 1\nexports:\n  # e9\nsegments: []\n"


@pytest.mark.parametrize(
    "emptied_name",
    [
        "40-emptied.yaml",  # after the files that fill the sections
        "20-emptied.yaml",  # before the files that fill the sections
    ],
)
def test_one_file_emptying_a_section_hides_no_error_of_the_others(
    tmp_path: Path, emptied_name: str
) -> None:
    for name, text in [
        ("00-base.yaml", BASE),
        ("10-segments.yaml", SEGMENTS),
        ("30-exports.yaml", EXPORTS),
        (emptied_name, EMPTIED),
    ]:
        (tmp_path / name).write_text(text, encoding="utf-8")

    result = try_load_config(tmp_path, environ=ENVIRON)

    emptied = tmp_path / emptied_name
    assert result.config is None
    assert sorted(str(diagnostic) for diagnostic in result.diagnostics) == sorted(
        [
            f"{tmp_path}/10-segments.yaml:4:8: segments.s2.source: there is no source 'nope'",
            f"{tmp_path}/30-exports.yaml:3:74: exports.e2.schedule: there is no schedule 'nope'",
            f"{tmp_path}/30-exports.yaml:4:74: exports.e3.tag: tag 's1' on connection 'main'"
            " is already managed by export 'e2' (line 3, column 3); give one of them another tag",
            f"{emptied}:2:1: exports: expected a mapping, got null",
            f"{emptied}:4:1: segments: expected a mapping, got a list",
        ]
    )


def test_a_section_written_wrong_in_the_only_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "omnisync.yaml"
    path.write_text(BASE + "exports: []\nsegments:\n", encoding="utf-8")

    result = try_load_config(path, environ=ENVIRON)

    assert [str(diagnostic) for diagnostic in result.diagnostics] == [
        f"{path}:10:1: exports: expected a mapping, got a list",
        f"{path}:11:1: segments: expected a mapping, got null",
    ]
