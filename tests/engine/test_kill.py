"""``kill -9`` at several points of a real ``omnisync export run``, then a restart.

The emulator runs in this process; the export runs as a real child process
and is SIGKILLed when the emulator's request log (or the ledger) shows the
chosen point. The restart must finish the job: Omnisend ends up exactly as
after a clean run, and nothing Omnisend acknowledged and the ledger recorded
before the kill is sent again.

The runs around the ones killed and restarted (the clean reference, the last run that
finds nothing to do) run with the real engine in this process (:func:`run_here`), and
``history`` through the command's entry point in this process.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from omnisync.clock import SystemClock
from omnisync.config.loader import load_config
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.results import RunResult
from omnisync.engine.runner import ExportRunner
from omnisync.state import open_state_store
from tests.cli import run_cli_here
from tests.engine.helpers import (
    API_KEY_VARIABLE,
    TAG_ADDS,
    UPSERTS,
    comparable_contacts,
    emails_of,
    last_sequence,
    log_since,
    omnisync,
    omnisync_process,
    people,
    write_config,
    write_segment,
)

MEMBERS = 3000  # 30 batches, 12 tags calls
BRANDS = {"clean-key": "clean", "mid-batch-key": "mid-batch", "between-key": "between",
          "tagging-key": "tagging", "sigterm-key": "sigterm"}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    brand: str
    api_key: str
    config: Path
    state_dir: Path


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    # Real time: the export runs in another process on the system clock.
    with Emulator(api_keys=BRANDS, rate_limits=False, batch_delay=0.05) as running:
        yield running


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator) -> Path:
    directory = tmp_path_factory.mktemp("kill")
    write_segment(directory / "crm.sqlite", people(MEMBERS))
    return directory


def scenario(workspace: Path, emulator: Emulator, brand: str) -> Scenario:
    directory = workspace / brand
    directory.mkdir(exist_ok=True)
    config = write_config(
        directory,
        base_url=emulator.base_url,
        database=workspace / "crm.sqlite",
        state_dir=directory / "state",
        # Fast polling (0.2 s) and many batches in flight, like a generous brand.
        requests_per_minute=3000,
        tags_per_minute=600,
    )
    key = next(key for key, name in BRANDS.items() if name == brand)
    return Scenario(brand, key, config, directory / "state")


def run_here(where: Scenario) -> RunResult:
    """Export ``members`` once with the real engine in this process, on the system clock
    like the emulator and the processes killed: for a run that is not the one under test."""
    environ = {API_KEY_VARIABLE: where.api_key}
    config = load_config(where.config, environ=environ)
    clock = SystemClock()
    with (
        open_state_store(where.state_dir) as store,
        ClientPool(clock=clock, environ=environ) as pool,
    ):
        return ExportRunner(config, store=store, clients=pool, clock=clock).run(
            "members", trigger="cli"
        )


@pytest.fixture(scope="module")
def clean_state(workspace: Path, emulator: Emulator) -> dict[str, Any]:
    clean = scenario(workspace, emulator, "clean")
    done = run_here(clean)
    assert done.status == "succeeded", done.error
    assert emulator.drain()
    state = comparable_contacts(emulator, brand="clean")
    assert len(state) == MEMBERS
    return state


@pytest.fixture(autouse=True)
def no_faults(emulator: Emulator) -> Iterator[None]:
    emulator.set_faults(latency=0.0, only_endpoints=frozenset())
    emulator.configure(batch_delay=0.05)
    yield
    emulator.set_faults(latency=0.0, only_endpoints=frozenset())
    emulator.configure(batch_delay=0.05)


def ledger(state_dir: Path) -> dict[str, str | None]:
    """The ledger as the killed process left it: e-mail -> tag recorded as on, ``None`` for
    none or one in doubt (its call's answer not recorded; read-only, concurrently)."""
    path = state_dir / "omnisync.sqlite3"
    if not path.exists():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(
            connection.execute(
                "SELECT email, CASE WHEN tag_in_doubt THEN NULL ELSE tag END FROM ledger_entries"
            ).fetchall()
        )
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        connection.close()


def inflight(state_dir: Path) -> set[str]:
    """E-mails in batches Omnisend returned an id for, not yet settled."""
    path = state_dir / "omnisync.sqlite3"
    if not path.exists():
        return set()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in connection.execute("SELECT email FROM inflight_batches")}
    except sqlite3.OperationalError:
        return set()
    finally:
        connection.close()


def count(emulator: Emulator, brand: str, endpoint: str) -> int:
    return sum(1 for r in emulator.request_log(brand=brand) if r.endpoint == endpoint)


def kill_when(
    emulator: Emulator, where: Scenario, point: Callable[[], bool], *, timeout: float = 60
) -> None:
    child = omnisync_process("export", "run", "members", "--config", str(where.config),
                             api_key=where.api_key)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not point():
            if child.poll() is not None:
                output = child.communicate()
                pytest.fail(f"the run ended before the kill point: {output}")
            if time.monotonic() > deadline:
                pytest.fail("the kill point never came")
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL


def first_difference(found: dict[str, Any], expected: dict[str, Any]) -> str:
    for email in sorted(set(found) | set(expected)):
        if found.get(email) != expected.get(email):
            return f"{email}: {found.get(email)} != {expected.get(email)}"
    return ""


def restart_and_check(
    emulator: Emulator,
    where: Scenario,
    clean_state: dict[str, Any],
    *,
    before_status: str = "interrupted",
) -> dict[str, Any]:
    recorded = ledger(where.state_dir)
    upserted_before = set(recorded)
    tagged_before = {email for email, tag in recorded.items() if tag == "members"}
    before = last_sequence(emulator)
    done = omnisync(
        "export", "run", "members", "--config", str(where.config), "--format", "json",
        api_key=where.api_key,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    log = log_since(emulator, before, brand=where.brand)
    # Nothing acknowledged-and-recorded before the kill went out again.
    assert not set(emails_of(log, UPSERTS)) & upserted_before
    assert not set(emails_of(log, TAG_ADDS)) & tagged_before
    # And nothing is missing: Omnisend holds what a clean run leaves.
    assert emulator.drain()
    final = comparable_contacts(emulator, brand=where.brand)
    assert final == clean_state, first_difference(final, clean_state)
    assert len(ledger(where.state_dir)) == MEMBERS
    assert inflight(where.state_dir) == set()
    history = run_cli_here("history", "--state-dir", str(where.state_dir), "--format", "json")
    statuses = [run["status"] for run in json.loads(history.stdout)["runs"]]
    assert statuses == ["succeeded", before_status]
    # A further run has nothing left to do.
    again = run_here(where)
    assert (again.status, again.counts.unchanged) == ("succeeded", MEMBERS)
    return result


def test_killed_mid_batch(workspace: Path, emulator: Emulator, clean_state: dict[str, Any]) -> None:
    where = scenario(workspace, emulator, "mid-batch")
    # Batches take 3 s to process: the kill lands while they are in flight.
    emulator.configure(batch_delay=3.0)
    kill_when(emulator, where, lambda: len(inflight(where.state_dir)) >= 500)
    in_flight = inflight(where.state_dir)
    assert ledger(where.state_dir) == {}
    emulator.configure(batch_delay=0.05)
    result = restart_and_check(emulator, where, clean_state)
    # The interrupted run's batches were settled, not sent again (those still being
    # created when it died were sent again, without repeating their consent records).
    assert result["counts"]["settled"] == len(in_flight) > 0
    assert result["counts"]["upserted"] == MEMBERS - len(in_flight)


def test_killed_between_batches(
    workspace: Path, emulator: Emulator, clean_state: dict[str, Any]
) -> None:
    where = scenario(workspace, emulator, "between")
    # Slow batch creation, quick processing: acknowledged batches pile up in the
    # ledger while later ones are still to be created.
    emulator.set_faults(latency=0.15, only_endpoints=frozenset({"POST /batches"}))
    kill_when(
        emulator,
        where,
        lambda: len(ledger(where.state_dir)) >= 500 and count(emulator, "between", UPSERTS) < 25,
    )
    assert count(emulator, "between", UPSERTS) < 30
    emulator.set_faults(latency=0.0, only_endpoints=frozenset())
    restart_and_check(emulator, where, clean_state)


def test_killed_during_tagging(
    workspace: Path, emulator: Emulator, clean_state: dict[str, Any]
) -> None:
    where = scenario(workspace, emulator, "tagging")
    emulator.set_faults(latency=0.3, only_endpoints=frozenset({"POST /contacts/tags"}))
    kill_when(
        emulator,
        where,
        lambda: (
            count(emulator, "tagging", TAG_ADDS) >= 2
            and sum(tag is not None for tag in ledger(where.state_dir).values()) >= 250
        ),
    )
    tagged = sum(tag is not None for tag in ledger(where.state_dir).values())
    assert 250 <= tagged < MEMBERS
    emulator.set_faults(latency=0.0, only_endpoints=frozenset())
    result = restart_and_check(emulator, where, clean_state)
    assert result["counts"]["tagged"] == MEMBERS - tagged


def test_sigterm_stops_at_a_batch_boundary_and_records_it(
    workspace: Path, emulator: Emulator, clean_state: dict[str, Any]
) -> None:
    where = scenario(workspace, emulator, "sigterm")
    emulator.configure(batch_delay=1.0)
    child = omnisync_process("export", "run", "members", "--config", str(where.config),
                             "--format", "json", api_key=where.api_key)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(inflight(where.state_dir)) < 300:
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGTERM)
    output, errors = child.communicate(timeout=60)
    assert child.returncode == 3, errors
    result = json.loads(output)
    assert (result["status"], result["stopped"]) == ("partial", True)
    assert "stopped before finishing" in result["error"]
    # The batches already created were followed to their end and recorded.
    assert inflight(where.state_dir) == set()
    recorded = ledger(where.state_dir)
    assert len(recorded) == result["counts"]["upserted"] >= 300
    assert "Traceback" not in errors
    emulator.configure(batch_delay=0.05)
    restart_and_check(emulator, where, clean_state, before_status="partial")
