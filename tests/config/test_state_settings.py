"""daemon.state and daemon.replica_id: parsed, defaulted, and refused with their positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.config.loader import load_config, try_load_config
from omnisync.config.model import SecretRef, StateSettings
from omnisync.config.secrets import secret_references
from tests.config.helpers import BASE

ENV = {"HOME": "/home/tester"}


def _write(directory: Path, daemon: str) -> Path:
    path = directory / "omnisync.yaml"
    path.write_text(BASE + "daemon:\n" + daemon)
    return path


def test_sqlite_in_state_dir_is_the_default(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "  log_format: text\n"), environ=ENV)
    assert config.daemon.state == StateSettings()
    assert config.daemon.state.shared is False and config.daemon.replica_id is None


def test_a_postgres_state_store_with_its_dsn_lease_and_replica_name(tmp_path: Path) -> None:
    daemon = (
        "  state: {kind: postgres, dsn: {env: OMNISYNC_STATE_DSN}, lease: 30s}\n"
        "  replica_id: omnisync-0\n"
    )
    config = load_config(_write(tmp_path, daemon), environ=ENV)
    assert config.daemon.state == StateSettings(
        kind="postgres", dsn=SecretRef("env", "OMNISYNC_STATE_DSN"), lease_seconds=30.0
    )
    assert config.daemon.state.shared and config.daemon.replica_id == "omnisync-0"
    # The DSN is a secret like any other: resolved, redacted, checked by validate.
    assert ("daemon.state.dsn", SecretRef("env", "OMNISYNC_STATE_DSN"), False) in list(
        secret_references(config)
    )


@pytest.mark.parametrize(
    ("daemon", "expected"),
    [
        ("  state: {kind: postgres}\n", "daemon.state: a `postgres` state store needs `dsn`"),
        (
            "  state: {kind: sqlite, dsn: {env: X}}\n",
            "daemon.state.dsn: only a `postgres` state store has a DSN",
        ),
        (
            "  state: {kind: postgres, dsn: {env: X}, lease: 2s}\n",
            "daemon.state.lease: must be at least 3s",
        ),
        (
            "  state: {kind: postgres, dsn: {env: X}, lease: 1h}\n",
            "daemon.state.lease: must be at most 10m",
        ),
        ("  state: {kind: mysql}\n", "daemon.state.kind"),
        ("  state: {kind: postgres, dsn: 'postgresql://u:p@h/db'}\n", "daemon.state.dsn"),
        ("  replica_id: 'two words'\n", "daemon.replica_id: a name without spaces"),
    ],
)
def test_what_cannot_work_is_refused_with_its_place(
    tmp_path: Path, daemon: str, expected: str
) -> None:
    path = _write(tmp_path, daemon)
    result = try_load_config(path, environ=ENV)
    assert result.config is None
    lines = [str(diagnostic) for diagnostic in result.diagnostics]
    assert any(expected in line and line.startswith(f"{path}:") for line in lines), lines
    # A plaintext DSN (a password) is never echoed back.
    assert not any("u:p@h" in line for line in lines)
