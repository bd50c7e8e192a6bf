"""A run reads a segment query's text by the same rule as ``validate``
(:func:`omnisync.config.rules.select_problem`), in the source's SQL dialect: a query that
would close the ``FROM ( ... )`` around it is refused before a row is read, and
PostgreSQL's dollar-quoted strings run as psql runs them (real SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from omnisync.config.model import FieldMapping
from omnisync.config.rules import SqlDialect
from omnisync.engine.staging import stage_export
from omnisync.sources.errors import SourceError
from omnisync.sources.postgres import PostgresReader
from omnisync.sources.sqlite import subquery
from tests.conftest import fresh_database
from tests.staging.configs import make_config, make_export, write_customers

COLUMNS = ("email", "first_name", "city")
PEOPLE = [
    {"email": "olena@example.com", "first_name": "Олена", "city": "Kyiv"},
    {"email": "jonas@example.lt", "first_name": "a;b", "city": "Vilnius"},
]
#: Closes the ``FROM (`` omnisync writes before the query and opens one the ``)`` after it
#: closes: a second query beside the segment's, its rows read as members.
ESCAPING = (
    "SELECT email, first_name, city FROM customers WHERE 0) UNION ALL "
    "SELECT * FROM (SELECT * FROM customers"
)
POSTGRES_ESCAPING = (
    "SELECT email FROM customers WHERE false) AS x UNION ALL "
    "SELECT email FROM (SELECT email FROM customers"
)


def staged_emails(database: Path, query: str) -> list[str]:
    """The e-mails a run stages from the SQLite ``database`` for ``query``."""
    export = make_export(mapping=FieldMapping(email="email"))
    config = make_config(
        source_path=database, state_dir=database.parent / "state", exports=[export], query=query
    )
    with stage_export(config, "vip") as staged:
        return sorted(str(item.row["email"]) for item in staged.work())


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Path:
    path = tmp_path / "cdp.sqlite"
    write_customers(path, PEOPLE, columns=COLUMNS)
    return path


def test_a_sqlite_query_closing_its_wrapper_is_refused_before_a_row_is_read(
    sqlite_database: Path,
) -> None:
    with pytest.raises(SourceError) as caught:
        staged_emails(sqlite_database, ESCAPING)

    assert caught.value.cause == (
        "bad query: the ')' at line 1, column 54 of the query closes a parenthesis it did not"
        " open (a segment query must be exactly one SELECT statement)"
    )
    assert "@" not in str(caught.value)


def test_sqlite_parentheses_in_strings_names_and_comments_run(sqlite_database: Path) -> None:
    query = "SELECT email AS [e)mail], ')' AS x, email, first_name FROM customers /* ) */ -- ("

    assert staged_emails(sqlite_database, query) == ["jonas@example.lt", "olena@example.com"]


@pytest.mark.parametrize(
    ("query", "dialect", "inside"),
    [
        ("SELECT $$--$$ ; -- end", "postgres", "SELECT $$--$$"),
        ("SELECT $t$ ; $t$;", "postgres", "SELECT $t$ ; $t$"),
        ("SELECT 1 /* /* */ ; */ ;", "postgres", "SELECT 1"),
        ("SELECT 1 /* /* */ , 2 -- */", "sqlite", "SELECT 1 /* /* */ , 2"),
        ("SELECT E'\\';' ;", "postgres", "SELECT E'\\';'"),
    ],
)
def test_trailing_terminators_are_found_in_the_dialect_of_the_source(
    query: str, dialect: SqlDialect, inside: str
) -> None:
    assert subquery(query, dialect=dialect) == f"\n{inside}\n"


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_dsn(postgres_admin_dsn: str) -> Iterator[str]:
    """A fresh database holding ``customers`` (:data:`PEOPLE`), dropped afterwards."""
    with fresh_database(postgres_admin_dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE customers (email text, first_name text, city text)")
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO customers VALUES (%s, %s, %s)",
                    [tuple(person[column] for column in COLUMNS) for person in PEOPLE],
                )
        yield dsn


def postgres_emails(dsn: str, query: str) -> list[str]:
    reader = PostgresReader(dsn, query, segment="vip", source="cdp")
    return sorted(str(email) for (email,) in reader.rows(["email"]))


EVERYONE = ["jonas@example.lt", "olena@example.com"]


@pytest.mark.parametrize(
    ("query", "emails"),
    [
        ("SELECT email FROM customers WHERE first_name <> $$a;b$$", ["olena@example.com"]),
        ("SELECT email FROM customers WHERE first_name <> $$--$$", EVERYONE),
        ("SELECT email FROM customers WHERE first_name <> $tag$ ) $$ ; $tag$ ;", EVERYONE),
        ("SELECT email FROM customers WHERE first_name <> E'it\\'s ) ;'", EVERYONE),
        ("SELECT email FROM customers /* nested /* ) */ ; */ WHERE true", EVERYONE),
    ],
)
def test_postgresql_reads_dollar_quotes_and_nested_comments_as_psql_does(
    postgres_dsn: str, query: str, emails: list[str]
) -> None:
    assert postgres_emails(postgres_dsn, f"{query}\n-- the end") == emails


def test_a_postgresql_query_closing_its_wrapper_is_refused_before_it_runs(
    postgres_dsn: str,
) -> None:
    with pytest.raises(SourceError) as caught:
        postgres_emails(postgres_dsn, POSTGRES_ESCAPING)

    assert caught.value.cause == (
        "bad query: the ')' at line 1, column 40 of the query closes a parenthesis it did not open"
    )
    assert "@" not in str(caught.value)
