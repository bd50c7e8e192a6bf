"""stage_export on CSV and JSONL sources, and fingerprints across the Python and SQL paths."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from omnisync.config.model import CsvOptions, FieldMapping
from omnisync.engine.staging import stage_export
from omnisync.fingerprint import Fingerprinter, fingerprint_columns
from omnisync.planning import Leaver, StageCounts
from omnisync.sources.errors import SourceError
from tests.staging.configs import (
    consent_export,
    make_config,
    make_export,
    write_customers,
    write_ledger,
)

EXPORT = make_export(
    mapping=FieldMapping(email="email", first_name="first_name", custom_properties={"vip": "vip"})
)


def write_csv(
    path: Path, rows: list[dict[str, str]], *, delimiter: str = ",", encoding: str = "utf-8"
) -> None:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


def test_a_csv_segment_is_staged_and_diffed(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    write_csv(
        path,
        [
            {"email": "Olena@Example.com", "first_name": "Олена", "vip": "yes"},
            {"email": "", "first_name": "Nobody", "vip": ""},
            {"email": "jose@example.es", "first_name": "José", "vip": "no"},
            {"email": "olena@example.com ", "first_name": "Copy", "vip": "no"},
        ],
        delimiter=";",
    )
    state = tmp_path / "omnisync.sqlite3"
    fingerprinter = Fingerprinter(EXPORT)
    write_ledger(
        state,
        [
            ("vip", "jose@example.es", fingerprinter("jose@example.es", "José", "no"), "vip"),
            ("vip", "left@example.com", 1, "vip"),
        ],
    )
    config = make_config(
        source_path=path,
        kind="csv",
        state_dir=tmp_path,
        exports=[EXPORT],
        csv=CsvOptions(delimiter=";"),
    )
    with stage_export(config, "vip") as staged:
        assert staged.counts == StageCounts(
            rows=4,
            members=2,
            missing_email=1,
            duplicates=1,
            new=1,
            unchanged=1,
            leaving=1,
            needs_tag=1,
            delivered=2,
            tagged=2,
        )
        (item,) = staged.work()
        assert item.email == "olena@example.com"
        assert item.row == {"email": "Olena@Example.com", "first_name": "Олена", "vip": "yes"}
        assert item.fingerprint == fingerprinter("Olena@Example.com", "Олена", "yes")
        assert list(staged.leavers()) == [Leaver("left@example.com", "vip")]
        assert staged.missing_email_rows == (2,)


def test_a_jsonl_segment_is_staged_with_missing_keys_as_none(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    lines = [
        {"email": "zoe@example.com", "first_name": "Zoë 🎉", "vip": True},
        {"email": "ana@example.com"},
        {"first_name": "No e-mail"},
    ]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n")
    config = make_config(source_path=path, kind="jsonl", state_dir=tmp_path, exports=[EXPORT])
    with stage_export(config, "vip") as staged:
        assert (staged.counts.rows, staged.counts.new, staged.counts.missing_email) == (3, 2, 1)
        rows = [item.row for item in staged.work()]
    assert rows == [
        {"email": "zoe@example.com", "first_name": "Zoë 🎉", "vip": "true"},
        {"email": "ana@example.com", "first_name": None, "vip": None},
    ]


def test_a_malformed_jsonl_line_fails_staging_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"email": "a@example.com"}\n{"email": \n')
    config = make_config(source_path=path, kind="jsonl", state_dir=tmp_path, exports=[EXPORT])
    with pytest.raises(SourceError, match="line 2: malformed JSON"), stage_export(config, "vip"):
        pytest.fail("yielded despite a malformed line")


def test_a_csv_without_a_mapped_column_fails_staging(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,name\na@example.com,A\n")
    config = make_config(source_path=path, kind="csv", state_dir=tmp_path, exports=[EXPORT])
    with (
        pytest.raises(SourceError, match="missing columns 'first_name', 'vip'"),
        stage_export(config, "vip"),
    ):
        pass


def test_an_empty_jsonl_file_is_an_empty_segment(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text("")
    write_ledger(tmp_path / "omnisync.sqlite3", [("vip", "a@example.com", 1, "vip")])
    config = make_config(source_path=path, kind="jsonl", state_dir=tmp_path, exports=[EXPORT])
    with stage_export(config, "vip") as staged:
        assert staged.counts == StageCounts(leaving=1, delivered=1, tagged=1)


VALUES: list[tuple[object, ...]] = [
    ("olena@example.com", "Олена", "Коваленко", None, "", 0, 1.5, 2**62, "🎉 Zoë", b"\x00\xff"),
    ("a@b.co", None, None, None, None, None, None, None, None, None),
    ("", "", "", "", "", "", "", "", "", ""),
    ("x@y.org", "1", 1, 1.0, "1.0", -7, -0.0, 1e300, "e\u0301", "\u00e9"),
]


@pytest.mark.parametrize("values", VALUES)
def test_the_sql_path_fingerprints_exactly_as_the_python_path(
    tmp_path: Path, values: tuple[object, ...]
) -> None:
    """The same raw values give the same fingerprint in SQLite (UDF) and in Python."""
    columns = [f"col{index}" for index in range(len(values))]
    export = make_export(
        mapping=FieldMapping(
            email="col0",
            first_name="col1",
            custom_properties={f"p{index}": column for index, column in enumerate(columns)},
        )
    )
    assert fingerprint_columns(export) == tuple(columns)
    source = tmp_path / "typed.sqlite"
    connection = sqlite3.connect(source)
    connection.execute(f"CREATE TABLE t ({', '.join(columns)})")
    connection.execute(f"INSERT INTO t VALUES ({', '.join('?' for _ in columns)})", values)
    connection.commit()
    connection.close()
    config = make_config(
        source_path=source, state_dir=tmp_path, exports=[export], query="SELECT * FROM t"
    )
    with stage_export(config, "vip") as staged:
        staged_fingerprints = [item.fingerprint for item in staged.work()]
        staged_rows = [item.row for item in staged.work()]
    if values[0] == "":
        assert staged_fingerprints == []  # no e-mail, no work; compare the raw row instead
        return
    assert staged_rows == [dict(zip(columns, values, strict=True))]
    assert staged_fingerprints == [Fingerprinter(export)(*values)]


def test_text_values_fingerprint_alike_from_sqlite_csv_and_jsonl(tmp_path: Path) -> None:
    export = consent_export()
    columns = fingerprint_columns(export)
    row = {
        "email": "Taras@Example.UA",
        "first_name": "Тарас",  # noqa: RUF001
        "last_name": "Шевченко",
        "address": "вул. Шевченка, 1",
        "city": "Канів",
        "state": "",
        "postal_code": "19000",
        "country": "Україна",
        "loyalty_tier": "gold",
        "lifetime_value": "1250.5",
        "email_status": "subscribed",
        "email_status_changed_at": "2024-05-01T09:30:00Z",
    }
    sqlite_path = tmp_path / "cdp.sqlite"
    write_customers(sqlite_path, [row], columns=columns)
    csv_path = tmp_path / "cdp.csv"
    write_csv(csv_path, [row])
    jsonl_path = tmp_path / "cdp.jsonl"
    jsonl_path.write_text(json.dumps(row, ensure_ascii=False) + "\n")
    fingerprints = []
    for kind, path in (("sqlite", sqlite_path), ("csv", csv_path), ("jsonl", jsonl_path)):
        config = make_config(source_path=path, kind=kind, state_dir=tmp_path, exports=[export])  # type: ignore[arg-type]
        with stage_export(config, "vip") as staged:
            (item,) = staged.work()
            fingerprints.append(item.fingerprint)
    assert fingerprints[0] == fingerprints[1] == fingerprints[2]


def test_column_names_with_spaces_quotes_and_other_case(tmp_path: Path) -> None:
    export = make_export(mapping=FieldMapping(email="E-mail Address", first_name='Given "Name"'))
    source = tmp_path / "odd.sqlite"
    connection = sqlite3.connect(source)
    connection.execute('CREATE TABLE "my customers" ("e-mail address" TEXT, "Given ""Name""" TEXT)')
    connection.execute("INSERT INTO \"my customers\" VALUES ('Ana@Example.com', 'Ana')")
    connection.commit()
    connection.close()
    csv_path = tmp_path / "odd.csv"
    write_csv(csv_path, [{"E-mail Address": "Ana@Example.com", 'Given "Name"': "Ana"}])
    for kind, path, query in (
        ("sqlite", source, 'SELECT * FROM "my customers"'),
        ("csv", csv_path, None),
    ):
        config = make_config(
            source_path=path,
            kind=kind,
            query=query,
            state_dir=tmp_path,
            exports=[export],  # type: ignore[arg-type]
        )
        with stage_export(config, "vip") as staged:
            (item,) = staged.work()
        assert item.email == "ana@example.com"
        assert item.row == {"E-mail Address": "Ana@Example.com", 'Given "Name"': "Ana"}
