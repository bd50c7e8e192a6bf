"""`omnisync schema` prints the schema file itself, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "omnisync.schema.json"


def test_schema_prints_exactly_the_bytes_of_the_schema_file():
    result = subprocess.run(
        [sys.executable, "-m", "omnisync", "schema"], capture_output=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA.read_bytes()
