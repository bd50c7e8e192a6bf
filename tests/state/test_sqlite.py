"""What is particular to the SQLite store: the file, its modes and the seam's table shape."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnisync.state import (
    InflightItem,
    SqliteLedgerStore,
    StateError,
    open_state_store,
    state_path,
)
from omnisync.state.migrations import MIGRATIONS, SCHEMA_VERSION
from tests.state.seeding import deliver

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_open_state_store_creates_a_private_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / "state" / "omnisync"
    with open_state_store(state_dir) as store:
        assert store.location == str(state_dir / "omnisync.sqlite3")
    assert state_path(state_dir).is_file()
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_an_uncreatable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="cannot create state directory"):
        open_state_store(blocker / "state")


def test_a_link_in_place_of_the_database_is_refused_and_its_target_left_alone(
    tmp_path: Path,
) -> None:
    """Whoever may write the state directory (a service's user) must not get root's
    `omnisync history` to chmod, or turn into a database, a file of their choosing."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    target = tmp_path / "passwd"
    target.write_text("")
    target.chmod(0o644)
    (state_dir / "omnisync.sqlite3").symlink_to(target)
    (state_dir / "omnisync.sqlite3-wal").symlink_to(target)
    with pytest.raises(StateError, match="it is a symbolic link"):
        open_state_store(state_dir)
    with pytest.raises(StateError, match="it is a symbolic link"):
        SqliteLedgerStore(state_dir / "omnisync.sqlite3")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and target.read_bytes() == b""


def test_a_pipe_in_place_of_a_wal_file_is_left_alone_without_waiting(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    open_state_store(state_dir).close()
    os.mkfifo(state_dir / "omnisync.sqlite3-shm")
    with pytest.raises(StateError):  # SQLite itself refuses it, at once
        open_state_store(state_dir)


def test_the_database_runs_in_wal_mode_with_normal_sync(tmp_path: Path) -> None:
    with SqliteLedgerStore(tmp_path / "state.sqlite3") as store:
        deliver(store, "vip", [("a@x.io", 1, None)], now=NOW)
        connection = sqlite3.connect(tmp_path / "state.sqlite3")
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        connection.close()


def test_the_ledger_table_has_the_seams_exact_shape(tmp_path: Path) -> None:
    with SqliteLedgerStore(tmp_path / "state.sqlite3"):
        pass
    connection = sqlite3.connect(tmp_path / "state.sqlite3")
    columns = connection.execute("PRAGMA table_info(ledger_entries)").fetchall()
    # (cid, name, type, notnull, default, pk)
    assert [(c[1], c[2], c[3], c[5]) for c in columns] == [
        ("export", "TEXT", 1, 1),
        ("email", "TEXT", 1, 2),
        ("fingerprint", "INTEGER", 1, 0),
        ("tag", "TEXT", 0, 0),
        ("updated_at", "TEXT", 1, 0),
        ("tag_in_doubt", "INTEGER", 1, 0),
    ]
    without_rowid = connection.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'ledger_entries'"
    ).fetchone()[0]
    assert "WITHOUT ROWID" in without_rowid
    inflight = [c[1] for c in connection.execute("PRAGMA table_info(inflight_batches)")]
    assert inflight == ["export", "batch_id", "email", "fingerprint", "then_tag", "created_at"]
    connection.close()


def test_a_read_only_reader_sees_committed_rows_while_a_run_writes(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with SqliteLedgerStore(path) as store:
        deliver(store, "vip", [(f"{n}@x.io", n, "vip") for n in range(100)], now=NOW)
        # How the export engine's diff reads the ledger: read-only, attached.
        reader = sqlite3.connect(":memory:")
        reader.execute("ATTACH DATABASE ? AS ledger", (f"file:{path}?mode=ro",))
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM ledger.ledger_entries").fetchone()[0] == 100
        # A writer is not blocked by the open read transaction (WAL) ...
        deliver(store, "vip", [("late@x.io", 1, None)], now=NOW)
        # ... and the reader keeps its snapshot until it ends it.
        assert reader.execute("SELECT count(*) FROM ledger.ledger_entries").fetchone()[0] == 100
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM ledger.ledger_entries").fetchone()[0] == 101
        reader.close()


def test_a_read_only_reader_opens_a_wal_ledger_and_cannot_change_it(tmp_path: Path) -> None:
    # A read-only URI connection (how engine-read opens it) never creates or changes the file.
    path = tmp_path / "state.sqlite3"
    with SqliteLedgerStore(path) as store:
        deliver(store, "vip", [("a@x.io", 1, None)], now=NOW)
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM ledger_entries")
    reader.close()


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "omnisync.sqlite3"
    path.write_bytes(b"this is not SQLite, just some bytes " * 100)
    before = path.read_bytes()
    with pytest.raises(StateError, match=r"omnisync.sqlite3.*not a database"):
        SqliteLedgerStore(path)
    assert path.read_bytes() == before


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot"):
        SqliteLedgerStore(tmp_path / "missing" / "omnisync.sqlite3")


def test_writers_in_two_processes_wait_for_each_other(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with SqliteLedgerStore(path) as store:
        store.record_intent("vip", "t1", [InflightItem("a@x.io", 1, True)], now=NOW)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        done = threading.Event()

        def write() -> None:
            store.record_created("vip", "t1", "b1", now=NOW)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        # The store waits (busy timeout) rather than failing while another process writes.
        assert not done.wait(0.3)
        blocker.execute("COMMIT")
        writer.join(timeout=30)
        assert done.is_set()
        blocker.close()
        assert store.inflight_batches("vip")[0].emails == ("a@x.io",)


def test_a_busy_database_past_the_timeout_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    SqliteLedgerStore(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with SqliteLedgerStore(path, busy_timeout=0.1) as store:
        with pytest.raises(StateError, match="locked"):
            deliver(store, "vip", [("a@x.io", 1, None)], now=NOW)
        # The failed write left no transaction open behind it.
        blocker.execute("COMMIT")
        deliver(store, "vip", [("a@x.io", 1, None)], now=NOW)
        assert store.count_entries("vip") == 1
    blocker.close()


def test_integrity_holds_after_a_bulk_write(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with SqliteLedgerStore(path) as store:
        deliver(store, "vip", [(f"{n}@x.io", n, None) for n in range(1000)], now=NOW)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


def test_a_version_3_database_migrates_its_history_and_can_hold_runs(tmp_path: Path) -> None:
    path = tmp_path / "omnisync.sqlite3"
    with closing(sqlite3.connect(path)) as connection:
        for script in MIGRATIONS[:3]:
            connection.executescript(script)
        connection.execute(
            "INSERT INTO runs (export, trigger, config_revision, started_at, ended_at, status,"
            " counts) VALUES ('vip', 'schedule', 'git:abc', '2026-01-01T00:00:00.000Z',"
            " '2026-01-01T00:01:00.000Z', 'succeeded', '{\"upserted\": 3}')"
        )
        connection.execute("PRAGMA user_version = 3")
        connection.commit()
    with SqliteLedgerStore(path) as store:
        with closing(sqlite3.connect(path)) as reader:
            assert reader.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        (old,) = store.runs("vip")
        assert (old.id, old.status, dict(old.counts)) == (1, "succeeded", {"upserted": 3})
        held = store.start_run("vip", trigger="schedule", config_revision="git:def", now=NOW)
        assert held.id == 2
        store.finish_run(held.id, status="held", counts={}, error="would untag", now=NOW)
        assert [run.status for run in store.runs("vip")] == ["held", "succeeded"]
