from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnisync.clock import Clock, ScaledClock
from omnisync.config.loader import load_config
from omnisync.config.model import Config
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.results import RunResult
from omnisync.engine.runner import ExportRunner
from omnisync.state import SqliteLedgerStore, open_state_store
from tests.engine.helpers import API_KEY_VARIABLE, people, write_config, write_segment

#: Modelled seconds per real second, for the emulator and the runner alike: Omnisend's
#: real limits (400/min, 60/min for tags) pass in a second of test time.
SCALE = 60.0


@pytest.fixture
def clock() -> Clock:
    return ScaledClock(SCALE)


@pytest.fixture
def emulator(clock: Clock, start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(api_keys=("test-key",), clock=clock)


@dataclass
class Setup:
    """One export (``members``) over a SQLite segment, wired to the emulator."""

    directory: Path
    database: Path
    state_dir: Path
    config_path: Path
    emulator: Emulator
    clock: Clock
    environ: dict[str, str]

    def config(self) -> Config:
        return load_config(self.config_path, environ=self.environ)

    def rewrite(self, **options: object) -> None:
        write_config(
            self.directory,
            base_url=self.emulator.base_url,
            database=self.database,
            state_dir=self.state_dir,
            **options,  # type: ignore[arg-type]
        )

    def store(self) -> SqliteLedgerStore:
        return open_state_store(self.state_dir)

    def runner(
        self, store: SqliteLedgerStore, pool: ClientPool, config: Config | None = None
    ) -> ExportRunner:
        return ExportRunner(config or self.config(), store=store, clients=pool, clock=self.clock)

    def pool(self, api_key: str = "test-key") -> ClientPool:
        return ClientPool(clock=self.clock, environ={API_KEY_VARIABLE: api_key})

    def run_here(self) -> RunResult:
        """Export ``members`` once with the real engine in this process, recorded as
        ``omnisync export run`` records it (trigger ``cli``): for a run that only sets up
        the one under test, without an interpreter's start (a third of a second of CPU).
        """
        with self.store() as store, self.pool() as pool:
            return self.runner(store, pool).run("members", trigger="cli")


@pytest.fixture
def setup(tmp_path: Path, emulator: Emulator, clock: Clock) -> Setup:
    database = tmp_path / "crm.sqlite"
    write_segment(database, people(200))
    state_dir = tmp_path / "state"
    config_path = write_config(
        tmp_path, base_url=emulator.base_url, database=database, state_dir=state_dir
    )
    return Setup(
        directory=tmp_path,
        database=database,
        state_dir=state_dir,
        config_path=config_path,
        emulator=emulator,
        clock=clock,
        environ={API_KEY_VARIABLE: "test-key", "HOME": str(tmp_path)},
    )
