"""stage_export against a PostgreSQL state store: the same diff as against SQLite.

The ledger's half of the diff runs inside PostgreSQL
(:mod:`omnisync.engine.diff_postgres`); everything a caller can read of a
staged export (counts, work, raw work records, leavers, samples, members)
must be what the SQLite store holding the same entries gives. Then a run
end to end with a PostgreSQL store: everything delivered once, nothing sent
the second time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.clock import Clock, ScaledClock
from omnisync.config.loader import load_config
from omnisync.config.model import Config, Export, FieldMapping, OnLeave
from omnisync.emails import normalise_email
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.diff import DiffTerms
from omnisync.engine.report import plan_export
from omnisync.engine.runner import ExportRunner
from omnisync.engine.staging import StagedMember, stage_export
from omnisync.fingerprint import Fingerprinter
from omnisync.planning import (
    Leaver,
    LedgerEntry,
    SegmentRow,
    StageCounts,
    WorkItem,
    reference_plan,
)
from omnisync.state import LedgerStore, StateError, open_state_store
from tests.engine.helpers import API_KEY_VARIABLE, last_sequence, log_since, people
from tests.engine.helpers import write_config as write_engine_config
from tests.engine.helpers import write_segment as write_people
from tests.staging.configs import make_config, make_export, write_customers
from tests.staging.test_diff_property import scenarios
from tests.state.backends import PostgresBackend
from tests.state.seeding import deliver, forget

NOW = datetime(2026, 1, 1, tzinfo=UTC)
Entry = tuple[str, str, int, "str | None"]


def export_of(on_leave: OnLeave = "untag", tag: str = "vip") -> Export:
    return make_export(
        mapping=FieldMapping(email="email", first_name="first_name"), on_leave=on_leave, tag=tag
    )


def fingerprint(email: str | None, first_name: str | None) -> int:
    return Fingerprinter(export_of())(email, first_name)


@dataclass
class Stores:
    """A SQLite and a PostgreSQL store, to be given the same ledger entries."""

    sqlite: LedgerStore
    postgres: LedgerStore

    def both(self) -> tuple[LedgerStore, LedgerStore]:
        return self.sqlite, self.postgres

    def record(self, entries: Sequence[Entry]) -> None:
        for store in self.both():
            for export in {entry[0] for entry in entries}:
                deliver(
                    store,
                    export,
                    [(email, fp, tag) for name, email, fp, tag in entries if name == export],
                    now=NOW,
                )

    def reset(self, brand: str) -> None:
        for store in self.both():
            for export in ("vip", "news"):
                forget(store, export, brand=brand, now=NOW)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    postgres = PostgresBackend(tmp_path).open()
    sqlite = open_state_store(tmp_path / "state")
    yield Stores(sqlite, postgres)
    sqlite.close()
    postgres.close()


def write_segment(path: Path, rows: Sequence[tuple[str | None, str | None]]) -> None:
    write_customers(
        path,
        [
            {"id": index, "email": email, "first_name": name}
            for index, (email, name) in enumerate(rows)
        ],
        columns=("id", "email", "first_name"),
    )


def config_for(root: Path, export_on_leave: OnLeave = "untag", tag: str = "vip") -> Config:
    return make_config(
        source_path=root / "cdp.sqlite",
        query="SELECT email, first_name FROM customers ORDER BY id",
        state_dir=root / "unused-state",
        exports=[export_of(export_on_leave, tag)],
    )


#: E-mails whose member and leaver details are compared.
LOOKED_UP = ("same@example.com", "new@example.com", "left@example.com", "nobody@example.com")


@dataclass(frozen=True)
class Seen:
    """Everything a caller can read of a staged export."""

    counts: StageCounts
    work: tuple[WorkItem, ...]
    records: tuple[tuple[object, ...], ...]
    leavers: tuple[Leaver, ...]
    duplicates_sample: tuple[str, ...]
    missing_email_rows: tuple[int, ...]
    members: dict[str, StagedMember]
    leaver_tags: dict[str, str]

    @property
    def record_types(self) -> list[tuple[type, ...]]:
        return [tuple(map(type, record)) for record in self.records]


def seen(config: Config, store: LedgerStore, *, full: bool = False) -> Seen:
    with stage_export(config, "vip", store=store, full=full) as staged:
        return Seen(
            counts=staged.counts,
            work=tuple(staged.work()),
            records=tuple(tuple(record) for batch in staged.work_records() for record in batch),
            leavers=tuple(staged.leavers()),
            duplicates_sample=staged.duplicates_sample,
            missing_email_rows=staged.missing_email_rows,
            members=staged.members_of(LOOKED_UP),
            leaver_tags=staged.leaver_tags(LOOKED_UP),
        )


def same_on_both(config: Config, stores: Stores, *, full: bool = False) -> Seen:
    """Diff ``vip`` against both stores; what they give must be equal."""
    on_sqlite = seen(config, stores.sqlite, full=full)
    on_postgres = seen(config, stores.postgres, full=full)
    assert on_postgres == on_sqlite
    # Types included: SQLite's 0 and 1 in the work, never PostgreSQL's booleans.
    assert on_postgres.record_types == on_sqlite.record_types
    return on_postgres


SEGMENT: list[tuple[str | None, str | None]] = [
    (" Same@Example.com", "Олена"),
    ("new@example.com", "Zoë 🎉"),
    (None, "Nobody"),
    ("changed@example.com", "Jonas"),
    ("untagged@example.com", "Marta"),
    ("NEW@example.com ", "Second copy"),
    ("renamed@example.com", "Taras"),
    ("   ", "Blank"),
    ("changed@example.com", "Third copy"),
    ("nul\x00@example.com", "A NUL no PostgreSQL text can hold"),
]

LEDGER: list[Entry] = [
    ("vip", "same@example.com", fingerprint(" Same@Example.com", "Олена"), "vip"),
    ("vip", "changed@example.com", fingerprint("changed@example.com", "Jon"), "vip"),
    ("vip", "untagged@example.com", fingerprint("untagged@example.com", "Marta"), None),
    ("vip", "renamed@example.com", fingerprint("renamed@example.com", "Taras"), "old"),
    ("vip", "left@example.com", 1, "vip"),
    ("vip", "left-old-tag@example.com", 2, "old"),
    ("vip", "left-untagged@example.com", 3, None),
    # Another export's entries never count for this one.
    ("news", "new@example.com", fingerprint("new@example.com", "Zoë 🎉"), "news"),
    ("news", "gone@example.com", 4, "news"),
]


@pytest.mark.parametrize("full", [False, True], ids=["diff", "full"])
@pytest.mark.parametrize("on_leave", ["untag", "keep"])
def test_the_same_ledger_gives_the_same_diff_in_either_store(
    tmp_path: Path, stores: Stores, on_leave: OnLeave, full: bool
) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    stores.record(LEDGER)
    found = same_on_both(config_for(tmp_path, on_leave), stores, full=full)
    counts = found.counts
    # Every kind of member and leaver is there (the comparison is not vacuous).
    assert (counts.rows, counts.members, counts.missing_email, counts.duplicates) == (10, 6, 2, 2)
    assert (counts.delivered, counts.tagged) == (7, 5)
    if full:
        assert (counts.new, counts.changed, counts.unchanged) == (2, 4, 0)
    else:
        assert (counts.new, counts.changed, counts.tag_only, counts.unchanged, counts.retag) == (
            2,
            1,
            2,
            1,
            1,
        )
    gone = (counts.leaving, counts.kept)
    assert gone == ((2, 0) if on_leave == "untag" else (0, 2))
    leavers = [(leaver.email, leaver.tag) for leaver in found.leavers]
    expected = [("left-old-tag@example.com", "old"), ("left@example.com", "vip")]
    assert leavers == (expected if on_leave == "untag" else [])


def test_an_empty_ledger_and_an_empty_segment(tmp_path: Path, stores: Stores) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    first = same_on_both(config_for(tmp_path), stores)
    assert first.counts.new == 6
    write_segment(tmp_path / "cdp.sqlite", [])
    stores.record(LEDGER)
    emptied = same_on_both(config_for(tmp_path), stores)
    assert emptied.counts.leaving == 5


def test_a_renamed_tag_retags_and_untags_the_same_way(tmp_path: Path, stores: Stores) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    stores.record(LEDGER)
    found = same_on_both(config_for(tmp_path, tag="old"), stores)
    assert found.counts.retag > 0


def test_a_ledger_of_another_brand_is_an_empty_ledger_in_either_store(
    tmp_path: Path, stores: Stores
) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    config = config_for(tmp_path)
    brand = config.connections["main"].brand
    for store in stores.both():
        store.retarget("vip", "https://elsewhere.example/api env:OTHER_KEY", now=NOW)
    stores.record(LEDGER)
    moved = same_on_both(config, stores)
    assert moved.counts.new == 6 and moved.counts.delivered == 0
    assert moved.leavers == ()
    # Back on the brand the ledger describes, the ledger counts again.
    for store in stores.both():
        store.retarget("vip", brand, now=NOW)  # forgets the other brand's entries
    stores.record(LEDGER)
    back = same_on_both(config, stores)
    assert back.counts.delivered == 7


def test_plan_export_reads_a_postgres_store(tmp_path: Path, stores: Stores) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    stores.record(LEDGER)
    config = config_for(tmp_path)
    on_sqlite = plan_export(config, "vip", store=stores.sqlite, now=NOW)
    on_postgres = plan_export(config, "vip", store=stores.postgres, now=NOW)
    assert on_postgres == on_sqlite
    assert on_postgres.state_found


def test_a_postgres_ledger_that_cannot_be_read_is_a_state_error_without_the_password(
    tmp_path: Path,
) -> None:
    import psycopg

    from omnisync.state.postgres import PostgresLedgerStore

    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    backend = PostgresBackend(tmp_path)
    # Trust authentication ignores the password; it must never be shown all the same.
    with PostgresLedgerStore(backend.dsn + " password=hunter2") as store:
        with psycopg.connect(backend.dsn, autocommit=True) as admin:
            admin.execute("DROP TABLE ledger_entries")
        with (
            pytest.raises(StateError) as raised,
            stage_export(config_for(tmp_path), "vip", store=store),
        ):
            pass
    message = str(raised.value)
    assert "cannot diff the segment against the ledger" in message
    assert "ledger_entries" in message
    assert "hunter2" not in message


def test_the_diffs_transaction_outlives_the_stores_idle_limit(stores: Stores) -> None:
    from omnisync.engine.diff_postgres import postgres_ledger
    from omnisync.state.postgres import IDLE_IN_TRANSACTION_SECONDS

    # The store's sessions may idle in a transaction only briefly; between its
    # statements the diff waits on SQLite (indexing and counting a stage of
    # millions) for as long as SQLite takes, inside one snapshot.
    stores.record(LEDGER)
    terms = DiffTerms(export="vip", tag="vip", full=False, members="1")
    entries = [entry for entry in LEDGER if entry[0] == "vip"]
    tagged = [entry for entry in entries if entry[3] is not None]
    staging = sqlite3.connect(":memory:")
    with postgres_ledger(stores.postgres, staging, export="vip", brand=None) as side:
        time.sleep(IDLE_IN_TRANSACTION_SECONDS + 0.5)
        assert side is not None
        assert side.totals(terms) == (len(entries), len(tagged), 0)


# -- a property: any segment, any ledger, the same diff ----------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios(), full=st.booleans())
def test_any_segment_and_ledger_diff_the_same_in_either_store(
    tmp_path: Path, stores: Stores, scenario: dict[str, object], full: bool
) -> None:
    rows: list[tuple[str | None, str | None]] = scenario["rows"]  # type: ignore[assignment]
    tag: str = scenario["tag"]  # type: ignore[assignment]
    on_leave: OnLeave = scenario["on_leave"]  # type: ignore[assignment]
    export = export_of(on_leave, tag)
    fingerprinter = Fingerprinter(export)
    segment = [
        SegmentRow(normalise_email(email), fingerprinter(email, value), {}) for email, value in rows
    ]
    firsts: dict[str, int] = {}
    for row in segment:
        if row.email is not None:
            firsts.setdefault(row.email, row.fingerprint)
    plan: dict[str, tuple[str, str | None, int]] = scenario["ledger"]  # type: ignore[assignment]
    ledger = {
        email: LedgerEntry(
            firsts[email] if which == "same" and email in firsts else other, entry_tag
        )
        for email, (which, entry_tag, other) in plan.items()
    }
    foreign: dict[str, str | None] = scenario["foreign"]  # type: ignore[assignment]
    config = replace(config_for(tmp_path), exports={"vip": export})
    stores.reset(config.connections["main"].brand)
    stores.record(
        [("vip", email, entry.fingerprint, entry.tag) for email, entry in ledger.items()]
        + [("news", email, 0, foreign_tag) for email, foreign_tag in foreign.items()]
    )
    write_segment(tmp_path / "cdp.sqlite", rows)
    found = same_on_both(config, stores, full=full)
    if not full:
        expected = reference_plan(segment, ledger, tag=tag, on_leave=on_leave)
        assert found.counts == expected.counts


# -- a run end to end -------------------------------------------------------------------


def two_runs(
    directory: Path, emulator: Emulator, clock: Clock, store: LedgerStore
) -> tuple[dict[str, int], dict[str, int], list[object]]:
    """Run export ``members`` twice over the same segment; the second run's requests."""
    database = directory / "crm.sqlite"
    write_people(database, people(200))
    config_path = write_engine_config(
        directory, base_url=emulator.base_url, database=database, state_dir=directory / "state"
    )
    environ = {API_KEY_VARIABLE: "test-key", "HOME": str(directory)}
    config = load_config(config_path, environ=environ)
    kept = (
        *("rows", "members", "invalid", "duplicates", "to_create", "to_update", "unchanged"),
        *("to_tag", "retag", "leaving", "to_untag", "upserted", "tagged", "untagged", "pending"),
    )
    outcomes = []
    before = 0
    for _ in range(2):
        before = last_sequence(emulator)
        with ClientPool(clock=clock, environ=environ) as pool:
            runner = ExportRunner(config, store=store, clients=pool, clock=clock)
            result = runner.run("members", trigger="test")
        assert result.status == "succeeded", result.error
        outcomes.append({name: result.counts.as_dict()[name] for name in kept})
    return outcomes[0], outcomes[1], list(log_since(emulator, before))


def test_a_run_with_a_postgres_store_delivers_once_then_sends_nothing(
    tmp_path: Path, stores: Stores, start_emulator: Callable[..., Emulator]
) -> None:
    clock = ScaledClock(60.0)
    results: dict[str, object] = {}
    for name, store in (("sqlite", stores.sqlite), ("postgres", stores.postgres)):
        emulator = start_emulator(api_keys=("test-key",), clock=clock)
        directory = tmp_path / name
        directory.mkdir()
        first, second, requests = two_runs(directory, emulator, clock, store)
        assert (first["to_create"], first["upserted"], first["tagged"]) == (200, 200, 200)
        assert (second["unchanged"], second["upserted"], second["tagged"]) == (200, 0, 0)
        assert requests == []  # not even a poll
        assert store.count_entries("members", tagged=True) == 200
        assert len(emulator.contacts()) == 200
        delivered = [
            (entry.email, entry.fingerprint, entry.tag) for entry in store.entries("members")
        ]
        results[name] = (first, second, delivered)
    assert results["postgres"] == results["sqlite"]
