from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from omnisync.emulator import Emulator
from tests.daemon.harness import API_KEY, DaemonProcess, make_source
from tests.daemon.yamlconfig import ConfigYaml, ExportYaml


@dataclass
class Setup:
    """An emulator, a source database, a state directory and a config, for one test."""

    root: Path
    emulator: Emulator
    base: ConfigYaml

    @property
    def state_dir(self) -> Path:
        return self.base.state_dir

    def render(self, *exports: ExportYaml, **changes: object) -> str:
        return replace(self.base, exports=exports, **changes).render()  # type: ignore[arg-type]

    def daemon(self, config_path: Path, **env: str) -> DaemonProcess:
        return DaemonProcess(
            config_path=config_path,
            state_dir=self.state_dir,
            log_path=self.root / "daemon.log",
            extra_env=dict(env),
        )


@pytest.fixture
def setup(tmp_path):
    source = tmp_path / "cdp.sqlite"
    make_source(source, 40)
    with Emulator(api_keys=(API_KEY,), rate_limits=False, batch_delay=0.05) as emulator:
        yield Setup(
            root=tmp_path,
            emulator=emulator,
            base=ConfigYaml(
                state_dir=tmp_path / "state", source_path=source, base_url=emulator.base_url
            ),
        )
