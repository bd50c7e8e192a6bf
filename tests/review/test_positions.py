"""Where `omnisync diff` places a change: the head's lines, the base's for what the head lost."""

from __future__ import annotations

import re
from pathlib import Path

from omnisync.config.loader import load_config
from omnisync.review.model import MemberCounts
from omnisync.review.review import review_configs
from tests.engine.helpers import API_KEY_VARIABLE, write_config

ENVIRON = {API_KEY_VARIABLE: "test-key"}


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    """A base config with export ``members`` and a head where it is renamed to ``buyers``."""
    (tmp_path / "base").mkdir()
    (tmp_path / "head").mkdir()
    options = {
        "base_url": "http://127.0.0.1:9",
        "database": tmp_path / "crm.sqlite",
        "state_dir": tmp_path / "state",
    }
    base = write_config(tmp_path / "base", **options)
    head = write_config(tmp_path / "head", **options)
    text = head.read_text(encoding="utf-8")
    head.write_text(re.sub(r"(?m)^  members:\n    segment:", "  buyers:\n    segment:", text))
    return base, head


def test_the_fields_of_a_removed_export_are_placed_where_the_base_had_them(tmp_path):
    base_path, head_path = _pair(tmp_path)
    review = review_configs(
        load_config(base_path, environ=ENVIRON),
        load_config(head_path, environ=ENVIRON),
        members=MemberCounts(known=False, note=""),
    )
    changes = {(change.name, change.change): change for change in review.changes}
    removed = changes[("members", "removed")]
    added = changes[("buyers", "added")]
    base_lines = base_path.read_text(encoding="utf-8").splitlines()
    assert removed.position is not None and removed.position.file == str(base_path)
    assert removed.field_positions, "a removed export's fields are placed in the base"
    assert {position.file for position in removed.field_positions.values()} == {str(base_path)}
    for path in ("segment", "tag", "owner"):
        line = removed.field_positions[path].line
        assert base_lines[line - 1].strip().startswith(f"{path}:")
    assert added.field_positions
    assert {position.file for position in added.field_positions.values()} == {str(head_path)}
