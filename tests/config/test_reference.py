"""The configuration reference in docs/ and README.md is generated from the schema."""

from __future__ import annotations

import copy
import subprocess
import sys

from omnisync.config.reference import (
    END,
    START,
    render_readme_block,
    render_reference,
    replace_block,
)
from omnisync.config.schema import load_schema
from tests.config.helpers import REPOSITORY

FIX = "run scripts/gen-config-reference"


def written_block(name: str) -> str:
    text = (REPOSITORY / name).read_text(encoding="utf-8")
    return text[text.index(START) : text.index(END) + len(END)]


def test_docs_configuration_is_up_to_date() -> None:
    assert written_block("docs/configuration.md") == render_reference(load_schema()), FIX


def test_readme_block_is_up_to_date() -> None:
    assert written_block("README.md") == render_readme_block(load_schema()), FIX


def test_every_property_of_the_schema_is_in_the_reference() -> None:
    schema = load_schema()
    reference = render_reference(schema)
    for name, definition in schema["$defs"].items():
        assert f"\n## {name}\n" in reference
        for key in definition.get("properties", {}):
            assert f"| `{key}` |" in reference, f"{name}.{key}"
    for key in schema["properties"]:
        assert f"| `{key}` |" in render_readme_block(schema)


def test_a_schema_change_shows_in_the_reference() -> None:
    schema = copy.deepcopy(dict(load_schema()))
    schema["$defs"]["export"]["properties"]["on_leave"]["default"] = "keep"
    assert render_reference(schema) != render_reference(load_schema())
    assert '| `on_leave` | `untag` \\| `keep` | `"keep"` |' in render_reference(schema)


def test_replacing_the_block_keeps_everything_else() -> None:
    readme = f"# Title\n\nintro\n\n{START}\nold\n{END}\n\n## After\n"
    assert replace_block(readme, f"{START}\nnew\n{END}") == (
        f"# Title\n\nintro\n\n{START}\nnew\n{END}\n\n## After\n"
    )
    assert replace_block("# Title\n", "BLOCK") == "# Title\n\nBLOCK\n"


def test_the_generator_script_agrees() -> None:
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "scripts" / "gen-config-reference"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
