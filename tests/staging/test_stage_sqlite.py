"""stage_export on SQLite sources: counts, work, leavers, the ledger seam, errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnisync.config.model import FieldMapping
from omnisync.engine.staging import LedgerUnreadable, stage_export
from omnisync.fingerprint import Fingerprinter, fingerprint_columns
from omnisync.planning import Leaver, StageCounts
from omnisync.sources.errors import SourceError
from omnisync.state import StateError
from omnisync.state.migrations import MIGRATIONS
from omnisync.state.sqlite import open_state_store, state_path
from tests.staging.configs import (
    LEDGER_DDL,
    make_config,
    make_export,
    write_customers,
    write_ledger,
)
from tests.state.seeding import deliver

EXPORT = make_export(mapping=FieldMapping(email="email", first_name="first_name"))


def fingerprint(email: str | None, first_name: str | None) -> int:
    assert fingerprint_columns(EXPORT) == ("email", "first_name")
    return Fingerprinter(EXPORT)(email, first_name)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "cdp.sqlite"
    write_customers(
        path,
        [
            {"id": 1, "email": " Same@Example.com", "first_name": "Олена"},
            {"id": 2, "email": "new@example.com", "first_name": "Zoë 🎉"},
            {"id": 3, "email": None, "first_name": "Nobody"},
            {"id": 4, "email": "changed@example.com", "first_name": "Jonas"},
            {"id": 5, "email": "untagged@example.com", "first_name": "Marta"},
            {"id": 6, "email": "NEW@example.com ", "first_name": "Second copy"},
            {"id": 7, "email": "renamed@example.com", "first_name": "Taras"},
            {"id": 8, "email": "   ", "first_name": "Blank"},
        ],
    )
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "omnisync.sqlite3"
    path.parent.mkdir()
    write_ledger(
        path,
        [
            ("vip", "same@example.com", fingerprint(" Same@Example.com", "Олена"), "vip"),
            ("vip", "changed@example.com", fingerprint("changed@example.com", "Jon"), "vip"),
            ("vip", "untagged@example.com", fingerprint("untagged@example.com", "Marta"), None),
            ("vip", "renamed@example.com", fingerprint("renamed@example.com", "Taras"), "old"),
            ("vip", "left@example.com", 1, "vip"),
            ("vip", "left-untagged@example.com", 2, None),
            # Another export's entries never count for this one.
            ("news", "new@example.com", fingerprint("new@example.com", "Zoë 🎉"), "news"),
            ("news", "gone@example.com", 3, "news"),
        ],
    )
    return path


def test_counts_work_and_leavers_of_a_sqlite_segment(source: Path, ledger: Path) -> None:
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[EXPORT])
    with stage_export(config, "vip") as staged:
        assert staged.counts == StageCounts(
            rows=8,
            members=5,
            missing_email=2,
            duplicates=1,
            new=1,
            changed=1,
            tag_only=2,
            unchanged=1,
            leaving=1,
            retag=1,
            needs_tag=3,
            delivered=6,
            tagged=4,
        )
        work = list(staged.work())
        assert [(item.email, item.in_ledger, item.tag_on) for item in work] == [
            ("new@example.com", False, None),
            ("changed@example.com", True, "vip"),
            ("untagged@example.com", True, None),
            ("renamed@example.com", True, "old"),
        ]
        assert [(item.needs_upsert, item.needs_tag) for item in work] == [
            (True, True),
            (True, False),
            (False, True),
            (False, True),
        ]
        # The first occurrence wins, with its raw values, Unicode intact.
        assert work[0].row == {"email": "new@example.com", "first_name": "Zoë 🎉"}
        assert work[0].fingerprint == fingerprint("new@example.com", "Zoë 🎉")
        assert list(staged.leavers()) == [Leaver("left@example.com", "vip")]
        assert staged.duplicates_sample == ("n***@e***e.com",)
        assert staged.missing_email_rows == (3, 8)
        assert staged.source_name == "cdp"
        # The work may be read more than once.
        assert [item.email for item in staged.work()] == [item.email for item in work]


def test_a_source_table_named_as_a_staging_table_is_the_sources_own(tmp_path: Path) -> None:
    # SQLite finds a bare name in temp first: omnisync's scratch must not hide the source's.
    source = tmp_path / "crm.sqlite"
    with sqlite3.connect(source) as connection:
        for table in ("stage", "work", "leavers", "duplicate_groups"):
            connection.execute(f"CREATE TABLE {table} (email TEXT, first_name TEXT)")
            connection.execute(f"INSERT INTO {table} VALUES ('{table}@example.com', 'A')")
    connection.close()
    query = "SELECT * FROM stage UNION ALL SELECT * FROM work UNION ALL SELECT * FROM leavers"
    config = make_config(
        source_path=source, query=query, state_dir=tmp_path / "state", exports=[EXPORT]
    )
    with stage_export(config, "vip") as staged:
        assert [item.email for item in staged.work()] == [
            "stage@example.com",
            "work@example.com",
            "leavers@example.com",
        ]


def test_on_leave_keep_lists_no_leavers(source: Path, ledger: Path) -> None:
    export = make_export(mapping=EXPORT.mapping, on_leave="keep")
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[export])
    with stage_export(config, "vip") as staged:
        assert (staged.counts.leaving, staged.counts.kept) == (0, 1)
        assert list(staged.leavers()) == []


def test_a_renamed_tag_retags_members_and_untags_leavers_with_the_tag_they_carry(
    source: Path, ledger: Path
) -> None:
    export = make_export(mapping=EXPORT.mapping, tag="vip-2026")
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[export])
    with stage_export(config, "vip") as staged:
        assert staged.counts.unchanged == 0
        assert staged.counts.tag_only == 3  # same, untagged, renamed
        assert staged.counts.retag == 3  # same and changed carry "vip", renamed "old"
        tags = {item.email: (item.tag_on, item.needs_tag) for item in staged.work()}
        assert tags["same@example.com"] == ("vip", True)
        assert tags["renamed@example.com"] == ("old", True)
        assert list(staged.leavers()) == [Leaver("left@example.com", "vip")]


def test_no_state_database_yet_is_an_empty_ledger_and_is_not_created(
    source: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "no-state-yet"
    config = make_config(source_path=source, state_dir=state_dir, exports=[EXPORT])
    with stage_export(config, "vip") as staged:
        assert staged.counts.new == staged.counts.members == 5
        assert list(staged.leavers()) == []
    assert not state_dir.exists()
    assert state_path(config.daemon.state_dir) == state_dir / "omnisync.sqlite3"


def test_a_state_database_without_the_ledger_table_is_an_empty_ledger(
    source: Path, tmp_path: Path
) -> None:
    state = tmp_path / "omnisync.sqlite3"
    sqlite3.connect(state).close()
    config = make_config(source_path=source, state_dir=tmp_path, exports=[EXPORT])
    with stage_export(config, "vip") as staged:  # the config's ledger: `state`
        assert staged.counts.new == 5


def test_an_unreadable_ledger_is_refused_as_a_run_refuses_it(source: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "omnisync.sqlite3"
    garbage.write_bytes(b"not a database at all" * 500)
    config = make_config(source_path=source, state_dir=tmp_path, exports=[EXPORT])
    with pytest.raises(StateError) as refused, stage_export(config, "vip"):
        pass
    with pytest.raises(StateError) as run_refused:
        open_state_store(tmp_path)
    assert str(refused.value) == str(run_refused.value)
    assert "file is not a database" in str(refused.value)


def test_a_ledger_of_another_shape_is_refused(source: Path, tmp_path: Path) -> None:
    other = tmp_path / "omnisync.sqlite3"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE ledger_entries (email TEXT)")
    connection.close()
    config = make_config(source_path=source, state_dir=tmp_path, exports=[EXPORT])
    with pytest.raises(LedgerUnreadable, match="lacks the column"), stage_export(config, "vip"):
        pass


def test_ledger_writes_during_the_run_do_not_disturb_the_materialised_work(
    source: Path, ledger: Path
) -> None:
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[EXPORT])
    with stage_export(config, "vip") as staged:
        before = list(staged.work())
        leavers = list(staged.leavers())
        # What the runner does while sending: record deliveries and tags.
        writer = sqlite3.connect(ledger)
        writer.execute("UPDATE ledger_entries SET tag = 'vip', fingerprint = 0")
        writer.execute(
            "INSERT INTO ledger_entries VALUES ('vip', 'new@example.com', 5, 'vip', 'now')"
        )
        writer.execute("DELETE FROM ledger_entries WHERE email = 'left@example.com'")
        writer.commit()
        writer.close()
        assert list(staged.work()) == before
        assert list(staged.leavers()) == leavers


def test_staging_never_writes_to_the_source_or_the_ledger(source: Path, ledger: Path) -> None:
    source_bytes = source.read_bytes()
    checkpoint = sqlite3.connect(ledger)
    checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpoint.close()
    ledger_bytes = ledger.read_bytes()
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[EXPORT])
    with stage_export(config, "vip") as staged:
        list(staged.work())
    assert source.read_bytes() == source_bytes
    assert ledger.read_bytes() == ledger_bytes


def test_an_empty_segment_leaves_everyone_tagged(source: Path, ledger: Path) -> None:
    config = make_config(
        source_path=source,
        state_dir=ledger.parent,
        exports=[EXPORT],
        query="SELECT * FROM customers WHERE id < 0",
    )
    with stage_export(config, "vip") as staged:
        assert staged.counts == StageCounts(leaving=4, delivered=6, tagged=4)
        assert [leaver.email for leaver in staged.leavers()] == [
            "changed@example.com",
            "left@example.com",
            "renamed@example.com",
            "same@example.com",
        ]


@pytest.mark.parametrize(
    ("query", "cause"),
    [
        ("SELECT * FROM clients", "missing table"),
        ("SELECT id, email FROM customers", "missing column 'first_name'"),
        ("SELECT email, phone FROM customers", "missing column: "),
        ("SELEC * FROM customers", "bad query"),
    ],
)
def test_source_errors_are_raised_before_anything_is_yielded(
    source: Path, ledger: Path, query: str, cause: str
) -> None:
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[EXPORT], query=query)
    with pytest.raises(SourceError) as caught, stage_export(config, "vip"):
        pytest.fail("stage_export yielded despite a source error")
    assert caught.value.segment == "vip"
    assert caught.value.source == "cdp"
    assert cause in caught.value.cause


def test_text_that_is_not_utf8_names_its_column(source: Path, ledger: Path) -> None:
    # Written by a client in Latin-1: Python's sqlite3 cannot read it, and the whole
    # segment failed with "user-defined function raised exception".
    with sqlite3.connect(source) as database:
        database.execute("UPDATE customers SET first_name = CAST(X'4F6CE96E61' AS TEXT)")
    database.close()
    config = make_config(source_path=source, state_dir=ledger.parent, exports=[EXPORT])
    with pytest.raises(SourceError) as caught, stage_export(config, "vip"):
        pytest.fail("stage_export yielded despite a source error")
    assert caught.value.cause.startswith("column(s) first_name hold text that is not UTF-8")


def test_a_missing_source_file(tmp_path: Path) -> None:
    config = make_config(source_path=tmp_path / "gone.sqlite", state_dir=tmp_path)
    with pytest.raises(SourceError, match="database file not found"), stage_export(config, "vip"):
        pass


_FULL_DISK = """
import resource, sys
from pathlib import Path
from omnisync.engine import staging
from omnisync.engine.staging import StagingFailed, stage_export
from tests.staging.configs import make_config, make_export, write_customers
from omnisync.config.model import FieldMapping

directory = Path(sys.argv[1])
source = directory / "crm.sqlite"
write_customers(source, [{"id": n, "email": f"p{n}@x.io", "first_name": "x" * 200}
                         for n in range(20_000)])
export = make_export(mapping=FieldMapping(email="email", first_name="first_name"))
config = make_config(source_path=source, state_dir=directory, exports=[export])
# A disk with no room: no file may grow past 64 KiB (Python ignores SIGXFSZ);
# a small page cache, so that the staging tables must spill to their files.
resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, resource.RLIM_INFINITY))
staging.CACHE_KIB = 64
try:
    with stage_export(config, "vip"):
        print("staged")
except StagingFailed as failure:
    print(f"{failure.segment}|{failure.source}|{failure}")
"""


def test_no_room_for_the_staging_tables_is_a_staging_failure_saying_where(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    segment, source, message = done.stdout.strip().split("|", 2)
    assert (segment, source) == ("vip", "cdp")
    assert "cannot stage the segment" in message
    assert "$TMPDIR" in message


def test_an_unknown_export_name(source: Path, tmp_path: Path) -> None:
    config = make_config(source_path=source, state_dir=tmp_path)
    with pytest.raises(KeyError, match="no export named 'gold'"), stage_export(config, "gold"):
        pass


def test_the_ledger_seam_matches_the_state_store(source: Path, tmp_path: Path) -> None:
    """The state store's own ledger (WAL, open while staging) is read as the seam says."""
    store = open_state_store(tmp_path / "state")
    try:
        deliver(
            store,
            "vip",
            [
                ("same@example.com", fingerprint(" Same@Example.com", "Олена"), "vip"),
                ("left@example.com", 7, "vip"),
            ],
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )
        assert store.ledger_file == state_path(tmp_path / "state")
        config = make_config(source_path=source, state_dir=tmp_path / "state", exports=[EXPORT])
        with stage_export(config, "vip") as staged:
            assert (staged.counts.unchanged, staged.counts.new) == (1, 4)
            assert list(staged.leavers()) == [Leaver("left@example.com", "vip")]
    finally:
        store.close()
    shapes = []
    for ddl in (LEDGER_DDL, MIGRATIONS[0]):
        connection = sqlite3.connect(":memory:")
        connection.executescript(ddl)
        shapes.append(list(connection.execute("PRAGMA table_xinfo(ledger_entries)")))
        connection.close()
    assert shapes[0] == shapes[1]


def test_a_ledger_corrupted_past_its_schema_is_reported_not_raised_raw(
    source: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "omnisync.sqlite3"
    write_ledger(
        ledger, [("vip", f"member{index:05d}@example.com", index, "vip") for index in range(5000)]
    )
    checkpoint = sqlite3.connect(ledger)
    checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpoint.close()
    data = bytearray(ledger.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    for offset in range(3 * page, len(data) - page, page):  # schema page intact, the rest not
        data[offset : offset + 64] = b"\xff" * 64
    ledger.write_bytes(bytes(data))
    config = make_config(source_path=source, state_dir=tmp_path, exports=[EXPORT])
    with (
        pytest.raises(LedgerUnreadable, match=r"cannot read the ledger in .*malformed"),
        stage_export(config, "vip"),
    ):
        pytest.fail("yielded despite a corrupt ledger")
