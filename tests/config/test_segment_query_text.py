"""What ``validate`` reads in a segment query's text: its parentheses must balance outside
strings, quoted names and comments (omnisync wraps it in ``FROM ( ... )``), and each
source reads that text in its own SQL dialect (PostgreSQL's ``$$ ... $$`` is a string)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnisync.config.rules import select_problem
from tests.config.helpers import BASE, load_text, messages, replaced

QUERY_LINE = "    query: SELECT email FROM customers\n"
POSTGRES = replaced(
    "    kind: sqlite\n    path: cdp.sqlite\n", "    kind: postgres\n    dsn: {env: CDP_DSN}\n"
)
#: Closes the ``FROM (`` omnisync writes before the query and opens one the ``)`` after it
#: closes: a second query beside the segment's, its rows read as members.
ESCAPING = "SELECT email FROM customers WHERE 0) UNION ALL SELECT * FROM (SELECT * FROM customers"


def with_query(query: str, *, text: str = BASE) -> str:
    """``text`` with the segment's query written as a double-quoted YAML scalar."""
    return replaced(QUERY_LINE, f"    query: {json.dumps(query)}\n", text=text)


@pytest.mark.parametrize("text", [BASE, POSTGRES], ids=["sqlite", "postgres"])
def test_a_query_closing_the_parenthesis_around_it_is_refused_at_its_place(
    tmp_path: Path, text: str
) -> None:
    result = load_text(tmp_path, with_query(ESCAPING, text=text))

    assert [str(diagnostic) for diagnostic in result.diagnostics] == [
        f"{tmp_path / 'omnisync.yaml'}:14:5: segments.vip.query: the ')' at line 1, column 36"
        " of the query closes a parenthesis it did not open"
    ]


def test_a_parenthesis_the_query_leaves_open_is_refused_where_it_opens(tmp_path: Path) -> None:
    query = "SELECT email\nFROM (SELECT email FROM customers -- (\n"

    result = load_text(tmp_path, with_query(query))

    assert messages(result) == [
        "segments.vip.query: the '(' at line 2, column 6 of the query is never closed"
    ]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT email AS \")\", ')' AS x FROM customers /* ) */ -- )",
        "SELECT email AS [a)b], email AS `(` FROM (SELECT * FROM customers)",
        "SELECT count(*) AS n, email FROM customers GROUP BY (email);",
    ],
)
def test_parentheses_in_strings_names_and_comments_do_not_count_in_sqlite(
    tmp_path: Path, query: str
) -> None:
    assert messages(load_text(tmp_path, with_query(query))) == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT email FROM customers WHERE first_name <> $$a;b$$",
        "SELECT email FROM customers WHERE first_name <> $$--$$",
        "SELECT email FROM customers WHERE first_name <> $tag$ ) $$ ; $tag$",
        "SELECT email FROM customers WHERE first_name <> E'it\\'s ) ;'",
        "SELECT email FROM customers /* nested /* ) */ ; */ WHERE id > 1",
        "SELECT email AS a$$b FROM customers",
    ],
)
def test_postgresql_dollar_quotes_nested_comments_and_escapes_are_read_as_postgresql_does(
    tmp_path: Path, query: str
) -> None:
    assert messages(load_text(tmp_path, with_query(query, text=POSTGRES))) == []


def test_sqlite_keeps_its_own_reading_of_a_dollar_sign(tmp_path: Path) -> None:
    # In SQLite `$` starts a parameter name, so `$$a;b$$` is two statements there.
    query = "SELECT email FROM customers WHERE first_name <> $$a;b$$"

    assert messages(load_text(tmp_path, with_query(query))) == [
        "segments.vip.query: the query must be a single statement"
        " (it has more than one ';'-separated part)"
    ]
    assert select_problem("SELECT $$)$$", dialect="postgres") is None
    assert select_problem("SELECT $$)$$", dialect="sqlite") is not None
