"""The read commands against a PostgreSQL state store (``daemon.state: {kind: postgres}``).

``history``, ``plan``, ``explain``, ``drift``, ``diff`` and ``status`` read the store
the config names, as real ``omnisync`` processes: a fresh database per test. A
store that cannot be reached, or a DSN that cannot be resolved, is one line
naming the store (or the reference), never the DSN's password.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from omnisync.emulator import Emulator
from tests.cli import run_cli
from tests.conftest import fresh_database
from tests.daemon.harness import DaemonProcess, make_source
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import API_KEY_VARIABLE, ConfigYaml, ExportYaml
from tests.state.seeding import deliver

DSN_VARIABLE = "OMNISYNC_STATE_DSN"
PASSWORD = "Pg-Secret-0451"
MEMBERS = 5
STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Setup:
    """A config whose state is PostgreSQL (DSN in ``$OMNISYNC_STATE_DSN``), export ``weekly``."""

    config_path: Path
    state_dir: Path
    environ: dict[str, str]

    def run(self, *arguments: str) -> tuple[int, str, str]:
        done = run_cli(*arguments, "--config", str(self.config_path), env=self.environ, timeout=60)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stdout, done.stderr


@pytest.fixture
def state_dsn(postgres_admin_dsn: str) -> Iterator[str]:
    """The DSN of a fresh, empty database, dropped after the test."""
    with fresh_database(postgres_admin_dsn) as dsn:
        yield dsn


def make_setup(
    directory: Path, *, dsn: str | None, base_url: str, replica_id: str = "omnisync-0"
) -> Setup:
    """The config in ``directory``; ``dsn`` (``None``: unset) in the processes' environment."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "cdp.sqlite"
    make_source(source, MEMBERS)
    state_dir = directory / "state"
    config = ConfigYaml(
        state_dir=state_dir,
        source_path=source,
        base_url=base_url,
        exports=(ExportYaml("weekly", schedule=None),),
        extra_daemon={
            "state": f"{{kind: postgres, dsn: {{env: {DSN_VARIABLE}}}}}",
            "replica_id": replica_id,
        },
    )
    path = directory / "omnisync.yaml"
    path.write_text(config.render())
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in (DSN_VARIABLE, "CREDENTIALS_DIRECTORY")
    }
    environ[API_KEY_VARIABLE] = "test-key"
    if dsn is not None:
        environ[DSN_VARIABLE] = dsn
    return Setup(path, state_dir, environ)


@pytest.fixture
def setup(tmp_path: Path, state_dsn: str, start_emulator: Callable[..., Emulator]) -> Setup:
    emulator = start_emulator(api_keys=("test-key",), rate_limits=False)
    return make_setup(tmp_path / "conf", dsn=state_dsn, base_url=emulator.base_url)


@pytest.fixture
def unreachable(tmp_path: Path) -> Setup:
    """A config whose DSN (with a password) names a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dsn = f"postgresql://omnisync:{PASSWORD}@127.0.0.1:{port}/omnisync_state"
    return make_setup(tmp_path / "conf", dsn=dsn, base_url="http://127.0.0.1:9/api")


def test_export_run_then_history_and_plan_read_the_postgres_store(setup: Setup) -> None:
    code, out, err = setup.run("export", "run", "weekly", "--format", "json")
    assert code == 0, out + err

    code, out, err = setup.run("history", "--format", "json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert (run["export"], run["status"]) == ("weekly", "succeeded")
    assert run["counts"]["members"] == MEMBERS
    replica = run["replica"]  # the process that ran it: `export run` ran it here
    assert replica, run

    code, out, err = setup.run("history")
    assert code == 0, err
    assert "replica" in out.splitlines()[0].split()
    assert replica in out

    code, out, err = setup.run("plan", "--format", "json", "--require-state")
    assert code == 0, err
    (plan,) = json.loads(out)["plans"]
    assert plan["state_found"] is True
    assert (plan["members"], plan["to_create"], plan["unchanged"]) == (MEMBERS, 0, MEMBERS)

    # Everything went to PostgreSQL: no SQLite state store was made beside the config.
    assert not (setup.state_dir / "omnisync.sqlite3").exists()


def test_the_postgres_ledger_feeds_explain_and_diff(setup: Setup, state_dsn: str) -> None:
    from omnisync.state.postgres import PostgresLedgerStore

    delivered = [(f"customer{number:06d}@example.com", 1, "weekly") for number in range(3)]
    with PostgresLedgerStore(state_dsn) as store:
        deliver(store, "weekly", delivered, now=STARTED)
        started = store.start_run(
            "weekly", trigger="manual", config_revision="git:abc1234", now=STARTED
        )
        store.finish_run(
            started.id,
            status="succeeded",
            counts={"members": 3},
            error=None,
            now=STARTED + timedelta(seconds=2),
        )

    code, out, err = setup.run("plan", "--format", "json")
    assert code == 0, err
    (plan,) = json.loads(out)["plans"]
    assert (plan["to_create"], plan["to_update"]) == (MEMBERS - 3, 3)

    code, out, err = setup.run("explain", "customer000001@example.com", "--format", "json")
    assert code == 0, err
    (explained,) = json.loads(out)["exports"]
    assert explained["in_segment"] is True
    assert explained["delivered"]["updated_at"].startswith("2026-03-01T12:00")
    assert explained["delivered"]["current"] is False  # delivered with another fingerprint
    assert explained["next_run"] == ["update"], explained

    code, out, err = setup.run("diff", "--base-config", str(setup.config_path), "--format", "json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["counts"] == "known", summary
    assert summary["counts_note"].startswith("the state store at PostgreSQL"), summary


@pytest.mark.parametrize(
    "command",
    [
        ("plan", "weekly"),
        ("history",),
        ("drift", "weekly"),
        ("explain", "customer000001@example.com"),
    ],
    ids=lambda command: command[0],
)
def test_an_unreachable_store_is_one_line_naming_it_without_the_password(
    unreachable: Setup, command: tuple[str, ...]
) -> None:
    code, out, err = unreachable.run(*command)
    assert code == 1, out + err
    assert PASSWORD not in out + err
    (line,) = err.strip().splitlines()
    assert "PostgreSQL" in line and "127.0.0.1" in line, line
    assert not (unreachable.state_dir / "omnisync.sqlite3").exists()


def test_diff_with_an_unreachable_store_says_counts_are_unknown(unreachable: Setup) -> None:
    code, out, err = unreachable.run(
        "diff", "--base-config", str(unreachable.config_path), "--format", "json"
    )
    assert code == 0, err
    assert PASSWORD not in out + err
    summary = json.loads(out)["summary"]
    assert summary["counts"] == "unknown", summary
    assert "PostgreSQL" in summary["counts_note"] and "127.0.0.1" in summary["counts_note"]


@pytest.mark.parametrize("command", [("history",), ("plan",), ("drift", "weekly")])
def test_a_missing_dsn_variable_names_the_setting_and_the_reference(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    setup = make_setup(tmp_path / "conf", dsn=None, base_url="http://127.0.0.1:9/api")
    code, out, err = setup.run(*command)
    assert code == 1, out + err
    assert "daemon.state.dsn" in err and f"env:{DSN_VARIABLE}" in err, err


def test_status_without_a_daemon_here_exits_0_only_while_a_replica_is_live(
    tmp_path: Path, state_dsn: str
) -> None:
    here = make_setup(tmp_path / "here", dsn=state_dsn, base_url="http://127.0.0.1:9/api")
    nobody = here.run("status")
    assert nobody[0] == 1, nobody
    assert "no daemon is running for the config" in nobody[2]
    assert "replicas sharing the state store" in nobody[1]  # the table, empty

    # A replica elsewhere (its own state directory, another replica id) runs the exports.
    elsewhere = make_setup(
        tmp_path / "elsewhere",
        dsn=state_dsn,
        base_url="http://127.0.0.1:9/api",
        replica_id="omnisync-1",
    )
    replica = DaemonProcess(
        config_path=elsewhere.config_path,
        state_dir=elsewhere.state_dir,
        log_path=tmp_path / "elsewhere" / "daemon.log",
        extra_env={DSN_VARIABLE: state_dsn},
    ).start()
    try:

        def replica_live() -> bool:
            # The heartbeat, read as status reads it (expires_at > now()): a query, not a
            # status process per poll; status itself is asked once it is there.
            with psycopg.connect(state_dsn, autocommit=True) as database:
                return bool(
                    database.execute(
                        "SELECT 1 FROM replicas WHERE id = 'omnisync-1' AND expires_at > now()"
                    ).fetchone()
                )

        wait_until(replica_live, timeout=30, interval=0.1, message="the replica's heartbeat")
        code, out, err = here.run("status")
        assert code == 0, err
        assert "omnisync-1" in out and "(gone)" not in out, out
        assert "no daemon is running for the config" in err  # not here: said all the same
        code, out, err = here.run("status", "--format", "json")
        assert code == 0, err
        assert [row["id"] for row in json.loads(out)["replicas"]] == ["omnisync-1"]
    finally:
        assert replica.stop() == 0
    # Stopped cleanly, it left the store: nobody runs the exports any more.
    code, out, err = here.run("status", "--format", "json")
    assert code == 1, out + err
    assert json.loads(out)["replicas"] == []


def test_status_with_an_unreachable_store_and_no_daemon_says_both(unreachable: Setup) -> None:
    code, out, err = unreachable.run("status")
    assert code == 1, out + err
    assert PASSWORD not in out + err
    assert "no daemon is running for the config" in err
    assert "cannot read the replicas" in err and "127.0.0.1" in err, err


def test_a_run_while_another_command_runs_the_brand_says_so_at_once(setup: Setup) -> None:
    """A command's own direct run holds the brand's lease but is no replica: asking it
    through ``run_requests`` waited two leases for nobody, then blamed a stuck replica."""
    from omnisync.config.loader import load_config
    from omnisync.daemon.remote import HeldBrand

    config = load_config(str(setup.config_path), environ=setup.environ)
    brand = config.brand_of("weekly")
    assert brand is not None
    with HeldBrand(config, brand, environ=setup.environ) as held:
        code, out, err = setup.run("export", "run", "weekly")
    assert code == 1, out + err
    assert f"is held by {held.holder}" in err and "no replica picked up" not in err, err
    # A holder that died leaves its lease to run out: the message says when.
    said = " ".join(err.split())
    assert re.search(r"its lease runs out in \d+ s unless renewed", said), said


def test_a_gone_replica_shows_no_runs_under_way(tmp_path: Path, state_dsn: str) -> None:
    """A replica whose heartbeat expired runs nothing any more (a live one resumes its
    runs): its last heartbeat's runs are not shown as under way."""
    here = make_setup(tmp_path / "here", dsn=state_dsn, base_url="http://127.0.0.1:9/api")
    assert here.run("status")[0] == 1  # the shared schema exists from here on
    with psycopg.connect(state_dsn, autocommit=True) as database:
        database.execute(
            "INSERT INTO replicas (id, started_at, seen_at, expires_at, version, "
            "config_revision, running) VALUES ('crashed', now() - interval '1 hour', "
            "now() - interval '10 minutes', now() - interval '9 minutes', '1.0', 'git:0123abc', "
            "'[\"vip\"]')"
        )
    code, out, err = here.run("status", "--format", "json")
    assert code == 1, out + err  # nobody runs the exports
    [replica] = json.loads(out)["replicas"]
    assert (replica["id"], replica["live"], replica["running"]) == ("crashed", False, [])
    code, out, err = here.run("status")
    assert "crashed (gone)" in out and "vip" not in out.split("crashed (gone)")[1].split("\n")[0]
