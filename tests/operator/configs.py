"""Small valid configs for the operator-facing tests, written as a person would."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.harness import make_source
from tests.daemon.yamlconfig import ConfigYaml, ExportYaml


def write_config(
    directory: Path,
    *exports: ExportYaml,
    name: str = "omnisync.yaml",
    state_dir: Path | None = None,
    base_url: str = "http://127.0.0.1:9/api",
) -> Path:
    """A valid config file in ``directory`` (and the SQLite source it reads); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "cdp.sqlite"
    if not source.exists():
        make_source(source, 5)
    config = ConfigYaml(
        state_dir=state_dir or directory / "state",
        source_path=source,
        base_url=base_url,
        exports=exports or (ExportYaml("weekly", schedule="every: 15m"),),
    )
    path = directory / name
    path.write_text(config.render())
    return path
