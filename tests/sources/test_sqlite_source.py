"""SQLite segment sources, read as a run stages them: rows, and every way a segment can fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from omnisync.config.model import FieldMapping
from omnisync.engine.staging import stage_export
from omnisync.sources import SqliteReader, open_segment
from omnisync.sources.errors import SourceError
from omnisync.sources.sqlite import subquery
from tests.staging.configs import make_config, make_export, write_customers


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "cdp.sqlite"
    write_customers(
        path,
        [
            {"id": 1, "email": "olena@example.com", "first_name": "Олена", "lifetime_value": 10.5},
            {"id": 2, "email": "jonas@example.lt", "first_name": "Jonas", "lifetime_value": None},
            {"id": 3, "email": "zoe@example.com", "first_name": "Zoë 🎉", "lifetime_value": 7},
        ],
    )
    return path


def rows(path: Path, query: str, **mapped: Any) -> list[dict[str, object]]:
    """The segment's rows as staging reads them, for a mapping of ``email`` and ``mapped``."""
    export = make_export(mapping=FieldMapping(email="email", **mapped))
    config = make_config(
        source_path=path, state_dir=path.parent / "state", exports=[export], query=query
    )
    with stage_export(config, "vip") as staged:
        return [dict(item.row) for item in staged.work()]


def test_rows_stream_the_requested_columns_in_query_order(database: Path) -> None:
    found = rows(
        database,
        "SELECT * FROM customers ORDER BY id DESC",
        first_name="first_name",
        custom_properties={"lifetime_value": "lifetime_value"},
    )
    assert found == [
        {"email": "zoe@example.com", "first_name": "Zoë 🎉", "lifetime_value": 7},
        {"email": "jonas@example.lt", "first_name": "Jonas", "lifetime_value": None},
        {"email": "olena@example.com", "first_name": "Олена", "lifetime_value": 10.5},
    ]


def test_columns_are_matched_without_regard_to_case_and_a_trailing_semicolon_is_fine(
    database: Path,
) -> None:
    query = "SELECT id, email AS Email FROM customers WHERE id = 1; -- one row"
    assert rows(database, query) == [{"email": "olena@example.com"}]


def test_an_empty_result_is_an_empty_segment(database: Path) -> None:
    assert rows(database, "SELECT * FROM customers WHERE id > 99") == []


def test_a_missing_file_names_segment_source_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(SourceError) as caught:
        rows(missing, "SELECT 1")
    message = str(caught.value)
    assert message.startswith("segment 'vip' (source 'cdp'): database file not found")
    assert str(missing) in message
    assert not missing.exists(), "a read-only open must not create the file"


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("these are not the pages you are looking for\n" * 100)
    with pytest.raises(SourceError, match=r"cannot open .* as a SQLite database"):
        rows(bogus, "SELECT 1")


def test_a_database_a_writer_keeps_locked_is_not_called_a_bad_file(database: Path) -> None:
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # past sqlite3's 5 s wait
    try:
        with pytest.raises(SourceError) as caught:
            rows(database, "SELECT 1")
    finally:
        writer.close()
    assert caught.value.cause == f"cannot read {database}: database is locked by a writer"


def test_a_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        rows(tmp_path, "SELECT 1")


def test_a_missing_table_is_reported(database: Path) -> None:
    with pytest.raises(SourceError, match=r"missing table: .*no such table: clients"):
        rows(database, "SELECT * FROM clients")


def test_a_column_the_query_itself_names_but_the_table_lacks(database: Path) -> None:
    with pytest.raises(SourceError, match=r"missing column: .*no such column: phone"):
        rows(database, "SELECT email, phone FROM customers")


def test_a_mapped_column_the_query_does_not_return_lists_what_it_does(database: Path) -> None:
    with pytest.raises(SourceError) as caught:
        rows(database, "SELECT id, email FROM customers", city="city")
    assert caught.value.cause == "missing column 'city' (the segment has: id, email)"


def test_a_bad_query_says_it_must_be_one_select(database: Path) -> None:
    for query in ("SELEC * FROM customers", "DELETE FROM customers", "SELECT 1; SELECT 2"):
        with pytest.raises(SourceError, match=r"bad query: .*exactly one SELECT"):
            rows(database, query)
    # The read-only source still holds every row.
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    connection.close()


def test_open_segment_picks_the_reader_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    config = make_config(source_path=tmp_path / "cdp.sqlite", state_dir=tmp_path)
    assert isinstance(open_segment(config, "vip"), SqliteReader)
    no_query = make_config(source_path=tmp_path / "cdp.sqlite", state_dir=tmp_path, query=None)
    with pytest.raises(SourceError, match="needs a query"):
        open_segment(no_query, "vip")
    postgres = make_config(
        source_path=tmp_path / "x", kind="postgres", state_dir=tmp_path, query="SELECT 1"
    )
    with pytest.raises(SourceError, match="a segment on a PostgreSQL source needs a query"):
        open_segment(postgres, "vip")
    with pytest.raises(SourceError, match="no such segment"):
        open_segment(config, "gold")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ; -- the end", "SELECT 1"),
        ("SELECT 1 /* ; */ ;;\n", "SELECT 1"),
        ("SELECT ';' AS x;", "SELECT ';' AS x"),
        ("SELECT 'it''s' -- note;", "SELECT 'it''s'"),
        ('SELECT "a;b" FROM t', 'SELECT "a;b" FROM t'),
        ("SELECT 1; SELECT 2", "SELECT 1; SELECT 2"),
    ],
)
def test_trailing_terminators_and_comments_are_dropped_but_a_second_statement_is_not(
    query: str, expected: str
) -> None:
    assert subquery(query, dialect="sqlite") == f"\n{expected}\n"
