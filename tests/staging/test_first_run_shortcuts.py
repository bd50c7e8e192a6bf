"""Staging's shortcuts give exactly what the plain path gives.

An e-mail of printable ASCII is normalised by SQLite itself, and while an
export's ledger is empty no fingerprint is computed in SQL (the work items'
fingerprints come from their staged values instead). Both must be invisible:
the same keys, the same fingerprints, whichever path computed them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.config.model import FieldMapping
from omnisync.engine.stagesql import email_sql
from omnisync.engine.staging import stage_export
from omnisync.fingerprint import Fingerprinter, fingerprint_columns
from omnisync.mapping import normalise_email
from tests.staging.configs import make_config, make_export, write_customers, write_ledger

EXPORT = make_export(
    mapping=FieldMapping(email="email", first_name="first_name", city="city", country="country")
)

# Printable ASCII, the characters around its edges, whitespace of every kind,
# letters whose case Python folds but SQLite does not, and the NUL byte.
_CHARACTERS = st.sampled_from(
    [
        *" @.aZz~!",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x1f",
        "\x7f",
        "\x00",
        "\u00a0",
        "\u2003",
        "É",
        "ß",
        "İ",
        "Ω",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.text(_CHARACTERS, max_size=12),
        st.text(max_size=12),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.binary(max_size=8),
        st.none(),
    )
)
def test_sqlite_normalises_an_email_exactly_as_python_does(value: object) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        connection.create_function("omnisync_email", 1, normalise_email, deterministic=True)
        (found,) = connection.execute(f"SELECT {email_sql('?1')}", (value,)).fetchone()
    finally:
        connection.close()
    assert found == normalise_email(value)


def rows(count: int) -> list[dict[str, object]]:
    return [
        {
            "id": index,
            "email": f"Person{index}@Example.com " if index % 3 else f" Pérsonne{index}@exemple.fr",
            "first_name": None if index % 5 == 0 else f"Олена {index}",
            "city": index * 1.5 if index % 2 else "Київ",
            "country": b"\xc3\xa9t\xc3\xa9" if index % 7 == 0 else "Ukraine",
        }
        for index in range(count)
    ]


def test_first_run_fingerprints_are_the_ones_sql_computes(tmp_path: Path) -> None:
    source = tmp_path / "cdp.sqlite"
    write_customers(source, rows(60), columns=("id", "email", "first_name", "city", "country"))
    config = make_config(source_path=source, state_dir=tmp_path, exports=[EXPORT])
    fingerprinter = Fingerprinter.for_export(EXPORT)
    columns = fingerprint_columns(EXPORT)

    # Empty ledger: fingerprints from the staged values, in Python.
    with stage_export(config, "vip") as staged:
        first = {item.email: item.fingerprint for item in staged.work()}
        expected = {
            item.email: fingerprinter(*(item.row[column] for column in columns))
            for item in staged.work()
        }
    assert len(first) == 60 and first == expected

    # A ledger holding one entry of the export: every fingerprint is computed in SQL.
    write_ledger(tmp_path / "omnisync.sqlite3", [("vip", "someone@else.example", 1, "vip")])
    with stage_export(config, "vip") as staged:
        assert staged.counts.new == 60
        second = {item.email: item.fingerprint for item in staged.work()}
    assert second == first
